//! Memory cost of the index for the benchmark's 10 000 services (run with
//! `cargo test --release -p strait-dns --test memory -- --ignored --nocapture`).

use strait_cluster::ManifestLoader;
use strait_dns::Index;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "measurement; prints figures"]
fn index_memory_for_ten_thousand_services() {
    let mut yaml = String::new();
    for i in 0..10_000usize {
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
    let start = rss_kib();
    let snapshot = ManifestLoader::parse_str("bench.yaml", &yaml).to_snapshot();
    drop(yaml);
    let with_view = rss_kib();
    let index = Index::from_snapshot("cluster.local", &snapshot);
    let with_index = rss_kib();
    assert_eq!(index.service_count(), 10_000);
    eprintln!(
        "cluster view: {} KiB, dns index: {} KiB ({} B per service)",
        with_view.saturating_sub(start),
        with_index.saturating_sub(with_view),
        with_index.saturating_sub(with_view) * 1024 / 10_000
    );
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
    let start = rss_kib();
    let snapshot = ManifestLoader::parse_str("pods.yaml", &yaml).to_snapshot();
    drop(yaml);
    let with_view = rss_kib();
    let index = Index::from_snapshot("cluster.local", &snapshot);
    let with_index = rss_kib();
    assert_eq!(snapshot.pods().len(), 10_000);
    drop(index);
    eprintln!(
        "autopath for 10 000 pods: watched Pods in the cluster view {} KiB ({} B per pod), \
         address index {} KiB ({} B per pod)",
        with_view.saturating_sub(start),
        with_view.saturating_sub(start) * 1024 / 10_000,
        with_index.saturating_sub(with_view),
        with_index.saturating_sub(with_view) * 1024 / 10_000
    );
}
