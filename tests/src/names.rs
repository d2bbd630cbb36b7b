//! Unique names for everything the harness creates, so tests run in parallel within one
//! process and across processes, and so [`crate::sweep`] can tell, from a name alone,
//! which process created an object.
//!
//! * Objects with roomy names (netns, cgroups, mount points):
//!   `strait-t-<pid>-<n>-<tag>`.
//! * Interface names, which must fit `IFNAMSIZ` (15 bytes):
//!   `st` + the pid in base 36, zero-padded to 5 digits + `n` in base 36 + a 1-char role.
//!   The role is always the last character, so `(n, role)` decodes unambiguously.

use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every netns, cgroup and mount-point name the harness creates.
pub const OBJECT_PREFIX: &str = "strait-t-";

/// Prefix of every interface name the harness creates.
pub const IF_PREFIX: &str = "st";

/// Linux's limit on interface name length (IFNAMSIZ minus the NUL).
pub const IFNAME_MAX: usize = 15;

/// Width of the base-36 pid inside interface names. 36^5 > 2^22 (the kernel's pid_max).
const PID_WIDTH: usize = 5;

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// One allocation from the process-wide counter. A veth pair, for example, takes one id
/// and derives both end names from it with different roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniqueId {
    pid: u32,
    n: u64,
}

impl UniqueId {
    /// Takes the next id for this process.
    pub fn next() -> UniqueId {
        UniqueId {
            pid: std::process::id(),
            n: COUNTER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The pid embedded in names derived from this id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The per-process sequence number.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// `strait-t-<pid>-<n>-<tag>`, with `tag` reduced to `[a-z0-9-]` and 24 chars.
    pub fn object_name(&self, tag: &str) -> String {
        let tag = sanitize_tag(tag);
        if tag.is_empty() {
            format!("{OBJECT_PREFIX}{}-{}", self.pid, self.n)
        } else {
            format!("{OBJECT_PREFIX}{}-{}-{tag}", self.pid, self.n)
        }
    }

    /// An interface name: `st<pid36><n36><role>`, at most 15 chars. `role` must be an
    /// ASCII lowercase letter or digit. Panics if the counter outgrew the name (after
    /// 36^7 names in one process).
    pub fn ifname(&self, role: char) -> String {
        assert!(
            role.is_ascii_lowercase() || role.is_ascii_digit(),
            "interface role must be [a-z0-9], got {role:?}"
        );
        let name = format!(
            "{IF_PREFIX}{}{}{role}",
            pid_base36(self.pid),
            base36(self.n)
        );
        assert!(name.len() <= IFNAME_MAX, "interface name {name} too long");
        name
    }
}

/// A fresh `strait-t-<pid>-<n>-<tag>` name.
pub fn object_name(tag: &str) -> String {
    UniqueId::next().object_name(tag)
}

/// A fresh interface name with the given role character.
pub fn ifname(role: char) -> String {
    UniqueId::next().ifname(role)
}

/// The prefix all object names of process `pid` start with (`strait-t-<pid>-`). Used by
/// the sweep and by tests that check nothing of a process is left.
pub fn object_prefix_for(pid: u32) -> String {
    format!("{OBJECT_PREFIX}{pid}-")
}

/// The prefix all interface names of process `pid` start with.
pub fn ifname_prefix_for(pid: u32) -> String {
    format!("{IF_PREFIX}{}", pid_base36(pid))
}

/// The pid embedded in an object name, if `name` is one of ours.
pub fn object_name_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(OBJECT_PREFIX)?;
    let (pid, rest) = rest.split_once('-')?;
    let (n, _) = rest.split_once('-').unwrap_or((rest, ""));
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The pid embedded in an interface name, if it has our shape.
pub fn ifname_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(IF_PREFIX)?;
    if rest.len() < PID_WIDTH + 2 || name.len() > IFNAME_MAX {
        return None;
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    u32::from_str_radix(&rest[..PID_WIDTH], 36).ok()
}

/// The interface alias the harness stamps on links that live in the root netns, so the
/// sweep never deletes a root link it cannot prove is ours.
pub(crate) fn root_link_alias(pid: u32) -> String {
    format!("{OBJECT_PREFIX}{pid}-0-rootlink")
}

fn sanitize_tag(tag: &str) -> String {
    tag.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(24)
        .collect()
}

fn pid_base36(pid: u32) -> String {
    format!("{:0>width$}", base36(u64::from(pid)), width = PID_WIDTH)
}

fn base36(mut v: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if v == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while v > 0 {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames_fit_and_decode() {
        let id = UniqueId {
            pid: 4_194_304,
            n: 36u64.pow(7) - 1,
        };
        let name = id.ifname('a');
        assert_eq!(name.len(), 15, "{name}");
        assert_eq!(ifname_pid(&name), Some(4_194_304));
        let small = UniqueId { pid: 7, n: 1 }.ifname('b');
        assert_eq!(small, "st000071b");
        assert_eq!(ifname_pid(&small), Some(7));
        assert!(small.starts_with(&ifname_prefix_for(7)));
    }

    #[test]
    fn object_names_decode() {
        let id = UniqueId { pid: 123, n: 9 };
        let name = id.object_name("Two Hosts/a");
        assert_eq!(name, "strait-t-123-9-two-hosts-a");
        assert_eq!(object_name_pid(&name), Some(123));
        assert_eq!(object_name_pid("strait-t-123-9"), Some(123));
        assert_eq!(object_name_pid("strait-t-x-9-a"), None);
        assert_eq!(object_name_pid("strait-t-12-abc"), None);
        assert_eq!(object_name_pid("other"), None);
    }

    #[test]
    fn ids_are_unique() {
        let a = UniqueId::next();
        let b = UniqueId::next();
        assert_ne!(a.ifname('a'), b.ifname('a'));
        assert_ne!(a.object_name("x"), b.object_name("x"));
    }
}
