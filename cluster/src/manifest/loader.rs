//! Loading a manifest directory with a per-file cache: each reload re-lists
//! the directory, re-parses only files whose contents changed, keeps the last
//! good state of files that became invalid, and assembles one object set.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ManifestError;
use super::keep::Keep;
use super::mirror::{mirror_endpoints, should_mirror};
use super::parse::{Item, parse_file};
use crate::kind::{Kind, KindSet, Object, ObjectKey};
use crate::shared::SharedObject;
use crate::snapshot::{ClusterSnapshot, SnapshotBuilder};
use crate::trim::Trim;

/// The result of loading a manifest directory.
///
/// It exists so synchronous callers (lab, benchmarks, `strait lab up`) get the
/// objects and every problem in one value, without tokio.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// The objects, after de-duplication (first definition wins) and with
    /// EndpointSlices mirrored from Endpoints. Files with errors contribute
    /// their last good contents (nothing if they were never valid).
    pub objects: Vec<Object>,
    /// Every current problem: unreadable files, bad documents, duplicates.
    pub errors: Vec<ManifestError>,
    /// Documents skipped because the view does not carry their kind.
    pub skipped: usize,
    /// Manifest files found.
    pub files: usize,
}

impl LoadReport {
    /// A synced snapshot of the loaded objects (errors are ignored; check
    /// [`errors`](Self::errors) first or use [`load_dir`](crate::load_dir)).
    pub fn to_snapshot(&self) -> ClusterSnapshot {
        let mut builder = SnapshotBuilder::new(KindSet::ALL);
        builder.replace(KindSet::ALL, self.objects.iter().cloned());
        for kind in Kind::ALL {
            builder.mark_synced(kind);
        }
        builder.build()
    }
}

/// A load as the loader assembled it: objects still shared with the
/// loader's per-file state, so a source can hand them to the snapshot
/// without copying (see [`LoadReport`] for the fields).
pub(crate) struct Assembled {
    pub(crate) objects: Vec<SharedObject>,
    pub(crate) errors: Vec<ManifestError>,
    pub(crate) skipped: usize,
    pub(crate) files: usize,
}

impl Assembled {
    /// The report with owned copies of the objects.
    fn into_report(self) -> LoadReport {
        LoadReport {
            objects: self.objects.iter().map(SharedObject::to_object).collect(),
            errors: self.errors,
            skipped: self.skipped,
            files: self.files,
        }
    }
}

struct FileState {
    /// Hash of the contents last parsed; `None` when the file could not be read.
    hash: Option<u64>,
    /// The last good (error-free) contents.
    good: Option<Arc<Vec<Item>>>,
    /// The errors of the current contents.
    errors: Vec<ManifestError>,
    skipped: usize,
}

/// A manifest directory reader that remembers each file's last good state.
///
/// It exists so the long-running [`ManifestSource`](crate::ManifestSource)
/// and synchronous callers share one implementation of "reload, keep what was
/// good". Rules: files ending `.yaml`, `.yml` or `.json`, found recursively;
/// files and directories whose name starts with `.` are ignored (this also
/// skips the `..data` internals of a mounted ConfigMap, while its top-level
/// symlinks are read); symlinked directories are not followed.
///
/// By default every kind is kept whole (the lab re-renders what it loads);
/// [`with_kinds`](Self::with_kinds) and [`with_trim`](Self::with_trim) keep
/// less, already in the copy the loader remembers.
pub struct ManifestLoader {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    keep: Keep,
}

impl ManifestLoader {
    /// A loader for `dir`; nothing is read until [`reload`](Self::reload).
    pub fn new(dir: impl Into<PathBuf>) -> ManifestLoader {
        ManifestLoader {
            dir: dir.into(),
            files: BTreeMap::new(),
            keep: Keep::default(),
        }
    }

    /// Keeps only objects of `kinds` (default: all); documents of other
    /// kinds count as skipped. Core/v1 Endpoints are read only when
    /// EndpointSlices are kept.
    #[must_use]
    pub fn with_kinds(mut self, kinds: KindSet) -> ManifestLoader {
        self.keep.kinds = kinds;
        self
    }

    /// Cuts every kept object down with `trim` as it is parsed (default:
    /// objects stay whole).
    #[must_use]
    pub fn with_trim(mut self, trim: Trim) -> ManifestLoader {
        self.keep.trim = Some(trim);
        self
    }

    /// The directory being loaded.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory and returns the assembled state. A file that
    /// now has errors keeps its last good contents; a file that disappeared
    /// is dropped; a directory that cannot be listed keeps everything.
    pub fn reload(&mut self) -> LoadReport {
        self.reload_shared().into_report()
    }

    /// [`reload`](Self::reload) with the objects shared with the loader's
    /// state instead of copied.
    pub(crate) fn reload_shared(&mut self) -> Assembled {
        let mut errors = Vec::new();
        let listed = list_files(&self.dir, &mut errors);
        let Some(listed) = listed else {
            return self.assemble(errors);
        };
        let mut next = BTreeMap::new();
        for path in listed {
            let previous = self.files.remove(&path);
            let state = load_file(&path, previous, &self.keep);
            next.insert(path, state);
        }
        self.files = next;
        self.assemble(errors)
    }

    /// Parses one in-memory manifest text (for example a manifest embedded in
    /// a binary) as if it were the only file of a directory, named `name` in
    /// errors.
    pub fn parse_str(name: impl Into<PathBuf>, text: &str) -> LoadReport {
        let path = name.into();
        let parsed = parse_file(&path, text, &Keep::default());
        let good = parsed.errors.is_empty().then(|| Arc::new(parsed.items));
        let mut loader = ManifestLoader::new(PathBuf::new());
        loader.files.insert(
            path,
            FileState {
                hash: None,
                good,
                errors: parsed.errors,
                skipped: parsed.skipped,
            },
        );
        loader.assemble(Vec::new()).into_report()
    }

    fn assemble(&self, mut errors: Vec<ManifestError>) -> Assembled {
        let mut skipped = 0;
        let mut seen: HashMap<(&'static str, ObjectKey), &Path> = HashMap::new();
        let mut objects = Vec::new();
        let mut endpoints = Vec::new();
        for (path, state) in &self.files {
            errors.extend(state.errors.iter().cloned());
            skipped += state.skipped;
            for item in state.good.iter().flat_map(|g| g.iter()) {
                let Some(key) = item.key() else { continue };
                let kind = item.kind_name();
                if let Some(first) = seen.get(&(kind, key.clone())) {
                    errors.push(ManifestError::Duplicate {
                        kind: kind.to_owned(),
                        key,
                        first: first.to_path_buf(),
                        second: path.clone(),
                    });
                    continue;
                }
                seen.insert((kind, key), path);
                match item {
                    Item::Object(o) => objects.push(o.clone()),
                    Item::Endpoints(e) => endpoints.push(&**e),
                }
            }
        }

        let services: BTreeMap<ObjectKey, &k8s_openapi::api::core::v1::Service> = objects
            .iter()
            .filter_map(|o| match o {
                SharedObject::Service(s) => Some((o.key()?, &**s)),
                _ => None,
            })
            .collect();
        let mut mirrored = Vec::new();
        for e in endpoints {
            let Some(key) = ObjectKey::from_meta(Kind::Service, &e.metadata) else {
                continue;
            };
            if !should_mirror(e, services.get(&key).copied()) {
                tracing::debug!(endpoints = %key, "not mirroring Endpoints: no selector-less Service of that name");
                continue;
            }
            for slice in mirror_endpoints(e) {
                let Some(slice_key) = ObjectKey::from_meta(Kind::EndpointSlice, &slice.metadata)
                else {
                    continue;
                };
                if seen.contains_key(&(Kind::EndpointSlice.as_str(), slice_key.clone())) {
                    tracing::warn!(slice = %slice_key, "a manifest EndpointSlice has the name of a mirrored one; keeping the manifest's");
                    continue;
                }
                mirrored.extend(self.keep.object(Object::EndpointSlice(slice)));
            }
        }
        objects.extend(mirrored);
        Assembled {
            objects,
            errors,
            skipped,
            files: self.files.len(),
        }
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn load_file(path: &Path, previous: Option<FileState>, keep: &Keep) -> FileState {
    let good_before = previous.as_ref().and_then(|p| p.good.clone());
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return FileState {
                hash: None,
                good: good_before,
                errors: vec![ManifestError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }],
                skipped: 0,
            };
        }
    };
    let hash = hash_bytes(&bytes);
    if let Some(previous) = previous
        && previous.hash == Some(hash)
    {
        return previous;
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return FileState {
                hash: Some(hash),
                good: good_before,
                errors: vec![ManifestError::Read {
                    path: path.to_path_buf(),
                    reason: format!("not valid UTF-8: {e}"),
                }],
                skipped: 0,
            };
        }
    };
    let mut parsed = parse_file(path, &text, keep);
    let good = if parsed.errors.is_empty() {
        share_unchanged(&mut parsed.items, good_before.as_deref().map(Vec::as_slice));
        Some(Arc::new(parsed.items))
    } else {
        good_before
    };
    FileState {
        hash: Some(hash),
        good,
        errors: parsed.errors,
        skipped: parsed.skipped,
    }
}

/// Replaces each object of `items` that is equal to the same object in the
/// file's previous state by that state's `Arc`, so editing one object of a
/// file leaves the others shared with the snapshot rather than copied.
fn share_unchanged(items: &mut [Item], previous: Option<&[Item]>) {
    let Some(previous) = previous else {
        return;
    };
    let before: HashMap<(Kind, ObjectKey), &SharedObject> = previous
        .iter()
        .filter_map(|item| match item {
            Item::Object(o) => Some(((o.kind(), o.key()?), o)),
            Item::Endpoints(_) => None,
        })
        .collect();
    for item in items {
        if let Item::Object(o) = item
            && let Some(key) = o.key()
            && let Some(old) = before.get(&(o.kind(), key))
            && old.same_contents(o)
        {
            *o = (*old).clone();
        }
    }
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Every manifest file under `dir`, sorted. `None` when `dir` itself cannot
/// be listed (subdirectory errors are reported and skipped).
fn list_files(dir: &Path, errors: &mut Vec<ManifestError>) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    while let Some(current) = stack.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(e) => e,
            Err(e) => {
                errors.push(ManifestError::Directory {
                    path: current.clone(),
                    source: Arc::new(e),
                });
                if first {
                    return None;
                }
                continue;
            }
        };
        first = false;
        for entry in entries.flatten() {
            let path = entry.path();
            if is_hidden(&path) {
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                stack.push(path);
            } else if is_manifest(&path) {
                // regular files and symlinks to files
                let is_file = if file_type.is_symlink() {
                    std::fs::metadata(&path).is_ok_and(|m| m.is_file())
                } else {
                    file_type.is_file()
                };
                if is_file {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    Some(out)
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
