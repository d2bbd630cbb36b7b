//! `scripts/bench proxy`: Strait's socket load balancer against kube-proxy's
//! iptables and nftables modes and against connecting straight to the pods,
//! for N services × 5 endpoints, all inside the benchmark's own namespaces.
//!
//! Topology (rebuilt per N; every mode gets its own client netns, so one
//! mode's conntrack entries and rules never touch the next):
//!
//! ```text
//!  client netns (one per mode)          node netns ("backends")
//!  10.244.255.(4i+1)/30 ── veth ──  10.244.255.(4i+2)/30
//!  10.244.0.0/16 via the node           AnyIP: `local 10.244.0.0-10.244.254.255
//!  (10.96.0.0/12 via the node for       dev lo` (a handful of local routes, not
//!   the NAT baselines only)             5N addresses), so every endpoint IP is
//!                                       local; echo "ep" on 0.0.0.0:8080,
//!                                       echo "new" on 0.0.0.0:8081
//! ```
//!
//! No namespace has a default route; every namespace, veth, cgroup, bpffs
//! and echo server is a guard of `strait-tests` and goes away on drop; the
//! iptables and nftables rules are loaded only in the client netns of their
//! mode and removed explicitly after it (and by drop guards on failure, and
//! with the client netns in any case).
pub mod agent;
pub mod describe;
pub mod kube;
pub mod load;
pub mod nodeport;

use std::{
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::Path,
    process::{ChildStdin, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use strait_proxy::{ServiceMaps, SockLb, agent::capacity_for};
use strait_tests::{Bpffs, Cgroup, ChildGuard, Echo, NetNs, VethPair, Via};

pub use load::{LoadResult, client_main, pin_to_cpu};

/// Endpoints per service.
pub const ENDPOINTS: usize = 5;
/// Endpoint (pod) port.
const EP_PORT: u16 = 8080;
/// Port of the echo server that only the changed endpoint points at.
const NEW_PORT: u16 = 8081;
/// Service port.
const SVC_PORT: u16 = 80;

/// How long and how hard to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Service counts.
    pub sizes: Vec<usize>,
    /// Measured seconds per mode.
    pub measure: f64,
    /// Warm-up seconds per mode.
    pub warmup: f64,
    /// Concurrent connections of the client.
    pub concurrency: usize,
    /// Interleaved rounds per mode (the median is reported).
    pub rounds: usize,
    /// Seconds of the one-at-a-time latency run.
    pub latency: f64,
    /// Client core and backend core (None: no pinning, fewer than 2 cores).
    pub cpus: Option<(usize, usize)>,
    /// Which modes to run.
    pub modes: Vec<Mode>,
    /// Largest N at which the iptables-nft variant runs: its
    /// `iptables-restore` is quadratic in the number of chains (iptables
    /// 1.8.9: 1 000 services 1.5 s, 2 000 6.5 s, 5 000 80 s).
    pub iptables_nft_max: usize,
}

/// What the client connects through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Straight to the pod IPs.
    Direct,
    /// VIPs, socket LB.
    Strait,
    /// VIPs, kube-proxy iptables mode loaded with `iptables-legacy-restore`
    /// (the ratios use this one).
    Iptables,
    /// VIPs, the same iptables ruleset loaded with `iptables-nft-restore`
    /// (Debian's default `iptables`).
    IptablesNft,
    /// VIPs, kube-proxy nftables mode.
    Nftables,
}

impl Mode {
    /// All modes in run order.
    pub const ALL: [Mode; 5] = [
        Mode::Direct,
        Mode::Strait,
        Mode::Iptables,
        Mode::IptablesNft,
        Mode::Nftables,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Strait => "strait",
            Mode::Iptables => "iptables",
            Mode::IptablesNft => "iptables-nft",
            Mode::Nftables => "nftables",
        }
    }

    /// The `iptables-restore` of an iptables mode.
    fn restore(self) -> Option<&'static str> {
        match self {
            Mode::Iptables => Some("iptables-legacy-restore"),
            Mode::IptablesNft => Some("iptables-nft-restore"),
            _ => None,
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// Services.
    pub n: usize,
    /// Mode.
    pub mode: Mode,
    /// The median load run.
    pub load: LoadResult,
    /// Per round: client process CPU, echo CPU, (client core, backend core) busy.
    pub rates: Vec<(f64, f64, (CoreUse, CoreUse))>,
    /// Rate of every round, in run order.
    pub round_rates: Vec<f64>,
    /// One connection at a time: connect latency without queueing.
    pub latency: LoadResult,
    /// Busy share of the client core and the backend core during the run.
    pub cpu: (CoreUse, CoreUse),
    /// CPU used by the client process and by the echo servers (this
    /// process), as a share of one core: what the other load on the
    /// machine does not blur.
    pub proc_cpu: (f64, f64),
    /// Full programming of N services (sync / iptables-restore / nft -f).
    pub full_load: Option<Duration>,
    /// One endpoint change: the programming call alone (strait: the agent's
    /// incremental step, `IncrementalDesired::update` + `apply_delta`).
    pub change: Option<Duration>,
    /// strait only: the same change written by a full `ServiceMaps::sync`
    /// of all N services (what the agent did before the incremental path;
    /// its periodic reconcile still does).
    pub change_full_sync: Option<Duration>,
    /// The slowest of the changes' visibility.
    pub change_visible_max: Option<Duration>,
    /// One endpoint change: from the start of the programming call until a
    /// connect of the client, which connects in a loop meanwhile, reached
    /// the new endpoint (includes the ~5 connects the random pick needs).
    pub change_visible: Option<Duration>,
    /// Rules removal (baselines).
    pub cleanup: Option<Duration>,
}

fn vip(i: usize) -> SocketAddrV4 {
    let base = u32::from(Ipv4Addr::new(10, 96, 0, 10));
    SocketAddrV4::new(Ipv4Addr::from(base + i as u32), SVC_PORT)
}

fn endpoint(k: usize) -> SocketAddrV4 {
    assert!(
        k < 250 * 250,
        "endpoint index out of the 10.244.0-249 range"
    );
    SocketAddrV4::new(
        Ipv4Addr::new(10, 244, (k / 250) as u8, (k % 250 + 1) as u8),
        EP_PORT,
    )
}

/// The endpoint the change introduces (served by the echo named `new`).
fn spare_endpoint() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 244, 254, 1), NEW_PORT)
}

/// The services of one size.
pub fn services(n: usize) -> Vec<kube::Service> {
    (0..n)
        .map(|i| kube::Service {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port_name: "http".into(),
            vip: vip(i),
            endpoints: (0..ENDPOINTS)
                .map(|j| endpoint(i * ENDPOINTS + j))
                .collect(),
        })
        .collect()
}

/// One-endpoint changes measured per mode (the median is reported).
const CHANGES: usize = 5;

/// The one-endpoint changes, one after the other: the last endpoint of
/// [`CHANGES`] services from the middle on is replaced by the spare one.
fn changes(services: &[kube::Service]) -> Vec<(usize, kube::Service)> {
    (0..CHANGES.min(services.len()))
        .map(|k| {
            let idx = (services.len() / 2 + k) % services.len();
            let mut after = services[idx].clone();
            *after.endpoints.last_mut().expect("endpoints") = spare_endpoint();
            (idx, after)
        })
        .collect()
}

/// The median of `v` (the upper one of an even count).
fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// The address ranges the node treats as local (AnyIP): all of
/// 10.244.0.0–10.244.254.255, i.e. the cluster CIDR without 10.244.255.0/24,
/// where the client links live (a local route over them would swallow the
/// node's replies to the clients).
const ANYIP_RANGES: [&str; 8] = [
    "10.244.0.0/17",
    "10.244.128.0/18",
    "10.244.192.0/19",
    "10.244.224.0/20",
    "10.244.240.0/21",
    "10.244.248.0/22",
    "10.244.252.0/23",
    "10.244.254.0/24",
];

/// The node netns: every endpoint address (AnyIP) and the echo servers.
struct Backends {
    ns: NetNs,
    _echos: Vec<Echo>,
}

impl Backends {
    fn new(services: &[kube::Service]) -> anyhow::Result<Backends> {
        let ns = NetNs::new("pb-node")?;
        let t = Instant::now();
        // Local routes in the node netns's own `local` table: any address
        // in them is delivered to the node's sockets, so the echo servers
        // on 0.0.0.0 answer for every endpoint without 5N addresses.
        for range in ANYIP_RANGES {
            ns.ip(&["route", "add", "local", range, "dev", "lo"])
                .with_context(|| format!("AnyIP route {range}"))?;
        }
        for ep in services
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .chain(std::iter::once(&spare_endpoint()))
        {
            if ep.ip().octets()[2] == 255 {
                bail!("endpoint {ep} is outside the AnyIP ranges");
            }
        }
        eprintln!(
            "  node: {} endpoint addresses as {} AnyIP routes in {:.2?}",
            services.len() * ENDPOINTS + 1,
            ANYIP_RANGES.len(),
            t.elapsed()
        );
        ns.sysctl("net.core.somaxconn", "4096")?;
        ns.sysctl("net.ipv4.tcp_max_syn_backlog", "4096")?;
        let echos = vec![
            Echo::start(&ns, "ep", SocketAddr::from(([0, 0, 0, 0], EP_PORT)))?,
            Echo::start(&ns, "new", SocketAddr::from(([0, 0, 0, 0], NEW_PORT)))?,
        ];
        Ok(Backends { ns, _echos: echos })
    }
}

/// A fresh client netns wired to the node. Field order drops the veth first.
struct ClientNs {
    _link: VethPair,
    ns: NetNs,
}

impl ClientNs {
    /// Client `idx` gets 10.244.255.(4 idx + 1)/30, its node side + 1.
    fn new(node: &Backends, idx: usize, vip_route: bool) -> anyhow::Result<ClientNs> {
        let ns = NetNs::new("pb-client")?;
        let client = Ipv4Addr::new(10, 244, 255, (4 * idx + 1) as u8);
        let node_addr = Ipv4Addr::new(10, 244, 255, (4 * idx + 2) as u8).to_string();
        let link = VethPair::builder(&ns, &node.ns)
            .addr_a(&format!("{client}/30"))
            .addr_b(&format!("{node_addr}/30"))
            .create()?;
        ns.add_route("10.244.0.0/16", Via::Gateway(&node_addr))?;
        if vip_route {
            // A node has a default route; here only the service CIDR is
            // routed, towards the node netns, so the NAT baselines see the
            // VIPs as routable without anything leaving our namespaces.
            ns.add_route(kube::SERVICE_CIDR, Via::Gateway(&node_addr))?;
        }
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
        ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
        Ok(ClientNs { _link: link, ns })
    }
}

/// The load generator child process.
struct Client {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    guard: ChildGuard,
}

impl Client {
    fn spawn(ns: &NetNs, cgroup: Option<&Cgroup>, cpu: Option<usize>) -> anyhow::Result<Client> {
        let exe = std::env::current_exe()?;
        let mut cmd = ns.command(exe);
        cmd.arg("client");
        if let Some(cpu) = cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        if let Some(cg) = cgroup {
            cmd.in_cgroup(cg)?;
        }
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

    fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.reply(command)
    }

    fn reply(&mut self, command: &str) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("client exited while running {command:?}");
        }
        Ok(line.trim().to_string())
    }

    fn load(
        &mut self,
        file: &Path,
        secs: f64,
        warm: f64,
        conc: usize,
    ) -> anyhow::Result<LoadResult> {
        LoadResult::parse(&self.ask(&format!("load {secs} {warm} {conc} {}", file.display()))?)
    }

    /// Starts the client connecting to `addr` in a loop (returns once it
    /// runs); [`Client::seen`] then waits until the echo named `name`
    /// answered.
    fn watch(&mut self, addr: SocketAddrV4, name: &str) -> anyhow::Result<()> {
        let reply = self.ask(&format!("watch {addr} {name}"))?;
        if reply != "watching" {
            bail!("unexpected reply to watch: {reply}");
        }
        Ok(())
    }

    /// The [`load::mono_ns`] time at which the watched change reached the
    /// client's connects.
    fn seen(&mut self, addr: SocketAddrV4) -> anyhow::Result<u64> {
        let reply = self.reply("watch")?;
        match reply.strip_prefix("seen ").and_then(|r| r.split_once(' ')) {
            Some((at, _attempts)) => Ok(at.parse()?),
            None => bail!("the change never became visible at {addr} ({reply})"),
        }
    }
}

/// USER_HZ.
const TICKS: f64 = 100.0;

/// utime + stime of a process, in ticks.
fn proc_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum()
}

/// Per-core (busy, total) jiffies from /proc/stat.
/// Per-core (busy, softirq, total) jiffies from /proc/stat.
fn cpu_times() -> Vec<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, v.get(6).copied().unwrap_or(0), total)
        })
        .collect()
}

/// How busy one core was during a run, as shares of the run.
#[derive(Clone, Copy, Debug)]
pub struct CoreUse {
    /// Everything but idle and iowait (includes other processes).
    pub busy: f64,
    /// The softirq part of it (the network stack of both sides).
    pub softirq: f64,
}

impl CoreUse {
    const UNKNOWN: CoreUse = CoreUse {
        busy: f64::NAN,
        softirq: f64::NAN,
    };

    fn between(before: &[(u64, u64, u64)], after: &[(u64, u64, u64)], cpu: usize) -> CoreUse {
        match (before.get(cpu), after.get(cpu)) {
            (Some(b), Some(a)) if a.2 > b.2 => {
                let total = (a.2 - b.2) as f64;
                CoreUse {
                    busy: (a.0 - b.0) as f64 / total,
                    softirq: (a.1 - b.1) as f64 / total,
                }
            }
            _ => CoreUse::UNKNOWN,
        }
    }
}

fn write_targets(path: &Path, targets: &[SocketAddrV4]) -> anyhow::Result<()> {
    let mut s = String::with_capacity(targets.len() * 20);
    for t in targets {
        s.push_str(&format!("{t}\n"));
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// Runs a program in `ns` with a file as its only input, timed.
fn timed(ns: &NetNs, program: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    ns.command(program)
        .args(args)
        .output_checked()
        .with_context(|| format!("{program} {}", args.join(" ")))?;
    Ok(t.elapsed())
}

/// The tables of the `ip` family in `ns` (iptables-nft creates `nat` and
/// `filter`; we delete them afterwards only if we created them).
fn nft_tables(ns: &NetNs) -> anyhow::Result<Vec<String>> {
    let out = ns
        .command("nft")
        .args(["list", "tables"])
        .output_checked()?;
    Ok(out.lines().map(|l| l.trim().to_string()).collect())
}

/// Removes the iptables rules and chains kube-proxy's layout added (and the
/// `ip nat`/`ip filter` tables when iptables-nft created them for us), on
/// drop, also when the run failed.
struct IptablesGuard {
    ns: NetNs,
    /// `iptables-legacy-restore` or `iptables-nft-restore`.
    restore: &'static str,
    cleanup_file: std::path::PathBuf,
    created_tables: Vec<String>,
    armed: bool,
}

impl IptablesGuard {
    fn remove(&mut self) -> anyhow::Result<Duration> {
        self.armed = false;
        let t = timed(
            &self.ns,
            self.restore,
            &["--noflush", &self.cleanup_file.to_string_lossy()],
        )?;
        for table in &self.created_tables {
            let mut args = vec!["delete"];
            args.extend(table.split_whitespace());
            timed(&self.ns, "nft", &args)?;
        }
        Ok(t)
    }
}

impl Drop for IptablesGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = self.remove()
        {
            eprintln!("  warning: iptables cleanup failed: {e:#}");
        }
    }
}

/// Deletes `table ip kube-proxy` (only that table) on drop.
struct NftGuard {
    ns: NetNs,
    armed: bool,
}

impl NftGuard {
    fn remove(&mut self) -> anyhow::Result<Duration> {
        self.armed = false;
        timed(&self.ns, "nft", &["delete", "table", "ip", kube::NFT_TABLE])
    }
}

impl Drop for NftGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = self.remove()
        {
            eprintln!("  warning: nft cleanup failed: {e:#}");
        }
    }
}

/// The socket LB attached to the strait client's cgroup; detached on drop.
struct StraitDp {
    agent: agent::Agent,
    /// The desired state before the last change.
    previous: strait_proxy::DesiredState,
    maps: ServiceMaps,
    lb: SockLb,
    cgroup: Cgroup,
    _bpffs: Bpffs,
}

impl Drop for StraitDp {
    fn drop(&mut self) {
        self.lb.detach(self.cgroup.path());
    }
}

/// One mode, set up and ready to measure. Fields drop in order: the client
/// process first, then the rules, then the datapath, then the netns.
struct Setup {
    client: Client,
    ipt: Option<IptablesGuard>,
    nft: Option<NftGuard>,
    strait: Option<StraitDp>,
    cns: ClientNs,
    targets: std::path::PathBuf,
    row: Row,
    rounds: Vec<LoadResult>,
}

fn set_up(
    mode: Mode,
    idx: usize,
    node: &Backends,
    svcs: &[kube::Service],
    s: &Settings,
    scratch: &Path,
    files: (&Path, &Path),
) -> anyhow::Result<Setup> {
    let cns = ClientNs::new(
        node,
        idx,
        matches!(mode, Mode::Iptables | Mode::IptablesNft | Mode::Nftables),
    )?;
    let client_cpu = s.cpus.map(|c| c.0);
    let mut row = Row {
        n: svcs.len(),
        mode,
        load: LoadResult::default(),
        rates: Vec::new(),
        round_rates: Vec::new(),
        latency: LoadResult::default(),
        cpu: (CoreUse::UNKNOWN, CoreUse::UNKNOWN),
        proc_cpu: (f64::NAN, f64::NAN),
        full_load: None,
        change: None,
        change_full_sync: None,
        change_visible_max: None,
        change_visible: None,
        cleanup: None,
    };
    let (mut ipt, mut nft, mut strait) = (None, None, None);
    let mut cgroup = None;
    match mode {
        Mode::Direct => {}
        Mode::Strait => {
            let bpffs = Bpffs::new()?;
            let cg = Cgroup::new("pb-client")?;
            let agent = agent::Agent::new(svcs)?;
            let want = agent.desired();
            let mut lb = SockLb::load_with(bpffs.path(), capacity_for(want))?;
            lb.attach(cg.path())?;
            let mut maps = lb.service_maps()?;
            let t = Instant::now();
            maps.sync(want)?;
            row.full_load = Some(t.elapsed());
            cgroup = Some(cg.clone());
            strait = Some(StraitDp {
                previous: agent.desired().clone(),
                agent,
                maps,
                lb,
                cgroup: cg,
                _bpffs: bpffs,
            });
        }
        Mode::Iptables | Mode::IptablesNft => {
            let restore = mode.restore().context("iptables variant")?;
            let before_tables = nft_tables(&cns.ns)?;
            let full = scratch.join("iptables-full.rules");
            std::fs::write(&full, kube::iptables_full(svcs))?;
            let cleanup_file = scratch.join("iptables-cleanup.rules");
            let mut guard = IptablesGuard {
                ns: cns.ns.clone(),
                restore,
                cleanup_file,
                created_tables: Vec::new(),
                armed: true,
            };
            let t = timed(&cns.ns, restore, &["--noflush", &full.to_string_lossy()]);
            guard.created_tables = nft_tables(&cns.ns)?
                .into_iter()
                .filter(|t| !before_tables.contains(t))
                .collect();
            row.full_load = Some(t?);
            ipt = Some(guard);
        }
        Mode::Nftables => {
            let full = scratch.join("nft-full.nft");
            std::fs::write(&full, kube::nft_full(svcs))?;
            let guard = NftGuard {
                ns: cns.ns.clone(),
                armed: true,
            };
            row.full_load = Some(timed(&cns.ns, "nft", &["-f", &full.to_string_lossy()])?);
            nft = Some(guard);
        }
    }
    let mut client = Client::spawn(&cns.ns, cgroup.as_ref(), client_cpu)?;
    let targets = if mode == Mode::Direct {
        files.0
    } else {
        files.1
    };
    // A short check first: every mode must actually serve.
    let check = client.load(targets, 0.3, 0.0, 8)?;
    if check.ops == 0 {
        bail!(
            "{} at N={} does not serve: {}",
            mode.name(),
            svcs.len(),
            check.first_error
        );
    }
    Ok(Setup {
        client,
        ipt,
        nft,
        strait,
        cns,
        targets: targets.to_owned(),
        row,
        rounds: Vec::new(),
    })
}

/// Runs every mode at one size: all modes are set up side by side (one
/// client netns each), then measured in interleaved rounds so drift in the
/// machine's load hits every mode alike; the median round is reported.
fn run_size(n: usize, s: &Settings, scratch: &Path) -> anyhow::Result<Vec<Row>> {
    let svcs = services(n);
    let changes = changes(&svcs);
    // The services before each change and after the last one.
    let mut states = vec![svcs.clone()];
    for (idx, after) in &changes {
        let mut next = states.last().cloned().unwrap_or_default();
        next[*idx] = after.clone();
        states.push(next);
    }
    let node = Backends::new(&svcs)?;
    let vips: Vec<SocketAddrV4> = svcs.iter().map(|s| s.vip).collect();
    let vip_file = scratch.join("vips.txt");
    write_targets(&vip_file, &vips)?;
    // Direct: endpoint 0 of every service, then endpoint 1 of every
    // service..., so consecutive connects go to different services too.
    let direct: Vec<SocketAddrV4> = (0..ENDPOINTS)
        .flat_map(|j| svcs.iter().map(move |s| s.endpoints[j]))
        .collect();
    let direct_file = scratch.join("direct.txt");
    write_targets(&direct_file, &direct)?;
    // Removal of the rules in every state (the chains differ).
    for (k, state) in states.iter().enumerate() {
        let name = if k == 0 {
            "iptables-cleanup.rules".to_string()
        } else {
            format!("iptables-cleanup-{k}.rules")
        };
        std::fs::write(scratch.join(name), kube::iptables_cleanup(state))?;
    }

    let mut setups = Vec::new();
    for (idx, &mode) in s.modes.iter().enumerate() {
        if mode == Mode::IptablesNft && n > s.iptables_nft_max {
            eprintln!(
                "  N={n} iptables-nft skipped: iptables-nft-restore is quadratic in the chain count (--iptables-nft-max {})",
                s.iptables_nft_max
            );
            continue;
        }
        let t = Instant::now();
        setups.push(set_up(
            mode,
            idx,
            &node,
            &svcs,
            s,
            scratch,
            (&direct_file, &vip_file),
        )?);
        eprintln!(
            "  N={n} {} ready in {:.2?} (programming {})",
            mode.name(),
            t.elapsed(),
            ms(setups.last().and_then(|x| x.row.full_load))
        );
    }
    let secs = s.measure + s.warmup;
    for round in 0..s.rounds {
        for st in &mut setups {
            let pid = st.client.guard.id();
            let (c0, e0) = (proc_ticks(pid), proc_ticks(std::process::id()));
            let before = cpu_times();
            let r = st
                .client
                .load(&st.targets, s.measure, s.warmup, s.concurrency)?;
            let after = cpu_times();
            let (c1, e1) = (proc_ticks(pid), proc_ticks(std::process::id()));
            eprintln!(
                "    round {round} {}: {:.0} conn/s, errors {}",
                st.row.mode.name(),
                r.rate(),
                r.errors
            );
            if r.errors > 0 {
                eprintln!("      first error: {}", r.first_error);
            }
            // Keep the CPU figures of the median round (decided below);
            // store them per round alongside.
            st.rounds.push(r);
            st.row.rates.push((
                (c1 - c0) as f64 / TICKS / secs,
                (e1 - e0) as f64 / TICKS / secs,
                s.cpus
                    .map(|(c, b)| {
                        (
                            CoreUse::between(&before, &after, c),
                            CoreUse::between(&before, &after, b),
                        )
                    })
                    .unwrap_or((CoreUse::UNKNOWN, CoreUse::UNKNOWN)),
            ));
        }
    }
    for st in &mut setups {
        st.row.round_rates = st.rounds.iter().map(LoadResult::rate).collect();
        // The median round by rate.
        let mut order: Vec<usize> = (0..st.rounds.len()).collect();
        order.sort_by(|&a, &b| st.rounds[a].rate().total_cmp(&st.rounds[b].rate()));
        if let Some(&mid) = order.get(order.len() / 2) {
            st.row.load = st.rounds[mid].clone();
            let (pc, ec, core) = st.row.rates[mid];
            st.row.proc_cpu = (pc, ec);
            st.row.cpu = core;
        }
        // Connect latency without queueing: one connection at a time.
        st.row.latency = st.client.load(&st.targets, s.latency, 0.1, 1)?;
    }
    for st in &mut setups {
        let row = &mut st.row;
        let mut took = Vec::new();
        let mut visible = Vec::new();
        for (k, (idx, after)) in changes.iter().enumerate() {
            let (before, state_after) = (&states[k][*idx], &states[k + 1]);
            let t = match row.mode {
                Mode::Direct => break,
                Mode::Strait => {
                    let dp = st.strait.as_mut().context("strait datapath")?;
                    // What the cluster view publishes after the EndpointSlice
                    // update (built outside the timing, as the view does).
                    let next = dp.agent.next_snapshot(before, after)?;
                    dp.previous = dp.agent.desired().clone();
                    st.client.watch(after.vip, "new")?;
                    let t0 = load::mono_ns();
                    let (t, stats) = dp.agent.apply(&mut dp.maps, next)?;
                    if stats.upserted != 1 || stats.removed != 0 {
                        bail!("the incremental change wrote {stats:?}, expected one frontend");
                    }
                    (t, t0)
                }
                Mode::Iptables | Mode::IptablesNft => {
                    let change = scratch.join("iptables-change.rules");
                    std::fs::write(&change, kube::iptables_change(state_after, before, after))?;
                    let restore = row.mode.restore().context("iptables variant")?;
                    st.client.watch(after.vip, "new")?;
                    let t0 = load::mono_ns();
                    let t = timed(
                        &st.cns.ns,
                        restore,
                        &["--noflush", &change.to_string_lossy()],
                    )?;
                    let g = st.ipt.as_mut().context("iptables guard")?;
                    g.cleanup_file = scratch.join(format!("iptables-cleanup-{}.rules", k + 1));
                    (t, t0)
                }
                Mode::Nftables => {
                    let change = scratch.join("nft-change.nft");
                    std::fs::write(&change, kube::nft_change(before, after))?;
                    st.client.watch(after.vip, "new")?;
                    let t0 = load::mono_ns();
                    let t = timed(&st.cns.ns, "nft", &["-f", &change.to_string_lossy()])?;
                    (t, t0)
                }
            };
            took.push(t.0);
            visible.push(since(t.1, st.client.seen(after.vip)?));
        }
        row.change = median(&took);
        row.change_visible = median(&visible);
        row.change_visible_max = visible.iter().max().copied();
        if !visible.is_empty() {
            eprintln!(
                "  N={n} {} changes: programming {:?}, visible {:?}",
                row.mode.name(),
                took,
                visible
            );
        }
        if let Some(dp) = st.strait.as_mut() {
            // For comparison: the last change again as a full resync of
            // all N services (back to the state before it, then forth).
            dp.maps.sync(&dp.previous)?;
            let t = Instant::now();
            dp.maps.sync(dp.agent.desired())?;
            row.change_full_sync = Some(t.elapsed());
        }
        if let Some(g) = st.ipt.as_mut() {
            row.cleanup = Some(g.remove()?);
        }
        if let Some(g) = st.nft.as_mut() {
            row.cleanup = Some(g.remove()?);
        }
    }
    let rows: Vec<Row> = setups.iter().map(|st| st.row.clone()).collect();
    for r in &rows {
        eprintln!(
            "  N={n} {}: median {:.0} conn/s, connect p50 {:.1?} p99 {:.1?} (one at a time)",
            r.mode.name(),
            r.load.rate(),
            r.latency.p50,
            r.latency.p99
        );
    }
    Ok(rows)
}

/// Runs every size and returns the rows.
pub fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let scratch = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for &n in &s.sizes {
        eprintln!("N={n} services × {ENDPOINTS} endpoints");
        rows.extend(run_size(n, s, scratch.path())?);
    }
    Ok(rows)
}

/// From `t0` to `t1`, both [`load::mono_ns`] readings.
fn since(t0: u64, t1: u64) -> Duration {
    Duration::from_nanos(t1.saturating_sub(t0))
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "–".into())
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

/// Which side limited the rate: the pinned core that was busier (a
/// saturated core caps its side); when both are within 3 points (both
/// saturated), the side whose process used more CPU time.
fn bottleneck(r: &Row) -> String {
    let (c, b) = (r.cpu.0.busy, r.cpu.1.busy);
    let (pc, pb) = r.proc_cpu;
    if c.is_nan() || pc.is_nan() {
        return "–".into();
    }
    let by_proc = if pc >= pb { "client" } else { "backends" };
    if (c - b).abs() < 0.03 {
        format!(
            "{by_proc} (both cores ≥ {:.0}%; process CPU {:.0}% vs {:.0}%)",
            c.min(b) * 100.0,
            pc * 100.0,
            pb * 100.0
        )
    } else if c > b {
        format!("client (its core {:.0}% vs {:.0}%)", c * 100.0, b * 100.0)
    } else {
        format!(
            "backends (their core {:.0}% vs {:.0}%)",
            b * 100.0,
            c * 100.0
        )
    }
}

/// The issue's targets, checked against the rows.
fn targets(rows: &[Row], s: &Settings) -> String {
    let mut out = String::from("\ntargets:\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for &n in &s.sizes {
        if let (Some(st), Some(d)) = (
            rate_of(rows, n, Mode::Strait),
            rate_of(rows, n, Mode::Direct),
        ) {
            out.push_str(&format!(
                "- N={n}: strait/direct = {:.3} (≥ 0.95): {}; per round (same round, so the same machine load): {}\n",
                st / d,
                verdict(st / d >= 0.95),
                round_ratios(rows, n, Mode::Direct)
            ));
        }
    }
    let big = 10_000;
    if let (Some(st), Some(ipt)) = (
        rate_of(rows, big, Mode::Strait),
        rate_of(rows, big, Mode::Iptables),
    ) {
        out.push_str(&format!(
            "- N={big}: strait/iptables = {:.3} (≥ 2): {}; per round: {}\n",
            st / ipt,
            verdict(st / ipt >= 2.0),
            round_ratios(rows, big, Mode::Iptables)
        ));
    }
    if let Some(r) = rows.iter().find(|r| r.n == big && r.mode == Mode::Strait)
        && let Some(v) = r.change_visible
    {
        out.push_str(&format!(
            "- N={big}: one endpoint change visible in {} ms, median of {CHANGES} (slowest {} ms; programming {} ms) (< 10): {}\n",
            ms(Some(v)),
            ms(r.change_visible_max),
            ms(r.change),
            verdict(v < Duration::from_millis(10))
        ));
    }
    out
}

/// strait's rate over `base`'s, round by round.
fn round_ratios(rows: &[Row], n: usize, base: Mode) -> String {
    let of = |mode| rows.iter().find(|r| r.n == n && r.mode == mode);
    match (of(Mode::Strait), of(base)) {
        (Some(st), Some(b)) => st
            .round_rates
            .iter()
            .zip(&b.round_rates)
            .map(|(a, b)| format!("{:.2}", a / b))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "–".into(),
    }
}

fn rate_of(rows: &[Row], n: usize, mode: Mode) -> Option<f64> {
    rows.iter()
        .find(|r| r.n == n && r.mode == mode)
        .map(|r| r.load.rate())
}

/// The markdown table and the summary line.
pub fn report(rows: &[Row], s: &Settings) -> String {
    let mut out = String::new();
    out.push_str("| N services | mode | conn/s | rounds min–max | ×direct | ×iptables | connect p50 µs (1 at a time) | connect p99 µs (1 at a time) | errors | full load ms | 1-endpoint change ms | change visible ms (max) | rules removal ms | client core busy (softirq) | backend core busy (softirq) | client proc CPU | echo CPU | bottleneck |\n");
    out.push_str(
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let rate = r.load.rate();
        let bottleneck = bottleneck(r);
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0}–{:.0} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.0}% | {} |\n",
            r.n,
            r.mode.name(),
            rate,
            r.round_rates.iter().copied().fold(f64::INFINITY, f64::min),
            r.round_rates.iter().copied().fold(0.0, f64::max),
            ratio(rate, rate_of(rows, r.n, Mode::Direct)),
            ratio(rate, rate_of(rows, r.n, Mode::Iptables)),
            r.latency.p50.as_secs_f64() * 1e6,
            r.latency.p99.as_secs_f64() * 1e6,
            r.load.errors,
            ms(r.full_load),
            ms(r.change),
            match r.change_visible_max {
                Some(_) => format!("{} ({})", ms(r.change_visible), ms(r.change_visible_max)),
                None => "–".into(),
            },
            ms(r.cleanup),
            core(r.cpu.0),
            core(r.cpu.1),
            r.proc_cpu.0 * 100.0,
            r.proc_cpu.1 * 100.0,
            bottleneck,
        ));
    }
    out.push_str(&format!(
        "\nclient: {} concurrent connections, round-robin over the N services, {:.1} s measured after {:.1} s warm-up, {} interleaved rounds per mode (median shown); latency from a separate {:.1} s run with one connection at a time; {}.\n",
        s.concurrency,
        s.measure,
        s.warmup,
        s.rounds,
        s.latency,
        describe::pinning(s.cpus, "echo backends")
    ));
    let version = describe::tool_version;
    out.push_str(&format!(
        "machine: {} CPUs, load average at the end {}; `iptables` is {}; baselines: iptables = {} (the ×iptables ratios), iptables-nft = {} (same ruleset; only up to N={} because its restore is quadratic in the chain count), nftables = {}; kube-proxy layout with --cluster-cidr {} (the client is inside it, so no masquerade).\n",
        cpu_times().len(),
        describe::load_average(),
        version("iptables"),
        version("iptables-legacy-restore"),
        version("iptables-nft-restore"),
        s.iptables_nft_max,
        version("nft"),
        kube::CLUSTER_CIDR,
    ));
    out.push_str(&format!("changes: {CHANGES} one-endpoint changes per mode, one after the other on different services; the change columns show the median (and the slowest visibility).\n"));
    out.push_str("full load: strait = ServiceMaps::sync of N services into empty maps; iptables = one `iptables-restore --noflush` with every chain declared at the top, as kube-proxy's full sync; nftables = one `nft -f`. change = the programming call for one replaced endpoint: strait = the agent's incremental step (IncrementalDesired::update on the new snapshot + ServiceMaps::apply_delta, one frontend written); iptables = kube-proxy's partial restore (all top-level chains, the changed service's KUBE-SVC and KUBE-SEP chains, -X of its stale KUBE-SEP chain); nftables = kube-proxy's partial transaction (the changed service's chains rewritten, the stale endpoint chain deleted). Both generated by strait_proxy::kube_layout, the code behind `strait agent --mode iptables|nftables`. change visible = from that call's start until a connect of the client (connecting to the VIP one connection after another throughout, started before the call) completed to the new endpoint; CLOCK_MONOTONIC in both processes.\n");
    out.push_str("bottleneck: the client (one thread) is pinned to one core, the echo servers (this process) to the other; the side whose core was busier (/proc/stat, includes softirq and any other load on the machine), and when both cores were within 3 points of each other the side whose process used more CPU time (utime+stime from /proc/PID/stat). Most of the TCP work of both sides runs as softirq on the core of whichever side sent the packet.\n");
    for r in rows {
        if let Some(full) = r.change_full_sync {
            out.push_str(&format!(
                "strait at N={}: the same one-endpoint change as a full ServiceMaps::sync of all N services takes {} ms (incremental: {} ms).\n",
                r.n,
                ms(Some(full)),
                ms(r.change),
            ));
        }
    }
    out.push_str(&targets(rows, s));
    if let Some(&n) = s.sizes.iter().rev().find(|&&n| {
        rate_of(rows, n, Mode::Strait).is_some() && rate_of(rows, n, Mode::Direct).is_some()
    }) {
        let strait = rate_of(rows, n, Mode::Strait).unwrap_or(0.0);
        out.push_str(&format!(
            "\nproxy: strait/direct={} strait/iptables={} (N={n})\n",
            ratio(strait, rate_of(rows, n, Mode::Direct)),
            ratio(strait, rate_of(rows, n, Mode::Iptables)),
        ));
    }
    out
}
