//! Errors of the proxy library. Each message says what failed and what the
//! operator can do about it.
use std::path::PathBuf;

/// Why loading, attaching or programming the datapath failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The crate was built with `AYA_BUILD_SKIP=1`, so no program is embedded.
    #[error(
        "the eBPF object is empty (built with AYA_BUILD_SKIP=1); rebuild without it after running scripts/setup"
    )]
    ObjectMissing,
    /// The pin directory is not on a bpffs mount.
    #[error(
        "{path} is not on a bpf filesystem; mount one with `mount -t bpf bpf /sys/fs/bpf` or pass another --bpffs path"
    )]
    NotBpffs {
        /// The directory that was checked.
        path: PathBuf,
    },
    /// Creating the pin directory failed.
    #[error("cannot create pin directory {path}: {source}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The kernel refused the object or one of its maps.
    #[error(
        "loading the eBPF object failed (is the kernel ≥ 5.7 with BTF, and are we root with CAP_BPF?): {0}"
    )]
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded or attached.
    #[error("eBPF program {program}: {source}")]
    Program {
        /// Program name in the object.
        program: &'static str,
        /// The underlying error.
        source: aya::programs::ProgramError,
    },
    /// The object does not contain something the loader expects.
    #[error(
        "the eBPF object has no {what} named {name}; the object and the loader are out of step, rebuild both"
    )]
    Missing {
        /// "map" or "program".
        what: &'static str,
        /// The missing name.
        name: &'static str,
    },
    /// Opening the cgroup to attach to failed.
    #[error("cannot open cgroup {path} (a cgroup v2 directory is required): {source}")]
    Cgroup {
        /// The cgroup directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A link could not be converted or pinned.
    #[error("eBPF program {program}: pinning its cgroup link failed: {message}")]
    Link {
        /// Program name in the object.
        program: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The metrics/health address could not be bound.
    #[error(
        "cannot listen on {addr} for /healthz and /metrics: {source} (is another agent or kube-proxy running? change --metrics-addr)"
    )]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The cluster view failed before it synced.
    #[error("the cluster view failed: {0}")]
    ClusterView(strait_cluster::ClusterError),
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// The map name.
        map: &'static str,
        /// The underlying error.
        source: aya::maps::MapError,
    },
    /// A map is full.
    #[error("map {map} is full ({capacity} entries); raise {flag}")]
    MapFull {
        /// The map name.
        map: &'static str,
        /// Its capacity.
        capacity: u32,
        /// The agent flag that sizes it.
        flag: &'static str,
    },
    /// A service has more backends than a slot index can address.
    #[error("service {frontend} has {count} backends; at most {max} are supported")]
    TooManyBackends {
        /// The frontend, `vip:port`.
        frontend: String,
        /// Requested backend count.
        count: usize,
        /// Maximum supported.
        max: usize,
    },
    /// Writing or reading the iptables / nftables rules failed.
    #[error("{0}")]
    Rules(#[from] crate::kube_layout::RulesError),
}
