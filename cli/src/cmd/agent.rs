//! `strait agent`: the node agent (eBPF service proxy, or kube-proxy's
//! iptables / nftables layout with `--mode`), plus `explain` and `cleanup`
//! for operators.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use strait_cluster::Component;
use strait_proxy::{
    Capacity, DEFAULT_PIN_DIR, SockLb,
    agent::{AgentConfig, ProxyMode, run},
    explain,
    kube_layout::{self, IptablesBackend},
};

use super::view::trimmed_cluster_view;

/// Flags of `strait agent`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    common: Common,
    /// cgroup v2 directory whose processes get service translation.
    #[arg(long, default_value = "/sys/fs/cgroup/unified")]
    cgroup_root: PathBuf,
    /// Address for /healthz and /metrics.
    #[arg(long, default_value = "0.0.0.0:10256")]
    metrics_addr: SocketAddr,
    /// Full reconcile period in seconds (repairs drift in the kernel maps).
    #[arg(long, default_value_t = 30)]
    resync_seconds: u64,
    /// Capacity of the service map (frontends plus backend slots); derived
    /// from the cluster's object counts when not given.
    #[arg(long)]
    max_services: Option<u32>,
    /// Capacity of the backend map; derived when not given.
    #[arg(long)]
    max_backends: Option<u32>,
    /// Interfaces where NodePort, LoadBalancer and externalIP traffic
    /// arrives (default: the interface of the default route; none: external
    /// traffic is not handled).
    #[arg(long, value_delimiter = ',')]
    interfaces: Vec<String>,
    /// Only node addresses in these CIDRs (IPv4 or IPv6) serve NodePorts
    /// (kube-proxy's --nodeport-addresses; default: every address but
    /// loopback and IPv6 link-local). eBPF mode only.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<ipnetwork::IpNetwork>,
    /// iptables/nftables modes: the pod CIDR of the whole cluster
    /// (kube-proxy's --cluster-cidr). Traffic from outside it to a ClusterIP
    /// is masqueraded, and pod traffic to a Local Service's external
    /// addresses is short-circuited. Not given: neither happens.
    #[arg(long)]
    cluster_cidr: Option<ipnetwork::Ipv4Network>,
    /// nftables mode: the service CIDR; traffic to unallocated ClusterIPs in
    /// it is dropped.
    #[arg(long)]
    service_cidr: Option<ipnetwork::Ipv4Network>,
    /// Route every other node's pod CIDRs (Node spec.podCIDRs) via its
    /// InternalIP, tagged with routing protocol 212 (routed mode without
    /// encapsulation). Needs all nodes on one L2 segment; otherwise use the
    /// CNI plugin's VXLAN mode. Watches Nodes.
    #[arg(long)]
    node_routes: bool,
    /// Once this node's Node has spec.podCIDR(s), write the CNI conflist
    /// here (atomically; rewritten only when it changes), e.g.
    /// /host/etc/cni/net.d/10-strait.conflist. Watches Nodes.
    #[arg(long, value_name = "PATH")]
    write_cni_config: Option<PathBuf>,
}

/// The datapath `--mode` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// eBPF socket load balancing and tc programs (loads and pins eBPF).
    Ebpf,
    /// kube-proxy's iptables layout (loads no eBPF).
    Iptables,
    /// kube-proxy's nftables layout, `table ip kube-proxy` (loads no eBPF).
    Nftables,
}

/// The iptables binaries `--iptables-backend` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// iptables-nft-restore (Debian's default `iptables`, nf_tables kernel API).
    Nft,
    /// iptables-legacy-restore (x_tables kernel API).
    Legacy,
}

impl Common {
    fn proxy_mode(&self) -> ProxyMode {
        match self.mode {
            Mode::Ebpf => ProxyMode::Ebpf,
            Mode::Iptables => ProxyMode::Iptables(match self.iptables_backend {
                Backend::Nft => IptablesBackend::Nft,
                Backend::Legacy => IptablesBackend::Legacy,
            }),
            Mode::Nftables => ProxyMode::Nftables,
        }
    }
}

/// The interface of the IPv4 default route, from /proc/net/route.
fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let iface = fields.next()?;
        (fields.next()? == "00000000").then(|| iface.to_owned())
    })
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Read the cluster from this manifest directory instead of the API server.
    #[arg(long, global = true)]
    manifests: Option<PathBuf>,
    /// This node's name (for node-local traffic policies).
    #[arg(long, global = true, env = "NODE_NAME", default_value = "")]
    node_name: String,
    /// bpffs directory holding the pinned maps and links.
    #[arg(long, global = true, default_value = DEFAULT_PIN_DIR)]
    bpffs: PathBuf,
    /// The datapath: eBPF, or kube-proxy's iptables or nftables layout for
    /// comparison. `cleanup` removes what this mode creates.
    #[arg(long, global = true, value_enum, default_value_t = Mode::Ebpf)]
    mode: Mode,
    /// iptables mode: which iptables binaries write the rules. Either works
    /// inside one network namespace; do not mix them on one node.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Nft)]
    iptables_backend: Backend,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print each service's frontends and backends as the kernel maps hold
    /// them, and flag every difference from the cluster view.
    Explain {
        /// Only this service, as NAMESPACE/NAME.
        service: Option<String>,
    },
    /// Detach Strait's programs from a cgroup and remove its pins (maps and
    /// links) from the bpffs directory; with --mode iptables|nftables remove
    /// the kube-proxy-layout chains and jumps, or `table ip kube-proxy`, of
    /// this network namespace instead. In every mode, also remove the node
    /// routes (`--node-routes`, protocol 212). Touches nothing else.
    Cleanup {
        /// The cgroup the agent attached to.
        #[arg(long, default_value = "/sys/fs/cgroup/unified")]
        cgroup_root: PathBuf,
    },
}

pub fn run_cmd(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match args.action {
        Some(Action::Explain { ref service }) => {
            anyhow::ensure!(
                args.common.mode == Mode::Ebpf,
                "explain reads the eBPF maps; in --mode iptables read `iptables-save`, in --mode nftables `nft list table ip kube-proxy`"
            );
            rt.block_on(explain_cmd(&args.common, service.as_deref()))
        }
        Some(Action::Cleanup { ref cgroup_root }) => cleanup(&args.common, cgroup_root),
        None => rt.block_on(agent(args)),
    }
}

async fn agent(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.common.node_name.is_empty(),
        "--node-name (or NODE_NAME) is required"
    );
    // The agent reads a few fields of Services and EndpointSlices; keep only those.
    let view = trimmed_cluster_view(
        args.common.manifests.as_deref(),
        Component::Agent,
        None,
        args.node_routes || args.write_cni_config.is_some(),
    )
    .await?;
    let capacity = match (args.max_services, args.max_backends) {
        (None, None) => None,
        (s, b) => {
            let d = Capacity::default();
            Some(Capacity {
                services: s.unwrap_or(d.services),
                backends: b.unwrap_or(d.backends),
                ..d
            })
        }
    };
    let mode = args.common.proxy_mode();
    let config = AgentConfig {
        mode,
        rules: kube_layout::Options {
            cluster_cidr: args.cluster_cidr,
            service_cidr: args.service_cidr,
        },
        node_name: args.common.node_name,
        cgroup_root: args.cgroup_root,
        pin_dir: args.common.bpffs,
        listen: args.metrics_addr,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        capacity,
        interfaces: if args.interfaces.is_empty() && mode == ProxyMode::Ebpf {
            default_route_interface().into_iter().collect()
        } else {
            args.interfaces
        },
        nodeport_cidrs: args.nodeport_addresses,
        node_routes: args.node_routes,
        write_cni_config: args.write_cni_config,
    };
    run(config, view, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn explain_cmd(common: &Common, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let kernel = explain::read_pinned(&common.bpffs).with_context(|| {
        format!(
            "reading the pinned maps in {} (is the agent running on this node?)",
            common.bpffs.display()
        )
    })?;
    let mut view =
        trimmed_cluster_view(common.manifests.as_deref(), Component::Agent, None, false).await?;
    let snapshot = view
        .wait_synced()
        .await
        .context("waiting for the cluster view")?;
    let report = explain::explain(&snapshot, &common.node_name, &kernel, only);
    print!("{report}");
    Ok(if report.problem_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cleanup(common: &Common, cgroup_root: &std::path::Path) -> anyhow::Result<ExitCode> {
    let routes = strait_netlink::Netlink::open()
        .and_then(|mut nl| strait_proxy::node_routes::cleanup(&mut nl))
        .context("removing the node routes")?;
    println!(
        "removed {routes} node routes of protocol {}; no other route was touched",
        strait_proxy::node_routes::ROUTE_PROTOCOL
    );
    if let Some(mode) = common.proxy_mode().rules() {
        let removed = kube_layout::program::cleanup(mode).with_context(|| {
            format!(
                "removing the {} rules of this network namespace",
                mode.name()
            )
        })?;
        println!(
            "removed {removed} {} objects of the kube-proxy layout (chains, jumps or the table); nothing else was touched",
            mode.name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !common.bpffs.exists() {
        println!(
            "nothing to clean: {} does not exist",
            common.bpffs.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let lb = SockLb::load(&common.bpffs).context("opening the pinned datapath")?;
    lb.detach(cgroup_root);
    drop(lb);
    strait_proxy::remove_pins(&common.bpffs).context("removing pins")?;
    println!(
        "detached from {} and removed pins under {}",
        cgroup_root.display(),
        common.bpffs.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// The lab waits for node routes by their protocol without linking the
    /// proxy; both must name the same number.
    #[test]
    fn lab_waits_for_the_agents_route_protocol() {
        assert_eq!(
            strait_lab::NODE_ROUTE_PROTOCOL,
            strait_proxy::node_routes::ROUTE_PROTOCOL
        );
    }
}
