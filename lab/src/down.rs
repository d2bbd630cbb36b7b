//! `strait lab down`: removes everything the lab created — processes, pods
//! (through CNI DEL), namespaces, cgroups, bpffs pins, its /etc/netns files
//! and its runtime directory — from the state file, then sweeps anything
//! still named `strait-lab*` in case the state file was lost.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cgroup;
use crate::error::{LabError, Result};
use crate::netns::{self, NETNS_DIR};
use crate::paths::{LabPaths, PREFIX};
use crate::pods::{self, ETC_NETNS};
use crate::process;
use crate::state::{LabLock, LabState};

/// What `down` removed, for its report.
#[derive(Debug, Default)]
pub struct Removed {
    /// Processes stopped.
    pub processes: usize,
    /// Pods removed.
    pub pods: usize,
    /// Network namespaces deleted.
    pub netns: usize,
}

/// Takes the lab lock and removes everything.
pub fn down(paths: &LabPaths) -> Result<Removed> {
    // Stop the controller first: it may be waiting for the lock.
    if let Ok(Some(state)) = LabState::load(paths)
        && let Some(p) = state.processes.get("controller")
    {
        process::stop(p, Duration::from_secs(3));
    }
    let _lock = LabLock::acquire(paths)?;
    down_locked(paths)
}

/// [`down`] for a caller that holds the lock.
pub fn down_locked(paths: &LabPaths) -> Result<Removed> {
    let mut removed = Removed::default();
    let state = match LabState::load(paths) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "state file unusable; sweeping by name");
            None
        }
    };
    let mut errors = Vec::new();
    if let Some(mut state) = state {
        for p in state.processes.values() {
            process::stop(p, Duration::from_secs(3));
            removed.processes += 1;
        }
        for node in &state.nodes {
            let result = if state.proxy.is_kube_proxy_layout() {
                remove_rules(&state, &node.netns)
            } else {
                detach_agent(&state, &node.cgroup, &node.bpffs)
            };
            if let Err(e) = result {
                errors.push(e.to_string());
            }
        }
        let keys: Vec<String> = state.pods.keys().cloned().collect();
        for key in keys {
            match pods::remove(&mut state, paths, &key) {
                Ok(()) => removed.pods += 1,
                Err(e) => errors.push(format!("pod {key}: {e}")),
            }
        }
        for ns in state.netns.iter().rev() {
            if netns::exists(ns) {
                match netns::delete(ns) {
                    Ok(()) => removed.netns += 1,
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        if let Err(e) = cgroup::destroy(&state.cgroup_root) {
            errors.push(e.to_string());
        }
        if let Err(e) = remove_dir(&state.bpffs_root) {
            errors.push(e.to_string());
        }
    }
    for leftover in leftovers() {
        let result = match &leftover {
            Leftover::Netns(name) => netns::delete(name).map(|()| removed.netns += 1),
            Leftover::Dir(path) => remove_dir(path),
            Leftover::Cgroup(path) => cgroup::destroy(path),
        };
        if let Err(e) = result {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        remove_dir(paths.root())?;
        Ok(removed)
    } else {
        Err(LabError::State(format!(
            "some lab resources could not be removed (state kept in {}; run `strait lab down` again):\n  {}",
            paths.root().display(),
            errors.join("\n  ")
        )))
    }
}

/// Detaches a node agent's programs and removes its pins, with the agent's
/// own cleanup command (it knows its pin layout).
fn detach_agent(state: &LabState, cgroup: &Path, bpffs: &Path) -> Result<()> {
    if !bpffs.exists() {
        return Ok(());
    }
    run_cleanup(
        Command::new(&state.strait_bin)
            .args(["agent", "cleanup", "--cgroup-root"])
            .arg(cgroup)
            .arg("--bpffs")
            .arg(bpffs),
        format!("strait agent cleanup --bpffs {}", bpffs.display()),
    )
}

/// Removes a node's kube-proxy-layout rules with the agent's own cleanup,
/// run inside the node's netns (never in ours), before the netns goes: it
/// proves the cleanup leaves nothing, and deleting the netns would remove
/// the rules anyway.
fn remove_rules(state: &LabState, netns: &str) -> Result<()> {
    if !netns::exists(netns) {
        return Ok(());
    }
    let mode = state.proxy.as_str();
    run_cleanup(
        Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(&state.strait_bin)
            .args(["agent", "cleanup", "--mode", mode]),
        format!("ip netns exec {netns} strait agent cleanup --mode {mode}"),
    )
}

/// Something named like the lab's that may outlive a lost state file.
#[derive(Debug)]
pub enum Leftover {
    /// A netns.
    Netns(String),
    /// A directory (bpffs pins, /etc/netns entries).
    Dir(PathBuf),
    /// A cgroup subtree.
    Cgroup(PathBuf),
}

/// Everything on the machine named `strait-lab*` by the lab.
pub fn leftovers() -> Vec<Leftover> {
    let mut out = Vec::new();
    let named = |dir: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(PREFIX))
                    .collect()
            })
            .unwrap_or_default()
    };
    out.extend(named(NETNS_DIR).into_iter().map(Leftover::Netns));
    out.extend(
        named(ETC_NETNS)
            .into_iter()
            .map(|n| Leftover::Dir(Path::new(ETC_NETNS).join(n))),
    );
    let bpffs = Path::new("/sys/fs/bpf").join(PREFIX);
    if bpffs.exists() {
        out.push(Leftover::Dir(bpffs));
    }
    if let Ok(root) = cgroup::cgroup2_mount() {
        let cg = root.join(PREFIX);
        if cg.exists() {
            out.push(Leftover::Cgroup(cg));
        }
    }
    out
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io("removing a directory", path)(e)),
    }
}

/// Runs one of the agent's cleanup commands, failing with its stderr;
/// `command` names it in the error.
fn run_cleanup(cmd: &mut Command, command: String) -> Result<()> {
    let out = cmd.output().map_err(|e| LabError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
