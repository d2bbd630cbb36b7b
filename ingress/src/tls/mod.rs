//! TLS termination: certificates from Secrets, the SNI resolver and the
//! rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1); and the client configuration for HTTPS upstreams.

mod certs;
mod store;
mod upstream;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

pub use certs::{
    CertError, DEFAULT_CERT_NAME, DefaultCertError, TLS_CRT, TLS_KEY, TLS_SECRET_TYPE,
    certified_key_from_pem, certified_key_from_secret, default_certificate,
};
pub use store::{CertStore, SniResolver};
pub use upstream::{AcceptAnyServerCert, upstream_client_config};

/// The crypto provider of the whole crate: ring, which kube already pulls in
/// (so no second crypto library is built).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server configuration for the HTTPS listener: certificates
/// from `resolver`, TLS 1.3 and 1.2, ALPN h2 then http/1.1.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: SniResolver,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
