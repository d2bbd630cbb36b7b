//! `strait lab up`: checks the machine, cleans or refuses leftovers, builds
//! the network, creates the pods through the CNI plugin, starts an agent per
//! node and the controller that keeps following the manifests, and waits
//! until everything answers.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strait_cluster::ManifestSource;

use crate::error::{LabError, Result};
use crate::health::{http_status, listening, wait_until};
use crate::paths::{LabPaths, PREFIX};
use crate::process::{self, Spawn};
use crate::progress::Steps;
use crate::proxy_mode::{ProxyMode, SERVICE_CIDR};
use crate::reconcile::{Outcome, reconcile};
use crate::state::{LabLock, LabState, STATE_VERSION, create_dir};
use crate::{DEFAULT_MANIFEST, cgroup, down, topology};

/// The agents' health port (as kube-proxy's).
pub const AGENT_HEALTH_PORT: u16 = 10256;

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Number of nodes (1–50).
    pub nodes: u8,
    /// A manifest directory to run instead of the embedded default; edits to
    /// it apply live.
    pub manifests: Option<PathBuf>,
    /// The `strait` binary the components run.
    pub strait_bin: PathBuf,
    /// The CNI plugin binary; found next to `strait_bin` or in /opt/cni/bin
    /// when not given.
    pub cni_bin: Option<PathBuf>,
    /// How long to wait for each component.
    pub ready_timeout: Duration,
    /// Leave a half-built lab in place on failure (for debugging).
    pub keep_on_failure: bool,
    /// The agents' datapath.
    pub proxy: ProxyMode,
}

/// Brings the lab up. On failure everything created so far is removed again
/// (unless `keep_on_failure`).
pub fn up(paths: &LabPaths, options: &UpOptions) -> Result<Outcome> {
    let mut steps = Steps::new();
    steps.start("checking this machine");
    let cni_bin = match preflight(options) {
        Ok(bin) => bin,
        Err(e) => {
            steps.fail();
            return Err(e);
        }
    };
    steps.done();
    let lock = LabLock::acquire(paths)?;
    clear_leftovers(paths, &mut steps)?;
    let result = build(paths, options, cni_bin, &mut steps);
    if result.is_err() {
        steps.fail();
        if !options.keep_on_failure {
            eprintln!("  removing what was created (keep it with --keep-on-failure)");
            drop(lock);
            if let Err(e) = down::down(paths) {
                eprintln!("  cleanup failed too: {e}");
            }
        }
    } else {
        steps.done();
    }
    result
}

fn preflight(options: &UpOptions) -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::Prerequisite(
            "the lab creates network namespaces, cgroups and eBPF programs: run it as root (sudo)"
                .into(),
        ));
    }
    if !(1..=50).contains(&options.nodes) {
        return Err(LabError::Prerequisite(format!(
            "--nodes {} is out of range: the lab runs 1 to 50 nodes",
            options.nodes
        )));
    }
    crate::netns::ip(&["-V"])?;
    cgroup::cgroup2_mount()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    {
        return Err(LabError::Prerequisite(
            "bpffs is not mounted at /sys/fs/bpf; run scripts/setup (or mount -t bpf bpf /sys/fs/bpf)".into(),
        ));
    }
    if let Some(dir) = &options.manifests
        && !dir.is_dir()
    {
        return Err(LabError::Prerequisite(format!(
            "--manifests {} is not a directory of Kubernetes YAML",
            dir.display()
        )));
    }
    find_cni(options)
}

fn find_cni(options: &UpOptions) -> Result<PathBuf> {
    if let Some(bin) = &options.cni_bin {
        return Ok(bin.clone());
    }
    let beside = options.strait_bin.with_file_name("strait-cni");
    [beside, PathBuf::from("/opt/cni/bin/strait-cni")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::Prerequisite(format!(
                "strait-cni was not found next to {} or in /opt/cni/bin; build it with \
                 `cargo build --release -p strait-cni`",
                options.strait_bin.display()
            ))
        })
}

/// A running lab is refused; the remains of a crashed one are removed.
fn clear_leftovers(paths: &LabPaths, steps: &mut Steps) -> Result<()> {
    let state = LabState::load(paths).ok().flatten();
    if let Some(state) = &state
        && state
            .processes
            .get("controller")
            .is_some_and(process::alive)
    {
        return Err(LabError::State(
            "a lab is already running; see `strait lab status`, or remove it with `strait lab down`".into(),
        ));
    }
    let leftovers = down::leftovers();
    if state.is_some() || !leftovers.is_empty() {
        steps.start("removing the remains of a lab that did not shut down cleanly");
        down::down_locked(paths)?;
        steps.done();
    }
    Ok(())
}

fn build(
    paths: &LabPaths,
    options: &UpOptions,
    cni_bin: PathBuf,
    steps: &mut Steps,
) -> Result<Outcome> {
    steps.start("loading manifests");
    create_dir(paths.root())?;
    let manifests = match &options.manifests {
        Some(dir) => dir
            .canonicalize()
            .map_err(LabError::io("resolving --manifests", dir))?,
        None => {
            let dir = paths.default_manifests();
            create_dir(&dir)?;
            let file = dir.join("default.yaml");
            std::fs::write(&file, DEFAULT_MANIFEST)
                .map_err(LabError::io("writing the default manifest", &file))?;
            dir
        }
    };
    let report = ManifestSource::load_once(&manifests);
    if !report.errors.is_empty() {
        let text = report
            .errors
            .iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>();
        return Err(LabError::Manifests(text.join("\n")));
    }
    let cgroup_root = cgroup::cgroup2_mount()?.join(PREFIX);
    let mut state = LabState {
        version: STATE_VERSION,
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        manifests,
        strait_bin: options.strait_bin.clone(),
        cni_bin,
        cgroup_root: cgroup_root.clone(),
        bpffs_root: PathBuf::from("/sys/fs/bpf").join(PREFIX),
        proxy: options.proxy,
        ..LabState::default()
    };
    state.save(paths)?;
    cgroup::create(&cgroup_root.join("system"))?;

    steps.start(format!(
        "network: underlay, {} nodes, external client",
        options.nodes
    ));
    topology::create(&mut state, paths, options.nodes)?;
    for node in &state.nodes {
        cgroup::create(&node.cgroup)?;
        if state.proxy.is_kube_proxy_layout() {
            // A node's default route carries ClusterIPs that no rule
            // translated (no endpoints), so filter FORWARD can REJECT
            // them; here the underlay stands in for it.
            crate::netns::ip_in(&node.netns, &["route", "add", SERVICE_CIDR, "dev", "eth0"])?;
        }
    }

    steps.start("pods (netns wired by strait-cni)");
    let outcome = reconcile(&mut state, paths, report.objects, &mut |done, total, _| {
        steps.detail(&format!("{done}/{total}"));
    })?;

    steps.start(format!(
        "node agents ({} nodes, {})",
        state.nodes.len(),
        match state.proxy {
            ProxyMode::Ebpf => "eBPF socket hooks",
            ProxyMode::Iptables => "kube-proxy iptables rules",
            ProxyMode::Nftables => "kube-proxy nftables rules",
        }
    ));
    start_agents(&mut state, paths)?;
    for node in state.nodes.clone() {
        let addr = SocketAddr::from(([127, 0, 0, 1], AGENT_HEALTH_PORT));
        if !wait_until(options.ready_timeout, || {
            http_status(&node.netns, addr, "/healthz") == Some(200)
        }) {
            return Err(LabError::NotReady {
                component: format!("agent-{}", node.name),
                seconds: options.ready_timeout.as_secs(),
            });
        }
    }

    // Cross-node pod traffic needs each agent's routes to the other nodes'
    // pod CIDRs (`--node-routes`).
    for node in &state.nodes {
        let want: Vec<&str> = state
            .nodes
            .iter()
            .filter(|o| o.name != node.name)
            .map(|o| o.pod_cidr.as_str())
            .collect();
        if !wait_until(options.ready_timeout, || {
            let have = crate::health::node_routes(&node.netns);
            want.iter().all(|w| have.iter().any(|h| h == w))
        }) {
            return Err(LabError::NotReady {
                component: format!("agent-{} node routes", node.name),
                seconds: options.ready_timeout.as_secs(),
            });
        }
    }

    steps.start("pods serving (echo, DNS, ingress)");
    wait_pods(&state, options.ready_timeout)?;

    steps.start("lab controller (follows manifest edits)");
    start_controller(&mut state, paths)?;
    Ok(outcome)
}

fn start_agents(state: &mut LabState, paths: &LabPaths) -> Result<()> {
    let cluster = paths.cluster_dir().display().to_string();
    for node in state.nodes.clone() {
        let component = format!("agent-{}", node.name);
        let cgroup = state.cgroup_root.join("system").join(&component);
        cgroup::create(&cgroup)?;
        let mut args = vec![
            "agent".into(),
            "--manifests".into(),
            cluster.clone(),
            "--node-name".into(),
            node.name.clone(),
            "--cgroup-root".into(),
            node.cgroup.display().to_string(),
            "--bpffs".into(),
            node.bpffs.display().to_string(),
            "--metrics-addr".into(),
            format!("0.0.0.0:{AGENT_HEALTH_PORT}"),
            // NodePort / LoadBalancer traffic arrives on the underlay.
            "--interfaces".into(),
            "eth0".into(),
            // Routes to the other nodes' pod CIDRs over the underlay.
            "--node-routes".into(),
        ];
        args.extend(state.proxy.agent_args());
        let spawn = Spawn {
            program: state.strait_bin.clone(),
            args,
            env: vec![("STRAIT_LOG".into(), "info".into())],
            netns: Some(node.netns.clone()),
            cgroup,
            log: paths.log_file(&component),
        };
        let p = process::spawn(&spawn)?;
        state.processes.insert(component, p);
        state.save(paths)?;
    }
    Ok(())
}

fn wait_pods(state: &LabState, timeout: Duration) -> Result<()> {
    for pod in state.pods.values() {
        let Some(p) = &pod.process else { continue };
        let serving = wait_until(timeout, || {
            process::alive(p) && pod.ports.iter().all(|port| listening(p.pid, *port))
        });
        if !serving {
            return Err(LabError::NotReady {
                component: pod.name.clone(),
                seconds: timeout.as_secs(),
            });
        }
        if pod.run == "dns" {
            let addr = SocketAddr::from(([127, 0, 0, 1], 9153));
            if !wait_until(timeout, || {
                http_status(&pod.netns, addr, "/ready") == Some(200)
            }) {
                return Err(LabError::NotReady {
                    component: pod.name.clone(),
                    seconds: timeout.as_secs(),
                });
            }
        }
    }
    Ok(())
}

fn start_controller(state: &mut LabState, paths: &LabPaths) -> Result<()> {
    let cgroup = state.cgroup_root.join("system").join("controller");
    cgroup::create(&cgroup)?;
    let spawn = Spawn {
        program: state.strait_bin.clone(),
        args: vec![
            "lab".into(),
            "controller".into(),
            "--run-dir".into(),
            paths.root().display().to_string(),
        ],
        env: vec![("STRAIT_LOG".into(), "info".into())],
        netns: None,
        cgroup,
        log: paths.log_file("controller"),
    };
    let p = process::spawn(&spawn)?;
    state.processes.insert("controller".into(), p);
    state.save(paths)
}
