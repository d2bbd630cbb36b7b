//! Connections to upstream endpoints: plain TCP, or TLS for
//! `backend-protocol: HTTPS`; both with the connect timeout (TCP connect
//! and TLS handshake) and the send timeout on writes.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::BoxError;
use super::send_timeout::SendStalled;

/// Connects hyper-util's pooled client to endpoints, in plain TCP or TLS.
///
/// It exists because hyper-util's `HttpConnector` speaks plain TCP only,
/// and the send timeout must watch every write to the upstream socket.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    tcp: HttpConnector,
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
    send_timeout: Duration,
}

impl UpstreamConnector {
    /// A connector with these timeouts; TLS when `tls` is given.
    pub(crate) fn new(
        connect_timeout: Duration,
        send_timeout: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_nodelay(true);
        // The TLS client's URIs say https; the TCP part is the same.
        tcp.enforce_http(tls.is_none());
        Self {
            tcp,
            tls: tls.map(TlsConnector::from),
            connect_timeout,
            send_timeout,
        }
    }
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = TokioIo<UpstreamStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(BoxError::from)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned());
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        let (connect_timeout, send_timeout) = (self.connect_timeout, self.send_timeout);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let io = match tls {
                None => Io::Plain(tcp),
                Some(tls) => {
                    // Endpoints are addresses: rustls sends no SNI for them,
                    // as nginx does without proxy_ssl_server_name.
                    let ip: IpAddr = host
                        .as_deref()
                        .and_then(|h| h.parse().ok())
                        .ok_or("the upstream endpoint is not an IP address")?;
                    let name = ServerName::IpAddress(ip.into());
                    let stream = tokio::time::timeout(connect_timeout, tls.connect(name, tcp))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                        })?
                        .map_err(|e| format!("TLS handshake with the upstream: {e}"))?;
                    Io::Tls(Box::new(stream))
                }
            };
            Ok(TokioIo::new(UpstreamStream {
                io,
                send_timeout,
                stall: None,
            }))
        })
    }
}

/// The transport under one upstream connection.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One upstream connection. A write that cannot make progress for the send
/// timeout fails with [`SendStalled`] (nginx's `proxy_send_timeout`: the
/// upstream received nothing for that long).
pub(crate) struct UpstreamStream {
    io: Io,
    send_timeout: Duration,
    /// Armed while a write is blocked.
    stall: Option<Pin<Box<Sleep>>>,
}

impl UpstreamStream {
    /// After a write returned `Pending`: `Pending` until the send timeout
    /// passes, then the stall error.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.send_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                SendStalled { timeout },
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Watches one write-side poll for stalls.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.blocked(cx),
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match &self.io {
            Io::Plain(s) => s.connected(),
            Io::Tls(s) => s.get_ref().0.connected(),
        }
    }
}
