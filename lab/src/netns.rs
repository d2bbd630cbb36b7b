//! Network namespaces and links, through iproute2's `ip` (the lab's
//! namespaces are the ones `ip netns` and `ip netns exec` know, so users can
//! inspect them with the usual tools).
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, setns};

use crate::error::{LabError, Result};

/// Where `ip netns` keeps namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// The handle of a named netns.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether the named netns exists.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        LabError::Prerequisite(format!(
            "running `ip` failed ({e}); install iproute2 (scripts/setup does)"
        ))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip -n NETNS ARGS`.
pub fn ip_in(netns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Creates a netns with `lo` up.
pub fn create(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ip_in(name, &["link", "set", "lo", "up"])
}

/// Deletes a netns; a missing one is not an error.
pub fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    ip(&["netns", "delete", name])
}

/// Sets a sysctl inside a netns (`/proc/sys/net` is per namespace).
pub fn sysctl(netns: &str, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_owned();
    in_netns(netns, move || {
        std::fs::write(&path, &value).map_err(LabError::io("setting a sysctl", path.clone()))
    })?
}

/// Runs `f` on a thread that has entered the named netns (setns affects only
/// that thread), so the caller's own namespace never changes.
pub fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let path = netns_path(name);
    let file = File::open(&path).map_err(LabError::io("opening a netns", &path))?;
    let handle = std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::io("entering a netns", path)(std::io::Error::from(e)))?;
        Ok(f())
    });
    handle
        .join()
        .map_err(|_| LabError::State("a thread inside a netns panicked".into()))?
}
