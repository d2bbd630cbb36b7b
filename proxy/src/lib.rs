//! Strait's eBPF service proxy: loads and pins the kernel programs and keeps
//! their maps in step with the cluster's Services and EndpointSlices.
//!
//! The datapath follows the socket-level load balancing model: a connect(2)
//! to a service VIP is rewritten to a backend before any packet exists.

mod desired;
mod error;
mod loader;
mod object;
mod service_maps;

pub use desired::{DesiredState, FrontendSpec, desired_state, vips};
pub use error::ProxyError;
pub use loader::{Capacity, DEFAULT_PIN_DIR, PROGRAMS, SockLb};
pub use service_maps::{Frontend, ServiceMaps, SyncStats};
