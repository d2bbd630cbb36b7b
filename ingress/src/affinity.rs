//! Session affinity (`nginx.ingress.kubernetes.io/affinity: cookie`): the
//! first response sets a cookie naming the endpoint that answered, and later
//! requests carrying it go to that endpoint while it is still one of the
//! upstream's endpoints.
//!
//! The cookie value is opaque: the first 16 bytes of SHA-256 over the
//! upstream's name and the endpoint address, in hex. It never contains the
//! address itself. It is not keyed, like ingress-nginx's, so every replica of
//! the controller (and a restarted one) recognises the cookies of the
//! others; someone who can guess the pod addresses could confirm which one
//! they are pinned to, but cannot read it from the cookie.

use std::net::SocketAddr;

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};

/// The opaque cookie value of one endpoint of an upstream.
///
/// It exists so endpoints are identified to clients without revealing
/// their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointKey([u8; 16]);

impl EndpointKey {
    /// The key of `endpoint` of upstream `upstream` (`namespace/name:port`).
    pub fn new(upstream: &str, endpoint: SocketAddr) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"strait-affinity-v1\0");
        ctx.update(upstream.as_bytes());
        ctx.update(b"\0");
        ctx.update(endpoint.to_string().as_bytes());
        let digest = ctx.finish();
        let mut out = [0u8; 16];
        for (o, d) in out.iter_mut().zip(digest.as_ref()) {
            *o = *d;
        }
        Self(out)
    }

    /// Parses a cookie value (32 lowercase hex digits).
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(value.chunks_exact(2)) {
            let hi = hex_digit(*pair.first()?)?;
            let lo = hex_digit(*pair.get(1)?)?;
            *o = (hi << 4) | lo;
        }
        Some(Self(out))
    }

    /// The cookie value: 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(32);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, as an
/// endpoint key (`None` when absent or not one of ours).
pub fn requested(headers: &HeaderMap, name: &str) -> Option<EndpointKey> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let (k, v) = pair.split_at(eq);
            (k.trim_ascii() == name.as_bytes()).then(|| v.get(1..).unwrap_or_default())
        })
        .find_map(|v| EndpointKey::parse(v.trim_ascii()))
}

/// The `Set-Cookie` value pinning a client to `key`: a session cookie for
/// the whole site, not readable by scripts, sent back only over https when
/// it was set over https.
pub fn set_cookie(name: &str, key: EndpointKey, tls: bool) -> Option<HeaderValue> {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={}; Path=/; HttpOnly{secure}",
        key.to_hex()
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_opaque_stable_and_round_trip() {
        let ep = SocketAddr::from(([10, 1, 2, 3], 8080));
        let k = EndpointKey::new("apps/web:80", ep);
        assert_eq!(k, EndpointKey::new("apps/web:80", ep));
        assert_ne!(k, EndpointKey::new("apps/api:80", ep));
        let hex = k.to_hex();
        assert_eq!(hex.len(), 32);
        assert!(!hex.contains("10.1.2.3") && !hex.contains("8080"));
        assert_eq!(EndpointKey::parse(hex.as_bytes()), Some(k));
        assert_eq!(EndpointKey::parse(b"zz"), None);
        assert_eq!(EndpointKey::parse(&[b'g'; 32]), None);
    }

    #[test]
    fn the_named_cookie_is_found_among_others() {
        let k = EndpointKey::new("apps/web:80", SocketAddr::from(([10, 0, 0, 1], 80)));
        let mut h = HeaderMap::new();
        assert_eq!(requested(&h, "INGRESSCOOKIE"), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; INGRESSCOOKIEX=2"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("b=2; INGRESSCOOKIE={}", k.to_hex())).expect("value"),
        );
        assert_eq!(requested(&h, "INGRESSCOOKIE"), Some(k));
        assert_eq!(requested(&h, "other"), None);
        let v = set_cookie("route", k, true).expect("header");
        assert_eq!(
            v.to_str().expect("ascii"),
            format!("route={}; Path=/; HttpOnly; Secure", k.to_hex())
        );
    }
}
