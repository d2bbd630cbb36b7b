//! The lab's cgroup v2 subtree: one cgroup per node (where its agent attaches
//! the socket hooks and its pods run) and one per lab process, so `down` can
//! kill everything the lab started by walking one tree.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// The mount point of the cgroup v2 hierarchy.
pub fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(LabError::io("reading mountinfo", "/proc/self/mountinfo"))?;
    mounts
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next() == Some("cgroup2"))
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
                .flatten()
        })
        .ok_or_else(|| {
            LabError::Prerequisite(
                "no cgroup v2 hierarchy is mounted; the lab needs one (mount -t cgroup2 none /sys/fs/cgroup)"
                    .into(),
            )
        })
}

/// Creates a cgroup (and its parents).
pub fn create(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(LabError::io("creating a cgroup", path))
}

/// Every pid in the cgroup and its descendants.
pub fn pids(path: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Kills every process in the subtree and removes it, deepest first. A
/// missing cgroup is success.
pub fn destroy(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    // cgroup.kill (5.14+) kills the whole subtree atomically; otherwise kill
    // pid by pid until none are left.
    let _ = fs::write(path.join("cgroup.kill"), "1");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = pids(path);
        if left.is_empty() {
            break;
        }
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if Instant::now() > deadline {
            return Err(LabError::State(format!(
                "processes {left:?} in {} did not exit after SIGKILL",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    remove_tree(path)
}

fn remove_tree(path: &Path) -> Result<()> {
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    // rmdir can fail with EBUSY for a moment after the last process exits.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(LabError::io("removing a cgroup", path)(e)),
        }
    }
}
