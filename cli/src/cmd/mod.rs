//! The command line: one flag vocabulary shared by every subcommand.
mod agent;
mod dns;
mod echo;
mod ingress;
mod lab;
mod view;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strait: a Kubernetes networking data plane (CNI, eBPF service proxy,
/// cluster DNS and ingress).
#[derive(Debug, Parser)]
#[command(name = "strait", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node agent: the eBPF service proxy and node routes.
    Agent(agent::Args),
    /// Run the cluster DNS server.
    Dns(dns::Args),
    /// Run the ingress controller.
    Ingress(ingress::Args),
    /// Run the local lab: a whole cluster in network namespaces.
    Lab(lab::Args),
    /// Run the echo backend used by the lab, tests and benchmarks.
    Echo(echo::Args),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Echo(args) => echo::run(args),
        Command::Agent(args) => agent::run_cmd(args),
        Command::Dns(args) => dns::run(args),
        Command::Ingress(args) => ingress::run(args),
        Command::Lab(args) => lab::run(args),
    }
}
