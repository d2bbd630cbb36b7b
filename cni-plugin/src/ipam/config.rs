//! The `ipam` section: ranges (host-local's format), data directory.
//!
//! ```json
//! "ipam": {
//!   "type": "strait-ipam",
//!   "ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10"}],
//!              [{"subnet": "fd00:10:244:1::/64"}]],
//!   "dataDir": "/var/lib/cni/strait",
//!   "lockTimeoutMs": 10000,
//!   "routes": [{"dst": "0.0.0.0/0"}]
//! }
//! ```
//! `subnet` (with `rangeStart`, `rangeEnd`, `gateway`) at the top level is
//! shorthand for one range set with one range. `routes` are only returned
//! by the standalone `strait-ipam` plugin (an interface plugin installs
//! them); `lockTimeoutMs` bounds the wait for the store's lock.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

use super::store::DEFAULT_LOCK_TIMEOUT;
use crate::result::RouteEntry;

/// The default store: survives reboots, like host-local's.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/strait";

/// The longest `lockTimeoutMs` accepted: ten minutes, beyond any runtime's
/// patience.
pub const MAX_LOCK_TIMEOUT_MS: u64 = 600_000;

/// IPAM plugin types this built-in IPAM answers to.
pub const IPAM_TYPES: [&str; 2] = ["strait-ipam", "strait"];

/// Why the `ipam` section was refused (code 7, or 2 for another IPAM
/// type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamConfigError {
    /// No `ipam` section.
    #[error("network config has no \"ipam\" section")]
    Missing,
    /// A key has the wrong shape.
    #[error("invalid ipam config: {0}")]
    Invalid(String),
    /// A delegated IPAM plugin was asked for; only the built-in one exists.
    #[error("unsupported ipam type {0:?}: strait-cni has its IPAM built in (type \"strait-ipam\")")]
    UnsupportedType(String),
}

/// One contiguous range inside a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet the range belongs to.
    pub subnet: IpNetwork,
    /// First assignable address.
    pub start: IpAddr,
    /// Last assignable address.
    pub end: IpAddr,
    /// The gateway, never assigned.
    pub gateway: Option<IpAddr>,
}

/// Ranges of one address family that together yield one address per
/// attachment (host-local's "range set").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// The ranges, tried in order.
    pub ranges: Vec<Range>,
}

/// The parsed `ipam` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// One address is allocated from each set (v4 and v6 for dual-stack).
    pub range_sets: Vec<RangeSet>,
    /// Where the store lives (one subdirectory per network).
    pub data_dir: PathBuf,
    /// Routes the standalone plugin reports with the addresses.
    pub routes: Vec<RouteEntry>,
    /// How long to wait for the store's lock before answering code 11.
    pub lock_timeout: Duration,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    gw: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    subnet: String,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(rename = "type")]
    ipam_type: Option<String>,
    ranges: Option<Vec<Vec<RawRange>>>,
    subnet: Option<String>,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
    data_dir: Option<String>,
    routes: Option<Vec<RawRoute>>,
    lock_timeout_ms: Option<u64>,
}

fn invalid(msg: impl Into<String>) -> IpamConfigError {
    IpamConfigError::Invalid(msg.into())
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` as the same family as `like`.
pub(crate) fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(n).unwrap_or(u32::MAX).into()),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

impl Range {
    /// The range as integers, inclusive.
    pub fn bounds(&self) -> (u128, u128) {
        (to_u128(self.start), to_u128(self.end))
    }

    /// Whether `ip` may be handed out from this range: inside it and not
    /// the gateway.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (lo, hi) = self.bounds();
        let n = to_u128(ip);
        ip.is_ipv4() == self.start.is_ipv4() && lo <= n && n <= hi && Some(ip) != self.gateway
    }

    fn parse(raw: &RawRange) -> Result<Self, IpamConfigError> {
        let subnet: IpNetwork = raw
            .subnet
            .parse()
            .map_err(|e| invalid(format!("subnet {:?}: {e}", raw.subnet)))?;
        let ip = |key: &str, value: &Option<String>| -> Result<Option<IpAddr>, IpamConfigError> {
            value
                .as_deref()
                .map(|v| {
                    let ip: IpAddr = v
                        .parse()
                        .map_err(|e| invalid(format!("{key} {v:?}: {e}")))?;
                    if subnet.contains(ip) {
                        Ok(ip)
                    } else {
                        Err(invalid(format!("{key} {ip} is outside subnet {subnet}")))
                    }
                })
                .transpose()
        };
        let network = to_u128(subnet.network());
        let last = match subnet {
            IpNetwork::V4(n) => to_u128(IpAddr::V4(n.broadcast())),
            IpNetwork::V6(n) => {
                let host_bits = 128 - u32::from(n.prefix());
                network | (u128::MAX.checked_shr(128 - host_bits).unwrap_or(0))
            }
        };
        // Like host-local: never the network address, and for IPv4 never
        // the broadcast address.
        let first_host = network.saturating_add(1);
        let last_host = if subnet.is_ipv4() {
            last.saturating_sub(1)
        } else {
            last
        };
        if first_host > last_host {
            return Err(invalid(format!(
                "subnet {subnet} has no assignable address"
            )));
        }
        let like = subnet.network();
        let start =
            ip("rangeStart", &raw.range_start)?.unwrap_or_else(|| from_u128(like, first_host));
        let end = ip("rangeEnd", &raw.range_end)?.unwrap_or_else(|| from_u128(like, last_host));
        let (lo, hi) = (to_u128(start).max(first_host), to_u128(end).min(last_host));
        if lo > hi {
            return Err(invalid(format!("range {start}-{end} of {subnet} is empty")));
        }
        Ok(Self {
            subnet,
            start: from_u128(like, lo),
            end: from_u128(like, hi),
            gateway: ip("gateway", &raw.gateway)?,
        })
    }
}

impl IpamConfig {
    /// Parse the `ipam` value of the network configuration.
    pub fn parse(ipam: Option<&Value>) -> Result<Self, IpamConfigError> {
        let ipam = ipam.ok_or(IpamConfigError::Missing)?;
        let raw = RawIpam::deserialize(ipam).map_err(|e| invalid(e.to_string()))?;
        if let Some(t) = raw.ipam_type.as_deref()
            && !IPAM_TYPES.contains(&t)
        {
            return Err(IpamConfigError::UnsupportedType(t.to_owned()));
        }
        let sets: Vec<Vec<RawRange>> = match (raw.ranges, raw.subnet) {
            (Some(_), Some(_)) => {
                return Err(invalid("give either \"ranges\" or \"subnet\", not both"));
            }
            (Some(ranges), None) => ranges,
            (None, Some(subnet)) => vec![vec![RawRange {
                subnet,
                range_start: raw.range_start,
                range_end: raw.range_end,
                gateway: raw.gateway,
            }]],
            (None, None) => return Err(invalid("no \"ranges\" and no \"subnet\"")),
        };
        if sets.is_empty() {
            return Err(invalid("\"ranges\" is empty"));
        }
        let mut range_sets = Vec::with_capacity(sets.len());
        for set in &sets {
            let ranges = set
                .iter()
                .map(Range::parse)
                .collect::<Result<Vec<_>, _>>()?;
            let Some(first) = ranges.first() else {
                return Err(invalid("a range set is empty"));
            };
            let v4 = first.subnet.is_ipv4();
            if ranges.iter().any(|r| r.subnet.is_ipv4() != v4) {
                return Err(invalid("a range set mixes IPv4 and IPv6"));
            }
            for (i, a) in ranges.iter().enumerate() {
                for b in &ranges[i + 1..] {
                    let ((a0, a1), (b0, b1)) = (a.bounds(), b.bounds());
                    if a0 <= b1 && b0 <= a1 {
                        return Err(invalid(format!(
                            "ranges {}-{} and {}-{} overlap",
                            a.start, a.end, b.start, b.end
                        )));
                    }
                }
            }
            range_sets.push(RangeSet { ranges });
        }
        let data_dir = raw
            .data_dir
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
        let routes = raw
            .routes
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let dst = r
                    .dst
                    .parse()
                    .map_err(|e| invalid(format!("route dst {:?}: {e}", r.dst)))?;
                let gw =
                    r.gw.as_deref()
                        .map(|g| {
                            g.parse::<IpAddr>()
                                .map_err(|e| invalid(format!("route gw {g:?}: {e}")))
                        })
                        .transpose()?;
                Ok(RouteEntry { dst, gw })
            })
            .collect::<Result<Vec<_>, IpamConfigError>>()?;
        let lock_timeout = match raw.lock_timeout_ms {
            None => DEFAULT_LOCK_TIMEOUT,
            Some(ms) if ms <= MAX_LOCK_TIMEOUT_MS => Duration::from_millis(ms),
            Some(ms) => {
                return Err(invalid(format!(
                    "lockTimeoutMs {ms} is above the maximum {MAX_LOCK_TIMEOUT_MS}"
                )));
            }
        };
        Ok(Self {
            range_sets,
            data_dir,
            routes,
            lock_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<IpamConfig, IpamConfigError> {
        IpamConfig::parse(Some(&v))
    }

    #[test]
    fn shorthand_subnet_excludes_network_and_broadcast() {
        let c = parse(json!({"type": "strait-ipam", "subnet": "10.244.1.0/24"})).expect("ok");
        let r = &c.range_sets[0].ranges[0];
        assert_eq!(r.start.to_string(), "10.244.1.1");
        assert_eq!(r.end.to_string(), "10.244.1.254");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.lock_timeout, DEFAULT_LOCK_TIMEOUT);
        assert!(c.routes.is_empty());
    }

    #[test]
    fn routes_and_lock_timeout() {
        let c = parse(json!({"subnet": "10.244.1.0/24", "lockTimeoutMs": 250,
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00::/8", "gw": "fd00::1"}]}))
        .expect("ok");
        assert_eq!(c.lock_timeout, Duration::from_millis(250));
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].gw, None);
        assert_eq!(c.routes[1].dst.to_string(), "fd00::/8");
        for bad in [
            json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "x"}]}),
            json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": "y"}]}),
            json!({"subnet": "10.0.0.0/24", "routes": {"dst": "0.0.0.0/0"}}),
            json!({"subnet": "10.0.0.0/24", "lockTimeoutMs": -1}),
            json!({"subnet": "10.0.0.0/24", "lockTimeoutMs": 600_001}),
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(IpamConfigError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn dual_stack_ranges_with_bounds_and_gateway() {
        let c = parse(json!({
            "ranges": [
                [{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10",
                  "rangeEnd": "10.244.1.20", "gateway": "10.244.1.10"}],
                [{"subnet": "fd00:10:244:1::/120"}],
            ],
            "dataDir": "/tmp/x",
        }))
        .expect("ok");
        assert_eq!(c.range_sets.len(), 2);
        let v4 = &c.range_sets[0].ranges[0];
        assert!(!v4.contains("10.244.1.10".parse().expect("ip")), "gateway");
        assert!(v4.contains("10.244.1.11".parse().expect("ip")));
        assert!(!v4.contains("10.244.1.21".parse().expect("ip")));
        let v6 = &c.range_sets[1].ranges[0];
        assert_eq!(v6.start.to_string(), "fd00:10:244:1::1");
        assert_eq!(v6.end.to_string(), "fd00:10:244:1::ff");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(IpamConfig::parse(None), Err(IpamConfigError::Missing));
        for bad in [
            json!({"subnet": "nope"}),
            json!({"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}),
            json!({"subnet": "10.0.0.0/32"}),
            json!({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.2"}),
            json!({}),
            json!({"ranges": []}),
            json!({"ranges": [[]]}),
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}),
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]}),
            json!({"subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/24"}]]}),
            json!("x"),
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(IpamConfigError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse(json!({"type": "host-local", "subnet": "10.0.0.0/24"})),
            Err(IpamConfigError::UnsupportedType("host-local".into()))
        );
    }
}
