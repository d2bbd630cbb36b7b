//! Pod wiring: the kernel objects that connect a pod to its node.

pub mod bridge;
pub mod routed;
pub mod sysctl;
pub mod vxlan;
