//! Host rules (`IngressRule.host`) and the host part of a request's
//! authority.

use std::net::IpAddr;

/// Longest DNS name in text form.
const MAX_HOST: usize = 253;
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// Which request hosts an Ingress rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostRule {
    /// No `host` in the rule: every request host.
    Any,
    /// A precise host, stored lowercase.
    Exact(Box<str>),
    /// `*.<suffix>`: hosts with exactly one label before `suffix` (stored
    /// lowercase, without the `*.`).
    Wildcard(Box<str>),
}

/// Why a rule host was refused. The checks are the API server's, so a
/// manifest that no API server validated cannot slip in a host that would
/// never match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Ingress hosts are names; IP addresses are refused by the API.
    #[error("host {0:?} must be a DNS name, not an IP address")]
    IpAddress(String),
    /// Over 253 characters.
    #[error("host {0:?} is longer than 253 characters")]
    TooLong(String),
    /// `*` is allowed only as the whole first label.
    #[error("host {0:?}: a wildcard must be the whole first label, as in *.example.com")]
    BadWildcard(String),
    /// A label is empty, too long or not letters, digits and inner hyphens.
    #[error("host {0:?} is not a valid DNS-1123 subdomain")]
    Invalid(String),
}

impl HostRule {
    /// Parse `IngressRule.host`; an empty host means [`HostRule::Any`].
    /// Upper-case letters are accepted and folded.
    pub fn new(host: &str) -> Result<Self, HostError> {
        if host.is_empty() {
            return Ok(Self::Any);
        }
        if host.len() > MAX_HOST {
            return Err(HostError::TooLong(host.to_owned()));
        }
        if host.parse::<IpAddr>().is_ok() {
            return Err(HostError::IpAddress(host.to_owned()));
        }
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, host),
        };
        if name.contains('*') {
            return Err(HostError::BadWildcard(host.to_owned()));
        }
        if !name.split('.').all(is_dns1123_label) {
            return Err(HostError::Invalid(host.to_owned()));
        }
        let name = name.to_ascii_lowercase().into_boxed_str();
        Ok(if wildcard {
            Self::Wildcard(name)
        } else {
            Self::Exact(name)
        })
    }

    /// Whether the rule applies to `authority`, a Host header or
    /// `:authority` value (the port, IPv6 brackets and a trailing dot are
    /// ignored; see [`request_host`]).
    pub fn matches(&self, authority: &str) -> bool {
        let host = request_host(authority);
        match self {
            Self::Any => true,
            Self::Exact(want) => host.eq_ignore_ascii_case(want),
            Self::Wildcard(suffix) => {
                wildcard_suffix(host).is_some_and(|s| s.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// The host of a Host header or `:authority` value, without port, IPv6
/// brackets or trailing dot: `Foo.com:8080` → `Foo.com`, `[::1]:80` →
/// `::1`, `foo.com.` → `foo.com`. Case is kept; compare case-insensitively.
pub fn request_host(authority: &str) -> &str {
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((literal, _port)) => literal,
            None => authority,
        }
    } else {
        match authority.split_once(':') {
            // More than one colon without brackets: a bare IPv6 address.
            Some((host, port)) if !port.contains(':') => host,
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// For a wildcard match: the request host minus its first label, if that
/// label is non-empty.
pub(crate) fn wildcard_suffix(host: &str) -> Option<&str> {
    match host.split_once('.') {
        Some((first, rest)) if !first.is_empty() => Some(rest),
        _ => None,
    }
}

/// Whether `label` is a DNS-1123 label in either case.
fn is_dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= MAX_LABEL
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}
