//! Starting and stopping the lab's long-running processes: each runs in its
//! own session, inside a netns and a cgroup chosen before it executes, with
//! its output in a log file.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{LabError, Result};
use crate::netns::netns_path;
use crate::state::ProcessState;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// The netns to run in (`None`: the caller's).
    pub netns: Option<String>,
    /// The cgroup to run in.
    pub cgroup: PathBuf,
    /// Where stdout and stderr go (appended).
    pub log: PathBuf,
}

/// Makes `cmd` enter `netns` and `cgroup` in the child, between fork and
/// exec, so the program never runs a single instruction outside them (the
/// socket hooks of its node must see its very first connect).
pub fn confine(cmd: &mut Command, netns: Option<&str>, cgroup: &Path) -> Result<()> {
    let ns_fd: Option<OwnedFd> = match netns {
        Some(name) => {
            let path = netns_path(name);
            Some(
                File::open(&path)
                    .map_err(LabError::io("opening a netns", &path))?
                    .into(),
            )
        }
        None => None,
    };
    let procs = cgroup.join("cgroup.procs");
    let cg_fd: OwnedFd = OpenOptions::new()
        .write(true)
        .open(&procs)
        .map_err(LabError::io("opening a cgroup", &procs))?
        .into();
    // SAFETY: the closure only makes async-signal-safe system calls (setns,
    // write) on descriptors opened before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = &ns_fd
                && libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // Writing "0" moves the writing process itself.
            if libc::write(cg_fd.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Starts a detached process (its own session, stdin from /dev/null).
pub fn spawn(spec: &Spawn) -> Result<ProcessState> {
    if let Some(dir) = spec.log.parent() {
        crate::state::create_dir(dir)?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(LabError::io("opening a log file", &spec.log))?;
    let _ = writeln!(
        log,
        "--- strait lab: starting {} {}",
        spec.program.display(),
        spec.args.join(" ")
    );
    let err = log
        .try_clone()
        .map_err(LabError::io("opening a log file", &spec.log))?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; it detaches the child from the
    // terminal so closing it does not stop the lab.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    confine(&mut cmd, spec.netns.as_deref(), &spec.cgroup)?;
    let child = cmd.spawn().map_err(|e| LabError::Command {
        command: format!("{} {}", spec.program.display(), spec.args.join(" ")),
        detail: format!("could not start: {e}"),
    })?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    // The child is reaped by whoever outlives it (the controller reaps its
    // own); dropping the handle does not kill it.
    drop(child);
    let mut command = vec![spec.program.display().to_string()];
    command.extend(spec.args.iter().cloned());
    Ok(ProcessState {
        pid,
        start_time: start_time(pid).unwrap_or(0),
        log: spec.log.clone(),
        command,
    })
}

/// The process's start time in clock ticks since boot, from /proc.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) may contain spaces; fields after it start at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); starttime is field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the recorded process is still the one the lab started and running.
pub fn alive(p: &ProcessState) -> bool {
    start_time(p.pid).is_some_and(|t| p.start_time == 0 || t == p.start_time)
}

/// SIGTERM, then SIGKILL after `grace`. A process that is gone is success.
pub fn stop(p: &ProcessState, grace: Duration) {
    if !alive(p) {
        return;
    }
    let pid = Pid::from_raw(p.pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap();
        if !alive(p) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
    reap();
}

/// Collects exited children so they do not linger as zombies.
pub fn reap() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
