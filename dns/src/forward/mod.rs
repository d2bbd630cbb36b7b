//! Forwarding of names outside the cluster zone to upstream resolvers,
//! through the [`Cache`].
//!
//! Only questions the authority declined reach this module, so the cluster
//! zone is never cached here and can never be served stale.

mod cache;
mod upstream;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::Query;
use hickory_proto::rr::RecordType;

pub use cache::{Cache, Cached, STALE_TTL};

use crate::error::ForwardError;

/// How long past expiry an entry may still be served when every upstream
/// fails (RFC 8767 suggests one to three days).
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A live cache entry.
    Cache,
    /// An upstream, just now.
    Upstream,
    /// An expired cache entry, because every upstream failed.
    Stale,
}

/// The upstream resolvers and their cache.
///
/// It exists so the transports can hand over any name the authority does
/// not own and get an answer back, cached, with upstream failures handled.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<Cache>,
}

impl Forwarder {
    /// A forwarder to `upstreams` (tried in order), each given `timeout`.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, cache: Cache) -> Forwarder {
        Forwarder {
            upstreams,
            timeout,
            cache: Mutex::new(cache),
        }
    }

    /// Whether any upstream is configured.
    pub fn enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer `query` from the cache or an upstream.
    pub async fn resolve(&self, query: &Query) -> Result<(Cached, Source), ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let key = (
            query.name.to_lowercase(),
            query.query_type,
            query.query_class,
        );
        if let Some(hit) = self.lock().get(&key, Instant::now()) {
            return Ok((hit, Source::Cache));
        }
        let mut last = ForwardError::NoUpstream;
        for server in &self.upstreams {
            match upstream::exchange(*server, query, self.timeout).await {
                Ok(mut message) => {
                    let cached = Cached {
                        rcode: message.metadata.response_code,
                        answers: std::mem::take(&mut message.answers),
                        authorities: std::mem::take(&mut message.authorities),
                        additionals: std::mem::take(&mut message.additionals)
                            .into_iter()
                            .filter(|r| r.record_type() != RecordType::OPT)
                            .collect(),
                    };
                    self.lock().insert(key, cached.clone(), Instant::now());
                    return Ok((cached, Source::Upstream));
                }
                Err(error) => {
                    tracing::warn!(upstream = %server, %error, name = %query.name, "upstream failed");
                    last = error;
                }
            }
        }
        match self.lock().get_stale(&key, Instant::now()) {
            Some(stale) => Ok((stale, Source::Stale)),
            None => Err(last),
        }
    }
}
