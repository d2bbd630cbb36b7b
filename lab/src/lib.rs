//! The local lab: a whole Strait cluster in network namespaces on one
//! machine. This crate holds the lab's embedded default cluster and the
//! controller-manager stand-in that turns Pods and Service selectors into
//! EndpointSlices (there is no kube-controller-manager in the lab).

mod default_manifest;
mod endpoint_slices;
mod readiness;

pub use default_manifest::{DEFAULT_MANIFEST, default_cluster};
pub use endpoint_slices::{MANAGED_BY, compute_endpoint_slices};
pub use readiness::{READY_ANNOTATION, pod_ready};
