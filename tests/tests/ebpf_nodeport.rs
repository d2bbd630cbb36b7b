//! The external datapath (tc programs on the node interface) over IPv4, in
//! the two-node lab of `nodeport/`: an external client, node-1 and node-2
//! on one bridge (10.250.0.1, .2, .3), one pod behind each node
//! (10.244.1.10, 10.244.2.10) on a routed veth.
//!
//! Checked from the external client: a NodePort reached through either node
//! answers from pods on both nodes, with SNAT to the node address for remote
//! pods; a LoadBalancer IP picks the same backend for a flow whichever node
//! it enters; `externalTrafficPolicy: Local` keeps the client address and
//! drops on a node without a local endpoint; a service without endpoints is
//! refused at once; a UDP flow moves when its backend is removed.
mod nodeport;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use nodeport::scenarios::{self, Family};
use nodeport::{
    BOTH, CLIENT, HTTP_8080, LB_IP, Lab, NODE1, NODE2, endpoint, lab, service, snapshot,
};
use strait_tests::{Echo, EchoReply, Via};

/// A TCP request from the external client to an IPv4 frontend.
fn ask(lab: &Lab, dst: SocketAddrV4, sport: u16) -> std::io::Result<EchoReply> {
    nodeport::ask(lab, SocketAddr::V4(dst), sport)
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
            Some(IpAddr::V4(LB_IP)),
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
            Some(IpAddr::V4(LB_IP)),
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

fn both() -> String {
    manifest(BOTH)
}

const V4: Family = Family {
    client: IpAddr::V4(CLIENT),
    nodes: [IpAddr::V4(NODE1), IpAddr::V4(NODE2)],
    lb: IpAddr::V4(LB_IP),
    pods: [BOTH[0], BOTH[1]],
    manifest,
    range: RANGE,
    client_range: "10.250.0.0/24",
};

#[test]
fn ebpf_nodeport_via_either_node_reaches_pods_on_both_nodes() {
    if strait_tests::require_root() {
        scenarios::nodeport_reaches_pods_on_both_nodes(&V4);
    }
}

#[test]
fn ebpf_loadbalancer_ip_picks_the_same_backend_through_either_node() {
    if strait_tests::require_root() {
        scenarios::lb_ip_picks_the_same_backend_through_either_node(&V4);
    }
}

#[test]
fn ebpf_local_policy_keeps_the_client_address_and_drops_without_local_endpoints() {
    if strait_tests::require_root() {
        scenarios::local_policy_keeps_the_client_and_drops_without_local_endpoints(&V4);
    }
}

#[test]
fn ebpf_nodeport_without_endpoints_is_refused_at_once() {
    if strait_tests::require_root() {
        scenarios::nodeport_without_endpoints_is_refused_at_once(&V4);
    }
}

#[test]
fn ebpf_udp_flow_moves_when_its_backend_is_removed() {
    if strait_tests::require_root() {
        scenarios::udp_flow_moves_when_its_backend_is_removed(&V4);
    }
}

#[test]
fn ebpf_load_balancer_source_ranges_drop_other_clients() {
    if strait_tests::require_root() {
        scenarios::source_ranges_drop_other_clients(&V4);
    }
}

#[test]
fn ebpf_client_ip_affinity_pins_an_external_client_across_connections() {
    if strait_tests::require_root() {
        scenarios::client_ip_affinity_pins_an_external_client(&V4);
    }
}

/// `GET /` on a health check node port from the external client: status
/// and `localEndpoints`.
fn health(lab: &Lab, node: impl Into<IpAddr>) -> (u16, i64) {
    let node: IpAddr = node.into();
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
    // The same answers over IPv6: load balancers may probe either family.
    assert_eq!(health(&lab, nodeport::NODE1_6), (200, 1), "over IPv6");
    assert_eq!(health(&lab, nodeport::NODE2_6), (503, 0), "over IPv6");
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
        let (ns, link, _, _) = pod;
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
fn ebpf_nodeport_from_the_node_itself_goes_through_the_socket_hooks() {
    if !strait_tests::require_root() {
        return;
    }
    let mut lab = lab(&both());
    // A process on node-1, in the cgroup the agent attaches to.
    let cgroup = strait_tests::Cgroup::new("np-host").expect("cgroup");
    lab.nodes[0]
        .lb
        .attach(cgroup.path())
        .expect("attach socket hooks");
    for dst in ["127.0.0.1", &NODE1.to_string()] {
        let seen: BTreeSet<String> = (0..16)
            .map(|_| ask_from_node(&lab, 0, &cgroup, dst, 30080))
            .collect();
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

/// The name of the pod that answers `dst:port` asked by a process on node
/// `node` in `cgroup` (where the socket hooks are attached).
fn ask_from_node(
    lab: &Lab,
    node: usize,
    cgroup: &strait_tests::Cgroup,
    dst: &str,
    port: u16,
) -> String {
    let script = format!("exec 3<>/dev/tcp/{dst}/{port} && head -n1 <&3");
    let mut cmd = lab.nodes[node].ns.command("timeout");
    cmd.args(["5", "bash", "-c", &script]);
    cmd.in_cgroup(cgroup).expect("in cgroup");
    let out = cmd.output().expect("run");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    EchoReply::parse(&line).map(|r| r.name).unwrap_or_else(|| {
        panic!(
            "{dst}:{port} from {}: {line:?} {}",
            lab.nodes[node].name,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn ebpf_local_policy_nodeport_from_a_node_without_local_endpoints_reaches_the_cluster() {
    if !strait_tests::require_root() {
        return;
    }
    let mut lab = lab(&both());
    // kube-proxy sends traffic the node itself (or a pod) originates to a
    // Local service's external address over every endpoint; only traffic
    // from outside is kept on the node.
    let cgroup = strait_tests::Cgroup::new("np-host2").expect("cgroup");
    lab.nodes[1]
        .lb
        .attach(cgroup.path())
        .expect("attach socket hooks");
    let name = ask_from_node(&lab, 1, &cgroup, &NODE2.to_string(), 30081);
    assert_eq!(name, "pod-1", "edge's one endpoint, on node-1");
    let err = ask(&lab, SocketAddrV4::new(NODE2, 30081), 0)
        .expect_err("from outside, node-2 still has no local endpoint");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
}
