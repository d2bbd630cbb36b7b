//! The `nginx.ingress.kubernetes.io/*` annotations, so that migrating from
//! ingress-nginx is easy and honest about differences.
//!
//! Values are parsed into typed settings and only ever used as typed values:
//! nothing is pasted into configuration text (the lesson of CVE-2025-1974,
//! "IngressNightmare"). Every annotation gets a [`Verdict`]:
//! * honoured (maybe with a stated difference): parsed, validated, applied;
//!   an invalid value rejects the whole Ingress with a clear message;
//! * refused and fatal: the Ingress is not served, because serving it
//!   without the annotation would be wrong or unsafe (snippets, access
//!   control, canary modes other than weight and header, upstream
//!   protocols other than HTTP and HTTPS);
//! * refused and ignored: the Ingress is served without it (logged).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderName;
use ipnetwork::IpNetwork;

use crate::balance::Balance;
use crate::rewrite::RewriteTemplate;

/// The prefix of ingress-nginx annotations.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// `ssl-redirect`: redirect plain HTTP to https when the host has TLS
/// (default true).
pub const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
/// `force-ssl-redirect`: redirect plain HTTP to https even without TLS.
pub const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
/// `proxy-body-size`: the largest request body (`0`: no limit).
pub const PROXY_BODY_SIZE: &str = "nginx.ingress.kubernetes.io/proxy-body-size";
/// `proxy-connect-timeout`: seconds to connect to one endpoint.
pub const PROXY_CONNECT_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-connect-timeout";
/// `proxy-read-timeout`: seconds to wait for the upstream's response head.
pub const PROXY_READ_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-read-timeout";
/// `whitelist-source-range`: client CIDRs allowed in.
pub const WHITELIST_SOURCE_RANGE: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
/// `rewrite-target`: the path sent upstream instead of the matched path.
pub const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";
/// `use-regex`: paths are regular expressions.
pub const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
/// `backend-protocol`: how to speak to upstreams.
pub const BACKEND_PROTOCOL: &str = "nginx.ingress.kubernetes.io/backend-protocol";
/// `proxy-send-timeout`: seconds the upstream may go without receiving
/// anything while the request is sent.
pub const PROXY_SEND_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-send-timeout";
/// `affinity`: `cookie` pins a client to one endpoint.
pub const AFFINITY: &str = "nginx.ingress.kubernetes.io/affinity";
/// `session-cookie-name`: the affinity cookie's name.
pub const SESSION_COOKIE_NAME: &str = "nginx.ingress.kubernetes.io/session-cookie-name";
/// `canary`: this Ingress is the canary of another for the same host/path.
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
/// `canary-weight`: percentage (0–100) of requests sent to the canary.
pub const CANARY_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
/// `canary-by-header`: a request header whose value `always` or `never`
/// decides for the canary.
pub const CANARY_BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";

/// `load-balance`: `round_robin` or `ewma` for this Ingress's upstreams.
pub const LOAD_BALANCE: &str = "nginx.ingress.kubernetes.io/load-balance";

/// The affinity cookie's name when `session-cookie-name` is not set (the
/// ingress-nginx default).
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// How the proxy speaks to an Ingress's upstreams
/// (`backend-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendProtocol {
    /// Plain HTTP/1.1 (the default).
    #[default]
    Http,
    /// HTTP/1.1 over TLS; the upstream certificate is not verified, as
    /// ingress-nginx does by default (`proxy-ssl-verify: off`).
    Https,
}

/// The canary settings of a canary Ingress.
///
/// It exists so the handler decides with typed values: a weight already
/// range-checked and a header name already validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CanarySettings {
    /// Percentage of requests (0–100) that go to the canary.
    pub weight: u8,
    /// The header that forces (`always`) or prevents (`never`) the canary.
    pub header: Option<HeaderName>,
}

/// The typed settings of one Ingress.
///
/// It exists so the route builder reads typed, validated values and never
/// the raw annotation strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSettings {
    /// Redirect plain HTTP to https for hosts that have TLS.
    pub ssl_redirect: bool,
    /// Redirect plain HTTP to https for every host of the Ingress.
    pub force_ssl_redirect: bool,
    /// Largest request body in bytes (`None`: no limit).
    pub body_limit: Option<u64>,
    /// Connect timeout for this Ingress's upstreams.
    pub connect_timeout: Option<Duration>,
    /// Response-head timeout for this Ingress's upstreams.
    pub read_timeout: Option<Duration>,
    /// Client networks allowed (`None`: everyone).
    pub allow_from: Option<Arc<[IpNetwork]>>,
    /// Longest time the upstream may receive nothing while the request
    /// is being sent.
    pub send_timeout: Option<Duration>,
    /// `rewrite-target`: the path sent upstream (see [`crate::rewrite`]).
    pub rewrite_target: Option<RewriteTemplate>,
    /// `use-regex`: Prefix and ImplementationSpecific paths are regular
    /// expressions.
    pub use_regex: bool,
    /// `affinity: cookie`: the affinity cookie's name.
    pub affinity_cookie: Option<Arc<str>>,
    /// `canary: "true"`: this Ingress is a canary, with these settings.
    pub canary: Option<CanarySettings>,
    /// `backend-protocol`.
    pub backend_protocol: BackendProtocol,
    /// `load-balance` (`None`: the controller's `--load-balance`).
    pub load_balance: Option<Balance>,
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            ssl_redirect: true,
            force_ssl_redirect: false,
            body_limit: None,
            connect_timeout: None,
            read_timeout: None,
            allow_from: None,
            send_timeout: None,
            rewrite_target: None,
            use_regex: false,
            affinity_cookie: None,
            canary: None,
            backend_protocol: BackendProtocol::Http,
            load_balance: None,
        }
    }
}

impl IngressSettings {
    /// Whether `ip` may use this Ingress (`whitelist-source-range`).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow_from
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(ip)))
    }
}

/// What Strait does with one annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Parsed and applied as ingress-nginx does.
    Honoured,
    /// Parsed and applied, with this difference from ingress-nginx.
    Difference(&'static str),
    /// Not supported: the Ingress is rejected, for this reason.
    Rejected(&'static str),
    /// Not supported: ignored (the Ingress is served), for this reason.
    Ignored(&'static str),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Honoured => f.write_str("honoured"),
            Self::Difference(why) => write!(f, "honoured, with a difference: {why}"),
            Self::Rejected(why) => write!(f, "refused, the Ingress is not served: {why}"),
            Self::Ignored(why) => write!(f, "refused, ignored: {why}"),
        }
    }
}

const SNIPPET: &str = "snippets are never accepted: they paste text into proxy configuration \
                       (CVE-2025-1974, IngressNightmare)";
const ACCESS: &str = "access control Strait does not implement; serving the Ingress without it \
                      would open it up";

/// The verdict for annotation `key` (with value `value`, for the few whose
/// verdict depends on it), or `None` for annotations outside the nginx
/// prefix.
pub fn verdict(key: &str, value: &str) -> Option<Verdict> {
    let name = key.strip_prefix(NGINX_PREFIX)?;
    Some(match name {
        "ssl-redirect" | "force-ssl-redirect" | "proxy-connect-timeout" | "proxy-read-timeout" => {
            Verdict::Honoured
        }
        "proxy-body-size" => Verdict::Difference(
            "without the annotation there is no limit (ingress-nginx defaults to 1m)",
        ),
        "whitelist-source-range" => Verdict::Difference(
            "checked against the connection's address; X-Forwarded-For is not trusted",
        ),
        "rewrite-target" => Verdict::Difference(
            "with use-regex \"true\", capture groups ($1…$9) of the path regex fill the target \
             and the whole path is replaced; without use-regex, the matched path prefix is \
             replaced (ingress-nginx then treats the paths as regexes anyway)",
        ),
        "use-regex" => Verdict::Difference(
            "applies to this Ingress's paths only (ingress-nginx applies it to every path of \
             the host); Prefix and ImplementationSpecific paths become case-insensitive \
             regexes anchored at the start of the path, Exact paths stay exact",
        ),
        "backend-protocol" => match value.trim().to_ascii_uppercase().as_str() {
            "HTTP" => Verdict::Honoured,
            "HTTPS" => Verdict::Difference(
                "HTTP/1.1 over TLS without verifying the upstream certificate and without SNI, \
                 as ingress-nginx does by default",
            ),
            _ => Verdict::Rejected("only HTTP and HTTPS upstreams are supported (not GRPC, FCGI)"),
        },
        "canary" => Verdict::Difference(
            "the canary's own other annotations are not applied: requests follow the main \
             Ingress's settings; a canary without a main Ingress for its host/path is ignored",
        ),
        "canary-weight" | "canary-by-header" => Verdict::Honoured,
        "canary-by-header-value"
        | "canary-by-header-pattern"
        | "canary-by-cookie"
        | "canary-weight-total" => Verdict::Rejected(
            "only canary-weight and canary-by-header (always/never) are supported; the canary \
             would get the wrong share of traffic",
        ),
        "affinity" => Verdict::Difference(
            "the cookie is a session cookie (Path=/, HttpOnly, Secure over https) whose value \
             is a hash of the endpoint",
        ),
        "session-cookie-name" | "load-balance" => Verdict::Honoured,
        "affinity-mode"
        | "affinity-canary-behavior"
        | "session-cookie-path"
        | "session-cookie-max-age"
        | "session-cookie-expires"
        | "session-cookie-samesite"
        | "session-cookie-secure"
        | "session-cookie-change-on-failure"
        | "session-cookie-hash" => Verdict::Ignored(
            "not supported; the affinity cookie is a session cookie for Path=/ and moves to \
             another endpoint when its endpoint is gone",
        ),
        "proxy-send-timeout" => Verdict::Difference(
            "request bodies are streamed, not buffered: the timeout also ends requests whose \
             client pauses that long in the middle of its body",
        ),
        n if n.ends_with("-snippet") || n == "configuration-snippet" => Verdict::Rejected(SNIPPET),
        n if n.starts_with("auth-") || n == "denylist-source-range" || n == "satisfy" => {
            Verdict::Rejected(ACCESS)
        }
        _ => Verdict::Ignored("not supported by Strait"),
    })
}

/// Why an Ingress's annotations were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// An annotation's value is not valid.
    #[error("annotation {key}: {value:?} is not valid: {expected}")]
    Invalid {
        /// The annotation.
        key: String,
        /// The value given.
        value: String,
        /// What is expected instead.
        expected: &'static str,
    },
    /// An annotation Strait refuses to serve without.
    #[error("annotation {key} is refused: {reason}")]
    Refused {
        /// The annotation.
        key: String,
        /// Why.
        reason: &'static str,
    },
}

fn invalid(key: &str, value: &str, expected: &'static str) -> AnnotationError {
    AnnotationError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// Parses the annotations of one Ingress. Ignored annotations are
/// returned in the second value so the caller can log them.
pub fn parse(
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<(IngressSettings, Vec<(String, Verdict)>), AnnotationError> {
    let mut settings = IngressSettings::default();
    let mut ignored = Vec::new();
    let mut affinity = false;
    let mut cookie_name = None;
    let mut canary = false;
    let mut canary_settings = CanarySettings::default();
    for (key, value) in annotations.into_iter().flatten() {
        let Some(v) = verdict(key, value) else {
            continue;
        };
        match v {
            Verdict::Rejected(reason) => {
                return Err(AnnotationError::Refused {
                    key: key.clone(),
                    reason,
                });
            }
            Verdict::Ignored(_) => {
                ignored.push((key.clone(), v));
                continue;
            }
            Verdict::Honoured | Verdict::Difference(_) => {}
        }
        match key.as_str() {
            SSL_REDIRECT => settings.ssl_redirect = parse_bool(key, value)?,
            FORCE_SSL_REDIRECT => settings.force_ssl_redirect = parse_bool(key, value)?,
            PROXY_BODY_SIZE => settings.body_limit = parse_size(key, value)?,
            PROXY_CONNECT_TIMEOUT => settings.connect_timeout = Some(parse_seconds(key, value)?),
            PROXY_READ_TIMEOUT => settings.read_timeout = Some(parse_seconds(key, value)?),
            WHITELIST_SOURCE_RANGE => settings.allow_from = Some(parse_cidrs(key, value)?),
            PROXY_SEND_TIMEOUT => settings.send_timeout = Some(parse_seconds(key, value)?),
            REWRITE_TARGET => settings.rewrite_target = Some(parse_rewrite(key, value)?),
            USE_REGEX => settings.use_regex = parse_bool(key, value)?,
            BACKEND_PROTOCOL => settings.backend_protocol = parse_protocol(key, value)?,
            AFFINITY => affinity = parse_affinity(key, value)?,
            SESSION_COOKIE_NAME => cookie_name = Some(parse_cookie_name(key, value)?),
            CANARY => canary = parse_bool(key, value)?,
            CANARY_WEIGHT => canary_settings.weight = parse_weight(key, value)?,
            CANARY_BY_HEADER => canary_settings.header = Some(parse_header_name(key, value)?),
            LOAD_BALANCE => {
                settings.load_balance = Some(
                    Balance::parse(value)
                        .ok_or_else(|| invalid(key, value, "round_robin or ewma"))?,
                );
            }
            _ => {}
        }
    }
    if let Some(template) = &settings.rewrite_target
        && template.has_groups()
        && !settings.use_regex
    {
        return Err(invalid(
            REWRITE_TARGET,
            template.as_str(),
            "capture groups such as $1 need nginx.ingress.kubernetes.io/use-regex: \"true\"",
        ));
    }
    if affinity {
        settings.affinity_cookie =
            Some(cookie_name.unwrap_or_else(|| Arc::from(DEFAULT_COOKIE_NAME)));
    }
    if canary {
        settings.canary = Some(canary_settings);
    }
    Ok((settings, ignored))
}

fn parse_protocol(key: &str, value: &str) -> Result<BackendProtocol, AnnotationError> {
    match value.trim().to_ascii_uppercase().as_str() {
        "HTTP" => Ok(BackendProtocol::Http),
        "HTTPS" => Ok(BackendProtocol::Https),
        _ => Err(invalid(key, value, "HTTP or HTTPS")),
    }
}

/// `cookie` is the only affinity type ingress-nginx has.
fn parse_affinity(key: &str, value: &str) -> Result<bool, AnnotationError> {
    match value.trim() {
        "cookie" => Ok(true),
        "" => Ok(false),
        _ => Err(invalid(key, value, "\"cookie\"")),
    }
}

/// A cookie name: an RFC 6265 token of at most 64 characters.
fn parse_cookie_name(key: &str, value: &str) -> Result<Arc<str>, AnnotationError> {
    let v = value.trim();
    let token = |b: u8| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b);
    if v.is_empty() || v.len() > 64 || !v.bytes().all(token) {
        return Err(invalid(
            key,
            value,
            "a cookie name of letters, digits and !#$%&'*+-.^_`|~ (at most 64)",
        ));
    }
    Ok(Arc::from(v))
}

/// A whole percentage, 0 to 100.
fn parse_weight(key: &str, value: &str) -> Result<u8, AnnotationError> {
    match value.trim().parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(invalid(key, value, "a whole number from 0 to 100")),
    }
}

fn parse_header_name(key: &str, value: &str) -> Result<HeaderName, AnnotationError> {
    HeaderName::from_bytes(value.trim().as_bytes())
        .map_err(|_| invalid(key, value, "an HTTP header name like X-Canary"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, AnnotationError> {
    match value.trim() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        _ => Err(invalid(key, value, "\"true\" or \"false\"")),
    }
}

/// nginx sizes: a number with an optional `k`, `m` or `g` suffix (either
/// case); `0` means no limit.
fn parse_size(key: &str, value: &str) -> Result<Option<u64>, AnnotationError> {
    const EXPECTED: &str = "a size like 0, 512, 8k, 10m or 1g";
    let v = value.trim();
    let (digits, mult) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (v.get(..i), 1u64 << 10),
        Some((i, 'm' | 'M')) => (v.get(..i), 1 << 20),
        Some((i, 'g' | 'G')) => (v.get(..i), 1 << 30),
        _ => (Some(v), 1),
    };
    let n: u64 = digits
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| invalid(key, value, EXPECTED))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| invalid(key, value, EXPECTED))?;
    Ok((bytes != 0).then_some(bytes))
}

/// Whole seconds, 1 to 3600 (ingress-nginx writes them as `60`; a trailing
/// `s` is accepted).
fn parse_seconds(key: &str, value: &str) -> Result<Duration, AnnotationError> {
    let v = value.trim();
    let v = v.strip_suffix('s').unwrap_or(v);
    match v.parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(invalid(key, value, "whole seconds from 1 to 3600")),
    }
}

/// A comma-separated list of CIDRs (or single addresses).
fn parse_cidrs(key: &str, value: &str) -> Result<Arc<[IpNetwork]>, AnnotationError> {
    let nets = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<IpNetwork>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            invalid(
                key,
                value,
                "comma-separated CIDRs like 10.0.0.0/8, 2001:db8::/32",
            )
        })?;
    if nets.is_empty() {
        return Err(invalid(key, value, "at least one CIDR"));
    }
    Ok(nets.into())
}

/// An absolute path, maybe with capture groups (`/$2`), without query,
/// fragment or control characters.
fn parse_rewrite(key: &str, value: &str) -> Result<RewriteTemplate, AnnotationError> {
    let v = value.trim();
    let absolute = v.starts_with('/')
        || (v.starts_with('$') && v.as_bytes().get(1).is_some_and(u8::is_ascii_digit));
    if !absolute || v.contains('?') || v.contains('#') {
        return Err(invalid(
            key,
            value,
            "an absolute path like /, /api or /$2 (no query or fragment)",
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(key, value, "a path of visible ASCII characters"));
    }
    Ok(RewriteTemplate::parse(v))
}

/// One line of the migration report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationLine {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The annotation key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What Strait does with it; an invalid value of an honoured
    /// annotation is reported as rejecting the Ingress.
    pub verdict: String,
}

/// The migration report for a set of Ingresses: every `nginx.ingress.
/// kubernetes.io/*` annotation with its verdict.
pub fn migration_report<'a>(
    ingresses: impl IntoIterator<Item = (String, Option<&'a BTreeMap<String, String>>)>,
) -> Vec<AnnotationLine> {
    let mut out = Vec::new();
    for (ingress, annotations) in ingresses {
        for (key, value) in annotations.into_iter().flatten() {
            let Some(v) = verdict(key, value) else {
                continue;
            };
            // Validate this one annotation on its own.
            let single: BTreeMap<String, String> = [(key.clone(), value.clone())].into();
            let verdict = match (v, parse(Some(&single))) {
                (Verdict::Honoured | Verdict::Difference(_), Err(e)) => {
                    format!("refused, the Ingress is not served: {e}")
                }
                _ => v.to_string(),
            };
            out.push(AnnotationLine {
                ingress: ingress.clone(),
                key: key.clone(),
                value: value.clone(),
                verdict,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<IngressSettings, AnnotationError> {
        parse(Some(&map(pairs))).map(|(s, _)| s)
    }

    #[test]
    fn honoured_annotations_parse_into_typed_settings() {
        assert_eq!(parse(None), Ok((IngressSettings::default(), Vec::new())));
        let s = settings(&[
            (SSL_REDIRECT, "false"),
            (FORCE_SSL_REDIRECT, "true"),
            (PROXY_BODY_SIZE, "8k"),
            (PROXY_CONNECT_TIMEOUT, "3"),
            (PROXY_READ_TIMEOUT, "120s"),
            (
                WHITELIST_SOURCE_RANGE,
                "10.0.0.0/8, 192.168.1.1, 2001:db8::/32",
            ),
            (REWRITE_TARGET, "/v2"),
            (USE_REGEX, "false"),
            (BACKEND_PROTOCOL, "HTTP"),
            ("kubernetes.io/ingress.class", "strait"),
        ])
        .expect("valid");
        assert!(!s.ssl_redirect && s.force_ssl_redirect);
        assert_eq!(s.body_limit, Some(8192));
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(s.read_timeout, Some(Duration::from_secs(120)));
        assert!(s.allows("10.1.2.3".parse().expect("ip")));
        assert!(s.allows("::ffff:192.168.1.1".parse().expect("ip")));
        assert!(!s.allows("192.168.1.2".parse().expect("ip")));
        assert_eq!(
            s.rewrite_target.as_ref().map(RewriteTemplate::as_str),
            Some("/v2")
        );
        assert_eq!(s.backend_protocol, BackendProtocol::Http);
        let s = settings(&[
            (USE_REGEX, "true"),
            (REWRITE_TARGET, "/$2"),
            (PROXY_SEND_TIMEOUT, "7"),
            (BACKEND_PROTOCOL, "https"),
            (AFFINITY, "cookie"),
            (CANARY, "true"),
            (CANARY_WEIGHT, "30"),
            (CANARY_BY_HEADER, "X-Canary"),
        ])
        .expect("valid");
        assert!(s.use_regex);
        assert!(
            s.rewrite_target
                .as_ref()
                .is_some_and(RewriteTemplate::has_groups)
        );
        assert_eq!(s.send_timeout, Some(Duration::from_secs(7)));
        assert_eq!(s.backend_protocol, BackendProtocol::Https);
        assert_eq!(s.affinity_cookie.as_deref(), Some(DEFAULT_COOKIE_NAME));
        assert_eq!(
            s.canary,
            Some(CanarySettings {
                weight: 30,
                header: Some(HeaderName::from_static("x-canary"))
            })
        );
        let s = settings(&[(AFFINITY, "cookie"), (SESSION_COOKIE_NAME, "route")]).expect("valid");
        assert_eq!(s.affinity_cookie.as_deref(), Some("route"));
        // Canary settings without canary: "true" do nothing; so does a
        // cookie name without affinity.
        let s = settings(&[
            (CANARY, "false"),
            (CANARY_WEIGHT, "50"),
            (SESSION_COOKIE_NAME, "x"),
        ])
        .expect("valid");
        assert_eq!(s.canary, None);
        assert_eq!(s.affinity_cookie, None);
        assert_eq!(
            settings(&[(PROXY_BODY_SIZE, "0")]).expect("0").body_limit,
            None
        );
        assert_eq!(
            settings(&[(PROXY_BODY_SIZE, "1M")]).expect("1M").body_limit,
            Some(1 << 20)
        );
    }

    #[test]
    fn invalid_values_are_refused_with_the_annotation_named() {
        for (key, value) in [
            (SSL_REDIRECT, "yes"),
            (PROXY_BODY_SIZE, "lots"),
            (PROXY_BODY_SIZE, "k"),
            (PROXY_BODY_SIZE, "99999999999999999999g"),
            (PROXY_BODY_SIZE, "1m; include /etc/passwd"),
            (PROXY_CONNECT_TIMEOUT, "0"),
            (PROXY_READ_TIMEOUT, "forever"),
            (WHITELIST_SOURCE_RANGE, "10.0.0.0/33"),
            (WHITELIST_SOURCE_RANGE, ""),
            (REWRITE_TARGET, "/$2"),
            (REWRITE_TARGET, "relative"),
            (REWRITE_TARGET, "/x?y=1"),
            (USE_REGEX, "yes"),
            (PROXY_SEND_TIMEOUT, "0"),
            (AFFINITY, "ip"),
            (SESSION_COOKIE_NAME, "bad name"),
            (SESSION_COOKIE_NAME, "a;b"),
            (CANARY, "maybe"),
            (CANARY_WEIGHT, "101"),
            (CANARY_WEIGHT, "-1"),
            (CANARY_BY_HEADER, "bad header"),
            (REWRITE_TARGET, "/a b"),
        ] {
            let err = settings(&[(key, value)]).expect_err(value);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn dangerous_or_unsupported_annotations_reject_or_are_ignored() {
        for key in [
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "nginx.ingress.kubernetes.io/server-snippet",
            "nginx.ingress.kubernetes.io/auth-url",
            "nginx.ingress.kubernetes.io/canary-by-cookie",
            "nginx.ingress.kubernetes.io/canary-by-header-value",
        ] {
            let err = settings(&[(key, "true")]).expect_err(key);
            assert!(matches!(err, AnnotationError::Refused { .. }), "{err}");
        }
        let err = settings(&[(BACKEND_PROTOCOL, "GRPC")]).expect_err("grpc");
        assert!(err.to_string().contains("HTTP and HTTPS"), "{err}");
        let (s, ignored) = parse(Some(&map(&[
            ("nginx.ingress.kubernetes.io/session-cookie-max-age", "3600"),
            ("nginx.ingress.kubernetes.io/proxy-buffering", "on"),
        ])))
        .expect("served");
        assert_eq!(s, IngressSettings::default());
        assert_eq!(ignored.len(), 2);
    }

    #[test]
    fn migration_report_lists_every_nginx_annotation() {
        let a = map(&[
            (SSL_REDIRECT, "false"),
            (PROXY_BODY_SIZE, "big"),
            ("nginx.ingress.kubernetes.io/server-snippet", "return 200;"),
            ("other.io/x", "y"),
        ]);
        let lines = migration_report([("apps/web".to_owned(), Some(&a))]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        let find = |k: &str| {
            lines
                .iter()
                .find(|l| l.key == k)
                .map(|l| l.verdict.clone())
                .unwrap_or_default()
        };
        assert_eq!(find(SSL_REDIRECT), "honoured");
        assert!(find(PROXY_BODY_SIZE).starts_with("refused, the Ingress is not served"));
        assert!(find("nginx.ingress.kubernetes.io/server-snippet").contains("never accepted"));
    }
}
