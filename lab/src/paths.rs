//! Where the lab keeps things, and how it names what it creates. Every name
//! starts with `strait-lab`, so `strait lab down` can find leftovers even
//! without a state file and never touches anything else.
use std::path::{Path, PathBuf};

/// Prefix of every netns, cgroup and bpffs directory the lab creates.
pub const PREFIX: &str = "strait-lab";

/// The lab's runtime directory: on tmpfs, so it disappears on reboot together
/// with the namespaces, cgroups and pins it describes.
pub const RUN_DIR: &str = "/run/strait-lab";

/// Paths inside a lab runtime directory.
#[derive(Debug, Clone)]
pub struct LabPaths {
    root: PathBuf,
}

impl Default for LabPaths {
    fn default() -> Self {
        LabPaths::new(RUN_DIR)
    }
}

impl LabPaths {
    /// Paths under `root` (tests use a private root).
    pub fn new(root: impl Into<PathBuf>) -> LabPaths {
        LabPaths { root: root.into() }
    }

    /// The runtime directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state file: everything the lab created, for `down` after a crash.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// The lock serialising `up`, `down` and the controller.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The manifests the lab runs from when no `--manifests` is given (a copy
    /// of the embedded default that the user may edit live).
    pub fn default_manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// The cluster as the components see it: the user's objects plus pod IPs,
    /// EndpointSlices, Nodes and generated TLS Secrets.
    pub fn cluster_dir(&self) -> PathBuf {
        self.root.join("cluster")
    }

    /// Component logs.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// One component's log file.
    pub fn log_file(&self, component: &str) -> PathBuf {
        self.log_dir().join(format!("{component}.log"))
    }

    /// A node's IPAM store.
    pub fn ipam_dir(&self, node: &str) -> PathBuf {
        self.root.join("ipam").join(node)
    }

    /// A node's CNI network configuration list, as a runtime would read it.
    pub fn conflist(&self, node: &str) -> PathBuf {
        self.root.join("cni").join(node).join("10-strait.conflist")
    }
}

/// The netns of the underlay bridge.
pub fn underlay_netns() -> String {
    format!("{PREFIX}-underlay")
}

/// The netns of the client outside the cluster.
pub fn external_netns() -> String {
    format!("{PREFIX}-external")
}

/// A node's netns.
pub fn node_netns(node: &str) -> String {
    format!("{PREFIX}-{node}")
}

/// A pod's netns.
pub fn pod_netns(namespace: &str, pod: &str) -> String {
    format!("{PREFIX}-pod-{namespace}-{pod}")
}
