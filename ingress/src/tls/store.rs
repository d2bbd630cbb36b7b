//! The certificate store one route-table build produces, and the rustls SNI
//! resolver that reads the current store on every handshake.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::matching::{HostRule, wildcard_suffix};

/// Certificates by TLS host, plus the default certificate.
///
/// It exists so a handshake is two hash lookups on an immutable value that
/// the rebuild replaces as a whole (a Secret rotation is a new store).
#[derive(Clone)]
pub struct CertStore {
    exact: HashMap<Box<str>, Arc<CertifiedKey>>,
    wildcard: HashMap<Box<str>, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl CertStore {
    /// A store that serves only `default`.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Adds the certificate for `host`; returns `false` (and keeps the first
    /// one) when the host already has one. Rules without a host are ignored.
    pub fn insert(&mut self, host: &HostRule, key: Arc<CertifiedKey>) -> bool {
        let (map, name) = match host {
            HostRule::Any => return false,
            HostRule::Exact(name) => (&mut self.exact, name),
            HostRule::Wildcard(suffix) => (&mut self.wildcard, suffix),
        };
        if map.contains_key(name) {
            return false;
        }
        map.insert(name.clone(), key);
        true
    }

    /// Whether `host` already has a certificate of its own (not the default).
    pub fn contains(&self, host: &HostRule) -> bool {
        match host {
            HostRule::Any => false,
            HostRule::Exact(name) => self.exact.contains_key(name),
            HostRule::Wildcard(suffix) => self.wildcard.contains_key(suffix),
        }
    }

    /// Whether requests for hosts of `rule` are served with a configured
    /// certificate: the host's own or a wildcard covering it.
    pub fn covers(&self, rule: &HostRule) -> bool {
        match rule {
            HostRule::Any => false,
            HostRule::Exact(name) => self.lookup_configured(name).is_some(),
            HostRule::Wildcard(suffix) => self.wildcard.contains_key(suffix),
        }
    }

    /// The configured certificate for server name `name` (case-insensitive).
    pub fn lookup_configured(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.exact
            .get(name.as_str())
            .or_else(|| wildcard_suffix(&name).and_then(|suffix| self.wildcard.get(suffix)))
    }

    /// The certificate for a handshake: the configured one for the SNI name,
    /// else the default (also when the client sent no SNI).
    pub fn lookup(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        sni.and_then(|name| self.lookup_configured(name))
            .unwrap_or(&self.default)
    }

    /// The default certificate.
    pub fn default_key(&self) -> &Arc<CertifiedKey> {
        &self.default
    }

    /// Number of hosts with a configured certificate.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether no host has a configured certificate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for CertStore {
    // Host names only: never print key handles.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut exact: Vec<_> = self.exact.keys().collect();
        exact.sort();
        let mut wildcard: Vec<_> = self.wildcard.keys().collect();
        wildcard.sort();
        f.debug_struct("CertStore")
            .field("exact", &exact)
            .field("wildcard", &wildcard)
            .finish_non_exhaustive()
    }
}

/// The rustls certificate resolver: SNI → certificate from the current
/// [`CertStore`].
///
/// It exists so certificates change without restarting listeners: the
/// rebuild swaps the store, and the next handshake sees it.
#[derive(Debug, Clone)]
pub struct SniResolver {
    store: Arc<ArcSwap<CertStore>>,
}

impl SniResolver {
    /// A resolver reading `store`.
    pub fn new(store: Arc<ArcSwap<CertStore>>) -> Self {
        Self { store }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let store = self.store.load();
        Some(store.lookup(client_hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::default_certificate;

    #[test]
    fn lookup_prefers_exact_then_wildcard_then_default() {
        let p = rustls::crypto::ring::default_provider();
        let key = || default_certificate(&p).expect("cert");
        let (default, exact, wild) = (key(), key(), key());
        let mut store = CertStore::new(default.clone());
        let h = |s: &str| HostRule::new(s).expect("host");
        assert!(store.insert(&h("a.foo.com"), exact.clone()));
        assert!(store.insert(&h("*.foo.com"), wild.clone()));
        assert!(!store.insert(&h("a.foo.com"), wild.clone()), "first wins");
        assert!(!store.insert(&HostRule::Any, wild.clone()));
        let is = |got: &Arc<CertifiedKey>, want: &Arc<CertifiedKey>| Arc::ptr_eq(got, want);
        assert!(is(store.lookup(Some("a.foo.com")), &exact));
        assert!(is(store.lookup(Some("A.Foo.Com")), &exact));
        assert!(is(store.lookup(Some("b.foo.com")), &wild));
        assert!(is(store.lookup(Some("x.b.foo.com")), &default));
        assert!(is(store.lookup(Some("foo.com")), &default));
        assert!(is(store.lookup(None), &default));
        assert!(store.covers(&h("a.foo.com")));
        assert!(store.covers(&h("zzz.foo.com")));
        assert!(store.covers(&h("*.foo.com")));
        assert!(!store.covers(&h("foo.com")));
        assert!(!store.covers(&HostRule::Any));
        assert_eq!(store.len(), 2);
        assert!(!format!("{store:?}").contains("key"));
    }
}
