//! The running server: binds UDP and TCP on one address (and the HTTP
//! endpoint), keeps the index in step with the cluster view, and serves
//! until dropped.

mod follow;
mod http;
mod mmsg;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use strait_cluster::ClusterView;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::authority::Authority;
use crate::config::DnsConfig;
use crate::error::ServerError;
use crate::forward::{Cache, Forwarder, MAX_STALE};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::wire::Handler;

/// A bound DNS server, not yet serving.
///
/// It exists so callers learn the actual addresses (ephemeral ports in
/// tests) before serving starts, and so binding errors surface at once.
pub struct DnsServer {
    handler: Arc<Handler>,
    index: Arc<RwLock<Index>>,
    view: ClusterView,
    udp: UdpSocket,
    tcp: TcpListener,
    http: Option<TcpListener>,
    config: DnsConfig,
}

/// A serving server; dropping it stops every task.
pub struct RunningServer {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    index: Arc<RwLock<Index>>,
    tasks: JoinSet<()>,
}

fn bind_err(what: &'static str, addr: SocketAddr) -> impl Fn(std::io::Error) -> ServerError {
    move |source| ServerError::Bind { what, addr, source }
}

impl DnsServer {
    /// Bind the listeners of `config` and prepare to answer from `view`.
    /// With port 0, UDP gets an ephemeral port and TCP the same one.
    pub async fn bind(config: DnsConfig, view: ClusterView) -> Result<DnsServer, ServerError> {
        let (udp, tcp) = bind_pair(config.listen).await?;
        let http = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(bind_err("http", addr))?,
            ),
            None => None,
        };
        let index = Arc::new(RwLock::new(Index::new(config.zone.name())));
        let authority = Authority::new(
            config.zone.clone(),
            config.ttl,
            config.pod_records,
            index.clone(),
        );
        let forwarder = (!config.upstreams.is_empty()).then(|| {
            Forwarder::new(
                config.upstreams.clone(),
                config.upstream_timeout,
                Cache::new(config.cache_entries, config.cache_max_ttl, MAX_STALE),
            )
        });
        let handler = Arc::new(
            Handler::new(
                authority,
                forwarder,
                Arc::new(Metrics::new()),
                config.max_udp_payload,
            )
            .with_autopath(config.autopath),
        );
        Ok(DnsServer {
            handler,
            index,
            view,
            udp,
            tcp,
            http,
            config,
        })
    }

    /// The UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp.local_addr().unwrap_or(self.config.listen)
    }

    /// Start serving on the current tokio runtime.
    pub fn spawn(self) -> RunningServer {
        let udp_addr = self.udp_addr();
        let tcp_addr = self.tcp.local_addr().unwrap_or(self.config.listen);
        let http_addr = self.http.as_ref().and_then(|l| l.local_addr().ok());
        let mut tasks = JoinSet::new();
        // Apply the current snapshot before serving, so a synced view
        // never yields a SERVFAIL.
        let applied = follow::apply_current(&self.view, &self.index, self.handler.metrics());
        tasks.spawn(follow::follow(
            self.view,
            applied,
            self.index.clone(),
            self.handler.metrics().clone(),
        ));
        tasks.spawn(udp::serve(
            Arc::new(self.udp),
            self.handler.clone(),
            self.config.max_forwards_in_flight,
        ));
        tasks.spawn(tcp::serve(
            self.tcp,
            self.handler.clone(),
            self.config.max_tcp_connections,
        ));
        if let Some(http) = self.http {
            tasks.spawn(http::serve(http, self.handler.clone()));
        }
        tracing::info!(%udp_addr, %tcp_addr, http = ?http_addr, zone = %self.config.zone, "dns serving");
        RunningServer {
            udp_addr,
            tcp_addr,
            http_addr,
            index: self.index,
            tasks,
        }
    }
}

impl RunningServer {
    /// The UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The HTTP address, when enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Whether the index has seen a synced cluster view (what `/ready`
    /// reports).
    pub fn ready(&self) -> bool {
        self.index.read().is_ok_and(|i| i.synced())
    }

    /// Serve until a task ends (it only ends on a fatal error).
    pub async fn wait(mut self) {
        if let Some(Err(error)) = self.tasks.join_next().await {
            tracing::error!(%error, "dns task failed");
        }
    }
}

/// Socket buffer size for the UDP listener: a burst of queries must queue,
/// not be dropped, while the receive loop is busy (the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`).
const UDP_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket on `addr` with large buffers.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_BUFFER) {
        tracing::debug!(%error, "cannot enlarge the udp receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(UDP_BUFFER) {
        tracing::debug!(%error, "cannot enlarge the udp send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Bind UDP and TCP to the same address; with port 0 retry until the
/// kernel's ephemeral UDP port is also free for TCP.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), ServerError> {
    let mut attempts = 0;
    loop {
        let udp = bind_udp(addr).map_err(bind_err("udp", addr))?;
        let bound = udp.local_addr().map_err(bind_err("udp", addr))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && attempts < 16 => {
                attempts += 1;
                tracing::debug!(%bound, error = %e, "tcp port taken, retrying");
            }
            Err(e) => return Err(bind_err("tcp", bound)(e)),
        }
    }
}
