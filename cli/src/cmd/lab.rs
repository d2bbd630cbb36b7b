//! `strait lab`: the local lab (up, down, status, exec, logs).
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use strait_lab::{LabPaths, ProxyMode, UpOptions};

/// Flags of `strait lab`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Build the lab: nodes, pods wired by strait-cni, agents, DNS, ingress.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 2)]
        nodes: u8,
        /// Run this directory of Kubernetes YAML instead of the embedded
        /// default; edits to it apply live.
        #[arg(long, alias = "manifest")]
        manifests: Option<PathBuf>,
        /// Datapath for Services: `ebpf` (Strait), or `iptables` / `nftables`
        /// (kube-proxy's rule layout, written by the same agents) to compare.
        #[arg(long, value_enum, default_value_t = Proxy::Ebpf)]
        proxy: Proxy,
        /// The strait-cni binary (default: next to this binary, else /opt/cni/bin).
        #[arg(long)]
        cni_bin: Option<PathBuf>,
        /// Seconds to wait for each component to become ready.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Keep a half-built lab when `up` fails, to debug it.
        #[arg(long)]
        keep_on_failure: bool,
    },
    /// Remove everything the lab created (also after a crash).
    Down,
    /// Show the topology and each component's health.
    Status,
    /// Run a command inside a pod (its netns, cgroup and resolv.conf).
    Exec {
        /// The pod: NAME, NAMESPACE/NAME, `dns` or `ingress`.
        pod: String,
        /// The command and its arguments, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Print a component's log: controller, agent-<node>, or a pod name.
    Logs {
        /// The component.
        component: String,
    },
    /// Follow the manifests and reconcile the lab (started by `up`).
    #[command(hide = true)]
    Controller {
        /// The lab's runtime directory.
        #[arg(long)]
        run_dir: PathBuf,
    },
}

/// The values of `--proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Proxy {
    /// Strait's eBPF proxy.
    Ebpf,
    /// kube-proxy's iptables layout.
    Iptables,
    /// kube-proxy's nftables layout.
    Nftables,
}

impl From<Proxy> for ProxyMode {
    fn from(p: Proxy) -> ProxyMode {
        match p {
            Proxy::Ebpf => ProxyMode::Ebpf,
            Proxy::Iptables => ProxyMode::Iptables,
            Proxy::Nftables => ProxyMode::Nftables,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = LabPaths::default();
    match args.action {
        Action::Up {
            nodes,
            manifests,
            proxy,
            cni_bin,
            timeout,
            keep_on_failure,
        } => {
            let proxy = ProxyMode::from(proxy);
            let options = UpOptions {
                nodes,
                manifests,
                strait_bin: std::env::current_exe().context("locating the strait binary")?,
                cni_bin,
                ready_timeout: Duration::from_secs(timeout),
                keep_on_failure,
                proxy,
            };
            eprintln!("strait lab up: {nodes} nodes, proxy {proxy}");
            let outcome = strait_lab::up(&paths, &options)?;
            println!("{}", strait_lab::summary::summary(&paths)?);
            if outcome.problems.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("\nThe lab is up, but some pods could not be created:");
                for p in &outcome.problems {
                    eprintln!("  {p}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        Action::Down => {
            let removed = strait_lab::down::down(&paths)?;
            eprintln!(
                "strait lab down: removed {} pods, {} network namespaces, {} processes; nothing named strait-lab is left",
                removed.pods, removed.netns, removed.processes
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => {
            let (text, healthy) = strait_lab::status::report(&paths)?;
            print!("{text}");
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Action::Exec { pod, command } => {
            let mut cmd = strait_lab::exec::command(&paths, &pod, &command)?;
            let err = cmd.exec();
            Err(err).with_context(|| format!("running {command:?} in pod {pod}"))
        }
        Action::Logs { component } => {
            let file = strait_lab::logs::log_file(&paths, &component)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Action::Controller { run_dir } => {
            strait_lab::controller::run(&LabPaths::new(run_dir))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
