//! `strait-ipam`: host-local style address management with a crash-safe,
//! file-locked store indexed by attachment.
//!
//! [`config`] turns the `ipam` section into range sets; [`store`] keeps the
//! allocations on disk and is the only place that changes them. `strait-cni`
//! calls them directly; [`plugin`] exposes the same logic as the CNI IPAM
//! plugin binary `strait-ipam`.

pub mod config;
pub mod plugin;
pub mod requested;
pub mod store;

pub use config::{IpamConfig, IpamConfigError, Range, RangeSet};
pub use requested::requested_ips;
pub use store::{Allocation, Attachment, Held, Store, StoreError};
