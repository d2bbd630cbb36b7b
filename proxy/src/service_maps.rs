//! Writes services into the kernel maps in an order that never exposes a
//! half-written service to a connecting socket: backends first, then slots,
//! then the frontend's backend count; removals in the reverse order.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap},
    net::{IpAddr, SocketAddr},
};

use aya::maps::{
    HashMap, Map, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};
use ipnetwork::IpNetwork;
use strait_ebpf_common::{
    AffinityKey, AffinityValue, Backend, SOURCE_RANGES_MAX, SVC_F_AFFINITY, SVC_F_VIP_MARKER,
    ServiceKey, ServiceValue, SourceRangeData, addr_from_words, addr_to_words, maps,
};

use crate::{
    ProxyError,
    desired::{DesiredState, FrontendSpec},
    kernel_state::{KernelState, slot_span, slot_window},
};

/// A service frontend: what a client connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// The service VIP.
    pub vip: IpAddr,
    /// The service port.
    pub port: u16,
    /// IANA protocol number (6 TCP, 17 UDP).
    pub proto: u8,
}

impl Frontend {
    fn key(&self, slot: u16) -> ServiceKey {
        let (addr, family) = addr_to_words(self.vip);
        ServiceKey {
            addr,
            port: self.port.to_be(),
            slot,
            proto: self.proto,
            family,
            pad: [0; 2],
        }
    }
}

fn marker_key(vip: IpAddr) -> ServiceKey {
    let (addr, family) = addr_to_words(vip);
    ServiceKey {
        addr,
        family,
        ..Default::default()
    }
}

/// Identity of a backend in the backend map; equal backends share one id.
type BackendIdentity = (SocketAddr, u8);

/// What the maps hold for one frontend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Programmed {
    id: u32,
    /// Every slot's backend, in slot order.
    backend_ids: Vec<u32>,
    /// Slots the socket hooks use (the first ones).
    count: u16,
    /// The external window over the slots: (offset, count).
    ext: (u16, u16),
    affinity_timeout: Option<u32>,
    external_flags: u16,
    /// Offset and length of the frontend's Maglev table.
    maglev_row: Option<(u32, u32)>,
    source_ranges: Vec<IpNetwork>,
}

/// What one [`ServiceMaps::sync`] changed, for logs, metrics and cleanup.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncStats {
    /// Frontends written (new or changed).
    pub upserted: usize,
    /// Frontends removed.
    pub removed: usize,
    /// UDP backends that no frontend uses any more: connected UDP sockets
    /// aimed at them must be destroyed (see `sock_destroy`).
    pub removed_udp_backends: Vec<SocketAddr>,
}

/// Owns the service, backend and affinity maps and remembers what it wrote,
/// so each update touches only what changed. State is recovered from the
/// maps on start, so a restarted agent continues where the last one stopped.
pub struct ServiceMaps {
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    backends: HashMap<MapData, u32, Backend>,
    /// An LRU hash in the kernel; aya reads both kinds as `HashMap`.
    affinity: HashMap<MapData, AffinityKey, AffinityValue>,
    frontends: BTreeMap<Frontend, Programmed>,
    markers: BTreeSet<IpAddr>,
    /// Backend id by identity, with the number of slots that reference it.
    ids: StdHashMap<BackendIdentity, (u32, u32)>,
    identity_of: StdHashMap<u32, BackendIdentity>,
    next_backend_id: u32,
    next_frontend_id: u32,
    /// UDP backends released since the last sync.
    released_udp: Vec<SocketAddr>,
    max_services: u32,
    max_backends: u32,
    /// Maglev tables of external frontends (absent: slots by hash).
    maglev: Option<crate::maglev::MaglevTables>,
    /// `loadBalancerSourceRanges` by (frontend id, CIDR).
    ranges: Option<LpmTrie<MapData, SourceRangeData, u8>>,
}

/// The largest slot index; slot numbers are u16 and 0 is the frontend.
const MAX_BACKENDS_PER_SERVICE: usize = u16::MAX as usize;

impl ServiceMaps {
    pub(crate) fn new(
        services: Map,
        backends: Map,
        affinity: Map,
        capacity: (u32, u32),
        maglev: Option<(Map, u32)>,
        ranges: Option<Map>,
    ) -> Result<Self, ProxyError> {
        let ranges = match ranges {
            Some(map) => Some(LpmTrie::try_from(map).map_err(map_err(maps::SOURCE_RANGES))?),
            None => None,
        };
        let maglev = match maglev {
            Some((map, rows)) => {
                let mapped = match &map {
                    Map::Array(data) => crate::mapped_array::MappedArray::new(data),
                    _ => None,
                };
                if mapped.is_none() {
                    tracing::info!(
                        "the pinned Maglev map is not memory-mapped; its tables are written entry by entry"
                    );
                }
                Some(crate::maglev::MaglevTables::new(
                    aya::maps::Array::try_from(map).map_err(map_err(maps::MAGLEV))?,
                    mapped,
                    rows,
                ))
            }
            None => None,
        };
        let mut this = Self {
            services: HashMap::try_from(services).map_err(map_err(maps::SERVICES))?,
            backends: HashMap::try_from(backends).map_err(map_err(maps::BACKENDS))?,
            affinity: HashMap::try_from(affinity).map_err(map_err(maps::AFFINITY))?,
            frontends: BTreeMap::new(),
            markers: BTreeSet::new(),
            ids: StdHashMap::new(),
            identity_of: StdHashMap::new(),
            next_backend_id: 1,
            next_frontend_id: 1,
            released_udp: Vec::new(),
            max_services: capacity.0,
            max_backends: capacity.1,
            maglev,
            ranges,
        };
        this.recover()?;
        Ok(this)
    }

    /// Rebuilds the in-memory view from what the kernel maps hold. Slots a
    /// frontend announces but lacks make it look different from any desired
    /// state, so the next sync rewrites it: this is how drift is repaired.
    fn recover(&mut self) -> Result<(), ProxyError> {
        let kernel = KernelState::read(&self.services, &self.backends)?;
        self.frontends.clear();
        self.ids.clear();
        self.identity_of.clear();
        self.markers = kernel.markers.clone();
        for id in kernel.backends.keys() {
            self.next_backend_id = self.next_backend_id.max(id.wrapping_add(1)).max(1);
        }
        for kf in kernel.frontends.values() {
            if let (Some(offset), Some(tables)) = (kf.maglev_row, self.maglev.as_mut()) {
                tables.claim(offset, crate::maglev::maglev_table_size(kf.ext.1));
            }
        }
        let mut ranges_by_id: StdHashMap<u32, Vec<IpNetwork>> = StdHashMap::new();
        if let Some(trie) = &self.ranges {
            for key in trie.keys().filter_map(Result::ok) {
                let [id, family, a0, a1, a2, a3] = key.data();
                let prefix = key.prefix_len().saturating_sub(64) as u8;
                if let Some(ip) = addr_from_words([a0, a1, a2, a3], family as u8)
                    && let Ok(net) = IpNetwork::new(ip, prefix)
                {
                    ranges_by_id.entry(id).or_default().push(net);
                }
            }
            for list in ranges_by_id.values_mut() {
                list.sort();
            }
        }
        for (fe, kf) in &kernel.frontends {
            let complete = kf.backend_ids.len() == usize::from(slot_span(kf.count, kf.ext))
                && kf
                    .backend_ids
                    .iter()
                    .all(|id| kernel.backends.contains_key(id));
            for id in &kf.backend_ids {
                if let Some(identity) = kernel.backends.get(id) {
                    self.ids.entry(*identity).or_insert((*id, 0)).1 += 1;
                    self.identity_of.insert(*id, *identity);
                }
            }
            self.next_frontend_id = self.next_frontend_id.max(kf.id.wrapping_add(1)).max(1);
            self.frontends.insert(
                *fe,
                Programmed {
                    id: kf.id,
                    // An incomplete frontend is remembered with no slots so
                    // the next sync rewrites every slot.
                    backend_ids: if complete {
                        kf.backend_ids.clone()
                    } else {
                        Vec::new()
                    },
                    count: kf.count,
                    ext: kf.ext,
                    affinity_timeout: kf.affinity_timeout,
                    external_flags: kf.external_flags,
                    maglev_row: kf
                        .maglev_row
                        .map(|o| (o, crate::maglev::maglev_table_size(kf.ext.1))),
                    source_ranges: ranges_by_id.remove(&kf.id).unwrap_or_default(),
                },
            );
        }
        Ok(())
    }

    /// Whether backend `id` is in the backend map (conntrack GC asks).
    pub fn has_backend(&self, id: u32) -> bool {
        self.identity_of.contains_key(&id)
    }

    /// Forgets the in-memory view and re-reads the kernel maps, so the next
    /// [`sync`](Self::sync) repairs anything changed behind the agent's back.
    pub fn reload_from_kernel(&mut self) -> Result<(), ProxyError> {
        self.recover()
    }

    /// Entries in use: (service map, backend map), for fill-level metrics.
    pub fn usage(&self) -> (usize, usize) {
        let services = self.markers.len()
            + self
                .frontends
                .values()
                .map(|p| 1 + p.backend_ids.len())
                .sum::<usize>();
        (services, self.ids.len())
    }

    /// The frontends currently programmed, with the number of backends
    /// the socket hooks use.
    pub fn frontends(&self) -> impl Iterator<Item = (Frontend, usize)> + '_ {
        self.frontends
            .iter()
            .map(|(fe, p)| (*fe, usize::from(p.count)))
    }

    /// The backends the socket hooks use for `frontend`, in slot order.
    pub fn backends_of(&self, frontend: &Frontend) -> Vec<SocketAddr> {
        self.frontends
            .get(frontend)
            .map(|p| {
                slot_window(&p.backend_ids, (0, p.count))
                    .iter()
                    .filter_map(|id| self.identity_of.get(id).map(|(a, _)| *a))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Brings the maps to `desired` with the fewest writes: unchanged
    /// frontends are not touched, changed ones are rewritten in make-before-
    /// break order, and frontends no longer desired are removed last.
    pub fn sync(&mut self, desired: &DesiredState) -> Result<SyncStats, ProxyError> {
        let mut stats = SyncStats::default();
        // Only ClusterIPs get markers: a NodePort's wildcard or a
        // LoadBalancer IP is not a VIP the socket hooks own.
        let vips: BTreeSet<IpAddr> = desired
            .iter()
            .filter(|(_, spec)| spec.external_flags == 0)
            .map(|(fe, _)| fe.vip)
            .collect();
        for vip in &vips {
            self.ensure_marker(*vip)?;
        }
        for (fe, spec) in desired {
            if self.is_programmed(fe, spec) {
                continue;
            }
            self.upsert(*fe, spec)?;
            stats.upserted += 1;
        }
        let stale: Vec<Frontend> = self
            .frontends
            .keys()
            .filter(|fe| !desired.contains_key(fe))
            .copied()
            .collect();
        for fe in stale {
            self.remove(fe)?;
            stats.removed += 1;
        }
        for vip in self.markers.difference(&vips).copied().collect::<Vec<_>>() {
            remove_ignoring_missing(&mut self.services, &marker_key(vip), maps::SERVICES)?;
            self.markers.remove(&vip);
        }
        stats.removed_udp_backends = self.take_released_udp();
        Ok(stats)
    }

    /// Applies only what changed (see [`IncrementalDesired`](crate::IncrementalDesired)):
    /// the cost is that of the change, not of the cluster. `desired` is the
    /// whole state after the change, used to keep VIP markers exact.
    pub fn apply_delta(
        &mut self,
        delta: &crate::Delta,
        desired: &DesiredState,
    ) -> Result<SyncStats, ProxyError> {
        let mut stats = SyncStats::default();
        for (fe, spec) in &delta.upserts {
            if spec.external_flags == 0 {
                self.ensure_marker(fe.vip)?;
            }
            if !self.is_programmed(fe, spec) {
                self.upsert(*fe, spec)?;
                stats.upserted += 1;
            }
        }
        for fe in &delta.removals {
            if self.frontends.contains_key(fe) {
                self.remove(*fe)?;
                stats.removed += 1;
            }
            let lowest = Frontend {
                vip: fe.vip,
                port: 0,
                proto: 0,
            };
            let still_used = desired
                .range(lowest..)
                .next()
                .is_some_and(|(f, _)| f.vip == fe.vip);
            if !still_used && self.markers.remove(&fe.vip) {
                remove_ignoring_missing(&mut self.services, &marker_key(fe.vip), maps::SERVICES)?;
            }
        }
        stats.removed_udp_backends = self.take_released_udp();
        Ok(stats)
    }

    /// Writes the VIP marker of `vip` unless it is already there.
    fn ensure_marker(&mut self, vip: IpAddr) -> Result<(), ProxyError> {
        if self.markers.contains(&vip) {
            return Ok(());
        }
        let value = ServiceValue {
            flags: SVC_F_VIP_MARKER,
            ..Default::default()
        };
        self.insert_service(marker_key(vip), value)?;
        self.markers.insert(vip);
        Ok(())
    }

    /// UDP backends released since the last call that no UDP frontend uses.
    fn take_released_udp(&mut self) -> Vec<SocketAddr> {
        let mut released = std::mem::take(&mut self.released_udp);
        released.sort();
        released.dedup();
        released.retain(|addr| {
            !self
                .ids
                .contains_key(&(*addr, strait_ebpf_common::PROTO_UDP))
        });
        released
    }

    fn is_programmed(&self, fe: &Frontend, spec: &FrontendSpec) -> bool {
        let layout = spec.slot_layout();
        self.frontends.get(fe).is_some_and(|p| {
            p.affinity_timeout == spec.affinity_timeout
                && p.external_flags == spec.external_flags
                && p.source_ranges == spec.source_ranges
                && usize::from(p.count) == spec.backends.len()
                && p.ext == (layout.ext_offset, layout.ext_count)
                && p.backend_ids.len() == layout.len()
                && p.backend_ids.iter().zip(layout.slots()).all(|(id, addr)| {
                    self.ids
                        .get(&(*addr, fe.proto))
                        .is_some_and(|(i, _)| i == id)
                })
        })
    }

    /// Makes `frontend` balance over exactly `spec.backends` (and external
    /// traffic over `spec.external_backends`). An empty list keeps the
    /// frontend, so connects to it are refused rather than leaking to the
    /// unroutable VIP.
    pub fn upsert(&mut self, frontend: Frontend, spec: &FrontendSpec) -> Result<(), ProxyError> {
        let layout = spec.slot_layout();
        let (ext_offset, ext_count) = (layout.ext_offset, layout.ext_count);
        if layout.len() > MAX_BACKENDS_PER_SERVICE {
            return Err(ProxyError::TooManyBackends {
                frontend: format!("{}:{}", frontend.vip, frontend.port),
                count: layout.len(),
                max: MAX_BACKENDS_PER_SERVICE,
            });
        }
        let old = self.frontends.get(&frontend).cloned().unwrap_or_default();
        let id = if old.id != 0 {
            old.id
        } else {
            self.allocate_frontend_id()
        };
        // 1. backends
        let mut new_ids = Vec::with_capacity(layout.len());
        for addr in layout.slots() {
            new_ids.push(self.acquire_backend((*addr, frontend.proto))?);
        }
        // 2. slots that changed
        for (i, backend_id) in new_ids.iter().enumerate() {
            if old.backend_ids.get(i) != Some(backend_id) {
                let value = ServiceValue {
                    backend_id: *backend_id,
                    ..Default::default()
                };
                self.insert_service(frontend.key(slot(i)), value)?;
            }
        }
        // 2b. the Maglev table of an external frontend, before the frontend
        // entry points at it
        let size = crate::maglev::maglev_table_size(ext_count);
        let new_ext_ids = slot_window(&new_ids, (ext_offset, ext_count)).to_vec();
        let old_ext_ids = slot_window(&old.backend_ids, old.ext);
        let mut retired = None;
        let maglev_row = match (&mut self.maglev, spec.external_flags != 0 && ext_count != 0) {
            (Some(tables), true) => {
                // Same size: update the entries that change, in place. Else
                // a new range, written whole before the frontend points at it.
                let reuse = old.maglev_row.filter(|(_, len)| *len == size);
                let offset = match reuse {
                    Some((offset, _)) => offset,
                    None => {
                        retired = old.maglev_row;
                        tables.allocate(size, &format!("{}:{}", frontend.vip, frontend.port))?
                    }
                };
                let previous: Vec<SocketAddr> = old_ext_ids
                    .iter()
                    .filter_map(|id| self.identity_of.get(id).map(|(a, _)| *a))
                    .collect();
                let previous_ids = if reuse.is_some() && previous.len() == old_ext_ids.len() {
                    (previous.as_slice(), old_ext_ids)
                } else {
                    (&[][..], &[][..])
                };
                tables.write(offset, &spec.external_backends, &new_ext_ids, previous_ids)?;
                Some((offset, size))
            }
            _ => {
                retired = old.maglev_row;
                None
            }
        };
        // 2c. allowed source ranges, before the frontend entry enforces them
        self.write_ranges(id, &spec.source_ranges, &old.source_ranges)?;
        // 3. the count makes the new slots visible
        let front = ServiceValue {
            backend_id: maglev_row.map_or(0, |(offset, _)| offset + 1),
            count: spec.backends.len() as u16,
            flags: spec.external_flags
                | if spec.affinity_timeout.is_some() {
                    SVC_F_AFFINITY
                } else {
                    0
                },
            affinity_timeout: spec.affinity_timeout.unwrap_or(0),
            id,
            ext_count,
            ext_offset,
        };
        self.insert_service(frontend.key(0), front)?;
        // 4. slots beyond the new count, then backends nobody references
        for i in new_ids.len()..old.backend_ids.len() {
            remove_ignoring_missing(&mut self.services, &frontend.key(slot(i)), maps::SERVICES)?;
        }
        let gone: BTreeSet<u32> = old
            .backend_ids
            .iter()
            .filter(|b| !new_ids.contains(b))
            .copied()
            .collect();
        for backend_id in &old.backend_ids {
            self.release_backend(*backend_id)?;
        }
        if !gone.is_empty() {
            self.purge_affinity(id, &gone);
        }
        self.frontends.insert(
            frontend,
            Programmed {
                id,
                backend_ids: new_ids,
                count: spec.backends.len() as u16,
                ext: (ext_offset, ext_count),
                affinity_timeout: spec.affinity_timeout,
                external_flags: spec.external_flags,
                maglev_row,
                source_ranges: spec.source_ranges.clone(),
            },
        );
        // 5. ranges no longer allowed and a replaced Maglev table, now that
        // the frontend entry no longer uses them
        self.remove_ranges(id, &old.source_ranges, &spec.source_ranges);
        if let (Some((offset, len)), Some(tables)) = (retired, self.maglev.as_mut()) {
            tables.release(offset, len);
        }
        Ok(())
    }

    /// Adds the (frontend `id`, CIDR) entries of `wanted` that `had` lacks.
    fn write_ranges(
        &mut self,
        id: u32,
        wanted: &[IpNetwork],
        had: &[IpNetwork],
    ) -> Result<(), ProxyError> {
        let Some(trie) = self.ranges.as_mut() else {
            return Ok(());
        };
        for net in wanted.iter().filter(|n| !had.contains(n)) {
            trie.insert(&range_key(id, net), 1, 0).map_err(full_or(
                maps::SOURCE_RANGES,
                SOURCE_RANGES_MAX,
                "--max-source-ranges",
            ))?;
        }
        Ok(())
    }

    /// Removes the entries of `had` that `wanted` lacks.
    fn remove_ranges(&mut self, id: u32, had: &[IpNetwork], wanted: &[IpNetwork]) {
        let Some(trie) = self.ranges.as_mut() else {
            return;
        };
        for net in had.iter().filter(|n| !wanted.contains(n)) {
            let _ = trie.remove(&range_key(id, net));
        }
    }

    /// Removes a frontend: first the frontend entry (new connects are no
    /// longer translated), then its slots, then unreferenced backends.
    pub fn remove(&mut self, frontend: Frontend) -> Result<(), ProxyError> {
        let Some(old) = self.frontends.remove(&frontend) else {
            return Ok(());
        };
        remove_ignoring_missing(&mut self.services, &frontend.key(0), maps::SERVICES)?;
        for i in 0..old.backend_ids.len() {
            remove_ignoring_missing(&mut self.services, &frontend.key(slot(i)), maps::SERVICES)?;
        }
        for id in &old.backend_ids {
            self.release_backend(*id)?;
        }
        if let (Some((offset, len)), Some(tables)) = (old.maglev_row, self.maglev.as_mut()) {
            tables.release(offset, len);
        }
        self.remove_ranges(old.id, &old.source_ranges, &[]);
        self.purge_affinity(old.id, &old.backend_ids.iter().copied().collect());
        Ok(())
    }

    /// Removes affinity entries that have expired or whose frontend no longer
    /// has affinity (or no longer exists), so the LRU map holds live clients
    /// only. Returns how many were removed.
    pub fn gc_affinity(&mut self) -> usize {
        let now = monotonic_ns();
        let timeouts: StdHashMap<u32, u64> = self
            .frontends
            .values()
            .filter_map(|p| {
                p.affinity_timeout
                    .map(|t| (p.id, u64::from(t) * 1_000_000_000))
            })
            .collect();
        let stale: Vec<AffinityKey> = self
            .affinity
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| {
                timeouts
                    .get(&k.frontend_id)
                    .is_none_or(|t| now.saturating_sub(v.last_used_ns) > *t)
            })
            .map(|(k, _)| k)
            .collect();
        for key in &stale {
            let _ = self.affinity.remove(key);
        }
        stale.len()
    }

    /// Drops affinity entries of `frontend_id` that point at `backends`, so a
    /// pinned client moves on when its backend leaves the service.
    fn purge_affinity(&mut self, frontend_id: u32, backends: &BTreeSet<u32>) {
        let stale: Vec<AffinityKey> = self
            .affinity
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| k.frontend_id == frontend_id && backends.contains(&v.backend_id))
            .map(|(k, _)| k)
            .collect();
        for key in stale {
            // Entries may vanish concurrently (LRU); nothing else can fail here.
            let _ = self.affinity.remove(&key);
        }
    }

    fn acquire_backend(&mut self, identity: BackendIdentity) -> Result<u32, ProxyError> {
        if let Some((id, refs)) = self.ids.get_mut(&identity) {
            *refs += 1;
            return Ok(*id);
        }
        let id = self.allocate_backend_id();
        let (addr, proto) = identity;
        let (words, family) = addr_to_words(addr.ip());
        let value = Backend {
            addr: words,
            port: addr.port().to_be(),
            proto,
            family,
        };
        self.backends.insert(id, value, 0).map_err(full_or(
            maps::BACKENDS,
            self.max_backends,
            "--max-backends",
        ))?;
        self.ids.insert(identity, (id, 1));
        self.identity_of.insert(id, identity);
        Ok(id)
    }

    fn release_backend(&mut self, id: u32) -> Result<(), ProxyError> {
        let Some(identity) = self.identity_of.get(&id).copied() else {
            return Ok(());
        };
        let remaining = self.ids.get_mut(&identity).map(|e| {
            e.1 = e.1.saturating_sub(1);
            e.1
        });
        if remaining == Some(0) {
            if identity.1 == strait_ebpf_common::PROTO_UDP {
                self.released_udp.push(identity.0);
            }
            self.ids.remove(&identity);
            self.identity_of.remove(&id);
            remove_ignoring_missing(&mut self.backends, &id, maps::BACKENDS)?;
        }
        Ok(())
    }

    fn allocate_backend_id(&mut self) -> u32 {
        loop {
            let id = self.next_backend_id;
            self.next_backend_id = self.next_backend_id.wrapping_add(1).max(1);
            if !self.identity_of.contains_key(&id) {
                return id;
            }
        }
    }

    fn allocate_frontend_id(&mut self) -> u32 {
        loop {
            let id = self.next_frontend_id;
            self.next_frontend_id = self.next_frontend_id.wrapping_add(1).max(1);
            if !self.frontends.values().any(|p| p.id == id) {
                return id;
            }
        }
    }

    fn insert_service(&mut self, key: ServiceKey, value: ServiceValue) -> Result<(), ProxyError> {
        self.services.insert(key, value, 0).map_err(full_or(
            maps::SERVICES,
            self.max_services,
            "--max-services",
        ))
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
/// `CLOCK_MONOTONIC` in nanoseconds: the clock `bpf_ktime_get_ns` reads.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// The source range map key of `net` for frontend `id`: the id's and the
/// family's 64 bits always match, then the CIDR's prefix.
fn range_key(id: u32, net: &IpNetwork) -> Key<SourceRangeData> {
    let (a, family) = addr_to_words(net.network());
    Key::new(
        64 + u32::from(net.prefix()),
        [id, u32::from(family), a[0], a[1], a[2], a[3]],
    )
}

fn slot(index: usize) -> u16 {
    // Bounded by MAX_BACKENDS_PER_SERVICE in upsert.
    (index + 1) as u16
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> ProxyError {
    move |source| ProxyError::Map { map, source }
}

pub(crate) fn errno(err: &MapError) -> Option<i32> {
    match err {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    }
}

fn full_or(
    map: &'static str,
    capacity: u32,
    flag: &'static str,
) -> impl Fn(MapError) -> ProxyError {
    move |source| {
        if errno(&source) == Some(libc::E2BIG) {
            ProxyError::MapFull {
                map,
                capacity,
                flag,
            }
        } else {
            ProxyError::Map { map, source }
        }
    }
}

fn remove_ignoring_missing<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    key: &K,
    name: &'static str,
) -> Result<(), ProxyError> {
    match map.remove(key) {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(()),
        Err(source) => Err(ProxyError::Map { map: name, source }),
    }
}
