//! Cluster DNS for Strait: answers the Kubernetes DNS-Based Service Discovery
//! schema for the cluster zone and its reverse zones, and forwards the rest.
//!
//! The pieces, bottom-up, one job each:
//! * [`name`] classifies a query name into the shape of cluster record it
//!   asks for, without allocating;
//! * [`index`] holds the records, built from the cluster view and updated
//!   incrementally from its changes;
//! * [`authority`] applies the specification's answer rules to the index;
//! * [`wire`] turns request bytes into response bytes (EDNS0, truncation);
//! * [`forward`] sends other names upstream through a bounded cache;
//! * [`server`] runs the UDP, TCP and HTTP listeners;
//! * [`metrics`] counts queries, latency and cache hits.

#![warn(missing_docs)]

pub mod authority;
pub mod autopath;
pub mod config;
pub mod error;
pub mod forward;
pub mod index;
pub mod metrics;
pub mod name;
pub mod resolv;
pub mod server;
pub mod wire;

pub use authority::{Answer, Authority, Resolution};
pub use config::{DEFAULT_TTL, DnsConfig, PodRecords, PodRecordsError};
pub use error::{ForwardError, ServerError};
pub use index::Index;
pub use metrics::Metrics;
pub use name::{InvalidReason, NameKind, Protocol, SCHEMA_VERSION, Zone, ZoneError};
pub use server::{DnsServer, RunningServer};
pub use wire::{Handler, Step, Transport};
