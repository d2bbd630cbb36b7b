//! Errors of the cluster view and its sources.

use std::path::PathBuf;

use crate::manifest::ManifestErrors;

/// Why the cluster view could not be built or stopped updating.
///
/// It exists so binaries can report a clear cause and a next step (each
/// message says what failed and what to do).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The source task ended (its error was logged); the view no longer updates.
    #[error(
        "the cluster source stopped, so the cluster view no longer updates; \
         see the logged source error and restart the component"
    )]
    SourceStopped,

    /// No Kubernetes client could be built from in-cluster config or KUBECONFIG.
    #[error(
        "could not create a Kubernetes client: {0}; run inside a pod with a service account, \
         set KUBECONFIG to a valid kubeconfig, or use --manifests DIR"
    )]
    KubeClient(#[source] kube::Error),

    /// The manifest directory cannot be used as a source.
    #[error("manifest directory {}: {reason}; pass an existing, readable directory", dir.display())]
    ManifestDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The manifest directory cannot be watched for changes.
    #[error(
        "cannot watch manifest directory {} for changes: {source}; check inotify limits \
         (fs.inotify.max_user_watches) or that the directory still exists",
        dir.display()
    )]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// The notify error.
        #[source]
        source: notify::Error,
    },

    /// Loading manifests produced errors (synchronous loading only; the
    /// long-running source logs them and keeps the last good state).
    #[error(transparent)]
    Manifests(#[from] ManifestErrors),
}
