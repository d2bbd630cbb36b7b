//! Choosing an endpoint for a request: round-robin (the default, as in
//! ingress-nginx) or peak EWMA (`load-balance: ewma`), which sends more
//! requests to endpoints that answer faster and have fewer requests in
//! flight.
//!
//! EWMA follows the design ingress-nginx (and Finagle, linkerd) use: each
//! endpoint keeps an exponentially weighted moving average of its
//! response-head latency, decaying with a 10 s time constant, and a request
//! picks the better of two random endpoints by `ewma × (in flight + 1)`
//! ("power of two choices"), so one slow sample never starves an endpoint
//! and load still spreads.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How an upstream's endpoints share requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Balance {
    /// Each request goes to the next endpoint in turn.
    #[default]
    RoundRobin,
    /// The better of two random endpoints by latency and load.
    Ewma,
}

impl Balance {
    /// Parses ingress-nginx's `load-balance` values.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "round_robin" => Some(Self::RoundRobin),
            "ewma" => Some(Self::Ewma),
            _ => None,
        }
    }
}

/// How fast old latency samples fade (ingress-nginx's decay time).
const DECAY: Duration = Duration::from_secs(10);

/// The latency an endpoint that failed to connect is charged, so the next
/// choices avoid it until it answers well again.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// One endpoint's latency average and requests in flight.
#[derive(Debug)]
pub struct EndpointStats {
    /// The average in nanoseconds, as `f64` bits (0: no sample yet).
    ewma_ns: AtomicU64,
    /// When the average was last updated, in nanoseconds since `epoch`.
    updated_ns: AtomicU64,
    in_flight: AtomicU32,
    epoch: Instant,
}

impl Default for EndpointStats {
    fn default() -> Self {
        Self {
            ewma_ns: AtomicU64::new(0f64.to_bits()),
            updated_ns: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            epoch: Instant::now(),
        }
    }
}

impl EndpointStats {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The average as of `now`: it fades towards 0 while no sample
    /// arrives, so an endpoint that was slow once is tried again later
    /// (as ingress-nginx's EWMA does).
    fn decayed(&self, now: u64) -> f64 {
        let ewma = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let elapsed = now.saturating_sub(self.updated_ns.load(Ordering::Relaxed)) as f64;
        ewma * (-elapsed / DECAY.as_nanos() as f64).exp()
    }

    /// The cost of sending one more request here: the (faded) average
    /// latency times the requests that would then be in flight. An
    /// endpoint without samples costs nothing, so new endpoints get tried.
    pub fn score(&self) -> f64 {
        self.decayed(self.now_ns()) * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Folds one latency sample, taken at `at`, into the average: the
    /// older the average, the less it weighs. A peak (a sample above the
    /// average) replaces it outright, so a sudden slowdown is felt at once.
    pub fn observe(&self, latency: Duration, at: Instant) {
        let now = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        let sample = latency.as_nanos() as f64;
        let last = self.updated_ns.load(Ordering::Relaxed);
        let old = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let next = if old == 0.0 || sample > old {
            sample
        } else {
            let elapsed = now.saturating_sub(last) as f64;
            let weight = (-elapsed / DECAY.as_nanos() as f64).exp();
            old * weight + sample * (1.0 - weight)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
        self.updated_ns.store(now, Ordering::Relaxed);
    }
}

/// A request in flight to one endpoint (see [`EndpointStats::begin`]).
#[derive(Debug)]
pub struct InFlight(Arc<EndpointStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The index of the better of two distinct random endpoints of `stats`
/// (`random` supplies the two draws); `None` when there are none.
pub fn pick_two(stats: &[Arc<EndpointStats>], random: (u64, u64)) -> Option<usize> {
    let len = stats.len();
    match len {
        0 => None,
        1 => Some(0),
        _ => {
            let a = (random.0 % len as u64) as usize;
            // A second index distinct from the first.
            let b = (a + 1 + (random.1 % (len as u64 - 1)) as usize) % len;
            let (sa, sb) = (stats[a].score(), stats[b].score());
            Some(if sb < sa { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ewma(ms: u64) -> Arc<EndpointStats> {
        let s = Arc::new(EndpointStats::default());
        s.observe(Duration::from_millis(ms), Instant::now());
        s
    }

    #[test]
    fn parses_ingress_nginx_values() {
        assert_eq!(Balance::parse("ewma"), Some(Balance::Ewma));
        assert_eq!(Balance::parse(" round_robin "), Some(Balance::RoundRobin));
        assert_eq!(Balance::parse("chash"), None);
    }

    #[test]
    fn the_faster_of_two_wins_and_in_flight_requests_count() {
        let stats = vec![with_ewma(50), with_ewma(5)];
        for r in 0..20 {
            assert_eq!(pick_two(&stats, (r, r * 7)), Some(1));
        }
        // Ten requests in flight on the fast one make it cost more (5 × 11
        // > 50 × 1).
        let guards: Vec<InFlight> = (0..10).map(|_| stats[1].begin()).collect();
        assert_eq!(pick_two(&stats, (0, 0)), Some(0));
        drop(guards);
        assert_eq!(pick_two(&stats, (0, 0)), Some(1));
        // An endpoint without samples is tried.
        let fresh = vec![with_ewma(5), Arc::new(EndpointStats::default())];
        assert_eq!(pick_two(&fresh, (0, 0)), Some(1));
        assert_eq!(pick_two(&[], (0, 0)), None);
    }

    #[test]
    fn a_peak_counts_at_once_and_a_recovery_fades_in() {
        let s = with_ewma(10);
        s.observe(Duration::from_millis(100), Instant::now());
        assert!(
            s.score() > 99e6,
            "a peak replaces the average: {}",
            s.score()
        );
        // Faster answers right after pull the average down only a little:
        // almost no time has passed, so the old average still weighs.
        s.observe(Duration::from_millis(1), Instant::now());
        assert!(s.score() > 90e6, "{}", s.score());
        // Distinct indices even with equal draws.
        let three = vec![with_ewma(1), with_ewma(1), with_ewma(1)];
        for r in 0..30 {
            assert!(pick_two(&three, (r, r)).is_some());
        }
    }
}
