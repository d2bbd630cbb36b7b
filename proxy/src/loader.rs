//! Loads the socket load balancer, pins its maps and attaches its programs to
//! a cgroup v2 directory, with pinned links so the datapath outlives the
//! agent process.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData},
    programs::{
        CgroupAttachMode, CgroupSockAddr, LinkOrder, SchedClassifier, TcAttachType, links::FdLink,
        links::PinnedLink, tc::TcAttachOptions,
    },
};
use strait_ebpf_common::{
    AFFINITY_MAX, BACKENDS_MAX, CONNTRACK_MAX, LAYOUT_VERSION, MAGLEV_ENTRIES, REVNAT_MAX,
    SERVICES_MAX, maps,
};

use crate::{ProxyError, node_maps::NodeMaps, object, service_maps::ServiceMaps};

/// Where the agent pins its maps unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/strait";

/// Magic number of bpffs in `statfs.f_type`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Every program in the object, attached together.
/// The tc programs of the external datapath: name, hook, pin tag.
pub const TC_PROGRAMS: [(&str, TcAttachType, &str); 2] = [
    ("strait_tc_ingress", TcAttachType::Ingress, "ingress"),
    ("strait_tc_egress", TcAttachType::Egress, "egress"),
];

pub const PROGRAMS: [&str; 8] = [
    "strait_connect4",
    "strait_connect6",
    "strait_sendmsg4",
    "strait_sendmsg6",
    "strait_recvmsg4",
    "strait_recvmsg6",
    "strait_getpeername4",
    "strait_getpeername6",
];

/// Map capacities. The defaults fit about 30 000 services with 5 endpoints;
/// the agent derives larger ones from object counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Frontends plus backend slots (`--max-services`).
    pub services: u32,
    /// Distinct backends (`--max-backends`).
    pub backends: u32,
    /// Affinity entries (`--max-affinity`).
    pub affinity: u32,
    /// Reverse-translation entries (`--max-revnat`).
    pub revnat: u32,
    /// External-traffic conntrack entries (`--max-conntrack`).
    pub conntrack: u32,
    /// Maglev table entries, all external frontends together
    /// (`--max-maglev-entries`).
    pub maglev_entries: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            services: SERVICES_MAX,
            backends: BACKENDS_MAX,
            affinity: AFFINITY_MAX,
            revnat: REVNAT_MAX,
            conntrack: CONNTRACK_MAX,
            maglev_entries: MAGLEV_ENTRIES,
        }
    }
}

/// The loaded socket load balancer. Maps are pinned under `pin_dir`, so a new
/// instance (an agent restart) reuses the same maps; links are pinned under
/// `pin_dir/links`, so the programs stay attached while no agent runs.
pub struct SockLb {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    capacity: Capacity,
}

impl SockLb {
    /// Loads the embedded object with its maps pinned in `pin_dir`, which must
    /// be on a bpffs. Pins written with the same layout version are reused;
    /// pins of another version are removed and rebuilt, never misread.
    pub fn load(pin_dir: &Path) -> Result<Self, ProxyError> {
        Self::load_with(pin_dir, Capacity::default())
    }

    /// [`load`](Self::load) with explicit map capacities.
    pub fn load_with(pin_dir: &Path, capacity: Capacity) -> Result<Self, ProxyError> {
        if object::SOCK_LB.is_empty() {
            return Err(ProxyError::ObjectMissing);
        }
        std::fs::create_dir_all(pin_dir).map_err(|source| ProxyError::PinDir {
            path: pin_dir.to_owned(),
            source,
        })?;
        if !is_bpffs(pin_dir) {
            return Err(ProxyError::NotBpffs {
                path: pin_dir.to_owned(),
            });
        }
        discard_incompatible_pins(pin_dir)?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .map_max_entries(maps::SERVICES, capacity.services)
            .map_max_entries(maps::BACKENDS, capacity.backends)
            .map_max_entries(maps::AFFINITY, capacity.affinity)
            .map_max_entries(maps::REVNAT, capacity.revnat)
            .map_max_entries(maps::CONNTRACK, capacity.conntrack)
            .map_max_entries(maps::MAGLEV, capacity.maglev_entries)
            .load(object::SOCK_LB)?;
        let layout = ebpf.map_mut(maps::LAYOUT).ok_or(ProxyError::Missing {
            what: "map",
            name: maps::LAYOUT,
        })?;
        let mut layout: Array<&mut MapData, u32> =
            Array::try_from(layout).map_err(|source| ProxyError::Map {
                map: maps::LAYOUT,
                source,
            })?;
        layout
            .set(0, LAYOUT_VERSION, 0)
            .map_err(|source| ProxyError::Map {
                map: maps::LAYOUT,
                source,
            })?;
        tracing::debug!(pin_dir = %pin_dir.display(), "loaded socket load balancer");
        Ok(Self {
            ebpf,
            pin_dir: pin_dir.to_owned(),
            capacity,
        })
    }

    /// The directory holding this instance's pinned maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches every hook to a cgroup v2 directory: each process in it (and
    /// in its descendants) gets service VIPs translated. Links are pinned; an
    /// older generation's links for the same cgroup are detached only after
    /// the new ones are in place, so no connect goes untranslated.
    pub fn attach(&mut self, cgroup: &Path) -> Result<(), ProxyError> {
        let file = File::open(cgroup).map_err(|source| ProxyError::Cgroup {
            path: cgroup.to_owned(),
            source,
        })?;
        // bpffs cannot rename directories, so each attach pins its links in
        // a new generation directory and then retires the older ones.
        let cgroup_dir = self.link_dir(cgroup);
        let older = generations(&cgroup_dir);
        let next = older.iter().map(|(n, _)| n + 1).max().unwrap_or(1);
        let link_dir = cgroup_dir.join(format!("gen-{next}"));
        std::fs::create_dir_all(&link_dir).map_err(|source| ProxyError::PinDir {
            path: link_dir.clone(),
            source,
        })?;
        for name in PROGRAMS {
            let program: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(name)
                .ok_or(ProxyError::Missing {
                    what: "program",
                    name,
                })?
                .try_into()
                .map_err(|source| ProxyError::Program {
                    program: name,
                    source,
                })?;
            let err = |source| ProxyError::Program {
                program: name,
                source,
            };
            program.load().map_err(err)?;
            let link_id = program
                // A cgroup bpf_link always attaches in multi mode; flags must be 0.
                .attach(&file, CgroupAttachMode::Single)
                .map_err(err)?;
            let link: FdLink = program
                .take_link(link_id)
                .map_err(err)?
                .try_into()
                .map_err(|e: aya::programs::links::LinkError| ProxyError::Link {
                    program: name,
                    message: e.to_string(),
                })?;
            link.pin(link_dir.join(name))
                .map_err(|e| ProxyError::Link {
                    program: name,
                    message: e.to_string(),
                })?;
        }
        for (_, dir) in older {
            detach_pinned(&dir);
        }
        tracing::info!(cgroup = %cgroup.display(), programs = PROGRAMS.len(), "attached socket load balancer");
        Ok(())
    }

    /// Detaches this generation's programs from `cgroup` and removes their
    /// link pins (the maps stay pinned).
    pub fn detach(&self, cgroup: &Path) {
        let dir = self.link_dir(cgroup);
        for (_, generation) in generations(&dir) {
            detach_pinned(&generation);
        }
        let _ = std::fs::remove_dir(&dir);
    }

    /// Pinned links live per cgroup, named by the cgroup's inode so paths
    /// with slashes or odd characters never matter.
    fn link_dir(&self, cgroup: &Path) -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        let id = std::fs::metadata(cgroup).map(|m| m.ino()).unwrap_or(0);
        self.pin_dir.join("links").join(format!("cgroup-{id}"))
    }

    /// Opens the service, backend and affinity maps for writing.
    /// Attaches the external-traffic programs (NodePort, LoadBalancer,
    /// externalIP) to `interface`, ingress and egress, as TCX links pinned
    /// under the pin directory. A pinned link from an earlier agent is
    /// updated in place to the new program (atomically: no packet sees no
    /// program), so a restart never interrupts external flows.
    pub fn attach_external(&mut self, interface: &str) -> Result<(), ProxyError> {
        let dir = self.pin_dir.join("links");
        std::fs::create_dir_all(&dir).map_err(|source| ProxyError::PinDir {
            path: dir.clone(),
            source,
        })?;
        for (name, attach_type, tag) in TC_PROGRAMS {
            let err = |source| ProxyError::Program {
                program: name,
                source,
            };
            let link_err = |message: String| ProxyError::Link {
                program: name,
                message,
            };
            let program: &mut SchedClassifier = self
                .ebpf
                .program_mut(name)
                .ok_or(ProxyError::Missing {
                    what: "program",
                    name,
                })?
                .try_into()
                .map_err(err)?;
            if program.fd().is_err() {
                program.load().map_err(err)?;
            }
            let pin = dir.join(format!("tc-{interface}-{tag}"));
            let link_id = match PinnedLink::from_pin(&pin) {
                Ok(old) => {
                    let link = FdLink::from(old)
                        .try_into()
                        .map_err(|e: aya::programs::links::LinkError| link_err(e.to_string()))?;
                    program.attach_to_link(link).map_err(err)?
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&pin);
                    program
                        .attach_with_options(
                            interface,
                            attach_type,
                            TcAttachOptions::TcxOrder(LinkOrder::default()),
                        )
                        .map_err(err)?
                }
            };
            let link: FdLink = program
                .take_link(link_id)
                .map_err(err)?
                .try_into()
                .map_err(|e: aya::programs::links::LinkError| link_err(e.to_string()))?;
            if !pin.exists() {
                link.pin(&pin).map_err(|e| link_err(e.to_string()))?;
            }
        }
        tracing::info!(
            interface,
            "attached external-traffic programs (NodePort, LoadBalancer)"
        );
        Ok(())
    }

    /// The node-wide maps of the external datapath.
    pub fn node_maps(&mut self) -> Result<NodeMaps, ProxyError> {
        let mut take = |name: &'static str| {
            self.ebpf
                .take_map(name)
                .ok_or(ProxyError::Missing { what: "map", name })
        };
        let addrs = take(maps::NODE_ADDRS)?;
        let local = take(maps::LOCAL_ENDPOINTS)?;
        let config = take(maps::NODE_CONFIG)?;
        let conntrack = take(maps::CONNTRACK)?;
        NodeMaps::new(addrs, local, config, conntrack)
    }

    pub fn service_maps(&mut self) -> Result<ServiceMaps, ProxyError> {
        let mut take = |name: &'static str| {
            self.ebpf
                .take_map(name)
                .ok_or(ProxyError::Missing { what: "map", name })
        };
        let services = take(maps::SERVICES)?;
        let backends = take(maps::BACKENDS)?;
        let affinity = take(maps::AFFINITY)?;
        let maglev = take(maps::MAGLEV)?;
        let ranges = take(maps::SOURCE_RANGES)?;
        ServiceMaps::new(
            services,
            backends,
            affinity,
            (self.capacity.services, self.capacity.backends),
            Some((maglev, self.capacity.maglev_entries)),
            Some(ranges),
        )
    }
}

/// Removes every pin Strait created under `pin_dir` (links, after detaching
/// them, then maps), and the directory itself when it is left empty. Nothing
/// else is touched.
pub fn remove_pins(pin_dir: &Path) -> std::io::Result<()> {
    let links = pin_dir.join("links");
    if let Ok(cgroups) = std::fs::read_dir(&links) {
        for cg in cgroups.flatten() {
            // tc links are pinned files directly under links/.
            if cg.file_type().is_ok_and(|t| t.is_file()) {
                if let Ok(link) = PinnedLink::from_pin(cg.path()) {
                    let _ = link.unpin();
                } else {
                    let _ = std::fs::remove_file(cg.path());
                }
                continue;
            }
            for (_, generation) in generations(&cg.path()) {
                detach_pinned(&generation);
            }
            let _ = std::fs::remove_dir(cg.path());
        }
        let _ = std::fs::remove_dir(&links);
    }
    for name in maps::ALL {
        let path = pin_dir.join(name);
        if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    let _ = std::fs::remove_dir(pin_dir);
    Ok(())
}

/// The `gen-N` link directories under `dir`, with their numbers.
fn generations(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("gen-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect()
}

/// Unpins and closes every link pinned in `dir`, which detaches it.
fn detach_pinned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match PinnedLink::from_pin(entry.path()) {
            Ok(link) => {
                if let Err(e) = link.unpin() {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot unpin link");
                }
            }
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot open pinned link");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes pinned maps written with another layout version (or without a
/// readable version), so the loader recreates them instead of misreading
/// them. The agent's next full sync rewrites their contents.
fn discard_incompatible_pins(pin_dir: &Path) -> Result<(), ProxyError> {
    let layout_pin = pin_dir.join(maps::LAYOUT);
    let found = if layout_pin.exists() {
        MapData::from_pin(&layout_pin)
            .ok()
            .and_then(|data| Array::<MapData, u32>::try_from(aya::maps::Map::Array(data)).ok())
            .and_then(|arr| arr.get(&0, 0).ok())
    } else if maps::ALL.iter().any(|m| pin_dir.join(m).exists()) {
        None
    } else {
        return Ok(());
    };
    if found == Some(LAYOUT_VERSION) {
        return Ok(());
    }
    tracing::warn!(
        pin_dir = %pin_dir.display(),
        found = ?found,
        expected = LAYOUT_VERSION,
        "pinned maps have another layout version; rebuilding them"
    );
    for name in maps::ALL {
        let path = pin_dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| ProxyError::PinDir { path, source })?;
        }
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; zero is a valid bit pattern.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and st is a valid out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
