//! The listeners: plain HTTP, HTTPS (rustls, SNI, ALPN) and the small
//! health/metrics endpoint, with graceful shutdown.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use strait_cluster::ClusterView;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::build::ConfigBuilder;
use crate::config::IngressConfig;
use crate::error::IngressError;
use crate::metrics::Metrics;
use crate::proxy::{Body, ConnInfo, Handler, UpstreamClient, responses};
use crate::reload::{self, Targets};
use crate::router::Router;
use crate::status::{self, StatusPlanner};
use crate::tls::{self, SniResolver};

/// A controller with its sockets bound but not yet serving.
///
/// It exists so callers (tests, the CLI) learn the real addresses of
/// ephemeral ports before traffic starts, and binding errors surface
/// before anything runs.
pub struct IngressServer {
    config: IngressConfig,
    view: ClusterView,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    metrics: Option<TcpListener>,
}

async fn bind(
    what: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, IngressError> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| IngressError::Bind { what, addr, source }),
    }
}

impl IngressServer {
    /// Binds the configured listeners.
    pub async fn bind(config: IngressConfig, view: ClusterView) -> Result<Self, IngressError> {
        if config.http.is_none() && config.https.is_none() {
            return Err(IngressError::NoListener);
        }
        let http = bind("http", config.http).await?;
        let https = bind("https", config.https).await?;
        let metrics = bind("metrics", config.metrics).await?;
        Ok(Self {
            config,
            view,
            http,
            https,
            metrics,
        })
    }

    /// Starts the event recorder (with the API client from the
    /// environment, as the status writer does); without a client problems
    /// are only logged.
    async fn start_events(
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<crate::events::EventSink> {
        match kube::Client::try_default().await {
            Ok(client) => {
                let (sink, queue) = crate::events::channel();
                let instance = std::env::var("POD_NAME").ok();
                tasks.spawn(crate::events::run(
                    client,
                    instance,
                    queue,
                    shutdown.clone(),
                ));
                Some(sink)
            }
            Err(error) => {
                tracing::error!(%error, "no Kubernetes client for events; problems are only logged");
                None
            }
        }
    }

    /// The bound plain-HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Waits for the cluster view to sync, builds the first configuration,
    /// then serves until [`RunningIngress::shutdown`].
    pub async fn start(self) -> Result<RunningIngress, IngressError> {
        let (http_addr, https_addr, metrics_addr) =
            (self.http_addr(), self.https_addr(), self.metrics_addr());
        let Self {
            config,
            mut view,
            http,
            https,
            metrics: metrics_listener,
        } = self;
        let provider = tls::provider();
        let mut builder = ConfigBuilder::new(config.clone(), provider.clone())?;
        let snapshot = view
            .wait_synced()
            .await
            .map_err(|_| IngressError::ViewStopped)?;
        let built = builder.build(&snapshot);
        let mut problems = BTreeSet::new();
        let first = reload::log_report(&built.report, &mut problems, snapshot.generation());
        let (status_planner, status_updates) = StatusPlanner::new(&config.status);
        status_planner.offer(&snapshot, &built.report.served);

        let metrics = Arc::new(Metrics::new());
        let (swaps, swap_rx) = watch::channel(0);
        let targets = Targets {
            router: Arc::new(ArcSwap::from_pointee(Router::default())),
            certs: Arc::new(ArcSwap::from_pointee(built.certs.clone())),
            metrics: metrics.clone(),
            swaps,
        };
        targets.publish(built);
        let router = targets.router.clone();
        let certs = targets.certs.clone();

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let events = if config.events {
            Self::start_events(&mut tasks, &shutdown_rx).await
        } else {
            None
        };
        if let Some(events) = &events {
            events.problems(&snapshot, &first);
        }
        tasks.spawn(reload::run(
            view,
            builder,
            targets,
            problems,
            status_planner,
            events,
            shutdown_rx.clone(),
        ));
        if config.status.publish.is_some() {
            tasks.spawn(status::run_writer(
                config.status.write,
                status_updates,
                shutdown_rx.clone(),
            ));
        }

        let https_port = config
            .redirect_https_port
            .or_else(|| https_addr.map(|a| a.port()));
        let handler = Arc::new(Handler::new(
            router.clone(),
            UpstreamClient::new(
                &config.timeouts,
                config.max_attempts,
                metrics.clone(),
                tls::upstream_client_config(provider.clone())?,
            ),
            metrics.clone(),
            https_port,
            config.access_log,
        ));
        let mut http_builder = auto::Builder::new(TokioExecutor::new());
        http_builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.timeouts.client_header);
        http_builder.http2().timer(TokioTimer::new());
        let grace = config.timeouts.shutdown_grace;

        if let Some(listener) = http {
            tasks.spawn(accept_loop(
                listener,
                None,
                handler.clone(),
                http_builder.clone(),
                shutdown_rx.clone(),
                grace,
                config.timeouts.tls_handshake,
            ));
        }
        if let Some(listener) = https {
            let tls_config = tls::server_config(provider, SniResolver::new(certs))?;
            tasks.spawn(accept_loop(
                listener,
                Some(TlsAcceptor::from(tls_config)),
                handler.clone(),
                http_builder.clone(),
                shutdown_rx.clone(),
                grace,
                config.timeouts.tls_handshake,
            ));
        }
        if let Some(listener) = metrics_listener {
            tasks.spawn(metrics_loop(listener, metrics.clone(), shutdown_rx.clone()));
        }
        tracing::info!(
            http = ?http_addr,
            https = ?https_addr,
            metrics = ?metrics_addr,
            controller = %config.class.controller,
            class = %config.class.class_name,
            "strait ingress serving"
        );
        Ok(RunningIngress {
            shutdown: shutdown_tx,
            tasks,
            http_addr,
            https_addr,
            metrics_addr,
            swaps: swap_rx,
            router,
            metrics,
        })
    }
}

/// A serving controller.
///
/// It exists so the caller can find the addresses, watch reconfigurations
/// and drain everything on shutdown.
pub struct RunningIngress {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    swaps: watch::Receiver<u64>,
    router: Arc<ArcSwap<Router>>,
    metrics: Arc<Metrics>,
}

impl RunningIngress {
    /// The plain-HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The health and metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// How many configurations were swapped in so far (1 after start).
    pub fn config_swaps(&self) -> u64 {
        *self.swaps.borrow()
    }

    /// The current router.
    pub fn router(&self) -> Arc<Router> {
        self.router.load_full()
    }

    /// The metrics in text exposition format.
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), then returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Resolves when a serving task ends on its own (it should not).
    pub async fn wait(&mut self) {
        let _ = self.tasks.join_next().await;
    }
}

/// Accepts connections until shutdown, then drains them.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<Handler>,
    builder: auto::Builder<TokioExecutor>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    handshake_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let listen = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = reload::stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .ok()
            .or(listen)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let info = ConnInfo {
            peer,
            local,
            tls: tls.is_some(),
        };
        let watcher = graceful.watcher();
        let handler = handler.clone();
        let builder = builder.clone();
        match &tls {
            None => {
                tokio::spawn(serve(stream, info, handler, builder, watcher));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve(stream, info, handler, builder, watcher).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the shutdown grace period"
        );
    }
}

/// Serves one connection (plain or TLS) under the graceful watcher.
async fn serve<S>(
    stream: S,
    info: ConnInfo,
    handler: Arc<Handler>,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.handle(info, req).await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    if let Err(error) = watcher.watch(conn).await {
        tracing::debug!(peer = %info.peer, %error, "connection ended with an error");
    }
}

/// Serves `/healthz` and `/metrics` over HTTP/1.1 until shutdown.
async fn metrics_loop(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream: TcpStream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = reload::stopped(&mut shutdown) => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(admin(&req, &metrics)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The admin endpoint's answers.
fn admin(req: &Request<Incoming>, metrics: &Metrics) -> Response<Body> {
    match req.uri().path() {
        "/healthz" | "/readyz" => responses::text(StatusCode::OK, "ok"),
        "/metrics" => {
            let mut resp = Response::new(responses::full(metrics.render()));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        _ => responses::text(StatusCode::NOT_FOUND, "try /healthz or /metrics"),
    }
}

/// Runs `future` until ctrl-c, then shuts `running` down gracefully. For
/// binaries.
pub async fn serve_until<F: Future<Output = ()>>(mut running: RunningIngress, stop: F) {
    tokio::select! {
        () = stop => tracing::info!("shutting down: draining connections"),
        () = running.wait() => tracing::error!("a serving task ended unexpectedly"),
    }
    running.shutdown().await;
}
