//! Errors of the DNS server.

use std::net::SocketAddr;

/// Why a forwarded query got no upstream answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream is configured.
    #[error("no upstream resolver is configured")]
    NoUpstream,
    /// The upstream did not answer in time.
    #[error("upstream {0} timed out")]
    Timeout(SocketAddr),
    /// Talking to the upstream failed.
    #[error("upstream {server}: {source}")]
    Io {
        /// The upstream.
        server: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The upstream's answer did not parse or did not match the question.
    #[error("upstream {0} sent a malformed or mismatched answer")]
    Malformed(SocketAddr),
    /// The query could not be encoded.
    #[error("encoding the upstream query: {0}")]
    Encode(String),
    /// Too many forwarded queries are in flight.
    #[error("too many forwarded queries in flight")]
    Busy,
}

impl ForwardError {
    pub(crate) fn io(server: SocketAddr) -> impl Fn(std::io::Error) -> ForwardError {
        move |source| ForwardError::Io { server, source }
    }

    pub(crate) fn encode(e: impl std::fmt::Display) -> ForwardError {
        ForwardError::Encode(e.to_string())
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which listener (`udp`, `tcp`, `http`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
}
