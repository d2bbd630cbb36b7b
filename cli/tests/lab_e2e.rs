//! `strait lab up` end to end with the real binaries, once per datapath:
//! `--proxy ebpf` (Strait), `--proxy iptables` and `--proxy nftables`
//! (kube-proxy's layouts, written by the same agents), with the same checks.
//! The default lab comes up, and from its client pod Services answer by
//! DNS name (UDP and TCP DNS through the proxy), pods on both nodes are
//! reached, a pod reaches itself through its own Service (hairpin),
//! headless and ExternalName names resolve, affinity pins, the ingress
//! routes HTTPS by host and path, a Service without endpoints refuses; a
//! readiness flip and a scale-up edited into the manifest reach proxy, DNS
//! and ingress within 2 s; and `lab down` leaves nothing behind.
//! From the external netns: the NodePort through both nodes, and the
//! LoadBalancer IP with `externalTrafficPolicy: Local` keeping the client
//! address.
//!
//! The lab is global state (one run directory, fixed namespace names), so
//! the tests take [`LAB`] and run one after another.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strait_tests::require_root;

const STRAIT: &str = env!("CARGO_BIN_EXE_strait");
const MANIFEST: &str = "/run/strait-lab/manifests/default.yaml";

/// Serializes the tests of this file: there is only one lab.
static LAB: Mutex<()> = Mutex::new(());

fn lab_lock() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one still runs.
    LAB.lock().unwrap_or_else(|e| e.into_inner())
}

/// The datapath a run uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proxy {
    Ebpf,
    Iptables,
    Nftables,
}

impl Proxy {
    fn name(self) -> &'static str {
        match self {
            Proxy::Ebpf => "ebpf",
            Proxy::Iptables => "iptables",
            Proxy::Nftables => "nftables",
        }
    }
}

fn cni_bin() -> PathBuf {
    let bin = Path::new(STRAIT).with_file_name("strait-cni");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p strait-cni; scripts/test does)",
        bin.display()
    );
    bin
}

fn lab(args: &[&str]) -> Output {
    Command::new(STRAIT)
        .arg("lab")
        .args(args)
        .output()
        .expect("running strait lab")
}

/// Runs `strait lab down` when the test ends, pass or fail.
struct LabGuard {
    armed: bool,
}

impl LabGuard {
    /// `lab down` now; it must succeed (in the iptables and nftables modes
    /// it runs the agents' rule cleanup in every node netns first).
    fn finish(mut self) {
        self.armed = false;
        let out = lab(&["down"]);
        assert!(
            out.status.success(),
            "strait lab down failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let out = lab(&["down"]);
        if !out.status.success() {
            eprintln!(
                "strait lab down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The output of a command run in `pod` through `strait lab exec`.
fn exec_output(pod: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    lab(&args)
}

/// stdout of a command run in `pod` through `strait lab exec`.
fn exec(pod: &str, cmd: &[&str]) -> String {
    String::from_utf8_lossy(&exec_output(pod, cmd).stdout).into_owned()
}

/// The pod that answered an HTTP request (the echo's JSON `pod` field).
fn answered_by(pod: &str, url: &str, extra: &[&str]) -> Option<String> {
    let mut cmd = vec!["curl", "-s", "-m", "3"];
    cmd.extend_from_slice(extra);
    cmd.push(url);
    let body = exec(pod, &cmd);
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["pod"].as_str().map(str::to_owned)
}

fn dig(name: &str, qtype: &str, extra: &[&str]) -> Vec<String> {
    let mut cmd = vec!["dig", "+short", "+tries=1", "+time=2"];
    cmd.extend_from_slice(extra);
    cmd.extend_from_slice(&[name, qtype]);
    let out = exec("client", &cmd);
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not seen within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn edit_manifest(from: &str, to: &str) {
    let text = std::fs::read_to_string(MANIFEST).expect("lab manifest");
    assert!(text.contains(from), "manifest has no {from:?}");
    let tmp = format!("{MANIFEST}.tmp");
    std::fs::write(&tmp, text.replacen(from, to, 1)).expect("write manifest");
    std::fs::rename(&tmp, MANIFEST).expect("replace manifest");
}

fn append_manifest(objects: &str) {
    let text = std::fs::read_to_string(MANIFEST).unwrap();
    std::fs::write(format!("{MANIFEST}.tmp"), format!("{text}{objects}")).unwrap();
    std::fs::rename(format!("{MANIFEST}.tmp"), MANIFEST).unwrap();
}

fn lab_leftovers() -> Vec<String> {
    let mut found = Vec::new();
    for dir in [
        "/run/netns",
        "/etc/netns",
        "/sys/fs/bpf",
        "/sys/fs/cgroup",
        "/run",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("strait-lab") {
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    found
}

/// stdout of `program args` inside a lab node's netns.
fn in_node(node: &str, program: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("strait-lab-{node}"), program])
        .args(args)
        .output()
        .expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The datapath really is the one asked for: kube-proxy's rules in the node
/// netns and no eBPF pins, or no such rules.
fn check_datapath(proxy: Proxy) {
    let iptables = in_node("node-1", "iptables-nft-save", &["-t", "nat"]);
    let nft = in_node("node-1", "nft", &["list", "tables"]);
    let pins = Path::new("/sys/fs/bpf/strait-lab/node-1").exists();
    match proxy {
        Proxy::Ebpf => {
            assert!(pins, "the eBPF agent pins its maps");
            assert!(!iptables.contains("KUBE-SVC-"), "{iptables}");
            assert!(!nft.contains("kube-proxy"), "{nft}");
        }
        Proxy::Iptables => {
            assert!(!pins, "no eBPF in iptables mode");
            assert!(
                iptables.contains("-j KUBE-SVC-") && iptables.contains("--to-destination"),
                "node-1 has kube-proxy's iptables rules:\n{iptables}"
            );
            assert!(!nft.contains("kube-proxy"), "{nft}");
        }
        Proxy::Nftables => {
            assert!(!pins, "no eBPF in nftables mode");
            assert!(nft.contains("table ip kube-proxy"), "{nft}");
            let table = in_node("node-1", "nft", &["list", "table", "ip", "kube-proxy"]);
            assert!(table.contains("dnat to"), "{table}");
            assert!(!iptables.contains("KUBE-SVC-"), "{iptables}");
        }
    }
}

/// Every check of the lab e2e, with `proxy` as the agents' datapath.
fn lab_e2e(proxy: Proxy) {
    let _serial = lab_lock();
    let cni = cni_bin();
    let _ = lab(&["down"]); // a previous run's remains
    let guard = LabGuard { armed: true };
    let up = lab(&[
        "up",
        "--cni-bin",
        cni.to_str().unwrap(),
        "--proxy",
        proxy.name(),
    ]);
    let stdout = String::from_utf8_lossy(&up.stdout);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "lab up failed:\n{stderr}\n{stdout}");
    for expected in [
        "The lab is up",
        "default/web",
        "10.96.0.100",
        "NOT READY",
        "TRY",
        proxy.name(),
    ] {
        assert!(
            stdout.contains(expected),
            "summary lacks {expected:?}:\n{stdout}"
        );
    }
    let status = lab(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "lab status reports a failing component:\n{status_text}"
    );
    assert!(
        status_text.contains(&format!("proxy:     {}", proxy.name())),
        "status shows the datapath:\n{status_text}"
    );
    check_datapath(proxy);

    // ClusterIP by short name, namespace-qualified name and FQDN (resolv.conf
    // search path + DNS + proxy), on two ports, one a named targetPort.
    for name in ["web", "web.default", "web.default.svc.cluster.local"] {
        let by = answered_by("client", &format!("http://{name}/"), &[]);
        assert!(
            matches!(by.as_deref(), Some("web-1" | "web-2")),
            "{name}: answered by {by:?}"
        );
    }
    let metrics = answered_by("client", "http://web:9090/", &[]);
    assert!(
        matches!(metrics.as_deref(), Some("web-1" | "web-2")),
        "{metrics:?}"
    );
    // Both backends answer: web-1 on the client's node, web-2 on the other
    // (the other node is reached, and its replies find their way back).
    let seen: std::collections::BTreeSet<_> = (0..16)
        .filter_map(|_| answered_by("client", "http://web/", &[]))
        .collect();
    assert!(
        seen.contains("web-1") && seen.contains("web-2"),
        "web's backends seen from node-1: {seen:?}"
    );
    // Hairpin: web-1 reaches itself through its own Service.
    within(
        Duration::from_secs(10),
        "web-1 answering itself via the web VIP",
        || answered_by("web-1", "http://web/", &[]).as_deref() == Some("web-1"),
    );
    // The selector-less Service with manual Endpoints.
    assert_eq!(
        answered_by("client", "http://legacy/", &[]).as_deref(),
        Some("legacy-1")
    );

    // DNS through the kube-dns VIP over UDP and TCP; headless: the ready
    // pods' IPs; hostnames; ExternalName: a CNAME.
    assert_eq!(
        dig("web.default.svc.cluster.local", "A", &[]),
        ["10.96.0.100"]
    );
    assert_eq!(
        dig("web.default.svc.cluster.local", "A", &["+tcp"]),
        ["10.96.0.100"],
        "DNS over TCP"
    );
    let pods_yaml = std::fs::read_to_string("/run/strait-lab/cluster/cluster.yaml").unwrap();
    assert!(pods_yaml.contains("podIP"), "rendered cluster has pod IPs");
    let db = dig("db.default.svc.cluster.local", "A", &[]);
    assert_eq!(db.len(), 2, "headless db: {db:?}");
    assert_eq!(dig("db-0.db.default.svc.cluster.local", "A", &[]).len(), 1);
    let cname = dig("search.default.svc.cluster.local", "CNAME", &[]);
    assert_eq!(cname, vec!["web.default.svc.cluster.local.".to_string()]);

    // ClientIP affinity pins the client to one backend.
    let sticky: Vec<_> = (0..8)
        .map(|_| answered_by("client", "http://sticky/", &[]))
        .collect();
    assert!(sticky[0].is_some(), "sticky answered: {sticky:?}");
    assert!(
        sticky.iter().all(|s| s == &sticky[0]),
        "affinity: {sticky:?}"
    );

    // Ingress over HTTPS (SNI, generated certificate) by host and path.
    let https = |path: &str| {
        answered_by(
            "client",
            &format!("https://shop.lab.strait.dev{path}"),
            &["-k", "--resolve", "shop.lab.strait.dev:443:10.96.0.105"],
        )
    };
    assert_eq!(https("/api/orders").as_deref(), Some("api-1"));
    assert!(matches!(https("/").as_deref(), Some("web-1" | "web-2")));

    // From outside the cluster: NodePort through either node (api-1 runs on
    // node-2). Through node-1 the source is always NATed to node-1. Through
    // node-2 the eBPF datapath keeps the client address (the backend is
    // local); kube-proxy masquerades every NodePort connection of a Cluster
    // policy Service, so there the pod sees node-2.
    let external = |url: &str| -> serde_json::Value {
        let body = exec("external", &["curl", "-s", "-m", "3", url]);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body:?}"))
    };
    for node in ["192.0.2.11", "192.0.2.12"] {
        let got = external(&format!("http://{node}:30080/"));
        assert_eq!(got["pod"], "api-1", "NodePort via {node}: {got}");
    }
    let got = external("http://192.0.2.12:30080/");
    let want_peer = match proxy {
        Proxy::Ebpf => "192.0.2.2:",
        Proxy::Iptables | Proxy::Nftables => "192.0.2.12:",
    };
    assert!(
        got["peer"].as_str().unwrap().starts_with(want_peer),
        "NodePort via node-2, {}: {got}",
        proxy.name()
    );
    let got = external("http://192.0.2.100/");
    assert_eq!(got["pod"], "edge-1");
    assert!(
        got["peer"].as_str().unwrap().starts_with("192.0.2.2:"),
        "the LoadBalancer with Local policy keeps the client address: {got}"
    );

    // A Service without endpoints refuses connections (never black-holes).
    append_manifest(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: nobody\n  namespace: default\nspec:\n  clusterIP: 10.96.0.110\n  selector: {app: nobody}\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n",
    );
    within(
        Duration::from_secs(5),
        "the endpoint-less Service refusing",
        || {
            // bash names the errno (curl only says "Couldn't connect"); an
            // unroutable or black-holed VIP says "No route to host" or hangs.
            let out = exec_output(
                "client",
                &[
                    "timeout",
                    "2",
                    "bash",
                    "-c",
                    "echo > /dev/tcp/10.96.0.110/80",
                ],
            );
            String::from_utf8_lossy(&out.stderr).contains("Connection refused")
        },
    );

    // Readiness flip: web-3 becomes ready (proxy and ingress), db-1 not
    // ready (DNS), both within 2 s of the edit.
    edit_manifest(
        "    lab.strait.dev/ready: \"false\"\n",
        "    lab.strait.dev/ready: \"true\"\n",
    );
    let proxy_took = within(Duration::from_secs(2), "web-3 behind the web VIP", || {
        (0..6).any(|_| answered_by("client", "http://web/", &[]).as_deref() == Some("web-3"))
    });
    let ingress_took = within(Duration::from_secs(2), "web-3 behind the ingress", || {
        (0..6).any(|_| https("/").as_deref() == Some("web-3"))
    });
    edit_manifest(
        "  name: db-1\n  namespace: default\n",
        "  name: db-1\n  namespace: default\n  annotations: {lab.strait.dev/ready: \"false\"}\n",
    );
    let dns_took = within(Duration::from_secs(2), "db-1 out of DNS", || {
        dig("db.default.svc.cluster.local", "A", &[]).len() == 1
    });
    eprintln!(
        "--proxy {}: readiness reached proxy in {proxy_took:?}, ingress in {ingress_took:?}, DNS in {dns_took:?}",
        proxy.name()
    );

    // Scale up: a new pod with the web label gets created and serves.
    append_manifest(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-4\n  namespace: default\n  labels: {app: web}\nspec:\n  nodeName: node-2\n  containers:\n    - name: echo\n      image: strait/echo\n      ports:\n        - {name: http, containerPort: 8080, protocol: TCP}\n        - {name: metrics, containerPort: 9090, protocol: TCP}\n",
    );
    within(Duration::from_secs(10), "web-4 behind the web VIP", || {
        (0..8).any(|_| answered_by("client", "http://web/", &[]).as_deref() == Some("web-4"))
    });

    // Down removes everything, and says so.
    guard.finish();
    let left = lab_leftovers();
    assert!(left.is_empty(), "lab down left: {left:?}");
    let status = lab(&["status"]);
    assert!(!status.status.success(), "status after down must fail");
}

#[test]
fn lab_up_serves_every_service_shape_follows_edits_and_down_removes_everything() {
    if require_root() {
        lab_e2e(Proxy::Ebpf);
    }
}

#[test]
fn lab_up_with_kube_proxy_iptables_rules_passes_the_same_checks() {
    if require_root() {
        lab_e2e(Proxy::Iptables);
    }
}

#[test]
fn lab_up_with_kube_proxy_nftables_rules_passes_the_same_checks() {
    if require_root() {
        lab_e2e(Proxy::Nftables);
    }
}
