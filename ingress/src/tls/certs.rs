//! Certificates: `kubernetes.io/tls` Secrets turned into rustls signing
//! keys, and the generated default certificate.
//!
//! Nothing here ever formats key bytes: errors name the Secret field and
//! the kind of problem only.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use strait_cluster::k8s_openapi::api::core::v1::Secret;

/// The Secret type Ingress TLS requires.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// The certificate chain field of a TLS Secret.
pub const TLS_CRT: &str = "tls.crt";
/// The private key field of a TLS Secret.
pub const TLS_KEY: &str = "tls.key";
/// The subject name of the generated default certificate.
pub const DEFAULT_CERT_NAME: &str = "strait-ingress.invalid";

/// Why a Secret could not be used as a certificate. Deliberately free of
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The Secret does not exist in the Ingress's namespace.
    #[error("secret not found in the Ingress's namespace")]
    NotFound,
    /// The Secret is not of type `kubernetes.io/tls`.
    #[error("secret type is {0:?}, want \"kubernetes.io/tls\"")]
    WrongType(String),
    /// `tls.crt` or `tls.key` is missing.
    #[error("secret has no {0:?} field")]
    MissingField(&'static str),
    /// `tls.crt` holds no PEM certificate.
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    /// `tls.crt` is not valid PEM.
    #[error("tls.crt is not valid PEM: {0}")]
    BadCertificatePem(String),
    /// `tls.key` holds no usable PEM private key.
    #[error("tls.key holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    /// The key is not one rustls can sign with.
    #[error("tls.key is not a supported private key: {0}")]
    UnsupportedKey(String),
    /// The key does not belong to the certificate.
    #[error("tls.key does not match the certificate in tls.crt: {0}")]
    Mismatch(String),
}

/// One Secret field's bytes: `data` (already base64-decoded) or, as the API
/// server would merge it, `stringData`.
fn field<'s>(secret: &'s Secret, name: &'static str) -> Result<&'s [u8], CertError> {
    if let Some(value) = secret.string_data.as_ref().and_then(|d| d.get(name)) {
        return Ok(value.as_bytes());
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(name))
        .map(|b| b.0.as_slice())
        .ok_or(CertError::MissingField(name))
}

/// Turns a `kubernetes.io/tls` Secret into a signing key for rustls,
/// checking that the key matches the leaf certificate.
pub fn certified_key_from_secret(
    secret: &Secret,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != TLS_SECRET_TYPE {
        return Err(CertError::WrongType(kind.to_owned()));
    }
    certified_key_from_pem(field(secret, TLS_CRT)?, field(secret, TLS_KEY)?, provider)
}

/// Turns PEM `tls.crt` and `tls.key` contents into a signing key.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificatePem(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    // The pem error type may quote input; never surface it for the key.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertError::NoKey)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(e) => Err(CertError::Mismatch(e.to_string())),
    }
}

/// Why the default certificate could not be made (should not happen).
#[derive(Debug, thiserror::Error)]
#[error("generating the default certificate: {0}")]
pub struct DefaultCertError(String);

/// A freshly generated self-signed certificate for clients whose SNI names
/// no configured host (or that send none), like ingress-nginx's "fake
/// certificate". It is regenerated on every start and trusted by nobody.
pub fn default_certificate(
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, DefaultCertError> {
    let mut params = rcgen::CertificateParams::new(vec![DEFAULT_CERT_NAME.to_owned()])
        .map_err(|e| DefaultCertError(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Strait Ingress Default Certificate",
    );
    let key = rcgen::KeyPair::generate().map_err(|e| DefaultCertError(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| DefaultCertError(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| DefaultCertError(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strait_cluster::k8s_openapi::ByteString;

    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("rcgen");
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn secret(kind: Option<&str>, crt: Option<&str>, key: Option<&str>) -> Secret {
        let mut data = BTreeMap::new();
        if let Some(c) = crt {
            data.insert(TLS_CRT.to_owned(), ByteString(c.as_bytes().to_vec()));
        }
        if let Some(k) = key {
            data.insert(TLS_KEY.to_owned(), ByteString(k.as_bytes().to_vec()));
        }
        Secret {
            type_: kind.map(Into::into),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn good_secret_loads() {
        let (crt, key) = pair("a.example");
        let s = secret(Some(TLS_SECRET_TYPE), Some(&crt), Some(&key));
        assert!(certified_key_from_secret(&s, &provider()).is_ok());
        // stringData, as hand-written manifests often use.
        let s = Secret {
            type_: Some(TLS_SECRET_TYPE.into()),
            string_data: Some(
                [(TLS_CRT.to_owned(), crt), (TLS_KEY.to_owned(), key)]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(certified_key_from_secret(&s, &provider()).is_ok());
    }

    #[test]
    fn bad_secrets_are_refused_without_key_material() {
        let (crt, key) = pair("a.example");
        let (_, other_key) = pair("b.example");
        let p = provider();
        let cases = [
            (secret(Some("Opaque"), Some(&crt), Some(&key)), "type"),
            (secret(None, Some(&crt), Some(&key)), "type"),
            (secret(Some(TLS_SECRET_TYPE), None, Some(&key)), "tls.crt"),
            (secret(Some(TLS_SECRET_TYPE), Some(&crt), None), "tls.key"),
            (
                secret(Some(TLS_SECRET_TYPE), Some("junk"), Some(&key)),
                "PEM",
            ),
            (
                secret(Some(TLS_SECRET_TYPE), Some(&crt), Some("junk")),
                "private key",
            ),
            (
                secret(Some(TLS_SECRET_TYPE), Some(&crt), Some(&other_key)),
                "does not match",
            ),
        ];
        for (s, want) in cases {
            let err = certified_key_from_secret(&s, &p)
                .expect_err(want)
                .to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
            assert!(!err.contains("PRIVATE KEY"), "key material in {err:?}");
        }
    }

    #[test]
    fn default_certificate_is_generated() {
        let a = default_certificate(&provider()).expect("default cert");
        assert_eq!(a.cert.len(), 1);
        assert!(a.keys_match().is_ok());
    }
}
