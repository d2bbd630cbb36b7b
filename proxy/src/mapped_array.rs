//! A writable memory mapping of a `BPF_F_MMAPABLE` array map, so user space
//! fills millions of entries (the Maglev tables of 10 000 NodePorts) with
//! plain stores instead of one `bpf()` system call per entry.
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use aya::maps::MapData;

/// `BPF_F_MMAPABLE`: the map may be mapped into user space.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The kernel stores array values at 8-byte strides.
const STRIDE: usize = 8;

/// The values of an array map of `u32`, mapped shared: a store here is
/// what the eBPF programs read next. Unmapped on drop.
pub struct MappedArray {
    base: NonNull<u8>,
    len: usize,
    entries: u32,
}

// SAFETY: the mapping is plain shared memory owned by this value; every
// access goes through an atomic, so moving it to another thread is sound.
unsafe impl Send for MappedArray {}

impl MappedArray {
    /// Maps `map`, or `None` when it was not created mmapable (a pin left
    /// by an older agent) or is not an array of 4-byte values.
    pub fn new(map: &MapData) -> Option<MappedArray> {
        let info = map.info().ok()?;
        if info.map_flags() & BPF_F_MMAPABLE == 0 || info.value_size() != 4 {
            return None;
        }
        let entries = info.max_entries();
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        let len = (entries as usize * STRIDE).div_ceil(page) * page;
        let fd = map.fd().as_fd();
        // SAFETY: a fresh shared mapping of the map's value area, whose
        // length the kernel checks against the map; the fd outlives the
        // call (the mapping keeps the map alive on its own).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "mapping the Maglev map failed; writing it entry by entry"
            );
            return None;
        }
        Some(MappedArray {
            base: NonNull::new(ptr.cast())?,
            len,
            entries,
        })
    }

    /// The slot of `index`, or `None` past the end.
    fn slot(&self, index: u32) -> Option<&AtomicU32> {
        if index >= self.entries {
            return None;
        }
        // SAFETY: index < entries, so the 4-byte slot lies inside the
        // mapping and is 8-byte aligned (page-aligned base, 8-byte stride);
        // the eBPF side only reads it whole.
        Some(unsafe {
            &*self
                .base
                .as_ptr()
                .add(index as usize * STRIDE)
                .cast::<AtomicU32>()
        })
    }

    /// Stores `value` at `index`; `false` when the index is out of range.
    pub fn set(&self, index: u32, value: u32) -> bool {
        self.slot(index)
            .map(|s| s.store(value, Ordering::Relaxed))
            .is_some()
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
