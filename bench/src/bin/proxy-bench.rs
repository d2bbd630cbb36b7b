//! `scripts/bench proxy`: the eBPF socket load balancer against connecting
//! straight to the pods and against kube-proxy's iptables and nftables
//! modes, N services × 5 endpoints, inside the benchmark's own network
//! namespaces. Needs root.
//!
//! usage: proxy-bench [--quick] [--sizes 100,1000,10000] [--seconds S]
//!                    [--rounds R] [--concurrency C]
//!                    [--modes direct,strait,iptables,iptables-nft,nftables]
//!                    [--iptables-nft-max N]
//!
//! `iptables` is kube-proxy's ruleset loaded with iptables-legacy-restore
//! (the ×iptables ratios); `iptables-nft` is the same ruleset through
//! iptables-nft-restore, skipped above --iptables-nft-max services (2000).
//!        proxy-bench client [--cpu N]   (the load generator; spawned by the benchmark)
//!
//!        proxy-bench nodeport [--quick] [--sizes 1000,10000] [--seconds S]
//!                    [--rounds R] [--concurrency C] [--rr-concurrency C]
//!                    [--modes direct,strait-tc,iptables]
//!
//! `nodeport`: external traffic (client netns → node → pod on a remote
//! node) through `nodeIP:nodePort`, strait's tc datapath against kube-proxy's
//! iptables NodePort rules and against routing straight to the pod; see
//! `proxy/nodeport/mod.rs`.
//!        proxy-bench nodeport-client [--cpu N]   (its load generator)

#[path = "../proxy/mod.rs"]
mod proxy;

use anyhow::{Context, bail};
use proxy::describe::{parse_modes, parse_sizes};
use proxy::{Mode, Settings};

fn parse_args(args: &[String]) -> anyhow::Result<Settings> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut s = Settings {
        sizes: vec![100, 1000, 10_000],
        measure: 5.0,
        warmup: 1.0,
        rounds: 3,
        latency: 2.0,
        concurrency: 32,
        cpus: (cpus >= 2).then_some((0, 1)),
        modes: Mode::ALL.to_vec(),
        iptables_nft_max: 2000,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                s.sizes = vec![100, 1000];
                s.measure = 2.5;
                s.warmup = 0.5;
                s.latency = 1.0;
            }
            "--sizes" => s.sizes = parse_sizes(value()?)?,
            "--seconds" => s.measure = value()?.parse()?,
            "--rounds" => s.rounds = value()?.parse()?,
            "--concurrency" => s.concurrency = value()?.parse()?,
            "--iptables-nft-max" => s.iptables_nft_max = value()?.parse()?,
            "--modes" => s.modes = parse_modes(value()?, &Mode::ALL, |m| m.name())?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        let cpu = match args.get(1..3) {
            Some([flag, n]) if flag == "--cpu" => Some(n.parse()?),
            _ => None,
        };
        return proxy::client_main(cpu);
    }
    if args.first().map(String::as_str) == Some("nodeport-client") {
        let cpu = match args.get(1..3) {
            Some([flag, n]) if flag == "--cpu" => Some(n.parse()?),
            _ => None,
        };
        return proxy::nodeport::load::client_main(cpu);
    }
    if args.first().map(String::as_str) == Some("nodeport") {
        if !strait_tests::require_root() {
            bail!("proxy-bench nodeport needs root (network namespaces, eBPF, netfilter)");
        }
        let settings = proxy::nodeport::parse_args(&args[1..])?;
        if let Some((_, backend_cpu)) = settings.cpus {
            proxy::pin_to_cpu(backend_cpu)?;
        }
        let rows = proxy::nodeport::run(&settings)?;
        print!("{}", proxy::nodeport::report(&rows, &settings));
        return Ok(());
    }
    if !strait_tests::require_root() {
        bail!("proxy-bench needs root (network namespaces, eBPF, netfilter)");
    }
    let settings = parse_args(&args)?;
    // Pin before any thread exists: the echo servers' threads inherit it.
    if let Some((_, backend_cpu)) = settings.cpus {
        proxy::pin_to_cpu(backend_cpu)?;
    }
    let rows = proxy::run(&settings)?;
    print!("{}", proxy::report(&rows, &settings));
    Ok(())
}
