//! Loads the socket load balancer, pins its maps and attaches its programs to
//! a cgroup v2 directory.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupAttachMode, CgroupSockAddr},
};
use strait_ebpf_common::maps;

use crate::{ProxyError, object, service_maps::ServiceMaps};

/// Where the agent pins its maps unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/strait";

/// Magic number of bpffs in `statfs.f_type`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

const CONNECT4: &str = "strait_connect4";

/// The loaded socket load balancer. Maps are pinned under `pin_dir`, so a new
/// instance (an agent restart) reuses the same maps and established services
/// keep working; attached programs stay attached while this value lives.
pub struct SockLb {
    ebpf: Ebpf,
    pin_dir: PathBuf,
}

impl SockLb {
    /// Loads the embedded object with its maps pinned in `pin_dir`, which must
    /// be on a bpffs. Existing pins are reused.
    pub fn load(pin_dir: &Path) -> Result<Self, ProxyError> {
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
        let ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(object::SOCK_LB)?;
        tracing::debug!(pin_dir = %pin_dir.display(), "loaded socket load balancer");
        Ok(Self {
            ebpf,
            pin_dir: pin_dir.to_owned(),
        })
    }

    /// The directory holding this instance's pinned maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches the connect hook to a cgroup v2 directory: every process in it
    /// (and in its descendants) gets service VIPs translated on connect.
    pub fn attach(&mut self, cgroup: &Path) -> Result<(), ProxyError> {
        let file = File::open(cgroup).map_err(|source| ProxyError::Cgroup {
            path: cgroup.to_owned(),
            source,
        })?;
        let program: &mut CgroupSockAddr = self
            .ebpf
            .program_mut(CONNECT4)
            .ok_or(ProxyError::Missing {
                what: "program",
                name: CONNECT4,
            })?
            .try_into()
            .map_err(|source| ProxyError::Program {
                program: CONNECT4,
                source,
            })?;
        let err = |source| ProxyError::Program {
            program: CONNECT4,
            source,
        };
        program.load().map_err(err)?;
        program
            .attach(&file, CgroupAttachMode::Single)
            .map_err(err)?;
        tracing::info!(cgroup = %cgroup.display(), program = CONNECT4, "attached");
        Ok(())
    }

    /// Opens the service and backend maps for writing.
    pub fn service_maps(&mut self) -> Result<ServiceMaps, ProxyError> {
        let services = self
            .ebpf
            .take_map(maps::SERVICES4)
            .ok_or(ProxyError::Missing {
                what: "map",
                name: maps::SERVICES4,
            })?;
        let backends = self
            .ebpf
            .take_map(maps::BACKENDS4)
            .ok_or(ProxyError::Missing {
                what: "map",
                name: maps::BACKENDS4,
            })?;
        ServiceMaps::new(services, backends)
    }
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and st is a valid out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
