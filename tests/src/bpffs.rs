//! [`Bpffs`]: a private bpffs mount so tests can pin maps and programs without touching
//! `/sys/fs/bpf`, and [`PinGuard`], which removes one pin on drop.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, warn_cleanup};
use crate::mounts;

/// A bpffs mounted on a fresh `$TMPDIR/strait-t-<pid>-<n>-bpffs`; unmounted (which drops
/// every pin in it) and removed on drop.
#[derive(Debug)]
pub struct Bpffs {
    path: PathBuf,
}

impl Bpffs {
    /// Mounts a new bpffs.
    pub fn new() -> Result<Bpffs> {
        crate::sweep::ensure_swept();
        Ok(Bpffs {
            path: mounts::mount_fresh("bpf", "bpffs")?,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`: where to pin an object called `name`.
    pub fn pin_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if let Err(e) = mounts::unmount_and_remove(&self.path) {
            warn_cleanup(&format!("bpffs {}", self.path.display()), &e);
        }
    }
}

/// Removes a pinned object (a file in a bpffs) on drop, for tests that pin into a bpffs
/// that outlives them.
#[derive(Debug)]
pub struct PinGuard {
    path: PathBuf,
}

impl PinGuard {
    /// Guards the pin at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> PinGuard {
        PinGuard { path: path.into() }
    }

    /// The guarded path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn_cleanup(&format!("pin {}", self.path.display()), &e),
        }
    }
}
