//! Reads what the kernel maps actually hold, decoded into frontends and
//! backend addresses. The agent recovers from it after a restart and on each
//! full reconcile; `strait agent explain` prints it.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap},
    net::{IpAddr, SocketAddr},
};

use aya::maps::{HashMap, MapData};
use strait_ebpf_common::{
    Backend, SVC_F_AFFINITY, SVC_F_VIP_MARKER, ServiceKey, ServiceValue, addr_from_words, maps,
};

use crate::{Frontend, ProxyError};

/// One frontend as the kernel holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFrontend {
    /// [`ServiceValue::id`] of the frontend.
    pub id: u32,
    /// Backend ids of every slot, in slot order (slots that are missing are
    /// skipped).
    pub backend_ids: Vec<u32>,
    /// The number of slots the socket hooks use (the first ones).
    pub count: u16,
    /// The slots external traffic uses: `(offset, count)` (see
    /// [`ServiceValue::ext_offset`]).
    pub ext: (u16, u16),
    /// Affinity timeout, when the frontend has ClientIP affinity.
    pub affinity_timeout: Option<u32>,
    /// The external-traffic flags (`SVC_F_EXTERNAL`, `SVC_F_EXT_LOCAL`,
    /// `SVC_F_NODEPORT`) of the frontend entry.
    pub external_flags: u16,
    /// The Maglev row of an external frontend.
    pub maglev_row: Option<u32>,
}

/// Everything the service and backend maps hold.
#[derive(Clone, Debug, Default)]
pub struct KernelState {
    /// Frontends by address.
    pub frontends: BTreeMap<Frontend, KernelFrontend>,
    /// VIP markers.
    pub markers: BTreeSet<IpAddr>,
    /// Backends by id: address and protocol.
    pub backends: StdHashMap<u32, (SocketAddr, u8)>,
}

impl KernelState {
    /// Decodes both maps. Entries that cannot be decoded are skipped (and
    /// then show up as drift), never trusted.
    pub fn read(
        services: &HashMap<MapData, ServiceKey, ServiceValue>,
        backends: &HashMap<MapData, u32, Backend>,
    ) -> Result<KernelState, ProxyError> {
        let mut state = KernelState::default();
        for entry in backends.iter() {
            let (id, be) = entry.map_err(|source| ProxyError::Map {
                map: maps::BACKENDS,
                source,
            })?;
            if let Some(ip) = addr_from_words(be.addr, be.family) {
                state
                    .backends
                    .insert(id, (SocketAddr::new(ip, u16::from_be(be.port)), be.proto));
            }
        }
        let mut slots: BTreeMap<Frontend, BTreeMap<u16, u32>> = BTreeMap::new();
        let mut fronts: BTreeMap<Frontend, ServiceValue> = BTreeMap::new();
        for entry in services.iter() {
            let (key, value) = entry.map_err(|source| ProxyError::Map {
                map: maps::SERVICES,
                source,
            })?;
            let Some(vip) = addr_from_words(key.addr, key.family) else {
                continue;
            };
            if value.flags & SVC_F_VIP_MARKER != 0 {
                state.markers.insert(vip);
                continue;
            }
            let fe = Frontend {
                vip,
                port: u16::from_be(key.port),
                proto: key.proto,
            };
            if key.slot == 0 {
                fronts.insert(fe, value);
            } else {
                slots
                    .entry(fe)
                    .or_default()
                    .insert(key.slot, value.backend_id);
            }
        }
        for (fe, value) in fronts {
            let fe_slots = slots.remove(&fe).unwrap_or_default();
            state.frontends.insert(
                fe,
                KernelFrontend {
                    id: value.id,
                    backend_ids: (1..=slot_span(value.count, (value.ext_offset, value.ext_count)))
                        .filter_map(|s| fe_slots.get(&s).copied())
                        .collect(),
                    count: value.count,
                    ext: (value.ext_offset, value.ext_count),
                    affinity_timeout: (value.flags & SVC_F_AFFINITY != 0)
                        .then_some(value.affinity_timeout),
                    external_flags: value.flags & crate::desired::EXTERNAL_FLAGS,
                    maglev_row: (value.flags & strait_ebpf_common::SVC_F_EXTERNAL != 0
                        && value.backend_id != 0)
                        .then(|| value.backend_id - 1),
                },
            );
        }
        Ok(state)
    }

    /// The backend addresses the socket hooks use for `frontend`, in slot
    /// order.
    pub fn backend_addrs(&self, frontend: &Frontend) -> Vec<SocketAddr> {
        self.slot_addrs(frontend, |f| (0, f.count))
    }

    /// The backend addresses external traffic to `frontend` is balanced
    /// over, in slot order.
    pub fn external_backend_addrs(&self, frontend: &Frontend) -> Vec<SocketAddr> {
        self.slot_addrs(frontend, |f| f.ext)
    }

    fn slot_addrs(
        &self,
        frontend: &Frontend,
        window: impl Fn(&KernelFrontend) -> (u16, u16),
    ) -> Vec<SocketAddr> {
        self.frontends
            .get(frontend)
            .map(|f| {
                slot_window(&f.backend_ids, window(f))
                    .iter()
                    .filter_map(|id| self.backends.get(id).map(|(a, _)| *a))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Slots a frontend entry uses: the socket hooks' first `count` and the
/// external window `(offset, count)`, whichever reaches further.
pub(crate) fn slot_span(count: u16, ext: (u16, u16)) -> u16 {
    count.max(ext.0.saturating_add(ext.1))
}

/// The backend ids of the slots in `window` (`(offset, count)`), cut short
/// where `ids` ends.
pub(crate) fn slot_window(ids: &[u32], window: (u16, u16)) -> &[u32] {
    let start = usize::from(window.0).min(ids.len());
    let end = (start + usize::from(window.1)).min(ids.len());
    &ids[start..end]
}
