//! The manifest-directory source: ordinary Kubernetes YAML/JSON files,
//! reloaded on change. Used by the lab, tests, benchmarks and `--manifests`.

mod error;
mod keep;
mod loader;
mod mirror;
mod parse;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use notify::event::AccessKind;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

pub use error::{ManifestError, ManifestErrors};
pub use loader::{LoadReport, ManifestLoader};
pub use mirror::{MANAGED_BY_LABEL, MIRRORING_CONTROLLER, SKIP_MIRROR_LABEL, mirror_endpoints};

use crate::error::ClusterError;
use crate::kind::KindSet;
use crate::snapshot::ClusterSnapshot;
use crate::source::ClusterSource;
use crate::trim::Trim;
use crate::view::Publisher;
use loader::Assembled;

/// Loads `dir` once, synchronously, into a synced snapshot; fails with every
/// error when any file is bad (use [`ManifestSource::load_once`] to get the
/// objects despite errors).
pub fn load_dir(dir: impl AsRef<Path>) -> Result<ClusterSnapshot, ClusterError> {
    let report = ManifestSource::load_once(dir);
    if report.errors.is_empty() {
        Ok(report.to_snapshot())
    } else {
        Err(ClusterError::Manifests(ManifestErrors(report.errors)))
    }
}

/// The outcome of the most recent (re)load of a running [`ManifestSource`].
///
/// It exists so a long-running component can show manifest problems
/// (`strait lab status`, tests) and not only log them.
#[derive(Clone, Debug, Default)]
pub struct LoadStatus {
    /// Number of completed loads (0 before the first).
    pub loads: u64,
    /// The current errors.
    pub errors: Vec<ManifestError>,
    /// Documents skipped because of their kind.
    pub skipped: usize,
    /// Manifest files found.
    pub files: usize,
    /// Objects published.
    pub objects: usize,
}

/// A [`ClusterSource`] reading a directory of ordinary Kubernetes manifests
/// and reloading it on change.
///
/// It exists so the lab, tests and `--manifests DIR` get the same typed view
/// as a real cluster without an API server. See [`ManifestLoader`] for which
/// files are read. Changes are picked up with inotify (debounced, 100 ms by
/// default) plus a periodic rescan (30 s by default) for filesystems that do
/// not report changes. Errors are logged with structured fields and exposed
/// through [`status`](Self::status); each bad file keeps its last good state.
/// The provided kinds (all seven unless [`with_kinds`](Self::with_kinds)
/// says otherwise) are marked synced after the first load. Objects are
/// complete unless [`with_trim`](Self::with_trim) is set; the loader's copy
/// of each object is shared with the snapshot, not duplicated.
pub struct ManifestSource {
    dir: PathBuf,
    name: String,
    debounce: Duration,
    rescan: Option<Duration>,
    status: watch::Sender<Arc<LoadStatus>>,
    kinds: KindSet,
    trim: Option<Trim>,
}

impl ManifestSource {
    /// A source for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> ManifestSource {
        let dir = dir.into();
        ManifestSource {
            name: format!("manifests:{}", dir.display()),
            dir,
            debounce: Duration::from_millis(100),
            rescan: Some(Duration::from_secs(30)),
            status: watch::channel(Arc::new(LoadStatus::default())).0,
            kinds: KindSet::ALL,
            trim: None,
        }
    }

    /// Provides only `kinds` (default: all seven), like
    /// [`KubeConfig::kinds`](crate::KubeConfig::kinds): documents of other
    /// kinds are skipped, so a component holds only what it watches.
    #[must_use]
    pub fn with_kinds(mut self, kinds: KindSet) -> ManifestSource {
        self.kinds = kinds;
        self
    }

    /// Cuts every object down with `trim` before it is stored (default:
    /// complete objects, which the lab needs).
    #[must_use]
    pub fn with_trim(mut self, trim: Trim) -> ManifestSource {
        self.trim = Some(trim);
        self
    }

    fn loader(&self) -> ManifestLoader {
        let loader = ManifestLoader::new(self.dir.clone()).with_kinds(self.kinds);
        match self.trim {
            Some(trim) => loader.with_trim(trim),
            None => loader,
        }
    }

    /// How long the directory must be quiet before a reload (default 100 ms).
    #[must_use]
    pub fn with_debounce(mut self, debounce: Duration) -> ManifestSource {
        self.debounce = debounce;
        self
    }

    /// How often to rescan even without change events (default 30 s; `None`
    /// disables it).
    #[must_use]
    pub fn with_rescan_interval(mut self, interval: Option<Duration>) -> ManifestSource {
        self.rescan = interval;
        self
    }

    /// A receiver of the latest load outcome (errors, counts), updated after
    /// every reload. Take it before spawning the source.
    pub fn status(&self) -> watch::Receiver<Arc<LoadStatus>> {
        self.status.subscribe()
    }

    /// Loads `dir` once, synchronously (no tokio needed), returning objects
    /// and errors.
    pub fn load_once(dir: impl AsRef<Path>) -> LoadReport {
        ManifestLoader::new(dir.as_ref()).reload()
    }

    async fn run_inner(self, mut publisher: Publisher) -> Result<(), ClusterError> {
        let dir = self.dir.clone();
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ClusterError::ManifestDir {
                    dir,
                    reason: "not a directory".into(),
                });
            }
            Err(e) => {
                return Err(ClusterError::ManifestDir {
                    dir,
                    reason: e.to_string(),
                });
            }
        }

        // Watch before the first load so no change between the two is lost.
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(e) => !matches!(
                        e.kind,
                        EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Any)
                    ),
                    Err(_) => true,
                };
                if relevant {
                    let _ = events_tx.send(event);
                }
            })
            .map_err(|source| ClusterError::Watch {
                dir: dir.clone(),
                source,
            })?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| ClusterError::Watch {
                dir: dir.clone(),
                source,
            })?;

        let mut loader = Some(self.loader());
        let mut loads = 0u64;
        let mut logged = Vec::new();
        let mut rescan = self.rescan.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            let Some(mut l) = loader.take() else {
                return Ok(());
            };
            let (l, report) = match tokio::task::spawn_blocking(move || {
                let report = l.reload_shared();
                (l, report)
            })
            .await
            {
                Ok(v) => v,
                Err(e) => {
                    return Err(ClusterError::ManifestDir {
                        dir,
                        reason: format!("reload task failed: {e}"),
                    });
                }
            };
            loader = Some(l);
            loads += 1;
            self.publish(&mut publisher, report, loads, &mut logged);

            tokio::select! {
                event = events.recv() => match event {
                    None => return Ok(()),
                    Some(Err(e)) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "manifest watch error; rescanning");
                    }
                    Some(Ok(_)) => {}
                },
                _ = async {
                    match rescan.as_mut() {
                        Some(i) => { i.tick().await; }
                        None => futures::future::pending::<()>().await,
                    }
                } => {}
                _ = publisher.closed() => return Ok(()),
            }
            // Debounce: wait until the directory has been quiet for a while,
            // but never longer than ten debounce periods in total.
            let give_up = tokio::time::Instant::now() + self.debounce * 10;
            loop {
                let quiet = (tokio::time::Instant::now() + self.debounce).min(give_up);
                match tokio::time::timeout_at(quiet, events.recv()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(()),
                    Err(_) => break,
                }
            }
        }
    }

    /// Publishes a load; errors are logged when they first appear (a bad
    /// file is not re-logged on every rescan).
    fn publish(
        &self,
        publisher: &mut Publisher,
        report: Assembled,
        loads: u64,
        logged: &mut Vec<String>,
    ) {
        let current: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        for (error, text) in report.errors.iter().zip(&current) {
            if !logged.contains(text) {
                log_error(error);
            }
        }
        if current.is_empty() && !logged.is_empty() {
            tracing::info!(dir = %self.dir.display(), "manifest errors resolved");
        }
        *logged = current;
        let objects = report.objects.len();
        let changed = publisher.update(|b| {
            let mut changed = b.replace_shared(self.kinds, report.objects);
            for kind in self.kinds.iter() {
                changed |= b.mark_synced(kind);
            }
            changed
        });
        tracing::debug!(
            dir = %self.dir.display(),
            files = report.files,
            objects,
            skipped = report.skipped,
            errors = report.errors.len(),
            changed,
            "manifest directory loaded"
        );
        self.status.send_replace(Arc::new(LoadStatus {
            loads,
            errors: report.errors,
            skipped: report.skipped,
            files: report.files,
            objects,
        }));
    }
}

fn log_error(error: &ManifestError) {
    match error {
        ManifestError::Document {
            path,
            document,
            line,
            column,
            message,
        } => tracing::warn!(
            path = %path.display(),
            document,
            line = line.unwrap_or(0),
            column = column.unwrap_or(0),
            error = %message,
            "invalid manifest document; keeping the file's last good state"
        ),
        ManifestError::Duplicate {
            kind,
            key,
            first,
            second,
        } => tracing::warn!(
            kind = %kind,
            key = %key,
            kept = %first.display(),
            ignored = %second.display(),
            "object defined twice in the manifests"
        ),
        other => tracing::warn!(path = %other.path().display(), error = %other, "manifest error"),
    }
}

impl ClusterSource for ManifestSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kinds(&self) -> KindSet {
        self.kinds
    }

    fn run(self: Box<Self>, publisher: Publisher) -> BoxFuture<'static, Result<(), ClusterError>> {
        Box::pin((*self).run_inner(publisher))
    }
}
