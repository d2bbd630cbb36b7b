//! Shared fixture of the service proxy tests: a client netns and a backend
//! netns joined by one veth (IPv4 and IPv6), a pool of echo backends, the
//! socket load balancer attached to a test cgroup, and a probe that runs in
//! that cgroup and reports what the kernel did.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use strait_cluster::{ClusterSnapshot, ManifestLoader};
use strait_proxy::{IncrementalDesired, ServiceMaps, SockLb, SyncStats, desired_state};
use strait_tests::{Bpffs, Cgroup, Echo, NetNs, two_hosts};

/// Backend addresses in the backend netns (IPv4 pool).
pub const POOL_V4: [&str; 4] = ["10.250.0.11", "10.250.0.12", "10.250.0.13", "10.250.0.14"];
/// Backend addresses in the backend netns (IPv6 pool).
pub const POOL_V6: [&str; 2] = ["fd00:250::11", "fd00:250::12"];
/// Ports every pool address serves (TCP and UDP).
pub const POOL_PORTS: [u16; 2] = [8080, 8081];

/// What one probe attempt saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A backend answered: its name (its own `ip:port`), the client address
    /// it saw, and the peer address the client saw (getpeername/recvfrom).
    Ok {
        backend: String,
        client: SocketAddr,
        peer: SocketAddr,
    },
    /// The call failed with this errno.
    Err(i32),
}

impl Seen {
    /// The backend name, or a panic naming what happened instead.
    pub fn backend(&self) -> &str {
        match self {
            Seen::Ok { backend, .. } => backend,
            Seen::Err(e) => panic!("expected a backend to answer, got errno {e}"),
        }
    }
}

/// errno values the datapath produces.
pub const ECONNREFUSED: i32 = 111;
/// The VIP is not translated and the client netns has no route to it.
pub const ENETUNREACH: i32 = 101;

/// The running fixture.
pub struct ProxyFixture {
    pub client: NetNs,
    pub backends: NetNs,
    pub cgroup: Cgroup,
    pub lb: SockLb,
    pub maps: ServiceMaps,
    pub bpffs: Bpffs,
    last: Option<(ClusterSnapshot, IncrementalDesired)>,
    _echos: Vec<Echo>,
    _link: strait_tests::VethPair,
}

impl ProxyFixture {
    /// Builds the topology, starts the echo pool and loads the datapath.
    pub fn new() -> ProxyFixture {
        let net = two_hosts().expect("topology");
        let dev_b = net.link.b_name().to_string();
        let dev_a = net.link.a_name().to_string();
        for ip in POOL_V4 {
            net.b
                .add_addr(&dev_b, &format!("{ip}/24"))
                .expect("pool address");
        }
        net.a
            .ip(&[
                "-6",
                "addr",
                "add",
                "fd00:250::1/64",
                "dev",
                &dev_a,
                "nodad",
            ])
            .expect("client v6");
        for ip in POOL_V6 {
            net.b
                .ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{ip}/64"),
                    "dev",
                    &dev_b,
                    "nodad",
                ])
                .expect("pool v6");
        }
        let mut echos = Vec::new();
        for ip in POOL_V4.iter().chain(POOL_V6.iter()) {
            for port in POOL_PORTS {
                let addr = SocketAddr::new(ip.parse().unwrap(), port);
                echos.push(Echo::start(&net.b, &addr.to_string(), addr).expect("echo"));
            }
        }
        let bpffs = Bpffs::new().expect("bpffs");
        let cgroup = Cgroup::new("proxy").expect("cgroup");
        let mut lb = SockLb::load(bpffs.path()).expect("load eBPF");
        lb.attach(cgroup.path()).expect("attach");
        let maps = lb.service_maps().expect("maps");
        ProxyFixture {
            client: net.a,
            backends: net.b,
            cgroup,
            lb,
            maps,
            bpffs,
            last: None,
            _echos: echos,
            _link: net.link,
        }
    }

    /// Programs the datapath from manifest YAML, as the agent on `node` would.
    pub fn apply(&mut self, yaml: &str, node: &str) -> SyncStats {
        let snapshot = parse_case(yaml);
        self.maps
            .sync(&desired_state(&snapshot, node))
            .expect("sync maps")
    }

    /// Programs the datapath from `yaml` incrementally from the previous
    /// `apply_incremental` state, as the agent does on a change: only the
    /// services that differ are recomputed and written.
    pub fn apply_incremental(&mut self, yaml: &str, node: &str) -> SyncStats {
        let next = parse_case(yaml);
        match self.last.take() {
            Some((prev, mut inc)) => {
                let delta = inc.update(&prev, &next, node);
                let stats = self
                    .maps
                    .apply_delta(&delta, inc.desired())
                    .expect("apply delta");
                assert_eq!(inc.desired(), &desired_state(&next, node));
                self.last = Some((next, inc));
                stats
            }
            None => {
                let inc = IncrementalDesired::full(&next, node);
                let stats = self.maps.sync(inc.desired()).expect("sync maps");
                self.last = Some((next, inc));
                stats
            }
        }
    }

    /// Runs `count` probe attempts from the client netns inside the cgroup.
    pub fn probe(&self, mode: &str, target: &str, count: usize) -> Vec<Seen> {
        probe_in(&self.client, Some(&self.cgroup), mode, target, count)
    }

    /// Distinct backends answering `count` TCP attempts, with their counts.
    pub fn spread(&self, target: &str, count: usize) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for seen in self.probe("tcp", target, count) {
            *out.entry(seen.backend().to_string()).or_default() += 1;
        }
        out
    }
}

/// A synced snapshot of a test case's manifest; a bad manifest fails the test.
fn parse_case(yaml: &str) -> ClusterSnapshot {
    let report = ManifestLoader::parse_str("case.yaml", yaml);
    assert!(
        report.errors.is_empty(),
        "bad case manifest: {:?}",
        report.errors
    );
    report.to_snapshot()
}

/// Runs the probe binary in `ns` (and `cgroup`, if given).
pub fn probe_in(
    ns: &NetNs,
    cgroup: Option<&Cgroup>,
    mode: &str,
    target: &str,
    count: usize,
) -> Vec<Seen> {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_strait-probe"));
    cmd.args([mode, target, &count.to_string()]);
    if let Some(cg) = cgroup {
        cmd.in_cgroup(cg).expect("join cgroup");
    }
    let out = cmd.output().expect("run probe");
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(parse)
        .collect()
}

fn parse(line: &str) -> Seen {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["ok", backend, client, peer] => Seen::Ok {
            backend: (*backend).to_string(),
            client: client.parse().expect("client addr"),
            peer: peer.parse().expect("peer addr"),
        },
        ["err", errno, ..] => Seen::Err(errno.parse().expect("errno")),
        _ => panic!("unexpected probe output {line:?}"),
    }
}

/// The set of backend names (or error codes) in a probe result.
pub fn outcome(seen: &[Seen]) -> Vec<String> {
    let mut v: Vec<String> = seen
        .iter()
        .map(|s| match s {
            Seen::Ok { backend, .. } => backend.clone(),
            Seen::Err(e) => format!("errno {e}"),
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Whether an address is one of the pool's.
pub fn is_pool(ip: IpAddr) -> bool {
    POOL_V4
        .iter()
        .chain(POOL_V6.iter())
        .any(|p| p.parse::<IpAddr>().ok() == Some(ip))
}
