//! `strait dns`: the cluster DNS server.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use strait_cluster::{ClusterView, Component, KubeConfig, KubeSource, ManifestSource, Trim};
use strait_dns::{DnsConfig, DnsServer, PodRecords, Zone};

/// Flags of `strait dns`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read the cluster from this manifest directory instead of the API server.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// UDP and TCP address to serve DNS on.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// The cluster zone.
    #[arg(long, default_value = "cluster.local")]
    zone: Zone,
    /// Pod records `a-b-c-d.<ns>.pod.<zone>`: disabled, insecure or verified.
    #[arg(long, default_value = "insecure")]
    pod_records: PodRecords,
    /// Upstream resolvers for other names (default: nameservers of /etc/resolv.conf).
    #[arg(long, value_delimiter = ',')]
    upstream: Vec<SocketAddr>,
    /// TTL of cluster records, in seconds.
    #[arg(long, default_value_t = strait_dns::DEFAULT_TTL)]
    ttl: u32,
    /// Serve /health, /ready and /metrics on this address.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Answer only the cluster zone: names outside it get REFUSED instead of
    /// being forwarded (the lab, whose namespaces have no way out, uses it).
    #[arg(long, conflicts_with = "upstream")]
    no_forward: bool,
    /// Server-side search path: a pod's first search expansion of a name is
    /// answered with a CNAME to the name that exists (watches Pods to learn
    /// each client's namespace from its address).
    #[arg(long)]
    autopath: bool,
    /// Most entries in the forward cache.
    #[arg(long, default_value_t = 10_000)]
    cache_entries: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let upstreams = if args.no_forward {
        Vec::new()
    } else if args.upstream.is_empty() {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        strait_dns::resolv::nameservers(&text)
            .into_iter()
            .filter(|a| *a != args.listen)
            .collect()
    } else {
        args.upstream.clone()
    };
    let config = DnsConfig {
        listen: args.listen,
        http: args.http,
        zone: args.zone.clone(),
        pod_records: args.pod_records,
        ttl: args.ttl,
        upstreams,
        cache_entries: args.cache_entries,
        autopath: args.autopath,
        ..DnsConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // Pods only for verified pod records or autopath.
    let mut kinds = Component::Dns.kinds();
    if args.pod_records != PodRecords::Verified && !args.autopath {
        for kind in Component::Dns.optional_kinds().iter() {
            kinds.remove(kind);
        }
    }
    // The server reads a few fields of each object; keep only those.
    let trim = Trim::for_component(Component::Dns);
    rt.block_on(async move {
        let view = match &args.manifests {
            Some(dir) => {
                ClusterView::spawn(ManifestSource::new(dir).with_kinds(kinds).with_trim(trim))
            }
            None => {
                let source = KubeSource::try_default(KubeConfig::new(kinds).with_trim(trim))
                    .await
                    .context("connecting to the Kubernetes API server")?;
                ClusterView::spawn(source)
            }
        };
        tracing::info!(upstreams = ?config.upstreams, "starting dns");
        let server = DnsServer::bind(config, view)
            .await
            .context("binding the dns listeners")?
            .spawn();
        tokio::select! {
            () = server.wait() => {}
            r = tokio::signal::ctrl_c() => { r.context("waiting for ctrl-c")?; }
        }
        Ok(ExitCode::SUCCESS)
    })
}
