//! Running programs inside a test namespace (and optionally a cgroup): [`NsCommand`],
//! and [`ChildGuard`], which kills and reaps a spawned process on drop.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result, io_ctx, warn_cleanup};
use crate::netns::NetNs;

/// A `std::process::Command` whose child enters a test namespace (and, with
/// [`in_cgroup`](Self::in_cgroup), a cgroup) between fork and exec. The safety check
/// runs right before each spawn.
#[derive(Debug)]
pub struct NsCommand {
    cmd: Command,
    ns: NetNs,
    cgroup: Option<(Cgroup, File)>,
}

impl NetNs {
    /// A command that runs `program` inside this namespace. The namespace is checked
    /// now and again right before each spawn; the child enters it between fork and exec
    /// however it is spawned (even through [`NsCommand::as_command_mut`]). Use
    /// [`NsCommand::spawn`] for a [`ChildGuard`], or `output`/`status` to run it to
    /// completion.
    pub fn command(&self, program: impl AsRef<OsStr>) -> NsCommand {
        self.assert_isolated();
        let mut cmd = Command::new(program);
        let ns_fd = self.as_fd().as_raw_fd();
        // SAFETY: setns is async-signal-safe; the fd belongs to the NetNs handle that the
        // returned NsCommand owns, so it is open whenever `cmd` can be spawned.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        NsCommand {
            cmd,
            ns: self.clone(),
            cgroup: None,
        }
    }
}

impl NsCommand {
    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(key, val);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Sets stdin.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdin(cfg);
        self
    }

    /// Sets stdout.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdout(cfg);
        self
    }

    /// Sets stderr.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stderr(cfg);
        self
    }

    /// Puts the child into `cgroup` before it execs (it writes `0` to `cgroup.procs`).
    /// At most once per command.
    pub fn in_cgroup(&mut self, cgroup: &Cgroup) -> Result<&mut Self> {
        if self.cgroup.is_some() {
            return Err(Error::Invalid("in_cgroup may be called only once".into()));
        }
        let procs = cgroup.path().join("cgroup.procs");
        let file = OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(io_ctx(format!("opening {}", procs.display())))?;
        let procs_fd = file.as_raw_fd();
        self.cgroup = Some((cgroup.clone(), file));
        // SAFETY: write is async-signal-safe; the fd is owned by `self`, which outlives
        // every spawn of `self.cmd`, and is never replaced (see the check above).
        unsafe {
            self.cmd.pre_exec(move || {
                // Writing "0" moves the writing process: the child itself.
                if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(self)
    }

    /// The underlying command, for options this wrapper does not forward. Spawning it
    /// directly still enters the namespace (and cgroup) but skips the pre-spawn check.
    pub fn as_command_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Checks isolation, then spawns the child inside the namespace (and cgroup).
    pub fn spawn(&mut self) -> Result<ChildGuard> {
        self.prepare();
        let what = crate::cmd::describe(&self.cmd);
        let child = self
            .cmd
            .spawn()
            .map_err(io_ctx(format!("spawning `{what}` in {}", self.ns.name())))?;
        Ok(ChildGuard::new(child))
    }

    /// Checks isolation, then runs the child to completion and collects its output.
    /// A non-zero exit is not an error here; inspect `Output::status`.
    pub fn output(&mut self) -> Result<Output> {
        self.prepare();
        let what = crate::cmd::describe(&self.cmd);
        self.cmd
            .output()
            .map_err(io_ctx(format!("running `{what}` in {}", self.ns.name())))
    }

    /// Like [`output`](Self::output) but fails with [`Error::Command`] on a non-zero exit
    /// and returns stdout as a string.
    pub fn output_checked(&mut self) -> Result<String> {
        let what = crate::cmd::describe(&self.cmd);
        let out = self.output()?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("{what} (in {})", self.ns.name()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Checks isolation, then runs the child to completion and returns its status.
    pub fn status(&mut self) -> Result<ExitStatus> {
        self.prepare();
        let what = crate::cmd::describe(&self.cmd);
        self.cmd
            .status()
            .map_err(io_ctx(format!("running `{what}` in {}", self.ns.name())))
    }

    fn prepare(&self) {
        self.ns.assert_isolated();
    }
}

/// A child process that is SIGKILLed and reaped when the guard drops, so a failing test
/// never leaves servers or clients running.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards an already spawned child.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    /// Spawns `cmd` (in the current namespace) and guards it.
    pub fn spawn(cmd: &mut Command) -> Result<ChildGuard> {
        let what = crate::cmd::describe(cmd);
        cmd.spawn()
            .map(ChildGuard::new)
            .map_err(io_ctx(format!("spawning `{what}`")))
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.inner().id()
    }

    /// The guarded child, e.g. to take its stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Whether it has exited (reaping it if so).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child_mut()
            .try_wait()
            .map_err(io_ctx("waiting for child"))
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(Some(st));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills (SIGKILL) and reaps the child now.
    pub fn kill(mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().expect("child present until drop");
        kill_and_reap(&mut child)
    }

    /// Disarms the guard and hands back the child; it will no longer be killed on drop.
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("child present until drop")
    }

    fn inner(&self) -> &Child {
        self.child.as_ref().expect("child present until drop")
    }
}

fn kill_and_reap(child: &mut Child) -> Result<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Ok(st);
    }
    // Ignore the kill error: the child may have exited in between; wait tells the truth.
    let _ = child.kill();
    child
        .wait()
        .map_err(io_ctx(format!("reaping child {}", child.id())))
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && let Err(e) = kill_and_reap(&mut child)
        {
            warn_cleanup(&format!("child process {}", child.id()), &e);
        }
    }
}
