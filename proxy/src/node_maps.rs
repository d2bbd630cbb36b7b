//! The node-wide maps of the external datapath: which addresses are this
//! node's (NodePorts answer there), which endpoints live on it (reached
//! without SNAT), the node's SNAT address, and the conntrack table's
//! garbage collection.
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use aya::maps::{Array, HashMap, Map, MapData};
use strait_cluster::ClusterSnapshot;
use strait_ebpf_common::{CT_F_CLOSING, CtKey, CtValue, NodeConfig, PROTO_TCP, maps};

use crate::ProxyError;

/// Idle time after which a TCP flow's conntrack entries are removed.
pub const CT_TCP_IDLE_NS: u64 = 3_600 * 1_000_000_000;
/// Idle time after which a UDP flow's conntrack entries are removed.
pub const CT_UDP_IDLE_NS: u64 = 120 * 1_000_000_000;
/// Idle time after which an entry that saw a FIN or RST is removed (the
/// last ACKs and retransmissions still find it).
pub const CT_CLOSING_IDLE_NS: u64 = 10 * 1_000_000_000;

/// Owns the node maps and remembers what it wrote.
pub struct NodeMaps {
    addrs: HashMap<MapData, u32, u32>,
    local: HashMap<MapData, u32, u32>,
    config: Array<MapData, NodeConfig>,
    /// An LRU hash in the kernel; aya reads both kinds as `HashMap`.
    conntrack: HashMap<MapData, CtKey, CtValue>,
    known_addrs: BTreeSet<Ipv4Addr>,
    known_local: BTreeSet<Ipv4Addr>,
    primary: Option<Ipv4Addr>,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> ProxyError {
    move |source| ProxyError::Map { map, source }
}

fn word(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

impl NodeMaps {
    pub(crate) fn new(
        addrs: Map,
        local: Map,
        config: Map,
        conntrack: Map,
    ) -> Result<Self, ProxyError> {
        let addrs: HashMap<MapData, u32, u32> =
            HashMap::try_from(addrs).map_err(map_err(maps::NODE_ADDRS))?;
        let local: HashMap<MapData, u32, u32> =
            HashMap::try_from(local).map_err(map_err(maps::LOCAL_ENDPOINTS))?;
        // Recover what a previous agent wrote, so the next sync only diffs.
        let decode = |m: &HashMap<MapData, u32, u32>| -> BTreeSet<Ipv4Addr> {
            m.keys()
                .filter_map(Result::ok)
                .map(|w| Ipv4Addr::from(w.to_ne_bytes()))
                .collect()
        };
        let known_addrs = decode(&addrs);
        let known_local = decode(&local);
        Ok(Self {
            addrs,
            local,
            config: Array::try_from(config).map_err(map_err(maps::NODE_CONFIG))?,
            conntrack: HashMap::try_from(conntrack).map_err(map_err(maps::CONNTRACK))?,
            known_addrs,
            known_local,
            primary: None,
        })
    }

    /// Makes the node address map equal to `addrs`, and `primary` the
    /// address SNATed flows leave with. Returns whether anything changed.
    pub fn set_addresses(
        &mut self,
        addrs: &BTreeSet<Ipv4Addr>,
        primary: Option<Ipv4Addr>,
    ) -> Result<bool, ProxyError> {
        let mut changed = false;
        for ip in addrs.difference(&self.known_addrs.clone()) {
            self.addrs
                .insert(word(*ip), 1, 0)
                .map_err(map_err(maps::NODE_ADDRS))?;
            changed = true;
        }
        for ip in self.known_addrs.difference(addrs) {
            let _ = self.addrs.remove(&word(*ip));
            changed = true;
        }
        self.known_addrs = addrs.clone();
        if primary != self.primary {
            let cfg = NodeConfig {
                primary_v4: primary.map_or(0, word),
                pad: 0,
            };
            self.config
                .set(0, cfg, 0)
                .map_err(map_err(maps::NODE_CONFIG))?;
            self.primary = primary;
            changed = true;
        }
        Ok(changed)
    }

    /// Makes the local endpoint map equal to `endpoints`.
    pub fn set_local_endpoints(
        &mut self,
        endpoints: &BTreeSet<Ipv4Addr>,
    ) -> Result<(), ProxyError> {
        for ip in endpoints.difference(&self.known_local.clone()) {
            self.local
                .insert(word(*ip), 1, 0)
                .map_err(map_err(maps::LOCAL_ENDPOINTS))?;
        }
        for ip in self.known_local.difference(endpoints) {
            let _ = self.local.remove(&word(*ip));
        }
        self.known_local = endpoints.clone();
        Ok(())
    }

    /// Removes conntrack entries of flows idle longer than their protocol's
    /// timeout and of flows whose backend is gone (`live` says which backend
    /// ids exist), so a UDP flow moves to a live backend at its next packet.
    /// Returns how many entries were removed.
    pub fn gc_conntrack(&mut self, now_ns: u64, live: impl Fn(u32) -> bool) -> usize {
        let stale: Vec<CtKey> = self
            .conntrack
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| {
                let idle = if v.flags & CT_F_CLOSING != 0 {
                    CT_CLOSING_IDLE_NS
                } else if k.proto == PROTO_TCP {
                    CT_TCP_IDLE_NS
                } else {
                    CT_UDP_IDLE_NS
                };
                now_ns.saturating_sub(v.last_seen_ns) > idle || !live(v.backend_id)
            })
            .map(|(k, _)| k)
            .collect();
        let mut removed = 0;
        for key in stale {
            if self.conntrack.remove(&key).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Entries in the conntrack map (for metrics and tests).
    pub fn conntrack_entries(&self) -> usize {
        self.conntrack.keys().count()
    }
}

/// IPv4 addresses of endpoints on `node` (any service), from the
/// EndpointSlices' `nodeName`.
pub fn local_endpoints(snapshot: &ClusterSnapshot, node: &str) -> BTreeSet<Ipv4Addr> {
    snapshot
        .endpoint_slices()
        .values()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.node_name.as_deref() == Some(node))
        .flat_map(|e| e.addresses.iter())
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// This node's IPv4 addresses (all interfaces but loopback), filtered by
/// kube-proxy's `--nodeport-addresses` CIDRs when given, and the first
/// address of `interface` as the SNAT source.
pub fn node_addresses(
    interface: &str,
    cidrs: &[ipnetwork::Ipv4Network],
) -> (BTreeSet<Ipv4Addr>, Option<Ipv4Addr>) {
    let mut all = BTreeSet::new();
    let mut primary = None;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return (all, primary);
    };
    for ifa in addrs {
        let Some(v4) = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|s| s.ip())
        else {
            continue;
        };
        if v4.is_loopback() {
            continue;
        }
        if ifa.interface_name == interface && primary.is_none() {
            primary = Some(v4);
        }
        if cidrs.is_empty() || cidrs.iter().any(|c| c.contains(v4)) {
            all.insert(v4);
        }
    }
    (all, primary)
}
