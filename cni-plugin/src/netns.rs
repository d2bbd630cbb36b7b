//! The container's network namespace: open it, and open a netlink socket
//! inside it without moving the plugin there for longer than one syscall.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use strait_netlink::{Netlink, NetlinkError};

/// Why the namespace could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `CNI_NETNS` does not exist or cannot be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The path given in `CNI_NETNS`.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path is not a network namespace, or switching failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The path given in `CNI_NETNS`.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// Switching back to the plugin's own namespace failed; the process
    /// must not go on in the wrong namespace.
    #[error("cannot return to the host network namespace: {0}")]
    Return(nix::Error),
    /// The netlink socket inside the namespace could not be opened.
    #[error("netlink in {path}: {source}")]
    Netlink {
        /// The namespace path.
        path: PathBuf,
        /// Why.
        source: NetlinkError,
    },
}

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Open the namespace at `path` (`CNI_NETNS`).
    pub fn open(path: &Path) -> Result<Self, NetnsError> {
        let file = File::open(path).map_err(|source| NetnsError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open fd, for `IFLA_NET_NS_FD`.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// A netlink socket bound inside this namespace. The calling thread
    /// enters the namespace only to create the socket and returns at once:
    /// a socket stays in the namespace it was created in.
    pub fn netlink(&self) -> Result<Netlink, NetnsError> {
        let home = File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Open {
            path: "/proc/thread-self/ns/net".into(),
            source,
        })?;
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
            path: self.path.clone(),
            source,
        })?;
        let socket = Netlink::open();
        setns(&home, CloneFlags::CLONE_NEWNET).map_err(NetnsError::Return)?;
        socket.map_err(|source| NetnsError::Netlink {
            path: self.path.clone(),
            source,
        })
    }
}
