//! The two-node lab the external-datapath tests share: an external client,
//! node-1 and node-2 on one bridge, one pod behind each node on a routed
//! veth, dual-stack throughout (IPv4 10.250.0.0/24 and fd00:250::/64 on the
//! bridge; pods 10.244.N.10 and fd00:244:N::10). Each node runs the
//! datapath the agent runs, loaded and attached inside its own namespace,
//! and each pod runs an echo server per family that names the pod and the
//! peer it saw.
#![allow(dead_code)] // each test file uses part of it

pub mod scenarios;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket,
    sockopt::ReuseAddr,
};
use strait_cluster::{ClusterSnapshot, ManifestLoader};
use strait_proxy::{NodeMaps, ServiceMaps, SockLb, desired_state, node_maps};
use strait_tests::{Bpffs, Echo, EchoReply, NetNs, VethPair, Via, bridged_hosts};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
pub const NODE1: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);
pub const NODE2: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 3);
pub const LB_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 100);

pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 1);
pub const NODE1_6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 2);
pub const NODE2_6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 3);
pub const LB_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x100);

/// The pod on each node, as `(address, node)`.
pub const BOTH: &[(&str, &str)] = &[("10.244.1.10", "node-1"), ("10.244.2.10", "node-2")];
/// The pods' IPv6 addresses, as `(address, node)`.
pub const BOTH6: &[(&str, &str)] = &[("fd00:244:1::10", "node-1"), ("fd00:244:2::10", "node-2")];

/// The ports of a slice whose one port, `http`, is 8080.
pub const HTTP_8080: &str = "[{name: http, port: 8080}]";

/// An EndpointSlice endpoint (a YAML flow mapping): `ip` on `node`, ready.
pub fn endpoint((ip, node): &(&str, &str)) -> String {
    format!("{{addresses: [{ip}], nodeName: {node}}}")
}

/// A Service `default/<name>` whose `spec` holds `spec` (one YAML line an
/// item), with `lb_ip` as its load balancer ingress, and, when it has
/// endpoints, its EndpointSlice `<name>-a` with `ports` and `endpoints`
/// (of `lb_ip`'s family, IPv4 without one).
pub fn service(
    name: &str,
    spec: &[&str],
    lb_ip: Option<IpAddr>,
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
            "status: {{loadBalancer: {{ingress: [{{ip: '{ip}'}}]}}}}\n"
        ));
    }
    if endpoints.is_empty() {
        return y;
    }
    let family = if endpoints
        .iter()
        .any(|e| e.contains(':') && e.contains("fd00"))
    {
        "IPv6"
    } else {
        "IPv4"
    };
    y.push_str("---\n");
    y.push_str(&slice(name, "a", family, ports, endpoints));
    y
}

/// The EndpointSlice `<name>-<suffix>` of service `name`.
pub fn slice(name: &str, suffix: &str, family: &str, ports: &str, endpoints: &[String]) -> String {
    let mut y = format!(
        "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-{suffix}, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: {family}
ports: {ports}
endpoints:
"
    );
    for e in endpoints {
        y.push_str(&format!("  - {e}\n"));
    }
    y
}

pub fn snapshot(yaml: &str) -> ClusterSnapshot {
    let report = ManifestLoader::parse_str("nodeport.yaml", yaml);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.to_snapshot()
}

/// One node's datapath, as the agent holds it.
pub struct Node {
    pub name: &'static str,
    pub ns: NetNs,
    pub lb: SockLb,
    pub maps: ServiceMaps,
    pub node_maps: NodeMaps,
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
            let addrs = node_maps::node_addresses(&iface, &[]);
            assert!(
                addrs.primary_v4.is_some(),
                "{name}: no IPv4 address on {iface}"
            );
            assert!(
                addrs.primary_v6.is_some(),
                "{name}: no IPv6 address on {iface}"
            );
            nm.set_addresses(&addrs).expect("addresses");
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

    pub fn apply(&mut self, snap: &ClusterSnapshot) {
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

pub struct Lab {
    pub client: NetNs,
    pub nodes: Vec<Node>,
    /// Per pod: its namespace, its veth, and its IPv4 and IPv6 echo servers.
    pub pods: Vec<(NetNs, VethPair, Echo, Echo)>,
    _net: strait_tests::BridgedHosts,
}

/// `ip addr add CIDR dev DEV nodad`: usable at once, without duplicate
/// address detection's delay.
fn add_addr6(ns: &NetNs, dev: &str, cidr: &str) {
    ns.ip(&["addr", "add", cidr, "dev", dev, "nodad"])
        .unwrap_or_else(|e| panic!("{cidr} on {dev}: {e}"));
}

/// Waits until no IPv6 address in `ns` is still tentative (duplicate
/// address detection on a link-local address holds neighbour discovery, so
/// the first connections would time out).
fn wait_for_dad(ns: &NetNs) {
    for _ in 0..100 {
        let tentative = ns
            .ip(&["-6", "addr", "show", "tentative"])
            .unwrap_or_default();
        if tentative.trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{}: IPv6 addresses still tentative after 5 s", ns.name());
}

pub fn lab(yaml: &str) -> Lab {
    let net = bridged_hosts(3).expect("topology");
    let client = net.hosts[0].ns.clone();
    let snap = snapshot(yaml);
    for (i, host) in net.hosts.iter().enumerate() {
        add_addr6(
            &host.ns,
            host.link.a_name(),
            &format!("fd00:250::{}/64", i + 1),
        );
    }
    let mut pods = Vec::new();
    let mut nodes = Vec::new();
    for (i, name) in [(1usize, "node-1"), (2, "node-2")] {
        let host = &net.hosts[i];
        let node = &host.ns;
        node.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
        node.sysctl("net.ipv6.conf.all.forwarding", "1")
            .expect("IPv6 forwarding");
        let pod = NetNs::new(&format!("np-pod-{i}")).expect("pod netns");
        for ns in [node, &pod] {
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
                .expect("no DAD on new links");
        }
        let link = VethPair::builder(node, &pod)
            .addr_a(&format!("10.244.{i}.1/24"))
            .addr_b(&format!("10.244.{i}.10/24"))
            .create()
            .expect("pod veth");
        add_addr6(node, link.a_name(), &format!("fd00:244:{i}::1/64"));
        add_addr6(&pod, link.b_name(), &format!("fd00:244:{i}::10/64"));
        pod.add_route("default", Via::Gateway(&format!("10.244.{i}.1")))
            .expect("pod route");
        pod.add_route("::/0", Via::Gateway(&format!("fd00:244:{i}::1")))
            .expect("pod IPv6 route");
        let other = 3 - i;
        let other_addr = net.hosts[other].addr.to_string();
        node.add_route(&format!("10.244.{other}.0/24"), Via::Gateway(&other_addr))
            .expect("node route");
        node.add_route(
            &format!("fd00:244:{other}::/64"),
            Via::Gateway(&format!("fd00:250::{}", other + 1)),
        )
        .expect("node IPv6 route");
        let echo = |addr: &str| {
            Echo::start(&pod, &format!("pod-{i}"), addr.parse().unwrap()).expect("echo")
        };
        let echo4 = echo(&format!("10.244.{i}.10:8080"));
        let echo6 = echo(&format!("[fd00:244:{i}::10]:8080"));
        pods.push((pod, link, echo4, echo6));
        nodes.push(Node::start(name, node, host.link.a_name(), &snap));
    }
    for ns in net
        .hosts
        .iter()
        .map(|h| &h.ns)
        .chain(pods.iter().map(|p| &p.0))
    {
        wait_for_dad(ns);
    }
    Lab {
        client,
        nodes,
        pods,
        _net: net,
    }
}

/// A TCP request from the external client, from `sport` (0: any).
pub fn ask(lab: &Lab, dst: SocketAddr, sport: u16) -> std::io::Result<EchoReply> {
    lab.client.run(move || {
        let stream = connect_from(dst, sport)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut line)?;
        EchoReply::parse(&line)
            .ok_or_else(|| std::io::Error::other(format!("bad echo reply {line:?}")))
    })
}

/// A connection to `dst`, from source port `sport` when it is not 0 (so a
/// test can replay the same flow).
pub fn connect_from(dst: SocketAddr, sport: u16) -> std::io::Result<TcpStream> {
    if sport == 0 {
        return TcpStream::connect_timeout(&dst, Duration::from_secs(2));
    }
    let (family, any) = match dst {
        SocketAddr::V4(_) => (AddressFamily::Inet, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        SocketAddr::V6(_) => (AddressFamily::Inet6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, ReuseAddr, &true)?;
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(any, sport)),
    )?;
    let stream = TcpStream::from(fd);
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    connect(stream.as_raw_fd(), &SockaddrStorage::from(dst))?;
    Ok(stream)
}
