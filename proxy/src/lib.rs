//! Strait's eBPF service proxy: loads and pins the kernel programs and keeps
//! their maps in step with the cluster's Services and EndpointSlices.
//!
//! The datapath follows the socket-level load balancing model: a connect(2)
//! to a service VIP is rewritten to a backend before any packet exists.

pub mod agent;
mod desired;
mod error;
pub mod explain;
pub mod health_check;
mod incremental;
mod kernel_state;
pub mod kube_layout;
mod loader;
pub mod maglev;
mod mapped_array;
pub mod node_maps;
pub mod node_routes;
mod object;
mod service_maps;
pub mod sock_destroy;

pub use desired::{DesiredState, FrontendSpec, desired_state, vips};
pub use error::ProxyError;
pub use incremental::{Delta, IncrementalDesired};
pub use kernel_state::{KernelFrontend, KernelState};
pub use loader::{Capacity, DEFAULT_PIN_DIR, PROGRAMS, SockLb, TC_PROGRAMS, remove_pins};
pub use node_maps::NodeMaps;
pub use service_maps::{Frontend, ServiceMaps, SyncStats};
