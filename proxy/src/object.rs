//! The eBPF object built from `ebpf/programs` by this crate's build.rs and
//! embedded at compile time, so the loader always runs the programs that were
//! built from the same sources as itself.

/// ELF bytes of the socket load balancer programs (`strait-sock`).
pub(crate) static SOCK_LB: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/strait-sock"));
