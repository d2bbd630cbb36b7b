//! The typed view of the cluster that Strait's proxy, DNS server, ingress
//! controller and lab all consume.
//!
//! * [`ClusterSnapshot`]: an immutable, cheaply cloned snapshot of Services,
//!   EndpointSlices, Ingresses, IngressClasses, Secrets, Nodes and Pods, with
//!   an EndpointSlice-by-service index and [`ClusterSnapshot::changes_since`].
//! * [`ClusterView`]: the consumers' handle (current snapshot + change
//!   notification), fed by any [`ClusterSource`] through a [`Publisher`].
//! * Sources: [`KubeSource`] (kube-rs watchers against an API server) and
//!   [`ManifestSource`] (a directory of ordinary manifests, reloaded on change;
//!   [`load_dir`] loads one synchronously).
//! * Helpers that follow kube-proxy: [`select_endpoints`],
//!   [`resolve_target_port`] and the Service accessors in [`service`].
//! * [`Component`]: which API resources each component watches and writes,
//!   in one place, for the binaries and the deployment's RBAC.
//! * [`Trim`]: opt-in, per component, cuts objects down to the fields that
//!   component reads before they enter the view (the agent and DNS use it;
//!   the lab and the ingress controller keep complete objects).

#![warn(missing_docs)]

mod access;
mod endpoints;
mod error;
mod kind;
mod kube_source;
mod manifest;
mod ports;
pub mod service;
mod shared;
mod snapshot;
mod source;
mod trim;
mod view;

pub use access::{ApiAccess, Component, WATCH_VERBS};
pub use endpoints::{Backend, Conditions, Scope, conditions, select_endpoints};
pub use error::ClusterError;
pub use kind::{Kind, KindSet, Object, ObjectKey};
pub use kube_source::{KubeConfig, KubeSource, TLS_SECRET_FIELD_SELECTOR};
pub use manifest::{
    LoadReport, LoadStatus, MANAGED_BY_LABEL, MIRRORING_CONTROLLER, ManifestError, ManifestErrors,
    ManifestLoader, ManifestSource, SKIP_MIRROR_LABEL, load_dir, mirror_endpoints,
};
pub use ports::{Protocol, port_number, resolve_target_port, service_port_protocol};
pub use service::{ServiceType, TrafficPolicy};
pub use snapshot::{
    Change, ChangeOp, ClusterResource, ClusterSnapshot, ObjectMap, SERVICE_NAME_LABEL,
    SnapshotBuilder,
};
pub use source::ClusterSource;
pub use trim::Trim;
pub use view::{ClusterView, Publisher};

/// Re-exported so consumers use exactly the Kubernetes types this crate stores.
pub use k8s_openapi;
