//! Ingress v1 for Strait: host and path routing, TLS termination and
//! upstream load balancing, reconfigured live from the cluster view.
//!
//! The pieces, one job each:
//! * [`matching`]: the exact Ingress v1 semantics of `host`, `path` and
//!   `pathType`, with the precedence rules;
//! * [`class`]: which Ingresses are ours (IngressClass, the class
//!   annotation, the default class);
//! * [`annotations`]: the ingress-nginx annotations honoured, as typed
//!   settings; [`rewrite`], [`affinity`] and [`canary`] implement three of
//!   them;
//! * [`backend`]: Service backends resolved to ready endpoints;
//! * [`build`]: one snapshot → one [`Router`] + [`tls::CertStore`], with
//!   merges and conflicts (oldest Ingress wins) reported;
//! * [`router`]: the immutable routing structure requests read;
//! * [`tls`]: certificates from Secrets, the SNI resolver, the default
//!   certificate;
//! * [`proxy`]: request handling, header rewriting, forwarding with retries
//!   and timeouts;
//! * [`server`]: listeners, TLS handshakes, graceful shutdown;
//! * [`metrics`]: Prometheus metrics;
//! * [`status`]: `status.loadBalancer.ingress` of the served Ingresses.
//!
//! Reconfiguration never blocks requests: a background task rebuilds the
//! router and certificates on every snapshot and swaps them atomically
//! (arc-swap); in-flight and keep-alive connections are not touched.

#![warn(missing_docs)]

pub mod affinity;
pub mod annotations;
pub mod backend;
pub mod balance;
pub mod build;
pub mod canary;
pub mod class;
pub mod config;
mod error;
mod events;
pub mod matching;
pub mod metrics;
pub mod proxy;
mod reload;
pub mod rewrite;
pub mod router;
pub mod server;
pub mod status;
pub mod tls;

pub use build::{BuildReport, Built, ConfigBuilder, Problem};
pub use config::{ClassConfig, IngressConfig, PortRef, ServiceRef, Timeouts};
pub use error::IngressError;
pub use matching::{HostError, HostRule, PathError, PathRule, PathType, RouteTable};
pub use router::{MatchKind, Route, Router, Target};
pub use server::{IngressServer, RunningIngress, serve_until};
