//! Running `ip` (and other tools) with checked exit status and stderr in the error.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result, io_ctx};

/// Runs `cmd` to completion and returns its stdout; a non-zero exit becomes
/// [`Error::Command`] carrying stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_ctx(format!("spawning `{line}`")))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `ip -n NETNS ARGS...`: runs inside a named namespace, whatever netns the calling
/// thread is in.
pub(crate) fn ip_in(netns: &str, args: &[&str]) -> Result<String> {
    run(Command::new("ip").arg("-n").arg(netns).args(args))
}

/// `ip ARGS...` in the process's own (root) netns, even when called from a thread that
/// `NetNs::run` moved into a test namespace.
pub(crate) fn ip_root(args: &[&str]) -> Result<String> {
    let fd = root_netns()?.as_raw_fd();
    let mut cmd = Command::new("ip");
    cmd.args(args);
    // SAFETY: setns is async-signal-safe; `fd` stays open for the process lifetime.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run(&mut cmd)
}

/// Parses JSON printed by `ip -j`. An empty output means an empty list.
pub(crate) fn parse_json(command: &str, out: &str) -> Result<Vec<serde_json::Value>> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<serde_json::Value>(out) {
        Ok(serde_json::Value::Array(v)) => Ok(v),
        Ok(other) => Err(Error::Parse {
            command: command.to_string(),
            detail: format!("expected a JSON array, got {other}"),
        }),
        Err(e) => Err(Error::Parse {
            command: command.to_string(),
            detail: e.to_string(),
        }),
    }
}

/// `ip -j -n NETNS ARGS...` parsed as a JSON array.
pub(crate) fn ip_json_in(netns: &str, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ip_in(netns, &full)?;
    parse_json(&format!("ip -n {netns} {}", full.join(" ")), &out)
}

/// `ip -j ARGS...` in the root netns, parsed as a JSON array.
pub(crate) fn ip_json_root(args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ip_root(&full)?;
    parse_json(&format!("ip {}", full.join(" ")), &out)
}

/// The netns of the process's main thread, opened once. "Root netns" in this crate means
/// this namespace: the one the test binary was started in.
pub(crate) fn root_netns() -> Result<&'static File> {
    static ROOT: OnceLock<File> = OnceLock::new();
    if let Some(f) = ROOT.get() {
        return Ok(f);
    }
    // /proc/self resolves to the thread-group leader, so this is the main thread's netns
    // even when called from a thread inside a test namespace.
    let f = File::open("/proc/self/ns/net").map_err(io_ctx("opening /proc/self/ns/net"))?;
    Ok(ROOT.get_or_init(|| f))
}
