//! `strait-ipam`: host-local style address management with a crash-safe,
//! file-locked store indexed by attachment.
//!
//! [`config`] turns the `ipam` section into range sets; [`store`] keeps the
//! allocations on disk and is the only place that changes them.

pub mod config;
pub mod store;

pub use config::{IpamConfig, IpamConfigError, Range, RangeSet};
pub use store::{Allocation, Attachment, Store, StoreError};
