//! The state file: a record of everything the lab created, written before
//! each thing is created, so `strait lab down` can remove all of it even after
//! a crash, and `status`, `exec` and `logs` know where everything is.
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::paths::LabPaths;
use crate::proxy_mode::ProxyMode;

/// Bumped when the file's meaning changes; an unknown version is refused.
pub const STATE_VERSION: u32 = 1;

/// Everything one lab consists of.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    /// [`STATE_VERSION`] of the writer.
    pub version: u32,
    /// When `up` started (seconds since the epoch).
    pub started_unix: u64,
    /// The manifest directory the controller watches.
    pub manifests: PathBuf,
    /// The `strait` binary the components run.
    pub strait_bin: PathBuf,
    /// The CNI plugin binary exec'ed for pods.
    pub cni_bin: PathBuf,
    /// The lab's cgroup subtree.
    pub cgroup_root: PathBuf,
    /// The lab's bpffs directory (one subdirectory per node agent).
    pub bpffs_root: PathBuf,
    /// The agents' datapath (`up --proxy`); state files from before the
    /// flag mean eBPF.
    #[serde(default)]
    pub proxy: ProxyMode,
    /// Every netns created, in creation order.
    pub netns: Vec<String>,
    /// The nodes.
    pub nodes: Vec<NodeState>,
    /// Pods by `namespace/name`.
    pub pods: BTreeMap<String, PodState>,
    /// Long-running processes by component name (`controller`, `agent-node-1`).
    pub processes: BTreeMap<String, ProcessState>,
    /// Routes in the external netns: LoadBalancer / external IP to the
    /// underlay address of the node that announces it (as MetalLB's L2 mode
    /// would).
    #[serde(default)]
    pub announced: BTreeMap<IpAddr, Ipv4Addr>,
}

/// One node of the lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// The node name (`node-1`).
    pub name: String,
    /// Its netns.
    pub netns: String,
    /// Its address on the underlay.
    pub underlay_ip: Ipv4Addr,
    /// Its pod CIDR.
    pub pod_cidr: String,
    /// Its cgroup, where its agent attaches and its pods run.
    pub cgroup: PathBuf,
    /// Its agent's bpffs directory.
    pub bpffs: PathBuf,
}

/// One pod of the lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodState {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Its netns.
    pub netns: String,
    /// The CNI container id.
    pub container_id: String,
    /// The address the CNI plugin gave it (none until ADD succeeded).
    pub ip: Option<IpAddr>,
    /// Its cgroup.
    pub cgroup: PathBuf,
    /// What it runs (`echo`, `dns`, `ingress`, `none`).
    pub run: String,
    /// The ports its process serves.
    pub ports: Vec<u16>,
    /// Its process.
    pub process: Option<ProcessState>,
    /// Why it is not running, when it is not.
    pub problem: Option<String>,
}

impl PodState {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A process the lab started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessState {
    /// Its pid.
    pub pid: i32,
    /// Its start time (from /proc), so a recycled pid is never mistaken for it.
    pub start_time: u64,
    /// Its log file.
    pub log: PathBuf,
    /// The command line, for `status`.
    pub command: Vec<String>,
}

impl LabState {
    /// Reads the state file; `None` when there is none.
    pub fn load(paths: &LabPaths) -> Result<Option<LabState>> {
        let path = paths.state_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io("reading the lab state file", &path)(e)),
        };
        let state: LabState = serde_json::from_str(&text).map_err(|e| {
            LabError::State(format!(
                "the lab state file {} is corrupt ({e}); `strait lab down` still removes \
                 everything named strait-lab-*",
                path.display()
            ))
        })?;
        if state.version != STATE_VERSION {
            return Err(LabError::State(format!(
                "the lab state file {} has version {} but this strait reads version \
                 {STATE_VERSION}; run `strait lab down` with the strait that started the lab",
                path.display(),
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// Writes the state file atomically (temp file + rename).
    pub fn save(&self, paths: &LabPaths) -> Result<()> {
        let path = paths.state_file();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| LabError::State(format!("encoding the lab state failed: {e}")))?;
        fs::write(&tmp, text).map_err(LabError::io("writing the lab state file", &tmp))?;
        fs::rename(&tmp, &path).map_err(LabError::io("writing the lab state file", &path))
    }

    /// Records a netns before it is created.
    pub fn record_netns(&mut self, paths: &LabPaths, name: &str) -> Result<()> {
        if !self.netns.iter().any(|n| n == name) {
            self.netns.push(name.to_owned());
        }
        self.save(paths)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Finds a pod by `name`, `namespace/name`, or a component alias (`dns`,
    /// `ingress`).
    pub fn find_pod(&self, query: &str) -> Result<&PodState> {
        if let Some(pod) = self.pods.get(query) {
            return Ok(pod);
        }
        let by_run: Vec<_> = self.pods.values().filter(|p| p.run == query).collect();
        let by_name: Vec<_> = self.pods.values().filter(|p| p.name == query).collect();
        match (by_name.as_slice(), by_run.as_slice()) {
            ([one], _) | ([], [one]) => Ok(one),
            ([], []) => Err(LabError::State(format!(
                "no pod {query:?} in the lab; pods: {}",
                self.pods.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            _ => Err(LabError::State(format!(
                "{query:?} names several pods; use NAMESPACE/NAME"
            ))),
        }
    }
}

/// An exclusive lock on the lab, held while a command changes it.
pub struct LabLock {
    _lock: Flock<File>,
}

impl LabLock {
    /// Waits for the lock, creating the runtime directory if needed.
    pub fn acquire(paths: &LabPaths) -> Result<LabLock> {
        create_dir(paths.root())?;
        let path = paths.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(LabError::io("opening the lab lock", &path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| LabError::io("locking the lab", &path)(std::io::Error::from(e)))?;
        Ok(LabLock { _lock: lock })
    }
}

/// `mkdir -p` with the lab's error context.
pub fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(LabError::io("creating a directory", path))
}
