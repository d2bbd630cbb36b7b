//! Memory cost of the cluster view and the index for the benchmark's
//! 10 000 services × 5 endpoints (run with
//! `cargo test --release -p strait-dns --test memory -- --ignored --nocapture --test-threads=1`).
//!
//! Two figures per case: the live heap (bytes allocated and not freed, from
//! a counting allocator: what the objects really hold) and the growth of
//! the resident set (what `ps` and the benchmark see, which also keeps
//! memory that parsing freed but the allocator did not hand back). Each
//! cluster-view case runs in a child process of its own, so one case's
//! freed memory cannot hide the next one's growth.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use strait_cluster::{ClusterView, Component, Kind, ManifestLoader, ManifestSource, Trim};
use strait_dns::Index;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (the caller upholds `alloc`'s contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_kib() -> i64 {
    LIVE.load(Ordering::Relaxed) as i64 / 1024
}

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Live heap and resident set, to subtract.
#[derive(Clone, Copy)]
struct Mark {
    live: i64,
    rss: i64,
}

impl Mark {
    fn now() -> Mark {
        Mark {
            live: live_kib(),
            rss: rss_kib(),
        }
    }

    /// "live heap X KiB (B per object), RSS +Y KiB" since `self`, for
    /// `objects` objects.
    fn since_per(self, objects: usize) -> String {
        let now = Mark::now();
        let live = now.live - self.live;
        format!(
            "live heap {live} KiB ({} B per service + slice), RSS +{} KiB",
            live * 1024 / objects as i64,
            now.rss - self.rss
        )
    }
}

const SERVICES: usize = 10_000;

/// The benchmark's shape: 10 000 ClusterIP services, each with one
/// EndpointSlice of 5 ready endpoints.
fn services_yaml() -> String {
    let mut yaml = String::new();
    for i in 0..SERVICES {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: bench}}\n\
             spec: {{clusterIP: 10.{}.{}.{}, ports: [{{name: http, port: 80}}]}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: svc-{i}-a, namespace: bench, labels: {{kubernetes.io/service-name: svc-{i}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n",
            96 + (i >> 16),
            (i >> 8) & 255,
            i & 255
        ));
        for e in 0..5 {
            let n = i * 5 + e;
            yaml.push_str(&format!(
                "  - {{addresses: [\"10.244.{}.{}\"], nodeName: node-{}}}\n",
                (n >> 8) & 255,
                n & 255,
                e % 2
            ));
        }
    }
    yaml
}

#[test]
#[ignore = "measurement; prints figures"]
fn index_memory_for_ten_thousand_services() {
    let yaml = services_yaml();
    let start = Mark::now();
    let snapshot = ManifestLoader::parse_str("bench.yaml", &yaml).to_snapshot();
    drop(yaml);
    let with_view = Mark::now();
    let index = Index::from_snapshot("cluster.local", &snapshot);
    let with_index = Mark::now();
    assert_eq!(index.service_count(), SERVICES);
    let index_live = with_index.live - with_view.live;
    eprintln!(
        "cluster view (untrimmed snapshot): live heap {} KiB; dns index: live heap {} KiB \
         ({} B per service), RSS +{} KiB",
        with_view.live - start.live,
        index_live,
        index_live * 1024 / SERVICES as i64,
        with_index.rss - with_view.rss,
    );
}

/// How `strait dns --manifests` may hold the cluster, one child process each.
const CASES: &[(&str, &str)] = &[
    (
        "lab",
        "ManifestLoader::parse_str + LoadReport::to_snapshot (the lab's path, untrimmed)",
    ),
    (
        "source",
        "ManifestSource, untrimmed (as the ingress controller runs it)",
    ),
    (
        "source-trimmed",
        "ManifestSource with Trim::for_component(Dns) and the DNS kinds (strait dns now)",
    ),
];

const CASE_ENV: &str = "STRAIT_MEMORY_CASE";

/// The cluster view for the 10 000 services, per way of loading it, each
/// measured in a fresh process.
#[test]
#[ignore = "measurement; prints figures"]
fn cluster_view_memory_for_ten_thousand_services() {
    let exe = std::env::current_exe().unwrap();
    for (case, what) in CASES {
        let out = std::process::Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "measure_one_case",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASE_ENV, case)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("MEASURED "))
            .unwrap_or_else(|| panic!("{case}: no measurement\n{stderr}"));
        eprintln!("cluster view, {what}: {line}");
    }
}

/// One case of [`cluster_view_memory_for_ten_thousand_services`]; does
/// nothing unless the parent set [`CASE_ENV`].
#[test]
#[ignore = "child of cluster_view_memory_for_ten_thousand_services"]
fn measure_one_case() {
    let Ok(case) = std::env::var(CASE_ENV) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.yaml"), services_yaml()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Mark::now();
    let figures = match case.as_str() {
        "lab" => {
            let snapshot = ManifestSource::load_once(dir.path()).to_snapshot();
            assert_eq!(snapshot.services().len(), SERVICES);
            start.since_per(SERVICES)
        }
        "source" | "source-trimmed" => rt.block_on(async {
            let source = ManifestSource::new(dir.path()).with_rescan_interval(None);
            let source = if case == "source" {
                source
            } else {
                // as `strait dns --manifests` without verified pod records or autopath
                source
                    .with_kinds(Component::Dns.kinds().without(Kind::Pod))
                    .with_trim(Trim::for_component(Component::Dns))
            };
            let mut view = ClusterView::spawn(source);
            let snapshot = view.wait_synced().await.unwrap();
            // let the source task settle (it holds its loader from now on)
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(snapshot.services().len(), SERVICES);
            assert_eq!(snapshot.endpoint_slices().len(), SERVICES);
            start.since_per(SERVICES)
        }),
        other => panic!("unknown case {other}"),
    };
    eprintln!("MEASURED {figures}");
}

/// What autopath costs: the Pods it must watch (cluster view) and the
/// address → namespace index built from them, for 10 000 pods.
#[test]
#[ignore = "measurement; prints figures"]
fn autopath_memory_for_ten_thousand_pods() {
    let mut yaml = String::new();
    for i in 0..10_000usize {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{i}, namespace: ns-{}, labels: {{app: a{}}}}}\n\
             spec: {{nodeName: node-{}, containers: [{{name: c, image: registry.example/app:1.0, ports: [{{containerPort: 8080}}]}}]}}\n\
             status: {{phase: Running, podIP: 10.244.{}.{}, podIPs: [{{ip: 10.244.{}.{}}}]}}\n",
            i % 50,
            i % 100,
            i % 20,
            (i >> 8) & 255,
            i & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    let loaded = ManifestLoader::parse_str("pods.yaml", &yaml);
    drop(yaml);
    let start = Mark::now();
    let snapshot = loaded.to_snapshot();
    let with_view = Mark::now();
    let trim = Trim::for_component(Component::Dns);
    let trimmed = strait_cluster::ClusterSnapshot::from_objects(loaded.objects.iter().map(|o| {
        let mut o = o.clone();
        trim.apply(&mut o);
        o
    }));
    let with_trimmed = Mark::now();
    let index = Index::from_snapshot("cluster.local", &snapshot);
    let with_index = Mark::now();
    assert_eq!(snapshot.pods().len(), 10_000);
    assert_eq!(trimmed.pods().len(), 10_000);
    drop(index);
    let per_pod = |kib: i64| kib * 1024 / 10_000;
    let view = with_view.live - start.live;
    let view_trimmed = with_trimmed.live - with_view.live;
    let index = with_index.live - with_trimmed.live;
    eprintln!(
        "autopath for 10 000 pods (live heap): watched Pods in the cluster view {view} KiB \
         ({} B per pod), trimmed for DNS {view_trimmed} KiB ({} B per pod); \
         address index {index} KiB ({} B per pod)",
        per_pod(view),
        per_pod(view_trimmed),
        per_pod(index),
    );
}
