//! The one policy for tests that need root: skip loudly on a developer machine, fail in
//! CI. Every root test in the project starts with
//! `if !strait_tests::require_root() { return; }`.

use std::sync::OnceLock;

/// Whether this process may run netns tests. `Err` holds the reason it may not.
fn capability() -> &'static Result<(), String> {
    static CAP: OnceLock<Result<(), String>> = OnceLock::new();
    CAP.get_or_init(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(format!("not running as root (euid {euid})"));
        }
        match std::process::Command::new("ip").arg("-V").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("`ip -V` failed: {}", o.status)),
            Err(e) => return Err(format!("iproute2 `ip` not runnable: {e}")),
        }
        // A throwaway thread tries to make a netns; it vanishes with the thread.
        std::thread::spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET))
            .join()
            .map_err(|_| "netns probe thread panicked".to_string())?
            .map_err(|e| format!("cannot create network namespaces: {e}"))
    })
}

/// Whether the `CI` environment variable says we run in CI (set, and not `""`, `0` or
/// `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Returns `true` when the test may go on (root, `ip` present, netns creatable).
/// Otherwise, outside CI, prints a loud `SKIPPED (needs root): <test>: <reason>` to the
/// real stderr (bypassing the test harness's capture) and returns `false`; the test must
/// then `return`. In CI (`CI` set) it panics instead, so a misconfigured runner can
/// never turn root tests into silent passes.
pub fn require_root() -> bool {
    let Err(reason) = capability() else {
        return true;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if in_ci() {
        panic!("{test} needs root and network namespaces, and CI is set: {reason}");
    }
    crate::error::loud(&format!(
        "\n!!!!! SKIPPED (needs root): {test}: {reason}. \
         Run as root with CAP_NET_ADMIN; with CI=true this test fails instead. !!!!!\n"
    ));
    false
}
