//! Why the ingress controller could not start.

use std::net::SocketAddr;

use crate::tls::DefaultCertError;

/// A start-up failure of the ingress controller. Once running, problems
/// with individual Ingresses are reported and never stop the server.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// A listener could not be bound.
    #[error(
        "cannot bind the {what} listener on {addr}: {source} (is the port in use, or the address not on this host?)"
    )]
    Bind {
        /// `http`, `https` or `metrics`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Neither an HTTP nor an HTTPS address was given.
    #[error("no listener configured: give an http or an https address")]
    NoListener,
    /// The default certificate could not be generated.
    #[error(transparent)]
    DefaultCert(#[from] DefaultCertError),
    /// rustls refused the server configuration.
    #[error("TLS server configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The cluster view's source stopped before its first complete list.
    #[error("the cluster view stopped before it synced (see the cluster source's error above)")]
    ViewStopped,
}
