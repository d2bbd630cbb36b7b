//! Removing what killed test processes left behind: namespaces, root-netns links,
//! cgroups, mounts and temp directories whose embedded pid is no longer alive.
//!
//! Every guard constructor calls [`ensure_swept`] first, so the sweep runs lazily, once
//! per process, before the process creates anything. That first sweep also treats
//! objects carrying the process's *own* pid as stale: they can only come from an earlier
//! process that had the same pid.

use std::fs;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use crate::cgroup::{find_cgroup2_mount, remove_cgroup};
use crate::cmd;
use crate::error::{Result, loud, warn_cleanup};
use crate::mounts;
use crate::names::{ifname_pid, object_name_pid};
use crate::netns::{NETNS_RUN_DIR, delete_netns, kill_netns_processes};

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Deleted network namespaces.
    pub netns: Vec<String>,
    /// Deleted links in the root netns.
    pub links: Vec<String>,
    /// Removed cgroup directories.
    pub cgroups: Vec<PathBuf>,
    /// Unmounted mount points.
    pub mounts: Vec<PathBuf>,
    /// Removed leftover temp files and empty temp directories.
    pub temp: Vec<PathBuf>,
}

impl SweepReport {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.netns.is_empty()
            && self.links.is_empty()
            && self.cgroups.is_empty()
            && self.mounts.is_empty()
            && self.temp.is_empty()
    }
}

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Runs [`sweep_stale`]'s first-time variant once per process; later calls return at
/// once. Failures are reported on stderr, not returned: a sweep problem must not hide
/// the test's own result.
pub fn ensure_swept() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let me = std::process::id();
        match sweep(|pid| pid == me || !pid_alive(pid)) {
            Ok(r) if !r.is_empty() => {
                loud(&format!("strait-tests: swept stale test objects: {r:?}"))
            }
            Ok(_) => {}
            Err(e) => warn_cleanup("stale test objects (sweep)", &e),
        }
    });
}

/// Deletes every harness object whose creator process is dead. Objects of the calling
/// process and of live processes are left alone.
pub fn sweep_stale() -> Result<SweepReport> {
    let me = std::process::id();
    sweep(|pid| pid != me && !pid_alive(pid))
}

fn sweep(stale: impl Fn(u32) -> bool) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let timeout = Duration::from_secs(5);
    let stale_name = |name: &str| object_name_pid(name).is_some_and(&stale);

    // 1. Namespaces (their links go with them), after killing what runs inside.
    if let Ok(dir) = fs::read_dir(NETNS_RUN_DIR) {
        for entry in dir.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !stale_name(&name) {
                continue;
            }
            if let Ok(meta) = fs::metadata(entry.path()) {
                use std::os::unix::fs::MetadataExt;
                let _ = kill_netns_processes(meta.ino(), timeout);
            }
            if attempt(delete_netns(&name), &name) {
                report.netns.push(name);
            }
        }
    }

    // 2. Root-netns links, only when both the name and the alias say they are ours.
    for link in cmd::ip_json_root(&["-d", "link", "show"])? {
        let name = link["ifname"].as_str().unwrap_or_default();
        let alias = link["ifalias"].as_str().unwrap_or_default();
        let Some(pid) = object_name_pid(alias) else {
            continue;
        };
        if ifname_pid(name) == Some(pid)
            && stale(pid)
            && attempt(cmd::ip_root(&["link", "del", "dev", name]), name)
        {
            report.links.push(name.to_string());
        }
    }

    // 3. Mounts (bpffs, our own cgroup2 mounts) on harness directories.
    for m in mounts::mountinfo()? {
        let ours = m
            .mount_point
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(stale_name);
        if ours
            && (m.fstype == "bpf" || m.fstype == "cgroup2")
            && m.mount_point.exists()
            && attempt(
                mounts::unmount_and_remove(&m.mount_point),
                &m.mount_point.display().to_string(),
            )
        {
            report.mounts.push(m.mount_point);
        }
    }

    // 4. Cgroups at the top of the cgroup2 hierarchy.
    let (cg_root, own_mount) = match find_cgroup2_mount()? {
        Some(p) => (p, false),
        None => (mounts::mount_fresh("cgroup2", "sweep-cgroup2")?, true),
    };
    for entry in fs::read_dir(&cg_root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && stale_name(&name)
            && attempt(remove_cgroup(&entry.path(), timeout), &name)
        {
            report.cgroups.push(entry.path());
        }
    }
    if own_mount {
        mounts::unmount_and_remove(&cg_root)?;
    }

    // 5. Temp files and empty temp directories (a process killed between mkdir and
    //    mount, or a test's scratch file).
    for entry in fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !stale_name(&name) {
            continue;
        }
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir(entry.path()).is_ok(),
            Ok(t) if t.is_file() => fs::remove_file(entry.path()).is_ok(),
            _ => false,
        };
        if removed {
            report.temp.push(entry.path());
        }
    }
    Ok(report)
}

/// Reports a failed removal and lets the sweep go on with the next object.
fn attempt<T>(res: Result<T>, what: &str) -> bool {
    match res {
        Ok(_) => true,
        Err(e) => {
            warn_cleanup(&format!("stale {what}"), &e);
            false
        }
    }
}
