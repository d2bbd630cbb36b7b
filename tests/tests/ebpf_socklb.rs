//! The socket-level load balancer with real eBPF: the connect4 program is
//! loaded from the `ebpf` crate, attached to a test cgroup, and clients in a
//! test netns connect to a VIP that exists nowhere but in the maps.
//!
//! The client netns has only a veth to the backend netns and no default
//! route, so the VIP itself is unroutable: a reply proves translation.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    process::Output,
    time::Duration,
};

use strait_ebpf_common::PROTO_TCP;
use strait_proxy::{Frontend, FrontendSpec, SockLb};
use strait_tests::{Bpffs, Cgroup, NetNs, TcpEcho, echo::EchoReply, require_root, two_hosts};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn frontend() -> Frontend {
    Frontend {
        vip: std::net::IpAddr::V4(VIP),
        port: 80,
        proto: PROTO_TCP,
    }
}

/// Connects from a new process (so it can be placed in a cgroup), sends a
/// line and prints the reply line.
fn ask(ns: &NetNs, cgroup: Option<&Cgroup>, vip: Ipv4Addr, port: u16) -> Output {
    let script = format!("exec 3<>/dev/tcp/{vip}/{port} && echo hi >&3 && head -n1 <&3");
    let mut cmd = ns.command("timeout");
    cmd.args(["5", "bash", "-c", &script]);
    if let Some(cg) = cgroup {
        cmd.in_cgroup(cg).expect("join cgroup");
    }
    cmd.output().expect("run client")
}

fn reply(out: &Output) -> EchoReply {
    assert!(
        out.status.success(),
        "client failed: {:?} stderr={}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    EchoReply::parse(&String::from_utf8_lossy(&out.stdout)).expect("an echo reply line")
}

#[test]
fn ebpf_connect4_translates_vip_only_inside_cgroup() {
    if !require_root() {
        return;
    }
    let net = two_hosts().expect("topology");
    let _backend = TcpEcho::start(&net.b, "backend-b", (net.b_addr, 8080).into()).expect("echo");
    let bpffs = Bpffs::new().expect("bpffs");
    let cgroup = Cgroup::new("socklb").expect("cgroup");

    let mut lb = SockLb::load(bpffs.path()).expect("load eBPF object");
    lb.attach(cgroup.path()).expect("attach connect4");
    let mut maps = lb.service_maps().expect("maps");
    maps.upsert(frontend(), &spec(&[SocketAddrV4::new(net.b_addr, 8080)]))
        .expect("program service");

    let got = reply(&ask(&net.a, Some(&cgroup), VIP, 80));
    assert_eq!(got.name, "backend-b");
    assert_eq!(
        got.peer.ip(),
        std::net::IpAddr::V4(net.a_addr),
        "no SNAT on the socket path"
    );

    // The same client outside the cgroup is untouched: the VIP is unroutable.
    let out = ask(&net.a, None, VIP, 80);
    assert!(
        !out.status.success(),
        "a process outside the cgroup must not be translated"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "expected 'Network is unreachable', got {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A port the service does not define is not translated either.
    assert!(!ask(&net.a, Some(&cgroup), VIP, 81).status.success());
}

#[test]
fn ebpf_connect4_spreads_and_follows_updates() {
    if !require_root() {
        return;
    }
    let net = two_hosts().expect("topology");
    let _b1 = TcpEcho::start(&net.b, "one", (net.b_addr, 8081).into()).expect("echo");
    let _b2 = TcpEcho::start(&net.b, "two", (net.b_addr, 8082).into()).expect("echo");
    let bpffs = Bpffs::new().expect("bpffs");
    let cgroup = Cgroup::new("socklb").expect("cgroup");
    let mut lb = SockLb::load(bpffs.path()).expect("load");
    lb.attach(cgroup.path()).expect("attach");
    let mut maps = lb.service_maps().expect("maps");
    let one = SocketAddrV4::new(net.b_addr, 8081);
    let two = SocketAddrV4::new(net.b_addr, 8082);

    maps.upsert(frontend(), &spec(&[one, two]))
        .expect("two backends");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..40 {
        *seen
            .entry(reply(&ask(&net.a, Some(&cgroup), VIP, 80)).name)
            .or_default() += 1;
    }
    assert_eq!(
        seen.len(),
        2,
        "40 connects should reach both backends: {seen:?}"
    );

    maps.upsert(frontend(), &spec(&[two]))
        .expect("shrink to one");
    for _ in 0..10 {
        assert_eq!(reply(&ask(&net.a, Some(&cgroup), VIP, 80)).name, "two");
    }

    // No backends: the connect is refused at once, never sent to the VIP.
    maps.upsert(frontend(), &spec(&[])).expect("empty");
    let started = std::time::Instant::now();
    let out = ask(&net.a, Some(&cgroup), VIP, 80);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusal must be fast"
    );

    maps.remove(frontend()).expect("remove");
    assert_eq!(maps.frontends().count(), 0);
}

#[test]
fn ebpf_pinned_maps_survive_a_loader_restart() {
    if !require_root() {
        return;
    }
    let net = two_hosts().expect("topology");
    let _b = TcpEcho::start(&net.b, "pinned", (net.b_addr, 8080).into()).expect("echo");
    let bpffs = Bpffs::new().expect("bpffs");
    let cgroup = Cgroup::new("socklb").expect("cgroup");
    let backend = SocketAddrV4::new(net.b_addr, 8080);
    {
        let mut first = SockLb::load(bpffs.path()).expect("load");
        let mut maps = first.service_maps().expect("maps");
        maps.upsert(frontend(), &spec(&[backend])).expect("program");
    }
    // A new instance (an agent restart) finds the service in the pinned maps.
    let mut second = SockLb::load(bpffs.path()).expect("reload");
    second.attach(cgroup.path()).expect("attach");
    let maps = second.service_maps().expect("maps");
    assert_eq!(maps.frontends().collect::<Vec<_>>(), vec![(frontend(), 1)]);
    assert_eq!(reply(&ask(&net.a, Some(&cgroup), VIP, 80)).name, "pinned");
}

/// The spec for a frontend balancing over `backends`, without affinity.
fn spec(backends: &[SocketAddrV4]) -> FrontendSpec {
    FrontendSpec {
        backends: backends.iter().map(|b| SocketAddr::V4(*b)).collect(),
        affinity_timeout: None,
        ..Default::default()
    }
}
