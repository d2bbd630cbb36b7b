//! The local lab: a whole Strait cluster in network namespaces on one
//! machine. Nodes and an external client hang off an underlay bridge; pods
//! are network namespaces wired by exec'ing `strait-cni` as a runtime would;
//! each node runs `strait agent` on its own cgroup (eBPF, or kube-proxy's
//! iptables or nftables layout with `--proxy`); `strait dns` and
//! `strait ingress` run as pods. The lab stands in for the controllers a
//! cluster would have (kubelet status, EndpointSlices, Nodes, TLS Secrets)
//! and records everything it creates so `down` removes all of it.

mod announce;
mod cgroup;
mod cni;
pub mod controller;
mod default_manifest;
pub mod down;
mod endpoint_slices;
mod error;
pub mod exec;
mod health;
pub use health::NODE_ROUTE_PROTOCOL;
pub mod logs;
mod netns;
mod paths;
mod pods;
mod process;
mod progress;
pub mod proxy_mode;
mod readiness;
mod reconcile;
mod render;
mod state;
pub mod status;
pub mod summary;
mod tls;
mod topology;
pub mod up;

pub use default_manifest::{
    DEFAULT_MANIFEST, SYSTEM_MANIFEST, default_cluster, with_system_objects,
};
pub use endpoint_slices::{MANAGED_BY, compute_endpoint_slices};
pub use error::{LabError, Result};
pub use paths::{LabPaths, PREFIX, RUN_DIR};
pub use pods::{IP_ANNOTATION, RUN_ANNOTATION};
pub use proxy_mode::ProxyMode;
pub use readiness::{READY_ANNOTATION, pod_ready};
pub use reconcile::Outcome;
pub use state::{LabState, PodState};
pub use up::{UpOptions, up};
