//! `strait ingress`: the ingress controller.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use strait_cluster::{Kind, KindSet};
use strait_ingress::annotations::migration_report;
use strait_ingress::config::{DEFAULT_CLASS, DEFAULT_CONTROLLER};
use strait_ingress::status::{PublishSource, StatusConfig, StatusWrite};
use strait_ingress::{ClassConfig, IngressConfig, IngressServer, ServiceRef, Timeouts};

use super::view::cluster_view;

/// Flags of `strait ingress`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Read the cluster from this manifest directory instead of the API server.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Plain HTTP address.
    #[arg(long, default_value = "0.0.0.0:80")]
    http: SocketAddr,
    /// HTTPS address.
    #[arg(long, default_value = "0.0.0.0:443")]
    https: SocketAddr,
    /// IngressClass name served even when no IngressClass object of that name exists.
    #[arg(long, default_value = DEFAULT_CLASS)]
    class: String,
    /// `spec.controller` of the IngressClasses this controller serves.
    #[arg(long, default_value = DEFAULT_CONTROLLER)]
    controller_name: String,
    /// Backend for requests no Ingress serves, as NAMESPACE/NAME:PORT
    /// (default: a 404 that says nothing matched).
    #[arg(long)]
    default_backend: Option<ServiceRef>,
    /// Serve /healthz and /metrics on this address.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// How upstream endpoints share requests: round_robin, or ewma (the
    /// faster of two random endpoints by latency and requests in flight).
    /// An Ingress overrides it with nginx.ingress.kubernetes.io/load-balance.
    #[arg(long, default_value = "round_robin", value_parser = parse_balance)]
    load_balance: strait_ingress::balance::Balance,
    /// Port to put in https redirects (default: the --https port; omitted when 443).
    #[arg(long)]
    redirect_https_port: Option<u16>,
    /// Time to connect to one upstream endpoint before trying the next (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Time to wait for an upstream's response headers before answering 504.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    read_timeout: Duration,
    /// Longest time an upstream may receive nothing while a request is sent
    /// (a client pausing in its body, or an upstream not reading) before 504.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    send_timeout: Duration,
    /// Write the LoadBalancer address of this Service (NAMESPACE/NAME) into
    /// status.loadBalancer.ingress of the served Ingresses.
    #[arg(long, conflicts_with = "publish_address", value_parser = PublishSource::service)]
    publish_service: Option<PublishSource>,
    /// Write these addresses (IPs or DNS names, comma-separated) into
    /// status.loadBalancer.ingress of the served Ingresses.
    #[arg(long, value_parser = PublishSource::addresses)]
    publish_address: Option<PublishSource>,
    /// Time in-flight requests get to finish on shutdown.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Do not log one line per request.
    #[arg(long)]
    no_access_log: bool,
}

/// What `strait ingress` can do besides serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List every nginx.ingress.kubernetes.io/* annotation of every Ingress
    /// with what Strait does with it (the migration report).
    Annotations {
        /// Read the cluster from this manifest directory instead of the API server.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
}

/// `500ms`, `5s`, `2m`, or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{text:?}: unknown unit {unit:?}; use ms, s or m")),
    }
}

/// The kinds the controller reads.
fn kinds() -> KindSet {
    KindSet::EMPTY
        .with(Kind::Service)
        .with(Kind::EndpointSlice)
        .with(Kind::Ingress)
        .with(Kind::IngressClass)
        .with(Kind::Secret)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Prints the migration report.
fn annotations(manifests: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let mut view =
            cluster_view(manifests.as_deref(), KindSet::only(Kind::Ingress), None).await?;
        let snapshot = view
            .wait_synced()
            .await
            .context("reading Ingresses from the cluster view")?;
        let lines = migration_report(
            snapshot
                .ingresses()
                .iter()
                .map(|(key, ing)| (key.to_string(), ing.metadata.annotations.as_ref())),
        );
        if lines.is_empty() {
            println!(
                "no nginx.ingress.kubernetes.io/* annotations in {} Ingresses",
                snapshot.ingresses().len()
            );
        }
        for line in &lines {
            println!(
                "{}\t{}={:?}\t{}",
                line.ingress, line.key, line.value, line.verdict
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `--load-balance`, with the values the annotation takes.
fn parse_balance(value: &str) -> Result<strait_ingress::balance::Balance, String> {
    strait_ingress::balance::Balance::parse(value)
        .ok_or_else(|| format!("{value:?}: expected round_robin or ewma"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Command::Annotations { manifests }) = args.command {
        return annotations(manifests);
    }
    let config = IngressConfig {
        http: Some(args.http),
        https: Some(args.https),
        metrics: args.metrics,
        class: ClassConfig {
            controller: args.controller_name.clone(),
            class_name: args.class.clone(),
        },
        default_backend: args.default_backend.clone(),
        redirect_https_port: args.redirect_https_port,
        load_balance: args.load_balance,
        timeouts: Timeouts {
            connect: args.connect_timeout,
            read: args.read_timeout,
            send: args.send_timeout,
            shutdown_grace: args.shutdown_grace,
            ..Timeouts::default()
        },
        access_log: !args.no_access_log,
        status: StatusConfig {
            publish: args
                .publish_service
                .clone()
                .or(args.publish_address.clone()),
            // Without an API server there is nothing to write to: log it.
            write: if args.manifests.is_some() {
                StatusWrite::LogOnly
            } else {
                StatusWrite::Api
            },
        },
        // Events need an API server to write to.
        events: args.manifests.is_none(),
        ..IngressConfig::default()
    };
    runtime()?.block_on(async move {
        let view = cluster_view(args.manifests.as_deref(), kinds(), None).await?;
        let server = IngressServer::bind(config, view)
            .await
            .context("binding the ingress listeners")?;
        let running = server
            .start()
            .await
            .context("starting the ingress controller")?;
        strait_ingress::serve_until(running, stop_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on ctrl-c or SIGTERM (what Kubernetes sends on pod deletion).
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot wait for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot wait for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
