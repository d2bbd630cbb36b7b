//! The allocation store: one directory per network, changed only under an
//! exclusive file lock, laid out so a process killed at any point leaves a
//! state that `DEL` or `GC` fully cleans.
//!
//! ```text
//! <dataDir>/<network>/
//!   lock                      flock(2)ed around every change
//!   ids/<containerID>@<ifname> the attachment's addresses, one per line
//!   ips/<address>              "<containerID>\n<ifname>\n": who holds it
//!   last/<set>                 last address handed out from range set <set>
//! ```
//! `ADD` writes the attachment's index entry (atomically, by rename)
//! *before* it creates the address files, so every address is reachable
//! from the index and `DEL` never scans. `GC` scans both directories and
//! removes anything not owned by a valid attachment, which also covers an
//! address file whose owner was killed before finishing.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::{RangeSet, from_u128};
use crate::error::{CniError, ErrorCode};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("IPAM store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No free address is left in a range set.
    #[error("no IP addresses available in range set {0}")]
    Exhausted(String),
    /// A requested address is in none of the configured ranges.
    #[error("requested IP {0} is not in any configured IPAM range")]
    NotInRange(IpAddr),
    /// A requested address belongs to another container.
    #[error("requested IP {0} is already allocated to container {1}")]
    Taken(IpAddr, String),
    /// The store's lock stayed held by another process for the whole
    /// bounded wait: a transient condition the runtime retries (code 11).
    #[error("IPAM store {path} is locked by another process (waited {waited:?})")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long the plugin waited.
        waited: Duration,
    },
}

/// How long a command waits for the store's lock before answering "try
/// again later" (code 11): far longer than any store operation takes
/// (milliseconds), far shorter than a runtime's own timeout, so a stuck
/// holder turns into a retry instead of a hung pod start.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest sleep between two attempts to take the lock: short,
/// because holders only do file operations (about a millisecond), so a
/// waiter should notice the release quickly.
const LOCK_POLL_MAX: Duration = Duration::from_millis(4);

/// A store failure as a CNI error: exhaustion is 50 ("cannot service
/// ADD"), a lock held too long is 11 ("try again later"), anything else
/// the store's own code.
impl From<StoreError> for CniError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Exhausted(_) => CniError::new(ErrorCode::PLUGIN_NOT_AVAILABLE, err.to_string())
                .with_details("every address of the range set is allocated: widen the range, or GC/DEL unused pods"),
            StoreError::NotInRange(_) => CniError::new(ErrorCode::INVALID_NETWORK_CONFIG, err.to_string())
                .with_details("runtimeConfig.ips may only name addresses inside ipam.ranges (and not the gateway)"),
            StoreError::Taken(..) => CniError::new(ErrorCode::REQUESTED_IP_TAKEN, err.to_string())
                .with_details("DEL the container holding it first, or request another address"),
            StoreError::Io { .. } => CniError::new(ErrorCode::IPAM_STORE_FAILED, err.to_string())
                .with_details("check that ipam.dataDir exists and is writable by the plugin"),
            StoreError::Busy { .. } => CniError::new(ErrorCode::TRY_AGAIN_LATER, err.to_string())
                .with_details("another plugin process holds the IPAM store lock; retry the call. If it persists, find the holder (fuser <lock file>) or raise ipam.lockTimeoutMs"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An attachment: what the runtime calls `(CNI_CONTAINERID, CNI_IFNAME)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// The container id.
    pub container_id: String,
    /// The interface name inside the container.
    pub ifname: String,
}

impl Attachment {
    /// An attachment from its two parts.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// The index file name. Container ids never contain `@`, so splitting
    /// at the first `@` recovers both parts.
    fn key(&self) -> String {
        format!("{}@{}", self.container_id, self.ifname)
    }

    fn from_key(key: &str) -> Option<Self> {
        let (id, ifname) = key.split_once('@')?;
        Some(Self::new(id, ifname))
    }

    fn owner_record(&self) -> String {
        format!("{}\n{}\n", self.container_id, self.ifname)
    }

    fn from_owner_record(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        Some(Self::new(lines.next()?, lines.next()?))
    }
}

/// The addresses one attachment holds, one per range set, in set order.
pub type Allocation = Vec<IpAddr>;

/// A network's allocation store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    lock: File,
    lock_timeout: Duration,
}

/// The store with its lock held (see [`Store::hold`]); dropping it unlocks.
pub struct Held<'a> {
    store: &'a Store,
    _lock: Locked<'a>,
}

impl Held<'_> {
    /// [`Store::release`] under the held lock.
    pub fn release(&self, att: &Attachment) -> Result<Allocation, StoreError> {
        self.store.release_locked(att)
    }

    /// [`Store::gc`] under the held lock.
    pub fn gc(&self, valid: &[Attachment]) -> Result<Vec<Attachment>, StoreError> {
        self.store.gc_locked(valid)
    }

    /// [`Store::attachments`], listed under the held lock.
    pub fn attachments(&self) -> Result<Vec<Attachment>, StoreError> {
        self.store.attachments()
    }
}

/// Holds the store's exclusive lock until dropped.
struct Locked<'a>(&'a File);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Store {
    /// Open (creating if needed) the store of `network` under `data_dir`.
    pub fn open(data_dir: &Path, network: &str) -> Result<Self, StoreError> {
        let dir = data_dir.join(network);
        for sub in ["ids", "ips", "last"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_err(&path))?;
        }
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        Ok(Self {
            dir,
            lock,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// Wait at most `timeout` for the lock in every operation (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the exclusive lock, polling with a growing back-off (a blocking
    /// `flock` cannot be bounded without signals); `Busy` once the timeout
    /// has passed with the lock still held elsewhere.
    fn lock(&self) -> Result<Locked<'_>, StoreError> {
        let started = Instant::now();
        // Start the back-off at a per-process offset so many waiters do
        // not poll in lockstep.
        let mut pause = Duration::from_micros(200 + u64::from(std::process::id() % 800));
        loop {
            match self.lock.try_lock() {
                Ok(()) => return Ok(Locked(&self.lock)),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io_err(&self.dir.join("lock"))(e));
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
            }
            let waited = started.elapsed();
            if waited >= self.lock_timeout {
                return Err(StoreError::Busy {
                    path: self.dir.join("lock"),
                    waited,
                });
            }
            std::thread::sleep(pause.min(self.lock_timeout - waited));
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }

    fn ids(&self, att: &Attachment) -> PathBuf {
        self.dir.join("ids").join(att.key())
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join("ips").join(ip.to_string())
    }

    fn last_path(&self, set: usize) -> PathBuf {
        self.dir.join("last").join(set.to_string())
    }

    fn read_index(&self, att: &Attachment) -> Result<Option<Allocation>, StoreError> {
        let path = self.ids(att);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(
                text.lines().filter_map(|l| l.trim().parse().ok()).collect(),
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn owner(&self, ip: IpAddr) -> Option<Attachment> {
        fs::read_to_string(self.ip_path(ip))
            .ok()
            .and_then(|t| Attachment::from_owner_record(&t))
    }

    /// Write `contents` to `path` atomically (temp file + rename).
    fn write_atomic(path: &Path, contents: &str) -> Result<(), StoreError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
        fs::write(&tmp, contents).map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))
    }

    /// The attachment's addresses, if it holds any.
    pub fn get(&self, att: &Attachment) -> Result<Option<Allocation>, StoreError> {
        self.read_index(att)
    }

    /// Allocate one address from each range set for `att`, round-robin
    /// after the last address handed out, so a released address is not
    /// reused at once. An attachment that already holds addresses gets
    /// them back (a retried `ADD`).
    pub fn allocate(&self, att: &Attachment, sets: &[RangeSet]) -> Result<Allocation, StoreError> {
        self.allocate_requested(att, sets, &[])
    }

    /// [`Store::allocate`], except that a range set containing one of
    /// `requested` hands out exactly that address (the runtime's `ips`
    /// capability, as host-local honours it). A requested address outside
    /// every set, or held by another attachment, is an error, never a
    /// silent substitute.
    pub fn allocate_requested(
        &self,
        att: &Attachment,
        sets: &[RangeSet],
        requested: &[IpAddr],
    ) -> Result<Allocation, StoreError> {
        let _locked = self.lock()?;
        if let Some(ip) = requested.iter().find(|ip| {
            !sets
                .iter()
                .any(|s| s.ranges.iter().any(|r| r.contains(**ip)))
        }) {
            return Err(StoreError::NotInRange(*ip));
        }
        if let Some(existing) = self.read_index(att)?
            && existing.len() == sets.len()
            && existing
                .iter()
                .all(|ip| self.owner(*ip).as_ref() == Some(att))
        {
            return Ok(existing);
        }
        let mut chosen = Vec::with_capacity(sets.len());
        for (i, set) in sets.iter().enumerate() {
            let last = fs::read_to_string(self.last_path(i))
                .ok()
                .and_then(|t| t.trim().parse().ok());
            let wanted = requested
                .iter()
                .find(|ip| set.ranges.iter().any(|r| r.contains(**ip)));
            let ip = match wanted {
                Some(ip) => match self.owner(*ip) {
                    Some(holder) if &holder != att => {
                        return Err(StoreError::Taken(*ip, holder.container_id));
                    }
                    _ => *ip,
                },
                None => find_free(set, last, |ip| self.ip_path(ip).exists())
                    .ok_or_else(|| StoreError::Exhausted(describe(set)))?,
            };
            chosen.push(ip);
        }
        // Index first: from here on DEL finds every address we may create.
        let index: String = chosen.iter().map(|ip| format!("{ip}\n")).collect();
        Self::write_atomic(&self.ids(att), &index)?;
        crate::testhook::pause("ipam-indexed");
        for ip in &chosen {
            if self.owner(*ip).as_ref() == Some(att) {
                continue; // a requested address a retried ADD already holds
            }
            let path = self.ip_path(*ip);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err(&path))?;
            file.write_all(att.owner_record().as_bytes())
                .map_err(io_err(&path))?;
        }
        for (i, ip) in chosen.iter().enumerate() {
            Self::write_atomic(&self.last_path(i), &ip.to_string())?;
        }
        Ok(chosen)
    }

    /// Take the store's lock for a command that changes the kernel and the
    /// store together (`DEL`, `GC`): holding it from the start means a
    /// command refused with [`StoreError::Busy`] has changed nothing.
    pub fn hold(&self) -> Result<Held<'_>, StoreError> {
        Ok(Held {
            store: self,
            _lock: self.lock()?,
        })
    }

    /// Release everything `att` holds; returns what was released. Releasing
    /// an attachment that holds nothing is success.
    pub fn release(&self, att: &Attachment) -> Result<Allocation, StoreError> {
        let _locked = self.lock()?;
        self.release_locked(att)
    }

    fn release_locked(&self, att: &Attachment) -> Result<Allocation, StoreError> {
        let Some(ips) = self.read_index(att)? else {
            return Ok(Vec::new());
        };
        for ip in &ips {
            // Only remove an address this attachment really owns: after a
            // crash the index may name an address another attachment got.
            if self.owner(*ip).as_ref() == Some(att) {
                remove_if_exists(&self.ip_path(*ip))?;
            }
        }
        remove_if_exists(&self.ids(att))?;
        Ok(ips)
    }

    /// `GC`: release every attachment not in `valid`, and every address
    /// file no valid attachment owns. Returns the attachments released.
    pub fn gc(&self, valid: &[Attachment]) -> Result<Vec<Attachment>, StoreError> {
        let _locked = self.lock()?;
        self.gc_locked(valid)
    }

    fn gc_locked(&self, valid: &[Attachment]) -> Result<Vec<Attachment>, StoreError> {
        let valid: HashSet<&Attachment> = valid.iter().collect();
        let mut released = Vec::new();
        for name in list_dir(&self.dir.join("ids"))? {
            let Some(att) = Attachment::from_key(&name).filter(|_| !name.starts_with('.')) else {
                // A temp file of a killed writer, or garbage.
                remove_if_exists(&self.dir.join("ids").join(&name))?;
                continue;
            };
            if !valid.contains(&att) {
                self.release_locked(&att)?;
                released.push(att);
            }
        }
        for name in list_dir(&self.dir.join("ips"))? {
            let path = self.dir.join("ips").join(&name);
            let owner = fs::read_to_string(&path)
                .ok()
                .and_then(|t| Attachment::from_owner_record(&t));
            if owner.as_ref().is_none_or(|o| !valid.contains(o)) {
                remove_if_exists(&path)?;
                if let Some(o) = owner
                    && !released.contains(&o)
                {
                    released.push(o);
                }
            }
        }
        Ok(released)
    }

    /// For each range set, whether it still has a free address (`STATUS`).
    pub fn has_free(&self, sets: &[RangeSet]) -> Result<Vec<bool>, StoreError> {
        let _locked = self.lock()?;
        Ok(sets
            .iter()
            .enumerate()
            .map(|(i, set)| {
                let last = fs::read_to_string(self.last_path(i))
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                find_free(set, last, |ip| self.ip_path(ip).exists()).is_some()
            })
            .collect())
    }

    /// How many addresses are allocated.
    pub fn allocated(&self) -> Result<usize, StoreError> {
        Ok(list_dir(&self.dir.join("ips"))?.len())
    }

    /// Every attachment in the index.
    pub fn attachments(&self) -> Result<Vec<Attachment>, StoreError> {
        Ok(list_dir(&self.dir.join("ids"))?
            .iter()
            .filter(|k| !k.starts_with('.'))
            .filter_map(|k| Attachment::from_key(k))
            .collect())
    }
}

/// A range set for messages: its ranges, comma separated.
pub fn describe(set: &RangeSet) -> String {
    set.ranges
        .iter()
        .map(|r| format!("{} ({}-{})", r.subnet, r.start, r.end))
        .collect::<Vec<_>>()
        .join(", ")
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

fn list_dir(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

/// The first free address after `last`, walking the set's ranges in order
/// and wrapping around once; `None` when every address is taken.
pub fn find_free(
    set: &RangeSet,
    last: Option<IpAddr>,
    taken: impl Fn(IpAddr) -> bool,
) -> Option<IpAddr> {
    let ranges = &set.ranges;
    let first = ranges.first()?;
    let total: u128 = ranges
        .iter()
        .map(|r| {
            let (lo, hi) = r.bounds();
            (hi - lo).saturating_add(1)
        })
        .fold(0u128, u128::saturating_add);
    // Start right after `last` if it is in the set, else at the beginning.
    let (mut ri, mut n) = (0usize, first.bounds().0);
    if let Some(last) = last
        && let Some(i) = ranges.iter().position(|r| {
            r.start.is_ipv4() == last.is_ipv4() && {
                let (lo, hi) = r.bounds();
                let v = ip_u128(last);
                lo <= v && v <= hi
            }
        })
    {
        ri = i;
        n = ip_u128(last).saturating_add(1);
    }
    let mut seen: u128 = 0;
    while seen < total {
        let range = &ranges[ri];
        let (lo, hi) = range.bounds();
        if n > hi || n < lo {
            ri = (ri + 1) % ranges.len();
            n = ranges[ri].bounds().0;
            continue;
        }
        seen += 1;
        let ip = from_u128(range.start, n);
        n += 1;
        if Some(ip) != range.gateway && !taken(ip) {
            return Some(ip);
        }
    }
    None
}

fn ip_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ipam::IpamConfig;

    fn sets(v: serde_json::Value) -> Vec<RangeSet> {
        IpamConfig::parse(Some(&v)).expect("config").range_sets
    }

    fn att(id: &str) -> Attachment {
        Attachment::new(id, "eth0")
    }

    #[test]
    fn requested_address_is_handed_out_exactly_or_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), "net").expect("open");
        let s = sets(json!({"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}));
        let want: IpAddr = "10.244.0.200".parse().unwrap();
        let a = store
            .allocate_requested(&att("a"), &s, &[want])
            .expect("requested");
        assert_eq!(a, vec![want]);
        // A retried ADD of the same container gets it again.
        let again = store.allocate_requested(&att("a"), &s, &[want]);
        assert_eq!(again.expect("retry"), vec![want]);
        // Another container may not take it, nor an address outside the ranges.
        let err = store
            .allocate_requested(&att("b"), &s, &[want])
            .expect_err("taken");
        assert!(
            matches!(&err, StoreError::Taken(ip, by) if *ip == want && by == "a"),
            "{err}"
        );
        let outside: IpAddr = "10.9.9.9".parse().unwrap();
        let err = store
            .allocate_requested(&att("b"), &s, &[outside])
            .expect_err("outside");
        assert!(matches!(err, StoreError::NotInRange(ip) if ip == outside));
        let gw: IpAddr = "10.244.0.1".parse().unwrap();
        assert!(
            store.allocate_requested(&att("b"), &s, &[gw]).is_err(),
            "gateway"
        );
        // Dynamic allocation skips the requested address once released too.
        store.release(&att("a")).expect("release");
        let b = store.allocate(&att("b"), &s).expect("dynamic");
        assert_ne!(b, vec![want]);
        assert_eq!(store.allocated().expect("count"), 1);
    }

    #[test]
    fn allocates_round_robin_and_does_not_reuse_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), "net").expect("open");
        let s = sets(json!({"subnet": "10.244.0.0/29", "gateway": "10.244.0.1"}));
        let a = store.allocate(&att("a"), &s).expect("a");
        let b = store.allocate(&att("b"), &s).expect("b");
        assert_eq!(a[0].to_string(), "10.244.0.2");
        assert_eq!(b[0].to_string(), "10.244.0.3");
        // Repeating an ADD gives the same address back.
        assert_eq!(store.allocate(&att("a"), &s).expect("again"), a);
        store.release(&att("a")).expect("release");
        let c = store.allocate(&att("c"), &s).expect("c");
        assert_eq!(c[0].to_string(), "10.244.0.4", "not the released .2");
        assert_eq!(store.allocated().expect("count"), 2);
        // Fill up: .5 .6, then wrap to .2; then exhausted (.7 is broadcast).
        for id in ["d", "e", "f"] {
            store.allocate(&att(id), &s).expect(id);
        }
        assert_eq!(store.get(&att("f")).expect("get"), Some(a.clone()));
        let err = store.allocate(&att("g"), &s).expect_err("full");
        assert!(matches!(err, StoreError::Exhausted(_)), "{err}");
        assert_eq!(store.has_free(&s).expect("status"), vec![false]);
        store.release(&att("d")).expect("release");
        assert_eq!(store.has_free(&s).expect("status"), vec![true]);
        // Releasing twice, or something never allocated, is fine.
        assert_eq!(
            store.release(&att("d")).expect("again"),
            Vec::<IpAddr>::new()
        );
        assert_eq!(
            store.release(&att("zz")).expect("none"),
            Vec::<IpAddr>::new()
        );
    }

    #[test]
    fn dual_stack_and_multiple_ranges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), "net").expect("open");
        let s = sets(json!({"ranges": [
            [{"subnet": "10.244.0.0/30"}, {"subnet": "10.244.1.0/30"}],
            [{"subnet": "fd00::/126"}],
        ]}));
        let a = store.allocate(&att("a"), &s).expect("a");
        assert_eq!(
            a.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            ["10.244.0.1", "fd00::1"]
        );
        let b = store.allocate(&att("b"), &s).expect("b");
        assert_eq!(b[0].to_string(), "10.244.0.2");
        let c = store.allocate(&att("c"), &s).expect("c");
        assert_eq!(c[0].to_string(), "10.244.1.1", "next range of the set");
        assert_eq!(c[1].to_string(), "fd00::3");
        // The v6 set (fd00::1-3) is now full: the whole ADD fails and
        // takes nothing from the v4 set.
        let before = store.allocated().expect("count");
        assert!(
            matches!(store.allocate(&att("d"), &s), Err(StoreError::Exhausted(m)) if m.contains("fd00::"))
        );
        assert_eq!(store.allocated().expect("count"), before);
        assert_eq!(store.get(&att("d")).expect("get"), None);
    }

    #[test]
    fn a_held_lock_is_busy_after_the_bounded_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Store::open(dir.path(), "net").expect("open");
        let waiter = Store::open(dir.path(), "net")
            .expect("open")
            .with_lock_timeout(Duration::from_millis(30));
        let s = sets(json!({"subnet": "10.244.0.0/24"}));
        let held = holder.hold().expect("lock");
        for err in [
            waiter.allocate(&att("a"), &s).expect_err("busy"),
            waiter.release(&att("a")).expect_err("busy"),
            waiter.gc(&[]).expect_err("busy"),
            waiter.has_free(&s).expect_err("busy"),
            waiter.hold().map(|_| ()).expect_err("busy"),
        ] {
            assert!(
                matches!(&err, StoreError::Busy { path, .. } if path.ends_with("net/lock")),
                "{err}"
            );
        }
        assert_eq!(waiter.allocated().expect("count"), 0, "nothing was written");
        drop(held);
        assert!(waiter.allocate(&att("a"), &s).is_ok());
    }

    #[test]
    fn gc_releases_invalid_attachments_and_orphan_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), "net").expect("open");
        let s = sets(json!({"subnet": "10.244.0.0/24"}));
        for id in ["a", "b", "c"] {
            store.allocate(&att(id), &s).expect(id);
        }
        // A writer killed after creating an address file with no index.
        fs::write(store.dir().join("ips/10.244.0.200"), "x\neth0\n").expect("write");
        // And one killed while writing its index.
        fs::write(store.dir().join("ids/.y@eth0.tmp123"), "10.244.0.201\n").expect("write");
        let mut released = store.gc(&[att("b")]).expect("gc");
        released.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        assert_eq!(released, vec![att("a"), att("c"), att("x")]);
        assert_eq!(store.attachments().expect("list"), vec![att("b")]);
        assert_eq!(store.allocated().expect("count"), 1);
        assert!(store.get(&att("b")).expect("get").is_some());
    }
}
