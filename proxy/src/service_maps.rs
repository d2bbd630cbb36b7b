//! Writes services into the kernel maps in an order that never exposes a
//! half-written service to a connecting socket: backends first, then slots,
//! then the frontend's backend count; removals in the reverse order.
use std::{
    collections::{BTreeMap, HashMap as StdHashMap},
    net::{Ipv4Addr, SocketAddrV4},
};

use aya::maps::{HashMap, Map, MapData, MapError};
use strait_ebpf_common::{
    BACKENDS4_MAX, Backend4, SERVICES4_MAX, Service4Key, Service4Value, maps,
};

use crate::ProxyError;

/// An IPv4 service frontend: what a client connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend4 {
    /// The service VIP.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// IANA protocol number (6 TCP, 17 UDP).
    pub proto: u8,
}

impl Frontend4 {
    fn key(&self, slot: u16) -> Service4Key {
        Service4Key::new(self.vip.octets(), self.port, self.proto, slot)
    }
}

/// What one [`ServiceMaps::sync`] changed, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Frontends written (new or changed).
    pub upserted: usize,
    /// Frontends removed.
    pub removed: usize,
}

/// Identity of a backend in the backend map; equal backends share one id.
type BackendIdentity = (SocketAddrV4, u8);

/// Owns the service and backend maps and remembers what it wrote, so each
/// update touches only what changed. State is recovered from the maps on
/// start, so a restarted agent continues where the last one stopped.
pub struct ServiceMaps {
    services: HashMap<MapData, Service4Key, Service4Value>,
    backends: HashMap<MapData, u32, Backend4>,
    /// Backend ids per frontend, in slot order.
    frontends: BTreeMap<Frontend4, Vec<u32>>,
    /// Backend id by identity, with the number of slots that reference it.
    ids: StdHashMap<BackendIdentity, (u32, u32)>,
    next_id: u32,
}

/// The largest slot index; slot numbers are u16 and 0 is the frontend.
const MAX_BACKENDS_PER_SERVICE: usize = u16::MAX as usize;

impl ServiceMaps {
    pub(crate) fn new(services: Map, backends: Map) -> Result<Self, ProxyError> {
        let services: HashMap<MapData, Service4Key, Service4Value> =
            HashMap::try_from(services).map_err(map_err(maps::SERVICES4))?;
        let backends: HashMap<MapData, u32, Backend4> =
            HashMap::try_from(backends).map_err(map_err(maps::BACKENDS4))?;
        let mut this = Self {
            services,
            backends,
            frontends: BTreeMap::new(),
            ids: StdHashMap::new(),
            next_id: 1,
        };
        this.recover()?;
        Ok(this)
    }

    /// Rebuilds the in-memory view from pinned map contents.
    fn recover(&mut self) -> Result<(), ProxyError> {
        let mut by_id = StdHashMap::new();
        for entry in self.backends.iter() {
            let (id, be) = entry.map_err(map_err(maps::BACKENDS4))?;
            by_id.insert(id, be);
            self.next_id = self.next_id.max(id.wrapping_add(1)).max(1);
        }
        let mut slots: BTreeMap<Frontend4, BTreeMap<u16, u32>> = BTreeMap::new();
        let mut counts: BTreeMap<Frontend4, u16> = BTreeMap::new();
        for entry in self.services.iter() {
            let (key, value) = entry.map_err(map_err(maps::SERVICES4))?;
            let fe = Frontend4 {
                vip: Ipv4Addr::from(key.addr.to_ne_bytes()),
                port: u16::from_be(key.port),
                proto: key.proto,
            };
            if key.slot == 0 {
                counts.insert(fe, value.count);
            } else {
                slots
                    .entry(fe)
                    .or_default()
                    .insert(key.slot, value.backend_id);
            }
        }
        for (fe, count) in counts {
            let fe_slots = slots.remove(&fe).unwrap_or_default();
            let ids: Vec<u32> = (1..=count)
                .filter_map(|s| fe_slots.get(&s).copied())
                .collect();
            for id in &ids {
                if let Some(be) = by_id.get(id) {
                    let identity = (
                        SocketAddrV4::new(
                            Ipv4Addr::from(be.addr.to_ne_bytes()),
                            u16::from_be(be.port),
                        ),
                        be.proto,
                    );
                    self.ids.entry(identity).or_insert((*id, 0)).1 += 1;
                }
            }
            self.frontends.insert(fe, ids);
        }
        Ok(())
    }

    /// The frontends currently programmed, with their backend count.
    pub fn frontends(&self) -> impl Iterator<Item = (Frontend4, usize)> + '_ {
        self.frontends.iter().map(|(fe, ids)| (*fe, ids.len()))
    }

    /// Brings the maps to `desired` with the fewest writes: unchanged
    /// frontends are not touched, changed ones are rewritten in make-before-
    /// break order, and frontends no longer desired are removed last.
    pub fn sync(&mut self, desired: &crate::DesiredState) -> Result<SyncStats, ProxyError> {
        let mut stats = SyncStats::default();
        for (fe, backends) in desired {
            let current = self.frontends.get(fe);
            let unchanged = current.is_some_and(|ids| {
                ids.len() == backends.len()
                    && ids.iter().zip(backends).all(|(id, addr)| {
                        self.ids
                            .get(&(*addr, fe.proto))
                            .is_some_and(|(i, _)| i == id)
                    })
            });
            if unchanged {
                continue;
            }
            self.upsert(*fe, backends)?;
            stats.upserted += 1;
        }
        let stale: Vec<Frontend4> = self
            .frontends
            .keys()
            .filter(|fe| !desired.contains_key(fe))
            .copied()
            .collect();
        for fe in stale {
            self.remove(fe)?;
            stats.removed += 1;
        }
        Ok(stats)
    }

    /// Makes `frontend` balance over exactly `backends`. An empty list keeps
    /// the frontend, so connects to it are refused rather than leaking to the
    /// unroutable VIP.
    pub fn upsert(
        &mut self,
        frontend: Frontend4,
        backends: &[SocketAddrV4],
    ) -> Result<(), ProxyError> {
        if backends.len() > MAX_BACKENDS_PER_SERVICE {
            return Err(ProxyError::TooManyBackends {
                vip: frontend.vip,
                port: frontend.port,
                count: backends.len(),
                max: MAX_BACKENDS_PER_SERVICE,
            });
        }
        let old = self.frontends.get(&frontend).cloned().unwrap_or_default();
        // 1. backends
        let mut new_ids = Vec::with_capacity(backends.len());
        for addr in backends {
            new_ids.push(self.acquire_backend((*addr, frontend.proto))?);
        }
        // 2. slots that changed
        for (i, id) in new_ids.iter().enumerate() {
            if old.get(i) != Some(id) {
                let value = Service4Value {
                    backend_id: *id,
                    ..Default::default()
                };
                self.insert_service(frontend.key(slot(i)), value)?;
            }
        }
        // 3. the count makes the new slots visible
        let front = Service4Value {
            count: new_ids.len() as u16,
            ..Default::default()
        };
        self.insert_service(frontend.key(0), front)?;
        // 4. slots beyond the new count, then backends nobody references
        for i in new_ids.len()..old.len() {
            remove_ignoring_missing(&mut self.services, &frontend.key(slot(i)), maps::SERVICES4)?;
        }
        for id in &old {
            self.release_backend(*id)?;
        }
        self.frontends.insert(frontend, new_ids);
        Ok(())
    }

    /// Removes a frontend: first the frontend entry (new connects are no
    /// longer translated), then its slots, then unreferenced backends.
    pub fn remove(&mut self, frontend: Frontend4) -> Result<(), ProxyError> {
        let Some(old) = self.frontends.remove(&frontend) else {
            return Ok(());
        };
        remove_ignoring_missing(&mut self.services, &frontend.key(0), maps::SERVICES4)?;
        for i in 0..old.len() {
            remove_ignoring_missing(&mut self.services, &frontend.key(slot(i)), maps::SERVICES4)?;
        }
        for id in old {
            self.release_backend(id)?;
        }
        Ok(())
    }

    fn acquire_backend(&mut self, identity: BackendIdentity) -> Result<u32, ProxyError> {
        if let Some((id, refs)) = self.ids.get_mut(&identity) {
            *refs += 1;
            return Ok(*id);
        }
        let id = self.allocate_id();
        let (addr, proto) = identity;
        let value = Backend4::new(addr.ip().octets(), addr.port(), proto);
        self.backends.insert(id, value, 0).map_err(full_or(
            maps::BACKENDS4,
            BACKENDS4_MAX,
            "--max-backends",
        ))?;
        self.ids.insert(identity, (id, 1));
        Ok(id)
    }

    fn release_backend(&mut self, id: u32) -> Result<(), ProxyError> {
        let Some((identity, _)) = self.ids.iter().find(|(_, (i, _))| *i == id) else {
            return Ok(());
        };
        let identity = *identity;
        let entry = self.ids.get_mut(&identity).map(|e| {
            e.1 = e.1.saturating_sub(1);
            e.1
        });
        if entry == Some(0) {
            self.ids.remove(&identity);
            remove_ignoring_missing(&mut self.backends, &id, maps::BACKENDS4)?;
        }
        Ok(())
    }

    fn allocate_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.ids.values().any(|(i, _)| *i == id) {
                return id;
            }
        }
    }

    fn insert_service(&mut self, key: Service4Key, value: Service4Value) -> Result<(), ProxyError> {
        self.services.insert(key, value, 0).map_err(full_or(
            maps::SERVICES4,
            SERVICES4_MAX,
            "--max-services",
        ))
    }
}

fn slot(index: usize) -> u16 {
    // Bounded by MAX_BACKENDS_PER_SERVICE in upsert.
    (index + 1) as u16
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> ProxyError {
    move |source| ProxyError::Map { map, source }
}

fn errno(err: &MapError) -> Option<i32> {
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
