//! Maglev consistent hashing (Eisenbud et al., NSDI 2016) for external
//! traffic: a lookup table of a prime size `M` where each backend owns about
//! `M / N` entries. Every node computes the same table from the same backend
//! addresses, so a flow entering any node picks the same backend, and
//! removing one of N backends moves only the flows that were on it (about
//! 1/N of them).
use std::collections::BTreeMap;
use std::net::SocketAddr;

use aya::maps::{Array, MapData};
pub use strait_ebpf_common::maglev_table_size;
use strait_ebpf_common::maps;

use crate::ProxyError;

/// The largest table: a prime ≥ 100 × 163 backends (Cilium's default size).
pub const TABLE_SIZE: usize = 16_381;

/// FNV-1a over the backend's address and port with a seed, so the two
/// hashes of the permutation are independent.
fn hash(backend: &SocketAddr, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match backend {
        SocketAddr::V4(a) => eat(&a.ip().octets()),
        SocketAddr::V6(a) => eat(&a.ip().octets()),
    }
    eat(&backend.port().to_be_bytes());
    h
}

/// The table: entry `i` is the index in `backends` of the backend that owns
/// slot `i`. `backends` must be in a deterministic order (the agent sorts
/// them), but the result does not depend on that order beyond ties.
/// Empty when there are no backends.
pub fn table(backends: &[SocketAddr], size: usize) -> Vec<u32> {
    let n = backends.len();
    if n == 0 || size == 0 {
        return Vec::new();
    }
    let m = size as u64;
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|b| {
            let offset = hash(b, 0x5eed_0001) % m;
            let skip = hash(b, 0x5eed_0002) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; n];
    let mut entry = vec![u32::MAX; size];
    let mut filled = 0;
    'fill: loop {
        for i in 0..n {
            let (offset, skip) = perms[i];
            let mut c = (offset + next[i] * skip) % m;
            while entry[c as usize] != u32::MAX {
                next[i] += 1;
                c = (offset + next[i] * skip) % m;
            }
            entry[c as usize] = i as u32;
            next[i] += 1;
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }
    entry
}

/// The kernel's Maglev tables, packed in one array map: each external
/// frontend's table is a range of [`maglev_table_size`] entries; this tracks
/// which ranges are free.
pub struct MaglevTables {
    array: Array<MapData, u32>,
    /// The same map mapped into memory (absent for a pin created without
    /// `BPF_F_MMAPABLE`): writes are stores, not system calls.
    mapped: Option<crate::mapped_array::MappedArray>,
    capacity: u32,
    free: FreeRanges,
}

/// The free ranges of the Maglev map: start → length, coalesced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FreeRanges {
    free: BTreeMap<u32, u32>,
}

impl MaglevTables {
    /// Wraps the pinned map of `capacity` entries, all free, written
    /// through `mapped` when given.
    pub(crate) fn new(
        array: Array<MapData, u32>,
        mapped: Option<crate::mapped_array::MappedArray>,
        capacity: u32,
    ) -> MaglevTables {
        MaglevTables {
            array,
            mapped,
            capacity,
            free: FreeRanges::new(capacity),
        }
    }

    /// Marks `[offset, offset + len)` as used (recovered from a frontend
    /// entry after a restart).
    pub(crate) fn claim(&mut self, offset: u32, len: u32) {
        self.free.claim(offset, len);
    }

    /// The offset of a free range of `len` entries (first fit), or an error
    /// naming the flag that raises the capacity.
    pub(crate) fn allocate(&mut self, len: u32, frontend: &str) -> Result<u32, ProxyError> {
        let offset = self.free.allocate(len).ok_or(ProxyError::MapFull {
            map: maps::MAGLEV,
            flag: "--max-maglev-entries",
            capacity: self.capacity,
        })?;
        tracing::debug!(frontend, offset, len, "Maglev table allocated");
        Ok(offset)
    }

    /// Returns `[offset, offset + len)` to the free ranges.
    pub(crate) fn release(&mut self, offset: u32, len: u32) {
        self.free.release(offset, len);
    }

    /// Writes the table at `offset` for `backends` (whose kernel ids are
    /// `ids`, in the same order), writing only the entries that differ from
    /// `previous` (the backends and ids the same range held; empty for a
    /// fresh range).
    pub(crate) fn write(
        &mut self,
        offset: u32,
        backends: &[SocketAddr],
        ids: &[u32],
        previous: (&[SocketAddr], &[u32]),
    ) -> Result<(), ProxyError> {
        let size = maglev_table_size(u16::try_from(backends.len()).unwrap_or(u16::MAX)) as usize;
        let new = table(backends, size);
        let old = if previous.0.is_empty() {
            Vec::new()
        } else {
            table(previous.0, size)
        };
        for (i, owner) in new.iter().enumerate() {
            let id = ids.get(*owner as usize).copied().unwrap_or(0);
            let before = old
                .get(i)
                .and_then(|o| previous.1.get(*o as usize))
                .copied();
            if before == Some(id) {
                continue;
            }
            let index = offset + i as u32;
            match &self.mapped {
                Some(m) if m.set(index, id) => {}
                _ => self
                    .array
                    .set(index, id, 0)
                    .map_err(|source| ProxyError::Map {
                        map: maps::MAGLEV,
                        source,
                    })?,
            }
        }
        Ok(())
    }
}

impl FreeRanges {
    fn new(capacity: u32) -> FreeRanges {
        FreeRanges {
            free: BTreeMap::from([(0, capacity)]),
        }
    }

    fn claim(&mut self, offset: u32, len: u32) {
        let end = offset.saturating_add(len);
        let Some((&start, &flen)) = self.free.range(..=offset).next_back() else {
            return;
        };
        if start + flen < end {
            return; // not entirely free: already claimed
        }
        self.free.remove(&start);
        if start < offset {
            self.free.insert(start, offset - start);
        }
        if end < start + flen {
            self.free.insert(end, start + flen - end);
        }
    }

    fn allocate(&mut self, len: u32) -> Option<u32> {
        let (&start, &flen) = self.free.iter().find(|(_, l)| **l >= len)?;
        self.free.remove(&start);
        if flen > len {
            self.free.insert(start + len, flen - len);
        }
        Some(start)
    }

    fn release(&mut self, offset: u32, len: u32) {
        let mut start = offset;
        let mut end = offset + len;
        if let Some((&s, &l)) = self.free.range(..offset).next_back()
            && s + l == offset
        {
            self.free.remove(&s);
            start = s;
        }
        if let Some(&l) = self.free.get(&end) {
            self.free.remove(&end);
            end += l;
        }
        self.free.insert(start, end - start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 244, (i / 200) as u8, (i % 200) as u8 + 1], 8080)))
            .collect()
    }

    #[test]
    fn every_backend_owns_about_an_equal_share() {
        let b = backends(10);
        let t = table(&b, TABLE_SIZE);
        assert_eq!(t.len(), TABLE_SIZE);
        for i in 0..10 {
            let share = t.iter().filter(|e| **e == i).count();
            let ideal = TABLE_SIZE / 10;
            assert!(
                share.abs_diff(ideal) <= ideal / 50,
                "backend {i}: {share} of {TABLE_SIZE}"
            );
        }
    }

    #[test]
    fn removing_one_of_n_backends_moves_about_one_nth_of_the_slots() {
        for n in [5usize, 10, 40] {
            let before = backends(n);
            let t1 = table(&before, TABLE_SIZE);
            let removed = n / 2;
            let mut after = before.clone();
            after.remove(removed);
            let t2 = table(&after, TABLE_SIZE);
            let moved = t1
                .iter()
                .zip(&t2)
                .filter(|(a, b)| before[**a as usize] != after[**b as usize])
                .count();
            let fraction = moved as f64 / TABLE_SIZE as f64;
            let ideal = 1.0 / n as f64;
            // The slots of the removed backend must move; Maglev's
            // disruption on top of that is small (a few percent).
            assert!(fraction >= ideal * 0.95, "n={n}: moved {fraction:.3}");
            assert!(
                fraction <= ideal * 1.3 + 0.02,
                "n={n}: moved {fraction:.3}, ideal {ideal:.3}"
            );
            // No slot of a kept backend goes to... the removed one, obviously.
            assert!(t2.iter().all(|e| (*e as usize) < after.len()));
        }
    }

    #[test]
    fn free_ranges_allocate_first_fit_and_coalesce_on_release() {
        let mut f = FreeRanges::new(1000);
        let a = f.allocate(251).unwrap();
        let b = f.allocate(509).unwrap();
        assert_eq!((a, b), (0, 251));
        assert_eq!(f.allocate(300), None, "only 240 left");
        f.release(a, 251);
        assert_eq!(f.allocate(200), Some(0), "first fit reuses the hole");
        f.release(0, 200);
        f.release(b, 509);
        assert_eq!(f, FreeRanges::new(1000), "everything coalesced back");
        // A restart claims what frontends hold; the rest stays free.
        let mut f = FreeRanges::new(1000);
        f.claim(251, 509);
        assert_eq!(f.allocate(252), None);
        assert_eq!(f.allocate(251), Some(0));
        assert_eq!(f.allocate(240), Some(760));
    }

    #[test]
    fn table_sizes_are_primes_of_at_least_a_hundred_per_backend() {
        for n in 1..=163u16 {
            let size = maglev_table_size(n);
            assert!(size >= 100 * u32::from(n), "{n}: {size}");
            assert!(
                (2..size)
                    .take_while(|d| d * d <= size)
                    .all(|d| !size.is_multiple_of(d)),
                "{size} prime"
            );
        }
        assert_eq!(maglev_table_size(1000), 16_381);
    }

    #[test]
    fn the_table_depends_on_the_backends_not_their_order() {
        let mut b = backends(7);
        let t1: Vec<SocketAddr> = table(&b, 1021).iter().map(|i| b[*i as usize]).collect();
        b.reverse();
        let t2: Vec<SocketAddr> = table(&b, 1021).iter().map(|i| b[*i as usize]).collect();
        let same = t1.iter().zip(&t2).filter(|(a, b)| a == b).count();
        assert!(same as f64 / 1021.0 > 0.9, "order changed {same} of 1021");
        assert!(table(&[], 1021).is_empty());
    }
}
