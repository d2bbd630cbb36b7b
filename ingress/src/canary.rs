//! Canary releases (`nginx.ingress.kubernetes.io/canary: "true"`): a second
//! Ingress for the same host and path whose backend takes part of the
//! traffic, by header (`canary-by-header`) or by weight (`canary-weight`).
//!
//! The split by weight is deterministic: request `n` of a route goes to the
//! canary when `(n · 37) mod 100 < weight`. Since 37 and 100 are coprime,
//! every 100 consecutive requests send exactly `weight` of them to the
//! canary, spread out rather than in a block, and no random number
//! generator is needed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;

use crate::annotations::CanarySettings;
use crate::router::Target;

/// The canary of one host/path: where its traffic goes and how it is
/// chosen.
///
/// It exists so the main route carries its alternative backend and the
/// handler decides per request without looking anything up.
#[derive(Debug)]
pub struct Canary {
    /// `namespace/name` of the canary Ingress.
    pub ingress: Arc<str>,
    /// The canary's backend.
    pub target: Target,
    /// Weight and header.
    pub settings: CanarySettings,
    /// Requests decided by weight so far.
    counter: AtomicU64,
}

impl Canary {
    /// The canary of `ingress` going to `target`.
    pub fn new(ingress: Arc<str>, target: Target, settings: CanarySettings) -> Self {
        Self {
            ingress,
            target,
            settings,
            counter: AtomicU64::new(0),
        }
    }

    /// Whether a request with `headers` goes to the canary: the
    /// `canary-by-header` header set to `always` or `never` decides; any
    /// other value (or none) falls through to the weight.
    pub fn takes(&self, headers: &HeaderMap) -> bool {
        if let Some(name) = &self.settings.header {
            match headers.get(name).map(|v| v.as_bytes()) {
                Some(b"always") => return true,
                Some(b"never") => return false,
                _ => {}
            }
        }
        match self.settings.weight {
            0 => false,
            w if w >= 100 => true,
            w => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                (n % 100) * 37 % 100 < u64::from(w)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    fn canary(weight: u8, header: Option<&str>) -> Canary {
        Canary::new(
            Arc::from("apps/canary"),
            Target::Unavailable(Arc::from("test")),
            CanarySettings {
                weight,
                header: header.map(|h| HeaderName::from_bytes(h.as_bytes()).expect("name")),
            },
        )
    }

    #[test]
    fn weight_sends_exactly_that_share_of_every_hundred_requests() {
        let none = HeaderMap::new();
        for weight in [0u8, 1, 30, 50, 99, 100] {
            let c = canary(weight, None);
            for _ in 0..3 {
                let taken = (0..100).filter(|_| c.takes(&none)).count();
                assert_eq!(taken, usize::from(weight));
            }
        }
        // Spread out: 50% alternates rather than running in a block.
        let c = canary(50, None);
        let first: Vec<bool> = (0..10).map(|_| c.takes(&none)).collect();
        assert!(first.iter().any(|t| *t) && first.iter().any(|t| !*t));
    }

    #[test]
    fn header_always_and_never_override_the_weight() {
        let c = canary(0, Some("x-canary"));
        let mut h = HeaderMap::new();
        assert!(!c.takes(&h));
        h.insert("x-canary", HeaderValue::from_static("always"));
        assert!(c.takes(&h));
        let c = canary(100, Some("x-canary"));
        h.insert("x-canary", HeaderValue::from_static("never"));
        assert!(!c.takes(&h));
        h.insert("x-canary", HeaderValue::from_static("other"));
        assert!(c.takes(&h));
    }
}
