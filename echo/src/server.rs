//! Binds the TCP and UDP sockets of the echo server and serves them.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    task::JoinSet,
};

use crate::{http, line_reply, prefixed::Prefixed, sniff::looks_like_http};

/// How long a new TCP connection may stay silent before it is treated as a
/// plain TCP client that waits to be spoken to (like `nc host port`).
const SNIFF_TIMEOUT: Duration = Duration::from_millis(100);

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// The name put into every answer (the pod name in the lab).
    pub name: String,
    /// Addresses to serve; each gets a TCP listener and a UDP socket.
    pub listen: Vec<SocketAddr>,
}

/// Why the echo server could not start.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// A socket could not be bound.
    #[error(
        "cannot bind {proto} {addr}: {source} (is the port in use, or the address not on this host?)"
    )]
    Bind {
        /// "tcp" or "udp".
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No address was given.
    #[error("no --listen address given")]
    NoListen,
}

/// A bound echo server. Bind first (so tests learn ephemeral ports), then run.
pub struct EchoServer {
    name: Arc<str>,
    tcp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
}

impl EchoServer {
    /// Binds every listen address for TCP and UDP.
    pub async fn bind(config: &EchoConfig) -> Result<Self, EchoError> {
        if config.listen.is_empty() {
            return Err(EchoError::NoListen);
        }
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for addr in &config.listen {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| EchoError::Bind {
                    proto: "tcp",
                    addr: *addr,
                    source,
                })?;
            // UDP on the port TCP actually got, so port 0 yields one port for both.
            let bound = l.local_addr().unwrap_or(*addr);
            let u = UdpSocket::bind(bound)
                .await
                .map_err(|source| EchoError::Bind {
                    proto: "udp",
                    addr: bound,
                    source,
                })?;
            tcp.push(l);
            udp.push(u);
        }
        Ok(Self {
            name: config.name.as_str().into(),
            tcp,
            udp,
        })
    }

    /// The bound TCP addresses (UDP uses the same ones).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until the task is dropped or aborted.
    pub async fn run(self) {
        let mut tasks = JoinSet::new();
        for l in self.tcp {
            tasks.spawn(accept_loop(self.name.clone(), l));
        }
        for u in self.udp {
            tasks.spawn(udp_loop(self.name.clone(), u));
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn accept_loop(name: Arc<str>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_tcp(name.clone(), stream, peer));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_tcp(name: Arc<str>, mut stream: TcpStream, peer: SocketAddr) {
    let mut buf = vec![0u8; 4096];
    let first = match tokio::time::timeout(SNIFF_TIMEOUT, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => return,
        Ok(Ok(n)) => Some(n),
        Err(_) => None,
    };
    if let Some(n) = first
        && looks_like_http(&buf[..n])
    {
        let io = TokioIo::new(Prefixed::new(Bytes::copy_from_slice(&buf[..n]), stream));
        let svc = service_fn(move |req| http::handle(name.clone(), peer, req));
        if let Err(e) = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(io, svc)
            .await
        {
            tracing::debug!(%peer, error = %e, "http connection ended with an error");
        }
        return;
    }
    let reply = line_reply(&name, peer);
    // One line per chunk the client sends, and one right away for a silent
    // client; either way the first chunk (or the silence) is answered now.
    if stream.write_all(reply.as_bytes()).await.is_err() {
        return;
    }
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn udp_loop(name: Arc<str>, socket: UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((_, peer)) => {
                let reply = line_reply(&name, peer);
                if let Err(e) = socket.send_to(reply.as_bytes(), peer).await {
                    tracing::debug!(%peer, error = %e, "udp reply failed");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
