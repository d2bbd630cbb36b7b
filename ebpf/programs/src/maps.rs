//! The maps, pinned by name so a restarted agent reuses them and connections
//! keep being translated while it is away.
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use strait_ebpf_common::{
    AFFINITY_MAX, AddrKey, AffinityKey, AffinityValue, BACKENDS_MAX, Backend, CONNTRACK_MAX, CtKey,
    CtScratch, CtValue, LOCAL_ENDPOINTS_MAX, MAGLEV_ENTRIES, NODE_ADDRS_MAX, NodeConfig,
    REVNAT_MAX, RevNatKey, RevNatValue, SERVICES_MAX, SOURCE_RANGES_MAX, ServiceKey, ServiceValue,
    SourceRangeData,
};

/// Frontends and backend slots.
#[map(name = "STRAIT_SVC")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(SERVICES_MAX, 0);

/// Backends by id.
#[map(name = "STRAIT_BE")]
pub static BACKENDS: HashMap<u32, Backend> = HashMap::pinned(BACKENDS_MAX, 0);

/// ClientIP session affinity, written by the datapath (hence LRU).
#[map(name = "STRAIT_AFF")]
pub static AFFINITY: LruHashMap<AffinityKey, AffinityValue> = LruHashMap::pinned(AFFINITY_MAX, 0);

/// Socket and backend to the VIP the socket asked for (hence LRU).
#[map(name = "STRAIT_REVNAT")]
pub static REVNAT: LruHashMap<RevNatKey, RevNatValue> = LruHashMap::pinned(REVNAT_MAX, 0);

/// The layout version user space wrote; read only by user space.
#[map(name = "STRAIT_LAYOUT")]
pub static LAYOUT: Array<u32> = Array::pinned(1, 0);

/// External flows in both directions, written by the tc programs (hence LRU).
#[map(name = "STRAIT_CT")]
pub static CONNTRACK: LruHashMap<CtKey, CtValue> = LruHashMap::pinned(CONNTRACK_MAX, 0);

/// This node's addresses (both families), where NodePorts answer.
#[map(name = "STRAIT_NODE_ADDRS")]
pub static NODE_ADDRS: HashMap<AddrKey, u32> = HashMap::pinned(NODE_ADDRS_MAX, 0);

/// Whether `addr` (map representation) is one of this node's addresses:
/// the one reading of [`NODE_ADDRS`] that the connect hooks and the tc
/// programs share. The map holds 1; the value is read, not the pointer, for
/// the verifier's sake.
#[inline(always)]
pub fn is_node_addr(addr: [u32; 4], family: u8) -> bool {
    let key = AddrKey::new(addr, family);
    // SAFETY: plain-data value, copied out at once.
    unsafe { NODE_ADDRS.get(key) }.copied().unwrap_or(0) != 0
}

/// Endpoint addresses on this node (both families): reached without SNAT.
#[map(name = "STRAIT_LOCAL_EPS")]
pub static LOCAL_ENDPOINTS: HashMap<AddrKey, u32> = HashMap::pinned(LOCAL_ENDPOINTS_MAX, 0);

/// Whether `addr` (map representation) is an endpoint on this node, read
/// like [`is_node_addr`].
#[inline(always)]
pub fn is_local_endpoint(addr: [u32; 4], family: u8) -> bool {
    let key = AddrKey::new(addr, family);
    // SAFETY: plain-data value, copied out at once.
    unsafe { LOCAL_ENDPOINTS.get(key) }.copied().unwrap_or(0) != 0
}

/// Node-wide settings.
#[map(name = "STRAIT_NODE_CFG")]
pub static NODE_CONFIG: Array<NodeConfig> = Array::pinned(1, 0);

/// Maglev tables of external frontends (sized by user space at load;
/// mmapable, so user space writes the tables with plain stores).
#[map(name = "STRAIT_MAGLEV")]
pub static MAGLEV: Array<u32> = Array::pinned(MAGLEV_ENTRIES, BPF_F_MMAPABLE);

/// `loadBalancerSourceRanges`: key data is (frontend id, family, client
/// address); the prefix covers the first two words plus the CIDR's.
#[map(name = "STRAIT_SRC_RANGES")]
pub static SOURCE_RANGES: LpmTrie<SourceRangeData, u8> = LpmTrie::pinned(SOURCE_RANGES_MAX, 0);

/// Room for the conntrack entries of a new external flow while they are
/// built: IPv6-sized keys and values do not fit the 512-byte BPF stack
/// next to everything else. Per CPU, so programs never share one.
#[map(name = "STRAIT_CT_SCRATCH")]
pub static CT_SCRATCH: PerCpuArray<CtScratch> = PerCpuArray::with_max_entries(1, 0);
