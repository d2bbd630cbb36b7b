//! The node-wide maps of the external datapath: which addresses are this
//! node's (NodePorts answer there), which endpoints live on it (reached
//! without SNAT), the node's SNAT address, and the conntrack table's
//! garbage collection.
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{Array, HashMap, Map, MapData};
use strait_cluster::ClusterSnapshot;
use strait_ebpf_common::{
    AddrKey, CT_F_CLOSING, CtKey, CtValue, NodeConfig, PROTO_TCP, addr_from_words, addr_key,
    addr_to_words, maps,
};

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
    addrs: HashMap<MapData, AddrKey, u32>,
    local: HashMap<MapData, AddrKey, u32>,
    config: Array<MapData, NodeConfig>,
    /// An LRU hash in the kernel; aya reads both kinds as `HashMap`.
    conntrack: HashMap<MapData, CtKey, CtValue>,
    known_addrs: BTreeSet<IpAddr>,
    known_local: BTreeSet<IpAddr>,
    primary: (Option<Ipv4Addr>, Option<Ipv6Addr>),
}

/// Where this node serves NodePorts and which addresses SNATed flows leave
/// with, per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    /// Addresses NodePorts answer on (after the `--nodeport-addresses`
    /// filter).
    pub all: BTreeSet<IpAddr>,
    /// The first IPv4 address of the external interface.
    pub primary_v4: Option<Ipv4Addr>,
    /// The first global IPv6 address of the external interface.
    pub primary_v6: Option<Ipv6Addr>,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> ProxyError {
    move |source| ProxyError::Map { map, source }
}

impl NodeMaps {
    pub(crate) fn new(
        addrs: Map,
        local: Map,
        config: Map,
        conntrack: Map,
    ) -> Result<Self, ProxyError> {
        let addrs: HashMap<MapData, AddrKey, u32> =
            HashMap::try_from(addrs).map_err(map_err(maps::NODE_ADDRS))?;
        let local: HashMap<MapData, AddrKey, u32> =
            HashMap::try_from(local).map_err(map_err(maps::LOCAL_ENDPOINTS))?;
        // Recover what a previous agent wrote, so the next sync only diffs.
        let decode = |m: &HashMap<MapData, AddrKey, u32>| -> BTreeSet<IpAddr> {
            m.keys()
                .filter_map(Result::ok)
                .filter_map(|k| addr_from_words(k.addr, k.family))
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
            primary: (None, None),
        })
    }

    /// Makes the node address map equal to `addrs.all`, and the primary
    /// addresses the ones SNATed flows leave with. Returns whether anything
    /// changed.
    pub fn set_addresses(&mut self, addrs: &NodeAddresses) -> Result<bool, ProxyError> {
        let mut changed = sync_set(
            &mut self.addrs,
            &mut self.known_addrs,
            &addrs.all,
            maps::NODE_ADDRS,
        )?;
        let primary = (addrs.primary_v4, addrs.primary_v6);
        if primary != self.primary {
            let cfg = NodeConfig {
                primary_v4: primary.0.map_or(0, |ip| addr_to_words(IpAddr::V4(ip)).0[0]),
                pad: 0,
                primary_v6: primary
                    .1
                    .map_or([0; 4], |ip| addr_to_words(IpAddr::V6(ip)).0),
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
    pub fn set_local_endpoints(&mut self, endpoints: &BTreeSet<IpAddr>) -> Result<(), ProxyError> {
        sync_set(
            &mut self.local,
            &mut self.known_local,
            endpoints,
            maps::LOCAL_ENDPOINTS,
        )
        .map(drop)
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

/// Makes the address set `map` (value 1 per member) equal to `wanted`,
/// given that it holds `known`, which becomes `wanted`. Returns whether
/// anything changed.
fn sync_set(
    map: &mut HashMap<MapData, AddrKey, u32>,
    known: &mut BTreeSet<IpAddr>,
    wanted: &BTreeSet<IpAddr>,
    name: &'static str,
) -> Result<bool, ProxyError> {
    let mut changed = false;
    for ip in wanted.difference(known) {
        map.insert(addr_key(*ip), 1, 0).map_err(map_err(name))?;
        changed = true;
    }
    for ip in known.difference(wanted) {
        let _ = map.remove(&addr_key(*ip));
        changed = true;
    }
    known.clone_from(wanted);
    Ok(changed)
}

/// Addresses of endpoints on `node` (any service, both families), from
/// the EndpointSlices' `nodeName`.
pub fn local_endpoints(snapshot: &ClusterSnapshot, node: &str) -> BTreeSet<IpAddr> {
    snapshot
        .endpoint_slices()
        .values()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.node_name.as_deref() == Some(node))
        .flat_map(|e| e.addresses.iter())
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .collect()
}

/// Whether NodePorts are served on `ip` by default: not loopback (kube-proxy
/// adds 127.0.0.0/8 for IPv4 through the socket hooks only) and not IPv6
/// link-local, which names no node from another link.
fn serves_node_ports(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
    }
}

/// This node's addresses (all interfaces, both families, not loopback or
/// IPv6 link-local), filtered by kube-proxy's `--nodeport-addresses` CIDRs
/// when given, and the first address of each family on `interface` as the
/// SNAT source.
pub fn node_addresses(interface: &str, cidrs: &[ipnetwork::IpNetwork]) -> NodeAddresses {
    let mut out = NodeAddresses::default();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for ifa in addrs {
        let Some(sa) = ifa.address.as_ref() else {
            continue;
        };
        let ip = if let Some(v4) = sa.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sa.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !serves_node_ports(ip) {
            continue;
        }
        if ifa.interface_name == interface {
            match ip {
                IpAddr::V4(v4) if out.primary_v4.is_none() => out.primary_v4 = Some(v4),
                IpAddr::V6(v6) if out.primary_v6.is_none() => out.primary_v6 = Some(v6),
                _ => {}
            }
        }
        if cidrs.is_empty() || cidrs.iter().any(|c| c.contains(ip)) {
            out.all.insert(ip);
        }
    }
    out
}
