//! Mount helpers shared by [`crate::cgroup`] and [`crate::bpffs`]: reading
//! `/proc/self/mountinfo`, mounting a filesystem on a fresh uniquely named directory and
//! taking it down again.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Result, io_ctx, nix_ctx};
use crate::names::UniqueId;

/// One line of `/proc/self/mountinfo`, reduced to what the harness needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The path inside the mounted filesystem that is mounted (`/` for a whole fs).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type (`cgroup2`, `bpf`, ...).
    pub fstype: String,
}

/// Parses `/proc/self/mountinfo`.
pub fn mountinfo() -> Result<Vec<MountEntry>> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_ctx("reading /proc/self/mountinfo"))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let fstype = right.split(' ').next()?;
    Some(MountEntry {
        root: unescape(fields.get(3)?),
        mount_point: PathBuf::from(unescape(fields.get(4)?)),
        fstype: fstype.to_string(),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Creates `$TMPDIR/strait-t-<pid>-<n>-<tag>` and mounts `fstype` on it.
pub(crate) fn mount_fresh(fstype: &str, tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(UniqueId::next().object_name(tag));
    fs::create_dir(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
    let mounted = nix::mount::mount(
        Some(fstype),
        &dir,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(nix_ctx(format!("mount -t {fstype} {}", dir.display())));
    if let Err(e) = mounted {
        let _ = fs::remove_dir(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Unmounts `dir` (lazily if it is busy) and removes the directory.
pub(crate) fn unmount_and_remove(dir: &Path) -> Result<()> {
    if let Err(e) = nix::mount::umount2(dir, MntFlags::empty()) {
        nix::mount::umount2(dir, MntFlags::MNT_DETACH)
            .map_err(|_| e)
            .map_err(nix_ctx(format!("umount {}", dir.display())))?;
    }
    fs::remove_dir(dir).map_err(io_ctx(format!("removing {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let e = parse_line(
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw",
        )
        .unwrap();
        assert_eq!(e.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(e.fstype, "cgroup2");
        assert_eq!(e.root, "/");
        let e = parse_line("1 2 0:1 / /tmp/a\\040b rw - bpf bpf rw").unwrap();
        assert_eq!(e.mount_point, PathBuf::from("/tmp/a b"));
    }
}
