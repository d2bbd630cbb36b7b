//! Ingress v1 request matching: which rule of which Ingress serves a request.
//!
//! This is the routing contract users write against, so it follows the
//! Kubernetes documentation to the letter:
//!
//! - `pathType: Exact` compares the whole path, case-sensitively (`/foo`
//!   does not match `/foo/`).
//! - `pathType: Prefix` compares `/`-separated elements: `/aaa/bbb` matches
//!   `/aaa/bbb`, `/aaa/bbb/` and `/aaa/bbb/ccc` but not `/aaa/bbbxyz`; a
//!   trailing slash on the rule is ignored and `/` matches every path.
//! - `pathType: ImplementationSpecific` is treated as `Prefix` by Strait
//!   (the API leaves it to the controller; Prefix is the least surprising
//!   choice and never needs regexes).
//! - A host is exact (`foo.bar.com`) or a wildcard (`*.foo.com`) that covers
//!   exactly one extra label; hosts compare case-insensitively and the port
//!   of the request's Host header is ignored.
//! - When several paths match, the longest wins, and `Exact` beats `Prefix`
//!   at equal length. Exact hosts beat wildcard hosts, which beat rules
//!   without a host.
//!
//! Sub-modules, one job each: `path` (path rules), `host` (host rules and
//! Host header parsing) and `table` (the precedence-ordered selector).

mod host;
mod path;
mod table;

#[cfg(test)]
mod tests;

pub(crate) use host::wildcard_suffix;
pub use host::{HostError, HostRule, request_host};
pub use path::{PathError, PathRule, PathType, request_path};
pub use table::RouteTable;
