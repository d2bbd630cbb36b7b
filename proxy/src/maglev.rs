//! Maglev consistent hashing (Eisenbud et al., NSDI 2016) for external
//! traffic: a lookup table of a prime size `M` where each backend owns about
//! `M / N` entries. Every node computes the same table from the same backend
//! addresses, so a flow entering any node picks the same backend, and
//! removing one of N backends moves only the flows that were on it (about
//! 1/N of them).
use std::collections::BTreeSet;
use std::net::SocketAddr;

use aya::maps::{Array, MapData};
use strait_ebpf_common::maps;

use crate::ProxyError;

/// Table size: a prime ≥ 100 × the largest backend count it is meant for
/// (163 backends), as the Maglev paper recommends (Cilium's default too).
pub const TABLE_SIZE: usize = strait_ebpf_common::MAGLEV_TABLE_SIZE as usize;

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

/// The kernel's Maglev tables (one row of [`TABLE_SIZE`] backend ids per
/// external frontend) and which rows are in use.
pub struct MaglevTables {
    array: Array<MapData, u32>,
    rows: u32,
    used: BTreeSet<u32>,
}

impl MaglevTables {
    /// Wraps the pinned map, which holds `rows` tables.
    pub(crate) fn new(array: Array<MapData, u32>, rows: u32) -> MaglevTables {
        MaglevTables {
            array,
            rows,
            used: BTreeSet::new(),
        }
    }

    /// Marks `row` as used (recovered from a frontend entry after a restart).
    pub(crate) fn claim(&mut self, row: u32) {
        self.used.insert(row);
    }

    /// A free row, or an error naming the flag that raises the number.
    pub(crate) fn allocate(&mut self, frontend: &str) -> Result<u32, ProxyError> {
        let row = (0..self.rows)
            .find(|r| !self.used.contains(r))
            .ok_or(ProxyError::MapFull {
                map: maps::MAGLEV,
                flag: "--max-maglev-tables",
                capacity: self.rows,
            })?;
        tracing::debug!(frontend, row, "Maglev table allocated");
        self.used.insert(row);
        Ok(row)
    }

    /// Returns `row` to the pool.
    pub(crate) fn release(&mut self, row: u32) {
        self.used.remove(&row);
    }

    /// Writes row `row` for `backends` (whose kernel ids are `ids`, in the
    /// same order), writing only the entries that differ from the table of
    /// `previous` (the old backends and ids; empty for a new row).
    pub(crate) fn write(
        &mut self,
        row: u32,
        backends: &[SocketAddr],
        ids: &[u32],
        previous: (&[SocketAddr], &[u32]),
    ) -> Result<(), ProxyError> {
        let new = table(backends, TABLE_SIZE);
        let old = table(previous.0, TABLE_SIZE);
        let base = row * TABLE_SIZE as u32;
        for (i, owner) in new.iter().enumerate() {
            let id = ids.get(*owner as usize).copied().unwrap_or(0);
            let before = old
                .get(i)
                .and_then(|o| previous.1.get(*o as usize))
                .copied();
            if before != Some(id) {
                self.array
                    .set(base + i as u32, id, 0)
                    .map_err(|source| ProxyError::Map {
                        map: maps::MAGLEV,
                        source,
                    })?;
            }
        }
        Ok(())
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
