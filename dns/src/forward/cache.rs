//! The forward cache: positive and negative answers from upstream, bounded
//! in size, each kept for its TTL (RFC 2308 for negative answers), and
//! kept a while longer for serve-stale (RFC 8767).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// TTL of an answer served stale (RFC 8767 recommends 30 s).
pub const STALE_TTL: u32 = 30;

/// The question an entry answers; the name is lowercase.
pub(crate) type Key = (Name, RecordType, DNSClass);

/// An upstream answer, as cached and as returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The response code.
    pub rcode: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authorities: Vec<Record>,
    /// The additional section (without OPT).
    pub additionals: Vec<Record>,
}

#[derive(Debug)]
struct Entry {
    value: Cached,
    stored: Instant,
    ttl: u32,
}

/// A bounded map of upstream answers.
///
/// It exists so repeated external names cost no upstream round trip, while
/// never holding an answer past its TTL (except as a last resort when
/// upstreams fail).
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Key, Entry>,
    capacity: usize,
    max_ttl: u32,
    max_stale: Duration,
}

impl Cache {
    /// A cache of at most `capacity` entries, honouring TTLs up to
    /// `max_ttl` seconds and serving stale entries up to `max_stale` past
    /// expiry.
    pub fn new(capacity: usize, max_ttl: u32, max_stale: Duration) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity,
            max_ttl,
            max_stale,
        }
    }

    /// Entries held (live and stale).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live answer for `key` at `now`, with TTLs lowered by its age.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Cached> {
        let entry = self.entries.get(key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            return None;
        }
        Some(aged(&entry.value, age))
    }

    /// An expired answer for `key`, still within the serve-stale window,
    /// with every TTL set to [`STALE_TTL`].
    pub fn get_stale(&self, key: &Key, now: Instant) -> Option<Cached> {
        let entry = self.entries.get(key)?;
        let expiry = entry.stored + Duration::from_secs(u64::from(entry.ttl));
        if now > expiry + self.max_stale {
            return None;
        }
        let mut value = entry.value.clone();
        for r in value
            .answers
            .iter_mut()
            .chain(&mut value.authorities)
            .chain(&mut value.additionals)
        {
            r.ttl = STALE_TTL;
        }
        Some(value)
    }

    /// Store `value` for `key` if it is cacheable; returns whether it was.
    pub fn insert(&mut self, key: Key, value: Cached, now: Instant) -> bool {
        let Some(ttl) = cache_ttl(&value) else {
            return false;
        };
        let ttl = ttl.min(self.max_ttl);
        if ttl == 0 || self.capacity == 0 {
            return false;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.evict(now);
        }
        self.entries.insert(
            key,
            Entry {
                value,
                stored: now,
                ttl,
            },
        );
        true
    }

    /// Make room: drop everything past the stale window, and if that frees
    /// nothing, one arbitrary entry.
    fn evict(&mut self, now: Instant) {
        let max_stale = self.max_stale;
        self.entries
            .retain(|_, e| now <= e.stored + Duration::from_secs(u64::from(e.ttl)) + max_stale);
        if self.entries.len() >= self.capacity {
            // Prefer an expired entry; otherwise any.
            let victim = self
                .entries
                .iter()
                .find(|(_, e)| now >= e.stored + Duration::from_secs(u64::from(e.ttl)))
                .or_else(|| self.entries.iter().next())
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                self.entries.remove(&victim);
            }
        }
    }
}

/// How long an upstream answer may be cached: the smallest answer TTL for
/// a positive answer; for NXDOMAIN and NODATA the SOA's TTL bounded by its
/// minimum (RFC 2308 section 5); nothing for errors or answers without an
/// SOA to bound them.
fn cache_ttl(value: &Cached) -> Option<u32> {
    match value.rcode {
        ResponseCode::NoError if !value.answers.is_empty() => {
            value.answers.iter().map(|r| r.ttl).min()
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            value.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
        }
        _ => None,
    }
}

fn aged(value: &Cached, age: u32) -> Cached {
    let mut value = value.clone();
    for r in value
        .answers
        .iter_mut()
        .chain(&mut value.authorities)
        .chain(&mut value.additionals)
    {
        r.ttl = r.ttl.saturating_sub(age);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn positive(ttl: u32) -> Cached {
        Cached {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                name("a.example."),
                ttl,
                RData::A(A(std::net::Ipv4Addr::new(192, 0, 2, 1))),
            )],
            authorities: vec![],
            additionals: vec![],
        }
    }

    fn negative(ttl: u32, minimum: u32) -> Cached {
        let soa = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, minimum);
        Cached {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(name("example."), ttl, RData::SOA(soa))],
            additionals: vec![],
        }
    }

    fn key(s: &str) -> Key {
        (name(s), RecordType::A, DNSClass::IN)
    }

    #[test]
    fn positive_entries_age_and_expire() {
        let mut cache = Cache::new(10, 3600, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(cache.insert(key("a.example."), positive(10), t0));
        let hit = cache
            .get(&key("a.example."), t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(hit.answers[0].ttl, 6);
        assert!(
            cache
                .get(&key("a.example."), t0 + Duration::from_secs(10))
                .is_none()
        );
        let stale = cache
            .get_stale(&key("a.example."), t0 + Duration::from_secs(30))
            .unwrap();
        assert_eq!(stale.answers[0].ttl, STALE_TTL);
        assert!(
            cache
                .get_stale(&key("a.example."), t0 + Duration::from_secs(71))
                .is_none()
        );
    }

    #[test]
    fn negative_entries_use_soa_minimum() {
        let mut cache = Cache::new(10, 3600, Duration::ZERO);
        let t0 = Instant::now();
        assert!(cache.insert(key("x.example."), negative(300, 5), t0));
        assert!(
            cache
                .get(&key("x.example."), t0 + Duration::from_secs(4))
                .is_some()
        );
        assert!(
            cache
                .get(&key("x.example."), t0 + Duration::from_secs(5))
                .is_none()
        );
        // No SOA: not cacheable.
        let mut bare = negative(300, 5);
        bare.authorities.clear();
        assert!(!cache.insert(key("y.example."), bare, t0));
        // SERVFAIL is never cached.
        let mut fail = positive(10);
        fail.rcode = ResponseCode::ServFail;
        assert!(!cache.insert(key("z.example."), fail, t0));
    }

    #[test]
    fn size_is_bounded_and_ttl_capped() {
        let mut cache = Cache::new(3, 20, Duration::ZERO);
        let t0 = Instant::now();
        for i in 0..10 {
            cache.insert(key(&format!("h{i}.example.")), positive(1000), t0);
            assert!(cache.len() <= 3);
        }
        assert!(
            cache
                .get(&key("h9.example."), t0 + Duration::from_secs(19))
                .is_some()
        );
        assert!(
            cache
                .get(&key("h9.example."), t0 + Duration::from_secs(20))
                .is_none()
        );
    }
}
