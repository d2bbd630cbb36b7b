//! The external-datapath checks both families run, written once over a
//! [`Family`]: the same services (same ports and NodePorts) in each
//! family's manifest, asked by the external client.
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use strait_tests::{EchoReply, Via};

use super::{Lab, ask, lab, snapshot};

/// The `api` service's TCP port on its LoadBalancer IP and its NodePort.
pub const API_PORT: u16 = 80;
pub const API_NODE_PORT: u16 = 30080;
/// The `api` service's UDP NodePort.
pub const API_UDP_NODE_PORT: u16 = 30053;
/// The `edge` service (`externalTrafficPolicy: Local`, one endpoint on
/// node-1).
pub const EDGE_NODE_PORT: u16 = 30081;
/// The `ranged` service (`loadBalancerSourceRanges`, on the LB IP).
pub const RANGED_PORT: u16 = 8080;
pub const RANGED_NODE_PORT: u16 = 30082;
/// The `sticky` service (ClientIP affinity, both pods).
pub const STICKY_NODE_PORT: u16 = 30083;
/// The `empty` service (no endpoints).
pub const EMPTY_NODE_PORT: u16 = 30099;

/// One address family's lab addresses and manifest.
pub struct Family {
    /// The external client.
    pub client: IpAddr,
    /// node-1 and node-2 on the bridge.
    pub nodes: [IpAddr; 2],
    /// The LoadBalancer IP of `api` and `ranged`.
    pub lb: IpAddr,
    /// The pod on each node, as `(address, node)`.
    pub pods: [(&'static str, &'static str); 2],
    /// The services, with `api_endpoints` as `api`'s endpoints.
    pub manifest: fn(&[(&str, &str)]) -> String,
    /// `ranged`'s source range in the manifest (the client is outside).
    pub range: &'static str,
    /// A source range that holds the client.
    pub client_range: &'static str,
}

impl Family {
    fn both(&self) -> String {
        (self.manifest)(&self.pods)
    }

    /// Routes the LB IP from the client via `node`.
    fn route_lb_via(&self, lab: &Lab, node: IpAddr) {
        let host = format!("{}/{}", self.lb, if self.lb.is_ipv4() { 32 } else { 128 });
        let _ = lab.client.ip(&["route", "del", &host]);
        lab.client
            .add_route(&host, Via::Gateway(&node.to_string()))
            .expect("route to the LB IP");
    }
}

/// A NodePort reached through either node answers from pods on both; a
/// remote pod sees the node's address (SNAT), a local one the client's.
pub fn nodeport_reaches_pods_on_both_nodes(f: &Family) {
    let lab = lab(&f.both());
    for (i, node) in f.nodes.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for _ in 0..24 {
            let reply = ask(&lab, SocketAddr::new(*node, API_NODE_PORT), 0)
                .unwrap_or_else(|e| panic!("NodePort via {node}: {e}"));
            let local_pod = format!("pod-{}", i + 1);
            let want_peer = if reply.name == local_pod {
                f.client
            } else {
                *node
            };
            assert_eq!(reply.peer.ip(), want_peer, "{reply:?} via {node}");
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

/// Each flow to the LB IP picks the same backend whichever node it enters.
pub fn lb_ip_picks_the_same_backend_through_either_node(f: &Family) {
    let lab = lab(&f.both());
    let lb = SocketAddr::new(f.lb, API_PORT);
    let via = |node: IpAddr| {
        f.route_lb_via(&lab, node);
        (0..16u16)
            .map(|i| ask(&lab, lb, 41_000 + i).expect("LB IP").name)
            .collect::<Vec<_>>()
    };
    let first = via(f.nodes[0]);
    let second = via(f.nodes[1]);
    assert_eq!(
        first, second,
        "each flow picks the same backend on both nodes"
    );
    assert!(
        first.iter().any(|n| n == "pod-1") && first.iter().any(|n| n == "pod-2"),
        "{first:?}"
    );
}

/// `externalTrafficPolicy: Local` keeps the client address and drops on a
/// node without a local endpoint.
pub fn local_policy_keeps_the_client_and_drops_without_local_endpoints(f: &Family) {
    let lab = lab(&f.both());
    for _ in 0..4 {
        let reply =
            ask(&lab, SocketAddr::new(f.nodes[0], EDGE_NODE_PORT), 0).expect("Local via node-1");
        assert_eq!(reply.name, "pod-1");
        assert_eq!(reply.peer.ip(), f.client, "client address kept");
    }
    let err = ask(&lab, SocketAddr::new(f.nodes[1], EDGE_NODE_PORT), 0)
        .expect_err("node-2 has no local endpoint");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "dropped, not refused: {err}"
    );
}

/// A service without endpoints is refused at once, not timed out.
pub fn nodeport_without_endpoints_is_refused_at_once(f: &Family) {
    let lab = lab(&f.both());
    let started = std::time::Instant::now();
    let err = ask(&lab, SocketAddr::new(f.nodes[0], EMPTY_NODE_PORT), 0).expect_err("no endpoints");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused, not timed out"
    );
}

/// A connected UDP flow sticks to its backend and moves when that backend
/// is removed.
pub fn udp_flow_moves_when_its_backend_is_removed(f: &Family) {
    let mut lab = lab(&f.both());
    let dst = SocketAddr::new(f.nodes[0], API_UDP_NODE_PORT);
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
    let any = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let (socket, first) = lab.client.run(|| {
        let s = UdpSocket::bind(any).expect("bind");
        s.connect(dst).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let first = ask_udp(&s);
        assert_eq!(ask_udp(&s), first, "a flow sticks to its backend");
        (s, first)
    });
    let keep = if first == "pod-1" {
        f.pods[1]
    } else {
        f.pods[0]
    };
    let snap = snapshot(&(f.manifest)(&[keep]));
    for node in &mut lab.nodes {
        node.apply(&snap);
    }
    let moved = lab.client.run(|| ask_udp(&socket));
    assert_ne!(moved, first, "the flow moved off the removed backend");
}

/// `loadBalancerSourceRanges` drop clients outside them on the LB IP (not
/// on the NodePort, as in kube-proxy) and admit them once a range holds
/// them.
pub fn source_ranges_drop_other_clients(f: &Family) {
    let mut lab = lab(&f.both());
    f.route_lb_via(&lab, f.nodes[0]);
    let ranged = SocketAddr::new(f.lb, RANGED_PORT);
    let err = ask(&lab, ranged, 0).expect_err("outside the source ranges");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert_eq!(
        ask(&lab, SocketAddr::new(f.nodes[0], RANGED_NODE_PORT), 0)
            .expect("NodePort")
            .name,
        "pod-1"
    );
    let snap = snapshot(&f.both().replace(f.range, f.client_range));
    for node in &mut lab.nodes {
        node.apply(&snap);
    }
    assert_eq!(
        ask(&lab, ranged, 0).expect("inside the source ranges").name,
        "pod-1"
    );
}

/// ClientIP affinity pins an external client to one backend across
/// connections; the same flows without affinity spread.
pub fn client_ip_affinity_pins_an_external_client(f: &Family) {
    let lab = lab(&f.both());
    let sticky = SocketAddr::new(f.nodes[0], STICKY_NODE_PORT);
    let seen: BTreeSet<String> = (0..12)
        .map(|_| ask(&lab, sticky, 0).expect("sticky NodePort").name)
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "one backend for one client address: {seen:?}"
    );
    let spread: BTreeSet<String> = (0..24)
        .map(|_| {
            ask(&lab, SocketAddr::new(f.nodes[0], API_NODE_PORT), 0)
                .expect("api")
                .name
        })
        .collect();
    assert_eq!(spread.len(), 2, "{spread:?}");
}
