//! Ingress v1 for Strait: host and path routing, TLS termination and
//! upstream load balancing.
//!
//! The crate is built bottom-up. [`matching`] is the first piece: the exact
//! Ingress v1 semantics of `host`, `path` and `pathType`, with the
//! precedence rules, as a route table the HTTP router will build on.

pub mod matching;

pub use matching::{HostError, HostRule, PathError, PathRule, PathType, RouteTable};
