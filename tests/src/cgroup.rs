//! [`Cgroup`]: a uniquely named cgroup v2 directory that kills its processes and removes
//! itself on drop. The eBPF tests attach socket hooks to it ([`AsFd`]); the lab puts
//! node and pod processes in it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_ctx, warn_cleanup};
use crate::mounts;
use crate::names::{OBJECT_PREFIX, UniqueId};

/// How long cleanup waits for killed processes to leave a cgroup.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// A cgroup2 hierarchy root the harness creates cgroups under: the system's existing
/// cgroup2 mount (`/sys/fs/cgroup/unified` here), or a cgroup2 the harness mounted on a
/// temporary directory and unmounts when the last user drops.
#[derive(Debug)]
pub struct Cgroup2Root {
    path: PathBuf,
    own_mount: bool,
}

impl Cgroup2Root {
    /// The system's cgroup2 mount if there is one, else a harness mount shared by every
    /// cgroup of this process.
    pub fn shared() -> Result<Arc<Cgroup2Root>> {
        if let Some(path) = find_cgroup2_mount()? {
            return Ok(Arc::new(Cgroup2Root {
                path,
                own_mount: false,
            }));
        }
        static OWN: Mutex<Weak<Cgroup2Root>> = Mutex::new(Weak::new());
        let mut own = OWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(root) = own.upgrade() {
            return Ok(root);
        }
        let root = Self::mount_own()?;
        *own = Arc::downgrade(&root);
        Ok(root)
    }

    /// Mounts a cgroup2 of our own on `$TMPDIR/strait-t-<pid>-<n>-cgroup2`. It shows the
    /// same hierarchy as any other cgroup2 mount; it is unmounted on drop.
    pub fn mount_own() -> Result<Arc<Cgroup2Root>> {
        crate::sweep::ensure_swept();
        let path = mounts::mount_fresh("cgroup2", "cgroup2")?;
        Ok(Arc::new(Cgroup2Root {
            path,
            own_mount: true,
        }))
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the harness mounted this root itself.
    pub fn is_own_mount(&self) -> bool {
        self.own_mount
    }
}

impl Drop for Cgroup2Root {
    fn drop(&mut self) {
        if self.own_mount
            && let Err(e) = mounts::unmount_and_remove(&self.path)
        {
            warn_cleanup(&format!("cgroup2 mount {}", self.path.display()), &e);
        }
    }
}

/// The system's whole-hierarchy cgroup2 mount, ignoring mounts made by the harness.
pub fn find_cgroup2_mount() -> Result<Option<PathBuf>> {
    Ok(mounts::mountinfo()?
        .into_iter()
        .filter(|m| m.fstype == "cgroup2" && m.root == "/")
        .map(|m| m.mount_point)
        .find(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(OBJECT_PREFIX))
        }))
}

/// A cgroup v2 directory `strait-t-<pid>-<n>-<tag>` at the top of the hierarchy (or a
/// child of another `Cgroup`). A cheap handle: clones share it. When the last handle
/// drops, every process in the subtree is killed (`cgroup.kill`, else SIGKILL per pid),
/// the harness waits until it is empty, and removes the directory and any
/// sub-cgroups (also ones created by the code under test).
#[derive(Debug, Clone)]
pub struct Cgroup {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    relative: String,
    dir: File,
    root: Arc<Cgroup2Root>,
    _parent: Option<Cgroup>,
}

impl Cgroup {
    /// Creates a cgroup under [`Cgroup2Root::shared`].
    pub fn new(tag: &str) -> Result<Cgroup> {
        crate::sweep::ensure_swept();
        Self::new_under(&Cgroup2Root::shared()?, tag)
    }

    /// Creates a cgroup directly under the given root.
    pub fn new_under(root: &Arc<Cgroup2Root>, tag: &str) -> Result<Cgroup> {
        crate::sweep::ensure_swept();
        let name = UniqueId::next().object_name(tag);
        Self::create(
            root.path().join(&name),
            format!("/{name}"),
            root.clone(),
            None,
        )
    }

    /// Creates a sub-cgroup `name` (`[A-Za-z0-9_-]`), removed with its own guard or,
    /// at the latest, with this one.
    pub fn child(&self, name: &str) -> Result<Cgroup> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Invalid(format!("bad cgroup name {name:?}")));
        }
        Self::create(
            self.inner.path.join(name),
            format!("{}/{name}", self.inner.relative),
            self.inner.root.clone(),
            Some(self.clone()),
        )
    }

    fn create(
        path: PathBuf,
        relative: String,
        root: Arc<Cgroup2Root>,
        parent: Option<Cgroup>,
    ) -> Result<Cgroup> {
        fs::create_dir(&path).map_err(io_ctx(format!("mkdir {}", path.display())))?;
        let dir = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_dir(&path);
                return Err(io_ctx(format!("opening {}", path.display()))(e));
            }
        };
        Ok(Cgroup {
            inner: Arc::new(Inner {
                path,
                relative,
                dir,
                root,
                _parent: parent,
            }),
        })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The path as `/proc/<pid>/cgroup` shows it (`/strait-t-...`), assuming the root is
    /// the whole hierarchy.
    pub fn relative_path(&self) -> &str {
        &self.inner.relative
    }

    /// The open directory, for APIs that want a `File`.
    pub fn file(&self) -> &File {
        &self.inner.dir
    }

    /// Pids listed in this cgroup's own `cgroup.procs` (not its children's).
    pub fn procs(&self) -> Result<Vec<u32>> {
        read_procs(&self.inner.path)
    }

    /// Moves process `pid` into this cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<()> {
        let procs = self.inner.path.join("cgroup.procs");
        OpenOptions::new()
            .write(true)
            .open(&procs)
            .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
            .map_err(io_ctx(format!("moving pid {pid} into {}", procs.display())))
    }

    /// Kills every process in the subtree and waits until it is empty.
    pub fn kill_all(&self) -> Result<()> {
        kill_subtree(&self.inner.path, KILL_TIMEOUT)
    }
}

impl AsFd for Cgroup {
    /// The cgroup directory fd: what `bpf(BPF_PROG_ATTACH)` and aya's `attach` take.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.dir.as_fd()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = remove_cgroup(&self.path, KILL_TIMEOUT) {
            warn_cleanup(&format!("cgroup {}", self.path.display()), &e);
        }
    }
}

/// Kills everything in the cgroup at `path`, then removes it and all sub-cgroups.
pub(crate) fn remove_cgroup(path: &Path, timeout: Duration) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    kill_subtree(path, timeout)?;
    remove_tree(path, timeout)
}

fn read_procs(path: &Path) -> Result<Vec<u32>> {
    let file = path.join("cgroup.procs");
    Ok(fs::read_to_string(&file)
        .map_err(io_ctx(format!("reading {}", file.display())))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

fn populated(path: &Path) -> Result<bool> {
    let file = path.join("cgroup.events");
    let text = fs::read_to_string(&file).map_err(io_ctx(format!("reading {}", file.display())))?;
    Ok(text.lines().any(|l| l.trim() == "populated 1"))
}

fn sub_cgroups(path: &Path) -> Vec<PathBuf> {
    fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn kill_subtree(path: &Path, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let kill_file = path.join("cgroup.kill");
    loop {
        if !populated(path)? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: format!("cgroup {} to become empty", path.display()),
                after: timeout,
            });
        }
        if kill_file.exists() {
            fs::write(&kill_file, "1")
                .map_err(io_ctx(format!("writing {}", kill_file.display())))?;
        } else {
            sigkill_tree(path);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigkill_tree(path: &Path) {
    for pid in read_procs(path).unwrap_or_default() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for sub in sub_cgroups(path) {
        sigkill_tree(&sub);
    }
}

fn remove_tree(path: &Path, timeout: Duration) -> Result<()> {
    for sub in sub_cgroups(path) {
        remove_tree(&sub, timeout)?;
    }
    let start = Instant::now();
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // EBUSY right after a kill: the last tasks are still exiting.
            Err(e) if start.elapsed() < timeout => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(io_ctx(format!("rmdir {}", path.display()))(e)),
        }
    }
}
