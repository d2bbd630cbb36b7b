//! The server's settings, validated once at start-up.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::name::Zone;

/// Default TTL of cluster records, in seconds (CoreDNS uses the same).
pub const DEFAULT_TTL: u32 = 30;

/// How `<a-b-c-d>.<ns>.pod.<zone>` names are answered (CoreDNS `pods`).
///
/// It exists because the record is deprecated and lets anyone mint a name
/// for any address; clusters choose how much of it to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodRecords {
    /// No pod records: NXDOMAIN.
    Disabled,
    /// Any well-formed address in any namespace is answered (kube-dns
    /// behaviour).
    #[default]
    Insecure,
    /// Only addresses of watched pods in that namespace are answered.
    Verified,
}

/// A `--pod-records` value that is not `disabled`, `insecure` or `verified`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod records must be disabled, insecure or verified, not {0:?}")]
pub struct PodRecordsError(pub String);

impl FromStr for PodRecords {
    type Err = PodRecordsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disabled" => Ok(Self::Disabled),
            "insecure" => Ok(Self::Insecure),
            "verified" => Ok(Self::Verified),
            other => Err(PodRecordsError(other.to_owned())),
        }
    }
}

/// Everything `strait dns` is configured with.
///
/// It exists so the binary, the tests and the benchmark start the same
/// server the same way.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// UDP and TCP address to serve DNS on.
    pub listen: SocketAddr,
    /// Address of the HTTP server for `/health`, `/ready` and `/metrics`;
    /// `None` disables it.
    pub http: Option<SocketAddr>,
    /// The cluster zone.
    pub zone: Zone,
    /// Pod record policy.
    pub pod_records: PodRecords,
    /// TTL of cluster records and of the SOA's negative TTL.
    pub ttl: u32,
    /// Upstream resolvers for names outside the cluster zone; empty means
    /// such queries are refused.
    pub upstreams: Vec<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub upstream_timeout: Duration,
    /// Most entries kept in the forward cache.
    pub cache_entries: usize,
    /// Longest TTL the forward cache honours.
    pub cache_max_ttl: u32,
    /// Largest UDP response we send, whatever the client advertises.
    pub max_udp_payload: u16,
    /// Most TCP connections served at once.
    pub max_tcp_connections: usize,
    /// Most forwarded queries in flight at once.
    pub max_forwards_in_flight: usize,
    /// Walk a client's search list on the server when its namespace is
    /// known from its address (needs Pods in the cluster view).
    pub autopath: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 53)),
            http: None,
            zone: Zone::default(),
            pod_records: PodRecords::default(),
            ttl: DEFAULT_TTL,
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(2),
            cache_entries: 10_000,
            cache_max_ttl: 3600,
            max_udp_payload: 1232,
            max_tcp_connections: 1024,
            max_forwards_in_flight: 1024,
            autopath: false,
        }
    }
}
