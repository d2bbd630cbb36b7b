//! The real `strait agent` binary end to end: it programs the datapath from
//! a manifest directory, follows edits live, repairs drift in the kernel maps
//! on its full reconcile, reports health and metrics on :10256, and its
//! datapath keeps working while it is killed and restarted.
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use strait_tests::{Bpffs, Cgroup, ChildGuard, Echo, NetNs, require_root, two_hosts};

const STRAIT: &str = env!("CARGO_BIN_EXE_strait");

fn manifest(backend: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  clusterIP: 10.96.0.100
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-a, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{{addresses: [{backend}]}}]
"#
    )
}

/// One TCP request through the VIP from a process in the cgroup.
fn ask(ns: &NetNs, cgroup: &Cgroup) -> Output {
    let script = "exec 3<>/dev/tcp/10.96.0.100/80 && echo hi >&3 && head -n1 <&3";
    let mut cmd = ns.command("timeout");
    cmd.args(["5", "bash", "-c", script]);
    cmd.in_cgroup(cgroup).unwrap();
    cmd.output().unwrap()
}

fn answered_by(ns: &NetNs, cgroup: &Cgroup) -> String {
    let out = ask(ns, cgroup);
    let line = String::from_utf8_lossy(&out.stdout);
    line.split_whitespace().next().unwrap_or("").to_string()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// GET `path` on the agent's port inside `ns`: (status code, body).
fn http_get(ns: &NetNs, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    ns.run(move || {
        let mut s = TcpStream::connect("127.0.0.1:10256").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
    })
}

fn start_agent(ns: &NetNs, dir: &Path, cgroup: &Cgroup, bpffs: &Bpffs) -> ChildGuard {
    start_agent_with(ns, dir, cgroup, bpffs, &[])
}

fn start_agent_with(
    ns: &NetNs,
    dir: &Path,
    cgroup: &Cgroup,
    bpffs: &Bpffs,
    extra: &[&str],
) -> ChildGuard {
    let mut cmd = ns.command(STRAIT);
    cmd.args([
        "agent",
        "--node-name",
        "node-1",
        "--metrics-addr",
        "127.0.0.1:10256",
        "--resync-seconds",
        "1",
    ])
    .arg("--manifests")
    .arg(dir)
    .arg("--cgroup-root")
    .arg(cgroup.path())
    .arg("--bpffs")
    .arg(bpffs.path())
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    cmd.spawn().expect("start strait agent")
}

fn explain(ns: &NetNs, dir: &Path, bpffs: &Bpffs) -> Output {
    let mut cmd = ns.command(STRAIT);
    cmd.args(["agent", "explain", "--node-name", "node-1"])
        .arg("--manifests")
        .arg(dir)
        .arg("--bpffs")
        .arg(bpffs.path());
    cmd.output().unwrap()
}

#[test]
fn ebpf_agent_programs_follows_repairs_and_survives_restart() {
    if !require_root() {
        return;
    }
    let net = two_hosts().unwrap();
    let dev = net.link.b_name().to_string();
    net.b.add_addr(&dev, "10.250.0.11/24").unwrap();
    net.b.add_addr(&dev, "10.250.0.12/24").unwrap();
    let _e1 = Echo::start(&net.b, "one", "10.250.0.11:8080".parse().unwrap()).unwrap();
    let _e2 = Echo::start(&net.b, "two", "10.250.0.12:8080".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.yaml"), manifest("10.250.0.11")).unwrap();
    let bpffs = Bpffs::new().unwrap();
    let cgroup = Cgroup::new("agent").unwrap();

    let agent = start_agent(&net.a, dir.path(), &cgroup, &bpffs);
    wait_for("/healthz 200", Duration::from_secs(20), || {
        http_get(&net.a, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(answered_by(&net.a, &cgroup), "one");

    // A manifest edit reaches the datapath.
    std::fs::write(dir.path().join("web.yaml"), manifest("10.250.0.12")).unwrap();
    wait_for("the edit to apply", Duration::from_secs(5), || {
        answered_by(&net.a, &cgroup) == "two"
    });

    // Metrics describe the programmed state.
    let (_, metrics) = http_get(&net.a, "/metrics").unwrap();
    assert!(metrics.contains("strait_proxy_frontends 1"), "{metrics}");
    assert!(
        metrics.contains("strait_proxy_sync_duration_seconds"),
        "{metrics}"
    );

    // explain reads the pinned maps and agrees with the view.
    let out = explain(&net.a, dir.path(), &bpffs);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "explain: {text}");
    assert!(
        text.contains("default/web") && text.contains("10.250.0.12:8080"),
        "{text}"
    );

    // Drift: delete the frontend's slot behind the agent's back. explain
    // flags it, and the next full reconcile repairs it.
    let svc_pin = bpffs.path().join(strait_ebpf_common::maps::SERVICES);
    let data = aya::maps::MapData::from_pin(&svc_pin).unwrap();
    let mut svc: aya::maps::HashMap<
        _,
        strait_ebpf_common::ServiceKey,
        strait_ebpf_common::ServiceValue,
    > = aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data)).unwrap();
    let slot = svc
        .keys()
        .flatten()
        .find(|k| k.slot == 1)
        .expect("a slot entry");
    svc.remove(&slot).unwrap();
    let drifted = explain(&net.a, dir.path(), &bpffs);
    let drift_text = String::from_utf8_lossy(&drifted.stdout).to_string();
    // The reconcile may already have repaired it; if not, explain must say so.
    if !drifted.status.success() {
        assert!(
            drift_text.contains("missing from the kernel"),
            "{drift_text}"
        );
    }
    wait_for(
        "the reconcile to repair drift",
        Duration::from_secs(5),
        || explain(&net.a, dir.path(), &bpffs).status.success(),
    );
    assert_eq!(answered_by(&net.a, &cgroup), "two");

    // Kill the agent: the pinned datapath keeps translating.
    agent.kill().unwrap();
    assert_eq!(answered_by(&net.a, &cgroup), "two");
    // A new agent takes over without a gap and keeps following edits.
    let _agent = start_agent(&net.a, dir.path(), &cgroup, &bpffs);
    assert_eq!(answered_by(&net.a, &cgroup), "two");
    wait_for("/healthz after restart", Duration::from_secs(20), || {
        http_get(&net.a, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    std::fs::write(dir.path().join("web.yaml"), manifest("10.250.0.11")).unwrap();
    wait_for("an edit after restart", Duration::from_secs(5), || {
        answered_by(&net.a, &cgroup) == "one"
    });
}

/// A NodePort service whose one endpoint is the node itself (10.250.0.2).
const NODE_PORT_MANIFEST: &str = r#"apiVersion: v1
kind: Service
metadata: {name: np, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.120
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: np-a, namespace: default, labels: {kubernetes.io/service-name: np}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.250.0.2], nodeName: node-1}]
"#;

#[test]
fn ebpf_agent_serves_node_ports_on_an_address_added_after_start() {
    if !require_root() {
        return;
    }
    let net = two_hosts().unwrap();
    let dev = net.link.b_name().to_string();
    let _echo = Echo::start(&net.b, "node", "10.250.0.2:8080".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("np.yaml"), NODE_PORT_MANIFEST).unwrap();
    let bpffs = Bpffs::new().unwrap();
    let cgroup = Cgroup::new("agent-np").unwrap();
    let _agent = start_agent_with(&net.b, dir.path(), &cgroup, &bpffs, &["--interfaces", &dev]);
    wait_for("/healthz 200", Duration::from_secs(20), || {
        http_get(&net.b, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    let ask = |addr: &'static str| {
        net.a.run(move || {
            strait_tests::tcp_ask(addr.parse().unwrap(), Duration::from_millis(500)).map(|r| r.name)
        })
    };
    wait_for(
        "the NodePort on the node address",
        Duration::from_secs(5),
        || ask("10.250.0.2:30080").is_ok_and(|n| n == "node"),
    );
    // Nothing listens on 30080 there until the agent learns the address.
    net.b.add_addr(&dev, "10.250.0.50/24").unwrap();
    let added = Instant::now();
    // Well under the agent's 30 s fallback poll: the netlink notification
    // is what makes it serve the new address.
    wait_for(
        "the NodePort on the new address",
        Duration::from_secs(5),
        || ask("10.250.0.50:30080").is_ok_and(|n| n == "node"),
    );
    eprintln!(
        "NodePort served on the new address after {:?}",
        added.elapsed()
    );
}
