//! The route table: every (host, path) rule of the admitted Ingresses,
//! ordered so that the first match is the one the precedence rules pick.

use std::collections::HashMap;

use super::host::{HostRule, request_host, wildcard_suffix};
use super::path::{PathRule, request_path};

/// Longest host that can equal a rule host (rule hosts are at most 253
/// characters); longer request hosts only match host-less rules.
const MAX_HOST: usize = 253;

/// Selects the value (a backend, for the router) of the rule that serves a
/// request.
///
/// Host selection comes first and does not fall back: the request goes to
/// the most specific host that has rules (exact, then the wildcard covering
/// it, then the rules without a host), and only that host's paths are
/// tried, as Envoy virtual hosts and NGINX server blocks do. A request whose
/// host has rules but no matching path gets `None`, and the router answers
/// with the default backend.
///
/// Within a host, the longest matching path wins and `Exact` beats `Prefix`
/// at equal length; rules that still tie keep insertion order, so the caller
/// decides (controllers conventionally insert the oldest Ingress first).
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    /// Exact hosts, keyed lowercase.
    exact: HashMap<Box<str>, Paths<T>>,
    /// Wildcard hosts, keyed by their lowercase suffix (without `*.`).
    wildcard: HashMap<Box<str>, Paths<T>>,
    /// Rules without a host.
    any: Option<Paths<T>>,
    /// Number of rules inserted.
    len: usize,
}

/// The path rules of one host, most preferred first.
#[derive(Debug, Clone)]
struct Paths<T> {
    rules: Vec<(PathRule, T)>,
}

impl<T> Paths<T> {
    fn new() -> Self {
        Self { rules: Vec::new() }
    }

    /// Insert after every rule that is preferred to or ties with `rule`.
    fn insert(&mut self, rule: PathRule, value: T) {
        let key = rule.precedence();
        let at = self
            .rules
            .partition_point(|(have, _)| have.precedence() >= key);
        self.rules.insert(at, (rule, value));
    }

    fn pick(&self, path: &str) -> Option<&T> {
        self.rules
            .iter()
            .find(|(rule, _)| rule.matches(path))
            .map(|(_, value)| value)
    }
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any: None,
            len: 0,
        }
    }

    /// Add one rule. Rules are kept in precedence order, so insertion order
    /// only matters between rules that tie exactly.
    pub fn insert(&mut self, host: HostRule, path: PathRule, value: T) {
        let paths = match host {
            HostRule::Any => self.any.get_or_insert_with(Paths::new),
            HostRule::Exact(name) => self.exact.entry(name).or_insert_with(Paths::new),
            HostRule::Wildcard(suffix) => self.wildcard.entry(suffix).or_insert_with(Paths::new),
        };
        paths.insert(path, value);
        self.len += 1;
    }

    /// Number of rules in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of the rule that serves a request, from its Host header
    /// (or `:authority`) and its request target. The port, IPv6 brackets
    /// and a trailing dot are dropped from the host; the query is dropped
    /// from the target.
    pub fn pick(&self, host: &str, target: &str) -> Option<&T> {
        let path = request_path(target);
        self.paths_for(request_host(host))?.pick(path)
    }

    /// The rules of the most specific host group that covers `host`.
    fn paths_for(&self, host: &str) -> Option<&Paths<T>> {
        let mut buf = [0u8; MAX_HOST];
        if let Some(lower) = lowercase(host, &mut buf) {
            if let Some(paths) = self.exact.get(lower) {
                return Some(paths);
            }
            if let Some(paths) = wildcard_suffix(lower).and_then(|s| self.wildcard.get(s)) {
                return Some(paths);
            }
        }
        self.any.as_ref()
    }
}

/// `host` in ASCII lowercase, in `buf`; `None` when it is too long to equal
/// any rule host.
fn lowercase<'b>(host: &str, buf: &'b mut [u8; MAX_HOST]) -> Option<&'b str> {
    let out = buf.get_mut(..host.len())?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps UTF-8 valid, so this cannot fail.
    std::str::from_utf8(out).ok()
}
