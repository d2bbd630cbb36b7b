//! [`NetNs`]: a named network namespace that lives as long as its guard.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::cmd;
use crate::error::{Error, Result, io_ctx, nix_ctx, warn_cleanup};
use crate::names::UniqueId;

/// Where `ip netns` keeps its bind mounts.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// How a harness-created link relates to the rest of the world; the safety check uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkOrigin {
    /// Both ends (or the whole device) are inside harness namespaces.
    Contained,
    /// A veth whose peer is in the root netns (created through an explicit `unsafe` opt-in).
    LeadsToRoot,
}

/// What the harness knows about a link it created in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkRecord {
    /// Where the link leads.
    pub origin: LinkOrigin,
    /// Its `ip -d link` kind (`veth`, `bridge`); a different kind under the same name
    /// means someone replaced it.
    pub kind: &'static str,
}

/// A network namespace created for one test, visible in `ip netns list` as
/// `strait-t-<pid>-<n>-<tag>`. It starts with `lo` up and no routes at all.
///
/// `NetNs` is a cheap handle (`Clone` shares it); the namespace is deleted when the last
/// handle is dropped, after every process inside it has been killed. Links and servers
/// built on it hold a handle, so the namespace outlives them.
#[derive(Clone)]
pub struct NetNs {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    path: PathBuf,
    inode: u64,
    file: Mutex<Option<File>>,
    raw_fd: i32,
    links: Mutex<BTreeMap<String, LinkRecord>>,
    trust_product_links: AtomicBool,
}

/// Where a route sends its traffic.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// `via GATEWAY` (the kernel picks the device).
    Gateway(&'a str),
    /// `dev DEVICE` (an on-link route).
    Dev(&'a str),
    /// `via GATEWAY dev DEVICE`.
    GatewayDev(&'a str, &'a str),
}

impl NetNs {
    /// Creates `strait-t-<pid>-<n>-<tag>` with `ip netns add` and brings `lo` up.
    pub fn new(tag: &str) -> Result<NetNs> {
        crate::sweep::ensure_swept();
        let name = UniqueId::next().object_name(tag);
        {
            // Concurrent first-time `ip netns add` calls race on making /run/netns a
            // shared mount; serialize within the process.
            static ADD: Mutex<()> = Mutex::new(());
            let _g = ADD.lock().unwrap_or_else(|e| e.into_inner());
            cmd::run(std::process::Command::new("ip").args(["netns", "add", &name]))?;
        }
        let path = Path::new(NETNS_RUN_DIR).join(&name);
        let opened = File::open(&path)
            .map_err(io_ctx(format!("opening {}", path.display())))
            .and_then(|f| {
                let ino = f
                    .metadata()
                    .map_err(io_ctx(format!("stat {}", path.display())))?
                    .ino();
                Ok((f, ino))
            });
        let (file, inode) = match opened {
            Ok(v) => v,
            Err(e) => {
                let _ = cmd::run(std::process::Command::new("ip").args(["netns", "del", &name]));
                return Err(e);
            }
        };
        let ns = NetNs {
            inner: Arc::new(Inner {
                raw_fd: file.as_raw_fd(),
                file: Mutex::new(Some(file)),
                name,
                path,
                inode,
                links: Mutex::new(BTreeMap::new()),
                trust_product_links: AtomicBool::new(false),
            }),
        };
        ns.set_up("lo")?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `/run/netns/<name>`: what `setns` callers and `ip netns exec` open.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The nsfs inode: equal to the inode of `/proc/<pid>/ns/net` for processes inside.
    pub fn inode(&self) -> u64 {
        self.inner.inode
    }

    /// Runs `ip -n <name> ARGS...` and returns stdout. An escape hatch: links created
    /// this way are not registered, so the isolation check will refuse the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        cmd::ip_in(self.name(), args)
    }

    /// `ip addr add CIDR dev DEV` inside the namespace.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// `ip link set DEV up` inside the namespace.
    pub fn set_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", dev, "up"]).map(drop)
    }

    /// `ip link set DEV mtu MTU` inside the namespace.
    pub fn set_mtu(&self, dev: &str, mtu: u32) -> Result<()> {
        self.ip(&["link", "set", "dev", dev, "mtu", &mtu.to_string()])
            .map(drop)
    }

    /// `ip route add DST via/dev ...` inside the namespace. The route goes away with the
    /// namespace. Routes over a link that leads to the root netns are refused later by
    /// the isolation check.
    pub fn add_route(&self, dst: &str, via: Via<'_>) -> Result<()> {
        let mut args = vec!["route", "add", dst];
        match via {
            Via::Gateway(gw) => args.extend(["via", gw]),
            Via::Dev(dev) => args.extend(["dev", dev]),
            Via::GatewayDev(gw, dev) => args.extend(["via", gw, "dev", dev]),
        }
        self.ip(&args).map(drop)
    }

    /// `ip route del DST` inside the namespace.
    pub fn del_route(&self, dst: &str) -> Result<()> {
        self.ip(&["route", "del", dst]).map(drop)
    }

    /// Writes a `net.*` sysctl inside the namespace (e.g. `net.ipv4.ip_forward` = `1`
    /// for a router namespace). Net sysctls are per namespace, so the root is untouched.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        if !key.starts_with("net.") || key.contains('/') || key.contains("..") {
            return Err(Error::Invalid(format!(
                "only per-netns net.* sysctls may be set, got {key}"
            )));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        self.run_unchecked(move || {
            fs::write(&path, value.as_bytes()).map_err(io_ctx(format!("writing {path}")))
        })
    }

    /// Names of the links inside the namespace, in ifindex order.
    pub fn links(&self) -> Result<Vec<String>> {
        Ok(cmd::ip_json_in(self.name(), &["link", "show"])?
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect())
    }

    /// Pids of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<u32> {
        pids_in_netns(self.inode())
    }

    /// Runs `f` on a fresh OS thread that has `setns(CLONE_NEWNET)` into this namespace
    /// and returns its value. Threads `f` spawns (a tokio runtime's workers, say) inherit
    /// the namespace; sockets created there belong to it. A panic in `f` is re-raised
    /// here. The network-safety check runs first and panics if the namespace fails it.
    pub fn run<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        self.assert_isolated();
        self.run_unchecked(f)
    }

    /// [`run`](Self::run) without the safety check, for the harness's own plumbing.
    pub(crate) fn run_unchecked<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.as_fd();
        let name = self.name();
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("netns {name}"))
                .spawn_scoped(s, move || {
                    if let Err(e) = setns(fd, CloneFlags::CLONE_NEWNET)
                        .map_err(nix_ctx(format!("setns into {name}")))
                    {
                        panic!("{e}");
                    }
                    f()
                })
                .expect("spawning a netns thread");
            match handle.join() {
                Ok(v) => v,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Marks this namespace as holding links that product code (the CNI plugin, the lab)
    /// creates on its own. From now on the isolation check accepts links the harness did
    /// not create, as long as each is a veth whose peer lives in a harness namespace (or
    /// in this one), a bridge, a vxlan or a dummy, and no route uses a link leading out.
    pub fn trust_links_created_by_product(&self) {
        self.inner.trust_product_links.store(true, Ordering::SeqCst);
    }

    /// Whether [`trust_links_created_by_product`](Self::trust_links_created_by_product)
    /// was called.
    pub fn trusts_product_links(&self) -> bool {
        self.inner.trust_product_links.load(Ordering::SeqCst)
    }

    pub(crate) fn register_link(&self, name: &str, origin: LinkOrigin, kind: &'static str) {
        self.inner
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), LinkRecord { origin, kind });
    }

    pub(crate) fn unregister_link(&self, name: &str) {
        self.inner
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub(crate) fn registered_links(&self) -> BTreeMap<String, LinkRecord> {
        self.inner
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl AsFd for NetNs {
    /// An open fd of `/run/netns/<name>`, usable with `setns(2)`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the file is closed only in Drop of Inner, after every handle is gone.
        unsafe { BorrowedFd::borrow_raw(self.inner.raw_fd) }
    }
}

impl std::fmt::Debug for NetNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetNs").field("name", &self.name()).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = kill_netns_processes(self.inode, Duration::from_secs(5)) {
            warn_cleanup(&format!("processes in netns {}", self.name), &e);
        }
        // Close our own reference first so the namespace can actually be freed.
        drop(self.file.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Err(e) = delete_netns(&self.name) {
            warn_cleanup(&format!("netns {}", self.name), &e);
        }
    }
}

/// Deletes a named netns: `ip netns del`, falling back to a lazy unmount.
pub(crate) fn delete_netns(name: &str) -> Result<()> {
    match cmd::run(std::process::Command::new("ip").args(["netns", "del", name])) {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = Path::new(NETNS_RUN_DIR).join(name);
            if !path.exists() {
                return Ok(());
            }
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
            fs::remove_file(&path).map_err(|_| e)
        }
    }
}

/// Pids (other than our own) whose `/proc/<pid>/ns/net` is the namespace with `inode`.
pub(crate) fn pids_in_netns(inode: u64) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == inode))
        .collect()
}

/// SIGKILLs every process in the namespace and waits until none is left.
pub(crate) fn kill_netns_processes(inode: u64, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let pids = pids_in_netns(inode);
        if pids.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: format!("processes {pids:?} to leave the netns"),
                after: timeout,
            });
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
