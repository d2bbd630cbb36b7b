//! Per-interface sysctls of the plugin's own namespace (`/proc/sys/net`
//! shows the namespace of the process that opens it).

use std::io;
use std::path::PathBuf;

/// Write `value` to `/proc/sys/net/<path>`.
pub fn write(path: &str, value: &str) -> io::Result<()> {
    let full = PathBuf::from("/proc/sys/net").join(path);
    std::fs::write(full, value)
}
