//! The maps, pinned by name so a restarted agent reuses them and connections
//! keep being translated while it is away.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap},
};
use strait_ebpf_common::{
    AFFINITY_MAX, AffinityKey, AffinityValue, BACKENDS_MAX, Backend, REVNAT_MAX, RevNatKey,
    RevNatValue, SERVICES_MAX, ServiceKey, ServiceValue,
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
