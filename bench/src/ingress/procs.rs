//! The processes the benchmark starts, and their CPU time.
//!
//! Every child is held by a guard that kills and reaps it on drop, so an
//! error or a panic anywhere still leaves nothing running. nginx gets its
//! own guard: its workers are grandchildren, which a SIGKILL to the master
//! would orphan. SIGINT and SIGTERM to the benchmark set a flag that the
//! polling loops turn into an error, so the guards run then too.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into [`check_interrupted`] errors.
pub fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// An error once SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// How the benchmark's processes are scheduled against the rest of the
/// machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sched {
    /// `nice -n N` (negative for root: other work gets less of the CPUs).
    Nice(i32),
    /// `chrt -r PRIO`: SCHED_RR, so other (normal) work on the machine
    /// never delays a wake-up of ours; the kernel's RT throttling still
    /// leaves it 5% of each CPU.
    RoundRobin(u8),
}

impl std::fmt::Display for Sched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sched::Nice(n) => write!(f, "nice {n}"),
            Sched::RoundRobin(p) => write!(f, "SCHED_RR priority {p}"),
        }
    }
}

/// `nice -n N` or `chrt -r PRIO`, then `taskset -c CPU program…` (the same
/// pid in the end), killed with SIGKILL should the benchmark die without
/// running its guards (PR_SET_PDEATHSIG survives the exec). `nice` warns
/// and goes on unchanged where it is not allowed; `chrt` fails.
pub fn pinned(sched: Sched, cpu: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = match sched {
        Sched::Nice(n) => {
            let mut c = Command::new("nice");
            c.args(["-n", &n.to_string()]);
            c
        }
        Sched::RoundRobin(p) => {
            let mut c = Command::new("chrt");
            c.args(["-r", &p.to_string()]);
            c
        }
    };
    cmd.args(["taskset", "-c", cpu]).arg(program);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// A process killed (SIGKILL) and reaped when dropped.
pub struct Guard {
    child: Child,
    what: String,
}

impl Guard {
    pub fn spawn(cmd: &mut Command, what: &str) -> anyhow::Result<Guard> {
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(Guard {
            child,
            what: what.to_owned(),
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// An error if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited: {status}", self.what);
        }
        Ok(())
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The nginx master: on drop, SIGTERM (fast shutdown, the master stops its
/// workers), then SIGKILL to whatever of master and workers is left after
/// three seconds.
pub struct NginxGuard(pub Guard);

impl NginxGuard {
    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.0.id();
        let mut pids = vec![master];
        pids.extend(children(master));
        pids
    }

    /// The worker processes.
    pub fn workers(&self) -> Vec<u32> {
        children(self.0.id())
    }
}

impl Drop for NginxGuard {
    fn drop(&mut self) {
        let workers = self.workers();
        let master = self.0.id();
        if let Ok(None) = self.0.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(master as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for pid in workers {
            // Only the workers this master forked (still its children, or
            // orphans that kept their name): never another process.
            if is_nginx(pid) {
                // SAFETY: kill(2) on a worker pid read from /proc just above.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        // The inner guard SIGKILLs and reaps the master if still there.
    }
}

fn is_nginx(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "nginx")
}

/// The direct children of `pid` (from the ppid field of /proc/*/stat).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid))
        .collect()
}

/// The fields of /proc/PID/stat after the parenthesised command name
/// (index 0 is the state, 1 the ppid, 11 utime, 12 stime).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The kernel's USER_HZ (clock ticks in /proc), 100 on every Linux
/// architecture we run on.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) used so far by `pid`; 0 once
/// it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Some(f) = stat_fields(pid) else {
        return 0.0;
    };
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / USER_HZ
}

/// CPU seconds of several processes together.
pub fn cpu_total(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// The number of tokio runtime worker threads of `pid`.
pub fn tokio_workers(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("tokio-runtime-w"))
        })
        .count()
}

/// Resident memory of `pid` in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0.0;
    };
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Clock ticks of one CPU so far, from /proc/stat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ticks {
    /// Everything but idle and iowait (processes, irq, softirq, steal).
    pub busy: u64,
    /// Softirq (loopback packet processing lands here).
    pub softirq: u64,
    /// All.
    pub total: u64,
}

/// The [`Ticks`] of each CPU.
pub fn cpu_ticks() -> Vec<Ticks> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            let total: u64 = v.iter().take(8).sum();
            Ticks {
                busy: total - at(3) - at(4),
                softirq: at(6),
                total,
            }
        })
        .collect()
}

/// How busy each CPU was between two [`cpu_ticks`] readings, as (busy,
/// softirq) fractions of the CPU.
pub fn busy_between(before: &[Ticks], after: &[Ticks]) -> Vec<(f64, f64)> {
    before
        .iter()
        .zip(after)
        .map(|(a, b)| {
            let t = b.total.saturating_sub(a.total);
            if t == 0 {
                return (0.0, 0.0);
            }
            let t = t as f64;
            (
                b.busy.saturating_sub(a.busy) as f64 / t,
                b.softirq.saturating_sub(a.softirq) as f64 / t,
            )
        })
        .collect()
}
