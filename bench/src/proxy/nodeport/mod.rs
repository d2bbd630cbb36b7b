//! `scripts/bench proxy nodeport`: external traffic through a NodePort —
//! a client outside the cluster connects to `nodeIP:nodePort`, the node
//! translates and forwards to a pod on another node — with strait's tc
//! datapath against kube-proxy's iptables NodePort rules, and against the
//! client routing straight to the pod through the same node (no NAT).
//!
//! Topology (rebuilt per N; every mode gets its own node netns and client
//! netns, so one mode's rules, conntrack and datapath never see another
//! mode's traffic; all of them on one L2 segment):
//!
//! ```text
//!                       switch netns: bridge
//!        ┌──────────────────┬──────┴───────────┬──────────────────────┐
//!  client-k netns      node-k netns                         remote netns ("remote node")
//!  10.250.(10+k).1/24  10.250.0.(10+k)/24 (node IP)         10.250.0.3/24
//!  routes: 10.244/16   + 10.250.(10+k).254/24 (client gw)   AnyIP: every pod IP
//!   and 10.250.0/24    ip_forward=1                          (10.244.0.0–10.244.254.255)
//!   via .254           10.244/16 via 10.250.0.3              is local; echo "ep" on :8080
//!                      mode k's datapath on its interface    10.250.(10+k)/24 via node-k
//! ```
//!
//! The client sits in its own subnet, so the remote node's replies to it
//! (direct mode, no NAT) go back through the node like the SNATed replies
//! of the NodePort modes do: every mode crosses the node both ways.
//! strait's tc program redirects SNATed packets out of the interface they
//! came in on, which is why client and remote share the segment.
//!
//! Modes: `direct` (pod IPs, node only forwards), `strait-tc` (SockLb loaded
//! and synced as the agent does, node maps set, tc programs attached to the
//! node's interface; every endpoint on the remote node, so every flow is
//! SNATed to the node IP), `iptables` (kube-proxy's full ruleset with the
//! NodePort chains, loaded with iptables-legacy-restore into the node netns).
//!
//! No namespace has a default route; namespaces, veths, bridge, bpffs and
//! echo server are `strait-tests` guards removed on drop; the tc links are
//! unpinned (detached) by a drop guard before the bpffs goes; the iptables
//! rules are removed by a drop guard, also on failure.
pub mod kube;
pub mod load;

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::{ChildStdin, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use strait_cluster::ManifestLoader;
use strait_proxy::{
    Frontend, NodeMaps, ServiceMaps, SockLb, agent::capacity_for, desired_state, node_maps,
};
use strait_tests::{Bpffs, Bridge, ChildGuard, Echo, NetNs, VethPair, Via};

use self::{kube::NodePortService, load::ECHO_NAME};
use super::LoadResult;
use super::describe::{self, parse_modes, parse_sizes};
use super::{
    ANYIP_RANGES, CoreUse, ENDPOINTS, IptablesGuard, TICKS, cpu_times, nft_tables, proc_ticks,
    services, timed, write_targets,
};

/// First node port: N services use `NODE_PORT_BASE..NODE_PORT_BASE + N`
/// (kube-proxy's default range 30000–32767 holds only 2 768 services; a
/// cluster with 10 000 NodePorts sets `--service-node-port-range`).
const NODE_PORT_BASE: u16 = 20_000;
/// Most services the port range above allows (up to 32767).
const MAX_SERVICES: usize = 12_768;
/// The node the datapath runs on and the node every endpoint is on.
const NODE: &str = "bench-node";
const REMOTE_NODE: &str = "remote-node";
/// The remote node's address on the segment.
const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 3);

/// How long and how hard to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Service counts.
    pub sizes: Vec<usize>,
    /// Measured seconds per run.
    pub measure: f64,
    /// Warm-up seconds per run.
    pub warmup: f64,
    /// Interleaved rounds per mode and test (the median is reported).
    pub rounds: usize,
    /// Concurrent connect loops of the connection-rate test.
    pub conn_concurrency: usize,
    /// Keep-alive connections of the request-rate test.
    pub rr_concurrency: usize,
    /// Client core and backend core (None: no pinning).
    pub cpus: Option<(usize, usize)>,
    /// Which modes to run.
    pub modes: Vec<Mode>,
}

/// What the client connects to, through which node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pod IPs, routed through a node that only forwards.
    Direct,
    /// `nodeIP:nodePort`, strait's tc programs on the node's interface.
    Strait,
    /// `nodeIP:nodePort`, kube-proxy's iptables rules (legacy backend).
    Iptables,
}

impl Mode {
    /// All modes in run order.
    pub const ALL: [Mode; 3] = [Mode::Direct, Mode::Strait, Mode::Iptables];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Strait => "strait-tc",
            Mode::Iptables => "iptables",
        }
    }
}

/// The two tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    /// New connections: connect, request, reply, close.
    Conn,
    /// Requests on keep-alive connections.
    Rr,
}

impl Test {
    fn command(self) -> &'static str {
        match self {
            Test::Conn => "conn",
            Test::Rr => "rr",
        }
    }
}

/// CPU use during one run.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// The client's pinned core.
    pub client: CoreUse,
    /// The backends' pinned core.
    pub backend: CoreUse,
    /// Client process and echo (this process) CPU, as shares of one core.
    pub proc: (f64, f64),
}

impl Cpu {
    const UNKNOWN: Cpu = Cpu {
        client: CoreUse::UNKNOWN,
        backend: CoreUse::UNKNOWN,
        proc: (f64::NAN, f64::NAN),
    };
}

/// One test's results for one mode.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// The median round.
    pub median: LoadResult,
    /// Every round's rate, in run order.
    pub rounds: Vec<f64>,
    /// CPU of the median round.
    pub cpu: Option<Cpu>,
    all: Vec<(LoadResult, Cpu)>,
}

impl Measured {
    fn push(&mut self, o: LoadResult, cpu: Cpu) {
        self.rounds.push(o.rate());
        self.all.push((o, cpu));
    }

    fn settle(&mut self) {
        let mut order: Vec<usize> = (0..self.all.len()).collect();
        order.sort_by(|&a, &b| self.all[a].0.rate().total_cmp(&self.all[b].0.rate()));
        if let Some(&mid) = order.get(order.len() / 2) {
            self.median = self.all[mid].0.clone();
            self.cpu = Some(self.all[mid].1);
        }
    }

    fn rate(&self) -> f64 {
        self.median.rate()
    }

    fn errors(&self) -> u64 {
        self.all.iter().map(|(o, _)| o.errors).sum()
    }
}

/// One row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// Services.
    pub n: usize,
    /// Mode.
    pub mode: Mode,
    /// Connection rate.
    pub conn: Measured,
    /// Keep-alive request rate.
    pub rr: Measured,
    /// Programming all N services (strait: `ServiceMaps::sync` + node
    /// maps; iptables: `iptables-legacy-restore`).
    pub programming: Option<Duration>,
    /// Datapath state after the runs, for the notes.
    pub state: String,
}

/// The services with their node ports.
fn nodeport_services(n: usize) -> Vec<NodePortService> {
    services(n)
        .into_iter()
        .enumerate()
        .map(|(i, svc)| NodePortService {
            svc,
            node_port: NODE_PORT_BASE + i as u16,
        })
        .collect()
}

/// The manifests the agent would see: `type: NodePort` Services and their
/// EndpointSlices, every endpoint on the remote node.
fn manifests(services: &[NodePortService]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(services.len() * 900);
    for s in services {
        let svc = &s.svc;
        let port = svc.endpoints[0].port();
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: {}}}\n\
             spec: {{type: NodePort, clusterIP: {}, ports: [{{name: {}, port: {}, protocol: TCP, targetPort: {}, nodePort: {}}}]}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {}-p{port}, namespace: {}, labels: {{kubernetes.io/service-name: {}}}}}\n\
             addressType: IPv4\nports: [{{name: {}, port: {port}, protocol: TCP}}]\nendpoints:\n",
            svc.name,
            svc.namespace,
            svc.vip.ip(),
            svc.port_name,
            svc.vip.port(),
            svc.port_name,
            s.node_port,
            svc.name,
            svc.namespace,
            svc.name,
            svc.port_name,
        );
        for ep in &svc.endpoints {
            let _ = writeln!(
                out,
                "- {{addresses: [\"{}\"], conditions: {{ready: true}}, nodeName: {REMOTE_NODE}}}",
                ep.ip()
            );
        }
    }
    out
}

/// The bridge and the remote node with every pod address and the echo.
/// Field order: the echo and the link go before the namespaces.
struct Fabric {
    _echo: Echo,
    _remote_link: VethPair,
    remote: NetNs,
    bridge: Bridge,
    switch: NetNs,
}

impl Fabric {
    fn new(services: &[NodePortService]) -> anyhow::Result<Fabric> {
        let switch = NetNs::new("np-switch")?;
        let bridge = Bridge::new(&switch)?;
        // The bridge stands for the physical switch between machines: no
        // netfilter on bridged frames (when br_netfilter is loaded its
        // per-netns default would run every frame through the switch
        // netns's hooks, a cost the same for every mode that only dilutes
        // the differences).
        for key in [
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
            "net.bridge.bridge-nf-call-arptables",
        ] {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let present = switch
                .command("test")
                .args(["-e", &path])
                .status()
                .is_ok_and(|s| s.success());
            if present {
                switch.sysctl(key, "0")?;
            }
        }
        let remote = NetNs::new("np-remote")?;
        let link = VethPair::builder(&remote, &switch)
            .addr_a(&format!("{REMOTE}/24"))
            .create()?;
        bridge.attach(link.b_name())?;
        // Every endpoint address is local to the remote node (AnyIP), so one
        // echo on 0.0.0.0 answers for all of them.
        for range in ANYIP_RANGES {
            remote
                .ip(&["route", "add", "local", range, "dev", "lo"])
                .with_context(|| format!("AnyIP route {range}"))?;
        }
        if services
            .iter()
            .flat_map(|s| s.svc.endpoints.iter())
            .any(|ep| ep.ip().octets()[2] == 255)
        {
            bail!("an endpoint is outside the AnyIP ranges");
        }
        remote.sysctl("net.core.somaxconn", "4096")?;
        remote.sysctl("net.ipv4.tcp_max_syn_backlog", "4096")?;
        let port = services.first().map_or(8080, |s| s.svc.endpoints[0].port());
        let echo = Echo::start(&remote, ECHO_NAME, SocketAddr::from(([0, 0, 0, 0], port)))?;
        Ok(Fabric {
            _echo: echo,
            _remote_link: link,
            remote,
            bridge,
            switch,
        })
    }
}

/// Node `k`'s address on the segment (its node IP).
fn node_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, 0, 10 + k as u8)
}

/// Client `k`'s subnet: client .1, the node's gateway address .254.
fn client_net(k: usize) -> (Ipv4Addr, Ipv4Addr, String) {
    let c = 10 + k as u8;
    (
        Ipv4Addr::new(10, 250, c, 1),
        Ipv4Addr::new(10, 250, c, 254),
        format!("10.250.{c}.0/24"),
    )
}

/// strait's datapath in a node netns, as the agent holds it. On drop the tc
/// links are unpinned (which detaches them) before the bpffs goes.
struct StraitTc {
    _lb: SockLb,
    _maps: ServiceMaps,
    node_maps: NodeMaps,
    bpffs: Bpffs,
}

impl Drop for StraitTc {
    fn drop(&mut self) {
        if let Err(e) = strait_proxy::remove_pins(self.bpffs.path()) {
            eprintln!("  warning: removing strait's pins failed: {e}");
        }
    }
}

/// The load generator child process.
struct Client {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    guard: ChildGuard,
}

impl Client {
    fn spawn(ns: &NetNs, cpu: Option<usize>) -> anyhow::Result<Client> {
        let mut cmd = ns.command(std::env::current_exe()?);
        cmd.arg("nodeport-client");
        if let Some(cpu) = cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut guard = cmd.spawn()?;
        let child = guard.child_mut();
        let stdin = child.stdin.take().context("client stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("client stdout")?);
        Ok(Client {
            stdin,
            stdout,
            guard,
        })
    }

    fn run(
        &mut self,
        test: Test,
        file: &Path,
        secs: f64,
        warm: f64,
        conc: usize,
    ) -> anyhow::Result<LoadResult> {
        let command = format!("{} {secs} {warm} {conc} {}", test.command(), file.display());
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("client exited while running {command:?}");
        }
        LoadResult::parse(line.trim())
    }
}

/// One mode, set up. Fields drop in order: the client process, the
/// datapath (tc links, rules), the links, then the namespaces.
struct Setup {
    client: Client,
    strait: Option<StraitTc>,
    ipt: Option<IptablesGuard>,
    _client_link: VethPair,
    _node_link: VethPair,
    _client_ns: NetNs,
    node_ns: NetNs,
    targets: PathBuf,
    row: Row,
}

fn set_up(
    mode: Mode,
    k: usize,
    fabric: &Fabric,
    svcs: &[NodePortService],
    s: &Settings,
    scratch: &Path,
) -> anyhow::Result<Setup> {
    let n = svcs.len();
    let node_ns = NetNs::new(&format!("np-node-{}", mode.name()))?;
    let client_ns = NetNs::new(&format!("np-client-{}", mode.name()))?;
    let (client_ip, gw, client_cidr) = client_net(k);
    let nip = node_ip(k);
    // The node: its node IP first (the primary, SNAT address), then the
    // clients' gateway address, on the one interface into the segment.
    let node_link = VethPair::builder(&node_ns, &fabric.switch)
        .addr_a(&format!("{nip}/24"))
        .create()?;
    fabric.bridge.attach(node_link.b_name())?;
    let iface = node_link.a_name().to_string();
    node_ns.add_addr(&iface, &format!("{gw}/24"))?;
    node_ns.add_route(kube_pod_cidr(), Via::Gateway(&REMOTE.to_string()))?;
    node_ns.sysctl("net.ipv4.ip_forward", "1")?;
    // Forwarding back out of the interface a packet came in on is the
    // topology here, not a misroute: no ICMP redirects.
    for scope in ["all", "default", iface.as_str()] {
        node_ns.sysctl(&format!("net.ipv4.conf.{scope}.send_redirects"), "0")?;
    }
    // The client.
    let client_link = VethPair::builder(&client_ns, &fabric.switch)
        .addr_a(&format!("{client_ip}/24"))
        .create()?;
    fabric.bridge.attach(client_link.b_name())?;
    client_ns.add_route(kube_pod_cidr(), Via::Gateway(&gw.to_string()))?;
    client_ns.add_route("10.250.0.0/24", Via::Gateway(&gw.to_string()))?;
    client_ns.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
    client_ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    // The remote node answers the client's subnet through this node.
    fabric
        .remote
        .add_route(&client_cidr, Via::Gateway(&nip.to_string()))?;

    let mut row = Row {
        n,
        mode,
        conn: Measured::default(),
        rr: Measured::default(),
        programming: None,
        state: String::new(),
    };
    let (mut strait, mut ipt) = (None, None);
    let targets = scratch.join(format!("targets-{}.txt", mode.name()));
    match mode {
        Mode::Direct => {
            // Endpoint 0 of every service, then endpoint 1..., as the
            // ClusterIP bench's direct mode.
            let direct: Vec<SocketAddrV4> = (0..ENDPOINTS)
                .flat_map(|j| svcs.iter().map(move |s| s.svc.endpoints[j]))
                .collect();
            write_targets(&targets, &direct)?;
        }
        Mode::Strait | Mode::Iptables => {
            let nodeports: Vec<SocketAddrV4> = svcs
                .iter()
                .map(|s| SocketAddrV4::new(nip, s.node_port))
                .collect();
            write_targets(&targets, &nodeports)?;
        }
    }
    match mode {
        Mode::Direct => {}
        Mode::Strait => {
            let report = ManifestLoader::parse_str("nodeport-bench.yaml", &manifests(svcs));
            if let Some(e) = report.errors.first() {
                bail!("{} manifest errors, first: {e}", report.errors.len());
            }
            let snapshot = report.to_snapshot();
            let want = desired_state(&snapshot, NODE);
            check_desired(&want, svcs)?;
            let capacity = capacity_for(&want);
            eprintln!(
                "  N={n} strait-tc: {} frontends; capacity {capacity:?} (Maglev map {:.0} MiB)",
                want.len(),
                f64::from(capacity.maglev_entries) * 8.0 / (1 << 20) as f64,
            );
            let bpffs = Bpffs::new()?;
            let pin = bpffs.path().to_path_buf();
            let local = node_maps::local_endpoints(&snapshot, NODE);
            if !local.is_empty() {
                bail!("{} endpoints are on the bench node", local.len());
            }
            let (lb, maps, nm, took) = node_ns.run(|| -> anyhow::Result<_> {
                let mut lb = SockLb::load_with(&pin, capacity)?;
                let mut maps = lb.service_maps()?;
                let t = Instant::now();
                maps.sync(&want)?;
                let mut nm = lb.node_maps()?;
                let addrs = node_maps::node_addresses(&iface, &[]);
                if addrs.primary_v4 != Some(nip) {
                    bail!(
                        "primary address of {iface} is {:?}, expected {nip}",
                        addrs.primary_v4
                    );
                }
                nm.set_addresses(&addrs)?;
                nm.set_local_endpoints(&local)?;
                let took = t.elapsed();
                lb.attach_external(&iface)?;
                Ok((lb, maps, nm, took))
            })?;
            row.programming = Some(took);
            strait = Some(StraitTc {
                _lb: lb,
                _maps: maps,
                node_maps: nm,
                bpffs,
            });
        }
        Mode::Iptables => {
            let full = scratch.join("nodeport-iptables-full.rules");
            std::fs::write(&full, kube::iptables_full(svcs))?;
            let cleanup_file = scratch.join("nodeport-iptables-cleanup.rules");
            std::fs::write(&cleanup_file, kube::iptables_cleanup(svcs))?;
            let before_tables = nft_tables(&node_ns)?;
            let mut guard = IptablesGuard {
                ns: node_ns.clone(),
                restore: "iptables-legacy-restore",
                cleanup_file,
                created_tables: Vec::new(),
                armed: true,
            };
            let t = timed(
                &node_ns,
                "iptables-legacy-restore",
                &["--noflush", &full.to_string_lossy()],
            );
            guard.created_tables = nft_tables(&node_ns)?
                .into_iter()
                .filter(|t| !before_tables.contains(t))
                .collect();
            row.programming = Some(t?);
            ipt = Some(guard);
        }
    }
    let mut client = Client::spawn(&client_ns, s.cpus.map(|c| c.0))?;
    // Every mode must serve before it is measured.
    let check = client.run(Test::Conn, &targets, 0.3, 0.0, 8)?;
    if check.ops == 0 || check.errors > 0 {
        bail!(
            "{} at N={n} does not serve ({} ok, {} errors): {}",
            mode.name(),
            check.ops,
            check.errors,
            check.first_error
        );
    }
    Ok(Setup {
        client,
        strait,
        ipt,
        _client_link: client_link,
        _node_link: node_link,
        _client_ns: client_ns,
        node_ns,
        targets,
        row,
    })
}

fn kube_pod_cidr() -> &'static str {
    super::kube::CLUSTER_CIDR
}

/// The agent's desired state must hold every NodePort with the endpoints
/// the iptables rules use.
fn check_desired(
    want: &strait_proxy::DesiredState,
    svcs: &[NodePortService],
) -> anyhow::Result<()> {
    for s in svcs {
        let fe = Frontend {
            vip: Ipv4Addr::UNSPECIFIED.into(),
            port: s.node_port,
            proto: 6,
        };
        let spec = want
            .get(&fe)
            .with_context(|| format!("no NodePort frontend for {}", s.node_port))?;
        let got: BTreeSet<SocketAddr> = spec.backends.iter().copied().collect();
        let expect: BTreeSet<SocketAddr> = s.svc.endpoints.iter().map(|e| (*e).into()).collect();
        if got != expect || spec.external_flags == 0 {
            bail!("NodePort {}: the agent wants {got:?}", s.node_port);
        }
    }
    Ok(())
}

/// One measured run with the CPU use around it.
fn measure(st: &mut Setup, test: Test, s: &Settings) -> anyhow::Result<(LoadResult, Cpu)> {
    let conc = match test {
        Test::Conn => s.conn_concurrency,
        Test::Rr => s.rr_concurrency,
    };
    let secs = s.measure + s.warmup;
    let pid = st.client.guard.id();
    let (c0, e0) = (proc_ticks(pid), proc_ticks(std::process::id()));
    let before = cpu_times();
    let r = st
        .client
        .run(test, &st.targets, s.measure, s.warmup, conc)?;
    let after = cpu_times();
    let (c1, e1) = (proc_ticks(pid), proc_ticks(std::process::id()));
    let cpu = match s.cpus {
        Some((c, b)) => Cpu {
            client: CoreUse::between(&before, &after, c),
            backend: CoreUse::between(&before, &after, b),
            proc: (
                (c1 - c0) as f64 / TICKS / secs,
                (e1 - e0) as f64 / TICKS / secs,
            ),
        },
        None => Cpu::UNKNOWN,
    };
    Ok((r, cpu))
}

/// A few figures of the datapath's state after the runs.
fn state_of(st: &mut Setup) -> String {
    match st.row.mode {
        Mode::Direct => String::new(),
        Mode::Strait => st
            .strait
            .as_ref()
            .map(|dp| format!("{} conntrack map entries", dp.node_maps.conntrack_entries()))
            .unwrap_or_default(),
        Mode::Iptables => {
            let count = st
                .node_ns
                .command("cat")
                .arg("/proc/sys/net/netfilter/nf_conntrack_count")
                .output_checked()
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{count} nf_conntrack entries")
        }
    }
}

/// Runs every mode at one size, in interleaved rounds.
fn run_size(n: usize, s: &Settings, scratch: &Path) -> anyhow::Result<Vec<Row>> {
    if n > MAX_SERVICES {
        bail!("at most {MAX_SERVICES} services (node ports {NODE_PORT_BASE}–32767)");
    }
    let svcs = nodeport_services(n);
    let fabric = Fabric::new(&svcs)?;
    let mut setups = Vec::new();
    for (k, &mode) in s.modes.iter().enumerate() {
        let t = Instant::now();
        setups.push(set_up(mode, k, &fabric, &svcs, s, scratch)?);
        eprintln!(
            "  N={n} {} ready in {:.2?} (programming {:.2?})",
            mode.name(),
            t.elapsed(),
            setups.last().and_then(|x| x.row.programming)
        );
    }
    for round in 0..s.rounds {
        for test in [Test::Conn, Test::Rr] {
            for st in &mut setups {
                let (r, cpu) = measure(st, test, s)?;
                eprintln!(
                    "    round {round} {} {}: {:.0}/s, errors {}{}",
                    st.row.mode.name(),
                    test.command(),
                    r.rate(),
                    r.errors,
                    if r.errors > 0 {
                        format!(" (first: {})", r.first_error)
                    } else {
                        String::new()
                    }
                );
                match test {
                    Test::Conn => st.row.conn.push(r, cpu),
                    Test::Rr => st.row.rr.push(r, cpu),
                }
            }
        }
    }
    let mut rows = Vec::new();
    for st in &mut setups {
        st.row.conn.settle();
        st.row.rr.settle();
        st.row.state = state_of(st);
        rows.push(st.row.clone());
    }
    // Rules and datapath go explicitly here (their guards would do it too).
    for st in &mut setups {
        if let Some(g) = st.ipt.as_mut() {
            let t = g.remove()?;
            eprintln!("  N={n} iptables rules removed in {t:.2?}");
        }
        st.strait.take();
    }
    drop(setups);
    drop(fabric);
    Ok(rows)
}

/// Runs every size and returns the rows.
pub fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let scratch = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for &n in &s.sizes {
        eprintln!("N={n} NodePort services × {ENDPOINTS} endpoints, all on the remote node");
        rows.extend(run_size(n, s, scratch.path())?);
    }
    Ok(rows)
}

fn rate_of(rows: &[Row], n: usize, mode: Mode, test: Test) -> Option<f64> {
    rows.iter()
        .find(|r| r.n == n && r.mode == mode)
        .map(|r| match test {
            Test::Conn => r.conn.rate(),
            Test::Rr => r.rr.rate(),
        })
        .filter(|r| *r > 0.0)
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn core(c: CoreUse) -> String {
    if c.busy.is_nan() {
        "–".into()
    } else {
        format!("{:.0}% ({:.0}%)", c.busy * 100.0, c.softirq * 100.0)
    }
}

/// Which side limited the rate: the pinned core that was busier; when both
/// are within 3 points (both saturated), the side whose process used more
/// CPU time.
fn bottleneck(cpu: Option<Cpu>) -> String {
    let Some(cpu) = cpu else {
        return "–".into();
    };
    let (c, b) = (cpu.client.busy, cpu.backend.busy);
    let (pc, pb) = cpu.proc;
    if c.is_nan() || pc.is_nan() {
        return "–".into();
    }
    if (c - b).abs() < 0.03 {
        let side = if pc >= pb { "client" } else { "backend" };
        format!(
            "{side} (both cores ≥ {:.0}%; proc {:.0}% vs {:.0}%)",
            c.min(b) * 100.0,
            pc * 100.0,
            pb * 100.0
        )
    } else if c > b {
        format!("client core ({:.0}% vs {:.0}%)", c * 100.0, b * 100.0)
    } else {
        format!("backend core ({:.0}% vs {:.0}%)", b * 100.0, c * 100.0)
    }
}

fn range(v: &[f64]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    format!(
        "{:.0}–{:.0}",
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(0.0, f64::max)
    )
}

/// Per-round ratios of strait over `base` (same round, same machine load).
fn round_ratios(rows: &[Row], n: usize, base: Mode, test: Test) -> String {
    let of = |mode| rows.iter().find(|r| r.n == n && r.mode == mode);
    let pick = |r: &Row| match test {
        Test::Conn => r.conn.rounds.clone(),
        Test::Rr => r.rr.rounds.clone(),
    };
    match (of(Mode::Strait), of(base)) {
        (Some(a), Some(b)) => pick(a)
            .iter()
            .zip(pick(b))
            .map(|(x, y)| format!("{:.2}", x / y))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "–".into(),
    }
}

/// The markdown table, notes, targets and the summary line.
pub fn report(rows: &[Row], s: &Settings) -> String {
    let mut out = String::new();
    out.push_str("| N services | mode | conn/s | rounds | ×direct | ×iptables | connect p50 / p99 µs | req/s keep-alive | rounds | ×direct | ×iptables | req p50 / p99 µs | errors (conn / req) | programming ms | conn: client core (softirq) | conn: backend core (softirq) | conn bottleneck | req: client core (softirq) | req: backend core (softirq) | req bottleneck |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n");
    for r in rows {
        let (cr, rr) = (r.conn.rate(), r.rr.rate());
        let cpu = |m: &Measured| m.cpu.unwrap_or(Cpu::UNKNOWN);
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.0} / {:.0} | {:.0} | {} | {} | {} | {:.0} / {:.0} | {} / {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.n,
            r.mode.name(),
            cr,
            range(&r.conn.rounds),
            ratio(cr, rate_of(rows, r.n, Mode::Direct, Test::Conn)),
            ratio(cr, rate_of(rows, r.n, Mode::Iptables, Test::Conn)),
            r.conn.median.p50.as_secs_f64() * 1e6,
            r.conn.median.p99.as_secs_f64() * 1e6,
            rr,
            range(&r.rr.rounds),
            ratio(rr, rate_of(rows, r.n, Mode::Direct, Test::Rr)),
            ratio(rr, rate_of(rows, r.n, Mode::Iptables, Test::Rr)),
            r.rr.median.p50.as_secs_f64() * 1e6,
            r.rr.median.p99.as_secs_f64() * 1e6,
            r.conn.errors(),
            r.rr.errors(),
            r.programming
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "–".into()),
            core(cpu(&r.conn).client),
            core(cpu(&r.conn).backend),
            bottleneck(r.conn.cpu),
            core(cpu(&r.rr).client),
            core(cpu(&r.rr).backend),
            bottleneck(r.rr.cpu),
        ));
    }
    out.push_str(&format!(
        "\nclient: external netns on the node's L2 segment, its own subnet routed via the node; conn = {} concurrent loops of connect + `ping` + reply line + close, round-robin over the N node ports (direct: over the 5N pod IPs); req = {} keep-alive connections (connection i to node port i) each sending `ping` and reading the reply in a loop; {:.1} s measured after {:.1} s warm-up, {} interleaved rounds per mode and test (median shown, errors summed over all rounds); {}.\n",
        s.conn_concurrency,
        s.rr_concurrency,
        s.measure,
        s.warmup,
        s.rounds,
        describe::pinning(s.cpus, "the echo backend")
    ));
    let version = describe::tool_version;
    out.push_str(&format!(
        "machine: {} CPUs, kernel {}, load average at the end {}; iptables = {} with kube-proxy's NodePort layout (KUBE-SERVICES → addrtype LOCAL → KUBE-NODEPORTS → KUBE-EXT-* mark-masq → KUBE-SVC-* → KUBE-SEP-* DNAT, KUBE-POSTROUTING MASQUERADE --random-fully), node ports {NODE_PORT_BASE}+i; strait-tc = SockLb with capacity_for(desired) (the agent's sizing), ServiceMaps::sync of the ClusterIP and NodePort frontends, node addresses, tc ingress+egress (TCX) on the node interface; every endpoint is on the remote node, so strait SNATs every flow to the node IP and redirects it out (bpf_redirect_neigh), as iptables MASQUERADEs it.\n",
        cpu_times().len(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        describe::load_average(),
        version("iptables-legacy-restore"),
    ));
    out.push_str("switch: a Linux bridge in its own netns with bridge-nf-call-{iptables,ip6tables,arptables}=0 there (a switch does no netfilter).\nbottleneck: client and echo backend are pinned to one core each; the node's forwarding, NAT and tc work runs in softirq on the core of whichever side sent the packet (veth and bridge deliver on the sending CPU). The busier pinned core is named; when both are within 3 points, the side whose process used more CPU time (utime+stime).\n");
    for r in rows {
        if !r.state.is_empty() {
            out.push_str(&format!(
                "state after the runs, N={} {}: {}.\n",
                r.n,
                r.mode.name(),
                r.state
            ));
        }
    }
    out.push_str("\ntargets:\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for &n in &s.sizes {
        for test in [Test::Conn, Test::Rr] {
            let what = match test {
                Test::Conn => "conn/s",
                Test::Rr => "req/s",
            };
            if let (Some(st), Some(d)) = (
                rate_of(rows, n, Mode::Strait, test),
                rate_of(rows, n, Mode::Direct, test),
            ) {
                out.push_str(&format!(
                    "- N={n} {what}: strait/direct = {:.3} (≥ 0.90): {}; per round: {}\n",
                    st / d,
                    verdict(st / d >= 0.9),
                    round_ratios(rows, n, Mode::Direct, test)
                ));
            }
            if n >= 10_000
                && let (Some(st), Some(ipt)) = (
                    rate_of(rows, n, Mode::Strait, test),
                    rate_of(rows, n, Mode::Iptables, test),
                )
            {
                out.push_str(&format!(
                    "- N={n} {what}: strait/iptables = {:.3} (≥ 1.5): {}; per round: {}\n",
                    st / ipt,
                    verdict(st / ipt >= 1.5),
                    round_ratios(rows, n, Mode::Iptables, test)
                ));
            }
        }
    }
    if let Some(&n) = s
        .sizes
        .iter()
        .rev()
        .find(|&&n| rate_of(rows, n, Mode::Strait, Test::Conn).is_some())
    {
        let st = rate_of(rows, n, Mode::Strait, Test::Conn).unwrap_or(0.0);
        let sr = rate_of(rows, n, Mode::Strait, Test::Rr).unwrap_or(0.0);
        out.push_str(&format!(
            "\nnodeport: strait/direct={} strait/iptables={} (N={n}; conn/s; req/s: strait/direct={} strait/iptables={})\n",
            ratio(st, rate_of(rows, n, Mode::Direct, Test::Conn)),
            ratio(st, rate_of(rows, n, Mode::Iptables, Test::Conn)),
            ratio(sr, rate_of(rows, n, Mode::Direct, Test::Rr)),
            ratio(sr, rate_of(rows, n, Mode::Iptables, Test::Rr)),
        ));
    }
    out
}

/// `proxy-bench nodeport` arguments.
pub fn parse_args(args: &[String]) -> anyhow::Result<Settings> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut s = Settings {
        sizes: vec![1000, 10_000],
        measure: 5.0,
        warmup: 1.0,
        rounds: 3,
        conn_concurrency: 32,
        rr_concurrency: 32,
        cpus: (cpus >= 2).then_some((0, 1)),
        modes: Mode::ALL.to_vec(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                s.sizes = vec![100, 1000];
                s.measure = 2.0;
                s.warmup = 0.5;
            }
            "--sizes" => s.sizes = parse_sizes(value()?)?,
            "--seconds" => s.measure = value()?.parse()?,
            "--rounds" => s.rounds = value()?.parse()?,
            "--concurrency" => s.conn_concurrency = value()?.parse()?,
            "--rr-concurrency" => s.rr_concurrency = value()?.parse()?,
            "--modes" => s.modes = parse_modes(value()?, &Mode::ALL, |m| m.name())?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(s)
}
