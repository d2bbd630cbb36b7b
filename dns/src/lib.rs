//! Cluster DNS for Strait: answers the Kubernetes DNS-Based Service Discovery
//! schema for the cluster zone and its reverse zones, and forwards the rest.
//!
//! The crate is built bottom-up. [`name`] is the first piece: it decides, from
//! the query name alone, which kind of cluster record a question is about, so
//! that the authority can go straight to the right index (or answer NXDOMAIN,
//! or forward) without string juggling on the hot path.

pub mod name;

pub use name::{InvalidReason, NameKind, Protocol, SCHEMA_VERSION, Zone, ZoneError};
