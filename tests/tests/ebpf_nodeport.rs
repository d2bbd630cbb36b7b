//! The external datapath (tc programs on the node interface) in a
//! two-node topology: an external client, node-1 and node-2 on one bridge
//! (10.250.0.1, .2, .3), one pod behind each node (10.244.1.10,
//! 10.244.2.10) on a routed veth. Each node runs the datapath the agent
//! runs, loaded and attached inside its own namespace.
//!
//! Checked from the external client: a NodePort reached through either node
//! answers from pods on both nodes, with SNAT to the node address for remote
//! pods; a LoadBalancer IP picks the same backend for a flow whichever node
//! it enters; `externalTrafficPolicy: Local` keeps the client address and
//! drops on a node without a local endpoint; a service without endpoints is
//! refused at once; a UDP flow moves when its backend is removed.
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

use strait_cluster::{ClusterSnapshot, ManifestLoader};
use strait_proxy::{NodeMaps, ServiceMaps, SockLb, desired_state, node_maps};
use strait_tests::{Bpffs, Echo, EchoReply, NetNs, VethPair, Via, bridged_hosts};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const NODE1: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);
const NODE2: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 3);
const LB_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 100);

/// The pod on each node, as `(address, node)`.
const BOTH: &[(&str, &str)] = &[("10.244.1.10", "node-1"), ("10.244.2.10", "node-2")];

/// The ports of a slice whose one port, `http`, is 8080.
const HTTP_8080: &str = "[{name: http, port: 8080}]";

/// An EndpointSlice endpoint (a YAML flow mapping): `ip` on `node`, ready.
fn endpoint((ip, node): &(&str, &str)) -> String {
    format!("{{addresses: [{ip}], nodeName: {node}}}")
}

/// A Service `default/<name>` whose `spec` holds `spec` (one YAML line an
/// item), with `lb_ip` as its load balancer ingress, and, when it has
/// endpoints, its EndpointSlice `<name>-a` with `ports` and `endpoints`.
fn service(
    name: &str,
    spec: &[&str],
    lb_ip: Option<Ipv4Addr>,
    ports: &str,
    endpoints: &[String],
) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n"
    );
    for line in spec {
        y.push_str(&format!("  {line}\n"));
    }
    if let Some(ip) = lb_ip {
        y.push_str(&format!(
            "status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
        ));
    }
    if endpoints.is_empty() {
        return y;
    }
    y.push_str(&format!(
        "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-a, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: {ports}
endpoints:
"
    ));
    for e in endpoints {
        y.push_str(&format!("  - {e}\n"));
    }
    y
}

/// The services of the tests, `api` with `api_endpoints`.
fn manifest(api_endpoints: &[(&str, &str)]) -> String {
    manifest_with(api_endpoints, &endpoint(&BOTH[0]))
}

/// [`manifest`] with `edge_endpoint` as the one endpoint of `edge`.
fn manifest_with(api_endpoints: &[(&str, &str)], edge_endpoint: &str) -> String {
    [
        service(
            "api",
            &[
                "type: LoadBalancer",
                "clusterIP: 10.96.0.101",
                "ports:",
                "  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}",
                "  - {name: dns, port: 53, targetPort: 8080, nodePort: 30053, protocol: UDP}",
            ],
            Some(LB_IP),
            "[{name: http, port: 8080}, {name: dns, port: 8080, protocol: UDP}]",
            &api_endpoints.iter().map(endpoint).collect::<Vec<_>>(),
        ),
        service(
            "edge",
            &[
                "type: LoadBalancer",
                "clusterIP: 10.96.0.102",
                "externalTrafficPolicy: Local",
                "healthCheckNodePort: 32000",
                "ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]",
            ],
            None,
            HTTP_8080,
            &[edge_endpoint.to_owned()],
        ),
        service(
            "ranged",
            &[
                "type: LoadBalancer",
                "clusterIP: 10.96.0.104",
                &format!("loadBalancerSourceRanges: [{RANGE}]"),
                "ports: [{name: http, port: 8080, targetPort: 8080, nodePort: 30082}]",
            ],
            Some(LB_IP),
            HTTP_8080,
            &[endpoint(&BOTH[0])],
        ),
        service(
            "sticky",
            &[
                "type: NodePort",
                "clusterIP: 10.96.0.105",
                "sessionAffinity: ClientIP",
                "sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}",
                "ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30083}]",
            ],
            None,
            HTTP_8080,
            &BOTH.iter().map(endpoint).collect::<Vec<_>>(),
        ),
        service(
            "empty",
            &[
                "type: NodePort",
                "clusterIP: 10.96.0.103",
                "ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30099}]",
            ],
            None,
            HTTP_8080,
            &[],
        ),
    ]
    .join("---\n")
}

/// The `loadBalancerSourceRanges` of the `ranged` service in [`manifest`].
const RANGE: &str = "192.0.2.0/24";

fn snapshot(yaml: &str) -> ClusterSnapshot {
    let report = ManifestLoader::parse_str("nodeport.yaml", yaml);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.to_snapshot()
}

/// One node's datapath, as the agent holds it.
struct Node {
    name: &'static str,
    ns: NetNs,
    lb: SockLb,
    maps: ServiceMaps,
    node_maps: NodeMaps,
    _bpffs: Bpffs,
}

impl Node {
    fn start(name: &'static str, ns: &NetNs, iface: &str, snap: &ClusterSnapshot) -> Node {
        let bpffs = Bpffs::new().expect("bpffs");
        let pin = bpffs.path().to_path_buf();
        let iface = iface.to_string();
        let (lb, maps, node_maps) = ns.run(|| {
            let mut lb = SockLb::load(&pin).expect("load eBPF");
            let mut maps = lb.service_maps().expect("service maps");
            maps.sync(&desired_state(snap, name)).expect("sync");
            let mut nm = lb.node_maps().expect("node maps");
            let (addrs, primary) = node_maps::node_addresses(&iface, &[]);
            assert!(primary.is_some(), "{name}: no address on {iface}");
            nm.set_addresses(&addrs, primary).expect("addresses");
            nm.set_local_endpoints(&node_maps::local_endpoints(snap, name))
                .expect("local endpoints");
            lb.attach_external(&iface).expect("attach tc");
            (lb, maps, nm)
        });
        Node {
            name,
            ns: ns.clone(),
            lb,
            maps,
            node_maps,
            _bpffs: bpffs,
        }
    }

    fn apply(&mut self, snap: &ClusterSnapshot) {
        self.maps
            .sync(&desired_state(snap, self.name))
            .expect("sync");
        self.node_maps
            .set_local_endpoints(&node_maps::local_endpoints(snap, self.name))
            .expect("local endpoints");
        // Flows whose backend is gone (the agent's periodic GC).
        let maps = &self.maps;
        self.node_maps.gc_conntrack(0, |id| maps.has_backend(id));
    }
}

struct Lab {
    client: NetNs,
    nodes: Vec<Node>,
    pods: Vec<(NetNs, VethPair, Echo)>,
    _net: strait_tests::BridgedHosts,
}

fn lab(yaml: &str) -> Lab {
    let net = bridged_hosts(3).expect("topology");
    let client = net.hosts[0].ns.clone();
    let snap = snapshot(yaml);
    let mut pods = Vec::new();
    let mut nodes = Vec::new();
    for (i, name) in [(1usize, "node-1"), (2, "node-2")] {
        let host = &net.hosts[i];
        let node = &host.ns;
        node.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
        let pod = NetNs::new(&format!("np-pod-{i}")).expect("pod netns");
        let link = VethPair::builder(node, &pod)
            .addr_a(&format!("10.244.{i}.1/24"))
            .addr_b(&format!("10.244.{i}.10/24"))
            .create()
            .expect("pod veth");
        pod.add_route("default", Via::Gateway(&format!("10.244.{i}.1")))
            .expect("pod route");
        let other = 3 - i;
        let other_addr = net.hosts[other].addr.to_string();
        node.add_route(&format!("10.244.{other}.0/24"), Via::Gateway(&other_addr))
            .expect("node route");
        let echo = Echo::start(
            &pod,
            &format!("pod-{i}"),
            format!("10.244.{i}.10:8080").parse().unwrap(),
        )
        .expect("echo");
        pods.push((pod, link, echo));
        nodes.push(Node::start(name, node, host.link.a_name(), &snap));
    }
    Lab {
        client,
        nodes,
        pods,
        _net: net,
    }
}

/// A TCP request from the external client, from `sport` (0: any).
fn ask(lab: &Lab, dst: SocketAddrV4, sport: u16) -> std::io::Result<EchoReply> {
    lab.client.run(move || {
        let stream = connect(dst, sport)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut line)?;
        EchoReply::parse(&line)
            .ok_or_else(|| std::io::Error::other(format!("bad echo reply {line:?}")))
    })
}

/// A connection to `dst`, from source port `sport` when it is not 0.
fn connect(dst: SocketAddrV4, sport: u16) -> std::io::Result<TcpStream> {
    if sport == 0 {
        return TcpStream::connect_timeout(&SocketAddr::V4(dst), Duration::from_secs(2));
    }
    use std::os::fd::FromRawFd;
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: plain socket calls on a descriptor owned by the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let local = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, sport));
        if libc::bind(fd, (&raw const local).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(dst);
        if libc::connect(fd, (&raw const remote).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

fn both() -> String {
    manifest(BOTH)
}

#[test]
fn ebpf_nodeport_via_either_node_reaches_pods_on_both_nodes() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&both());
    for node in [NODE1, NODE2] {
        let mut seen = BTreeSet::new();
        for _ in 0..24 {
            let reply = ask(&lab, SocketAddrV4::new(node, 30080), 0)
                .unwrap_or_else(|e| panic!("NodePort via {node}: {e}"));
            // A pod on this node sees the client; a pod on the other node
            // sees this node's address (SNAT), so replies come back here.
            let local_pod = if node == NODE1 { "pod-1" } else { "pod-2" };
            let want_peer = if reply.name == local_pod {
                CLIENT
            } else {
                node
            };
            assert_eq!(
                reply.peer.ip(),
                std::net::IpAddr::V4(want_peer),
                "{reply:?} via {node}"
            );
            seen.insert(reply.name);
        }
        assert_eq!(
            seen,
            BTreeSet::from(["pod-1".to_string(), "pod-2".to_string()]),
            "via {node}"
        );
    }
    let ct = lab.nodes[0].node_maps.conntrack_entries();
    assert!(ct > 0, "node-1 tracked the flows");
}

#[test]
fn ebpf_loadbalancer_ip_picks_the_same_backend_through_either_node() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&both());
    let lb = SocketAddrV4::new(LB_IP, 80);
    let via = |node: Ipv4Addr| {
        let _ = lab.client.ip(&["route", "del", &format!("{LB_IP}/32")]);
        lab.client
            .add_route(&format!("{LB_IP}/32"), Via::Gateway(&node.to_string()))
            .expect("route to the LB IP");
        (0..16u16)
            .map(|i| ask(&lab, lb, 41_000 + i).expect("LB IP").name)
            .collect::<Vec<_>>()
    };
    let first = via(NODE1);
    let second = via(NODE2);
    assert_eq!(
        first, second,
        "each flow picks the same backend on both nodes"
    );
    assert!(
        first.iter().any(|n| n == "pod-1") && first.iter().any(|n| n == "pod-2"),
        "{first:?}"
    );
}

#[test]
fn ebpf_local_policy_keeps_the_client_address_and_drops_without_local_endpoints() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&both());
    for _ in 0..4 {
        let reply = ask(&lab, SocketAddrV4::new(NODE1, 30081), 0).expect("Local via node-1");
        assert_eq!(reply.name, "pod-1");
        assert_eq!(
            reply.peer.ip(),
            std::net::IpAddr::V4(CLIENT),
            "client address kept"
        );
    }
    let err =
        ask(&lab, SocketAddrV4::new(NODE2, 30081), 0).expect_err("node-2 has no local endpoint");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "dropped, not refused: {err}"
    );
}

#[test]
fn ebpf_nodeport_without_endpoints_is_refused_at_once() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&both());
    let started = std::time::Instant::now();
    let err = ask(&lab, SocketAddrV4::new(NODE1, 30099), 0).expect_err("no endpoints");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused, not timed out"
    );
}

#[test]
fn ebpf_udp_flow_moves_when_its_backend_is_removed() {
    if !strait_tests::require_root() {
        return;
    }
    let mut lab = lab(&both());
    let dst = SocketAddrV4::new(NODE1, 30053);
    let ask_udp = |socket: &UdpSocket| -> String {
        let mut buf = [0u8; 512];
        for _ in 0..20 {
            socket.send(b"ping\n").expect("send");
            if let Ok(n) = socket.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                return EchoReply::parse(&line).expect("reply").name;
            }
        }
        panic!("no UDP answer from {dst}");
    };
    let (socket, first) = lab.client.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.connect(dst).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let first = ask_udp(&s);
        assert_eq!(ask_udp(&s), first, "a flow sticks to its backend");
        (s, first)
    });
    let keep = if first == "pod-1" {
        ("10.244.2.10", "node-2")
    } else {
        ("10.244.1.10", "node-1")
    };
    let snap = snapshot(&manifest(&[keep]));
    for node in &mut lab.nodes {
        node.apply(&snap);
    }
    let moved = lab.client.run(|| ask_udp(&socket));
    assert_ne!(moved, first, "the flow moved off the removed backend");
}

/// `GET /` on a health check node port from the external client: status
/// and `localEndpoints`.
fn health(lab: &Lab, node: Ipv4Addr) -> (u16, i64) {
    lab.client.run(move || {
        use std::io::{Read, Write};
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((node, 32000)), Duration::from_secs(2))
                .expect("health check port");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n").unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("{}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        (status, json["localEndpoints"].as_i64().unwrap_or(-1))
    })
}

#[test]
fn ebpf_health_check_node_port_answers_200_with_local_endpoints_and_503_without() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&both());
    // The agent's health check servers, run inside each node's namespace.
    let snap = snapshot(&both());
    let mut runtimes = Vec::new();
    for node in &lab.nodes {
        let name = node.name;
        let snap = snap.clone();
        runtimes.push(node.ns.run(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let mut checks = strait_proxy::health_check::HealthChecks::default();
            rt.block_on(checks.apply(strait_proxy::health_check::desired(&snap, name)));
            (rt, checks)
        }));
    }
    assert_eq!(health(&lab, NODE1), (200, 1), "node-1 runs edge's endpoint");
    assert_eq!(health(&lab, NODE2), (503, 0), "node-2 has none");
    // The endpoint turns not ready (terminating): node-1 answers 503 too.
    let terminating = "{addresses: [10.244.1.10], nodeName: node-1, \
                       conditions: {ready: false, serving: true, terminating: true}}";
    let yaml = manifest_with(BOTH, terminating);
    let snap = snapshot(&yaml);
    let (rt, checks) = &mut runtimes[0];
    rt.block_on(checks.apply(strait_proxy::health_check::desired(&snap, "node-1")));
    assert_eq!(health(&lab, NODE1), (503, 0));
}

#[test]
fn ebpf_maglev_removing_one_of_four_backends_moves_about_a_quarter_of_the_flows() {
    if !strait_tests::require_root() {
        return;
    }
    // Four backends: two addresses in each pod.
    let four = manifest(&[
        ("10.244.1.10", "node-1"),
        ("10.244.1.11", "node-1"),
        ("10.244.2.10", "node-2"),
        ("10.244.2.11", "node-2"),
    ]);
    let mut lab = lab(&four);
    let mut extra = Vec::new();
    for (i, pod) in lab.pods.iter().enumerate() {
        let (ns, link, _) = pod;
        let ip = format!("10.244.{}.11", i + 1);
        ns.add_addr(link.b_name(), &format!("{ip}/24"))
            .expect("second pod address");
        extra.push(
            Echo::start(
                ns,
                &format!("pod-{}b", i + 1),
                format!("{ip}:8080").parse().unwrap(),
            )
            .expect("echo"),
        );
    }
    let lb = SocketAddrV4::new(LB_IP, 80);
    lab.client
        .add_route(&format!("{LB_IP}/32"), Via::Gateway(&NODE1.to_string()))
        .expect("route to the LB IP");
    let flows: Vec<u16> = (0..160).map(|i| 42_000 + i).collect();
    let pick = |lab: &Lab| -> Vec<String> {
        flows
            .iter()
            .map(|p| ask(lab, lb, *p).expect("LB IP").name)
            .collect()
    };
    let before = pick(&lab);
    let owners: BTreeSet<&String> = before.iter().collect();
    assert_eq!(owners.len(), 4, "all four backends get flows: {owners:?}");
    // Remove pod-2b (10.244.2.11); forget tracked flows so every flow is
    // placed by the table again.
    let snap = snapshot(&manifest(&[
        ("10.244.1.10", "node-1"),
        ("10.244.1.11", "node-1"),
        ("10.244.2.10", "node-2"),
    ]));
    for node in &mut lab.nodes {
        node.apply(&snap);
        node.node_maps.gc_conntrack(u64::MAX / 2, |_| true);
    }
    let after = pick(&lab);
    let on_removed = before.iter().filter(|b| *b == "pod-2b").count();
    let moved_others = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| *b != "pod-2b" && b != a)
        .count();
    assert!(
        after.iter().all(|a| a != "pod-2b"),
        "nothing reaches the removed backend"
    );
    assert!(on_removed > 0);
    // Maglev: flows of the kept backends stay where they were (a few may
    // move: the table is rebuilt, not patched).
    assert!(
        moved_others * 100 <= flows.len() * 5,
        "{moved_others} of {} flows of kept backends moved",
        flows.len()
    );
}

#[test]
fn ebpf_load_balancer_source_ranges_drop_other_clients() {
    if !strait_tests::require_root() {
        return;
    }
    let mut lab = lab(&both());
    lab.client
        .add_route(&format!("{LB_IP}/32"), Via::Gateway(&NODE1.to_string()))
        .expect("route to the LB IP");
    let ranged = SocketAddrV4::new(LB_IP, 8080);
    // The client (10.250.0.1) is outside 192.0.2.0/24: dropped.
    let err = ask(&lab, ranged, 0).expect_err("outside the source ranges");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    // The NodePort of the same service is not restricted (as in kube-proxy).
    assert_eq!(
        ask(&lab, SocketAddrV4::new(NODE1, 30082), 0)
            .expect("NodePort")
            .name,
        "pod-1"
    );
    // Allow the client's network: admitted at once.
    let snap = snapshot(&both().replace(RANGE, "10.250.0.0/24"));
    for node in &mut lab.nodes {
        node.apply(&snap);
    }
    assert_eq!(
        ask(&lab, ranged, 0).expect("inside the source ranges").name,
        "pod-1"
    );
}

#[test]
fn ebpf_nodeport_from_the_node_itself_goes_through_the_socket_hooks() {
    if !strait_tests::require_root() {
        return;
    }
    let mut lab = lab(&both());
    // A process on node-1, in the cgroup the agent attaches to.
    let cgroup = strait_tests::Cgroup::new("np-host").expect("cgroup");
    let node = &mut lab.nodes[0];
    node.lb.attach(cgroup.path()).expect("attach socket hooks");
    let ask_from_node = |dst: &str| -> String {
        let script = format!("exec 3<>/dev/tcp/{dst}/30080 && head -n1 <&3");
        let mut cmd = lab.nodes[0].ns.command("timeout");
        cmd.args(["5", "bash", "-c", &script]);
        cmd.in_cgroup(&cgroup).expect("in cgroup");
        let out = cmd.output().expect("run");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        EchoReply::parse(&line).map(|r| r.name).unwrap_or_else(|| {
            panic!(
                "{dst}:30080 from node-1: {line:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    for dst in ["127.0.0.1", &NODE1.to_string()] {
        let seen: BTreeSet<String> = (0..16).map(|_| ask_from_node(dst)).collect();
        assert!(
            seen.iter().all(|n| n == "pod-1" || n == "pod-2") && !seen.is_empty(),
            "{dst}: {seen:?}"
        );
    }
    // A port that is no NodePort stays untranslated (nothing listens).
    let script = "exec 3<>/dev/tcp/127.0.0.1/30999";
    let mut cmd = lab.nodes[0].ns.command("timeout");
    cmd.args(["5", "bash", "-c", script]);
    cmd.in_cgroup(&cgroup).expect("in cgroup");
    assert!(
        !cmd.status().expect("run").success(),
        "no listener on 30999"
    );
}

#[test]
fn ebpf_client_ip_affinity_pins_an_external_client_across_connections() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&both());
    let sticky = SocketAddrV4::new(NODE1, 30083);
    let seen: BTreeSet<String> = (0..12)
        .map(|_| ask(&lab, sticky, 0).expect("sticky NodePort").name)
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "one backend for one client address: {seen:?}"
    );
    // The same flows without affinity spread (the api service).
    let spread: BTreeSet<String> = (0..24)
        .map(|_| {
            ask(&lab, SocketAddrV4::new(NODE1, 30080), 0)
                .expect("api")
                .name
        })
        .collect();
    assert_eq!(spread.len(), 2, "{spread:?}");
}
