//! Errors found while loading a manifest directory.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::kind::ObjectKey;

/// One problem with the manifest directory. The source keeps serving the
/// last good state of the affected file while the problem lasts.
///
/// It exists so a person editing manifests is told exactly which file,
/// document and line to fix (and tools can show it via the structured fields).
#[derive(Clone, Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory (or a subdirectory) could not be listed.
    #[error("{}: cannot list directory: {source}; check that it exists and is readable", .path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// A file could not be read (or is not UTF-8).
    #[error("{}: cannot read file: {reason}; fix its permissions or encoding (UTF-8)", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A document could not be parsed or decoded into its Kubernetes type.
    #[error("{}: document {document}{}: {message}", .path.display(), fmt_location(*.line, *.column))]
    Document {
        /// The file.
        path: PathBuf,
        /// The 1-based index of the document in the file (`---` separated).
        document: usize,
        /// 1-based line in the file, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong, with the parser's message.
        message: String,
    },

    /// The same object is defined twice; the first definition (files in
    /// sorted order, then document order) is kept.
    #[error(
        "{kind} {key} is defined in both {} and {}; keeping the one in {} - remove the other",
        .first.display(), .second.display(), .first.display()
    )]
    Duplicate {
        /// The object's kind.
        kind: String,
        /// The object's key.
        key: ObjectKey,
        /// The file whose definition is kept.
        first: PathBuf,
        /// The file whose definition is ignored.
        second: PathBuf,
    },
}

fn fmt_location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl ManifestError {
    /// The file (or directory) the error is about; for duplicates, the file
    /// whose definition was ignored.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ManifestError::Directory { path, .. }
            | ManifestError::Read { path, .. }
            | ManifestError::Document { path, .. } => path,
            ManifestError::Duplicate { second, .. } => second,
        }
    }
}

/// Every error of one load, for callers that want a load to fail as a whole
/// ([`load_dir`](crate::load_dir)).
#[derive(Clone, Debug, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} manifest error(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}
