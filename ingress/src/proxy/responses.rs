//! The responses the proxy makes itself: clear plain-text errors and the
//! https redirect.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::Body;

/// Longest client-supplied value quoted back in an error body.
const MAX_QUOTE: usize = 200;

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A plain-text response `strait ingress: <message>`.
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(format!("strait ingress: {message}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A client-supplied value shortened for quoting in a body or a log line.
pub fn quote(value: &str) -> String {
    let mut end = value.len().min(MAX_QUOTE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let cut = value.get(..end).unwrap_or_default();
    if end < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// 404: no rule and no default backend serves the request.
pub fn not_found(host: &str, path: &str) -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        &format!(
            "no Ingress rule matches host {} and path {}, and no default backend is configured",
            quote(host),
            quote(path)
        ),
    )
}

/// 308 to `location`.
pub fn permanent_redirect(location: &str) -> Response<Body> {
    let mut resp = text(
        StatusCode::PERMANENT_REDIRECT,
        &format!("this host is served over https: {location}"),
    );
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => text(
            StatusCode::BAD_REQUEST,
            "the request cannot be redirected to https",
        ),
    }
}

/// The `https://` URL for a plain-HTTP request: the request's host without
/// its port, then `:port` unless it is 443, then the path and query.
pub fn https_location(host: &str, port: Option<u16>, path_and_query: &str) -> String {
    let name = crate::matching::request_host(host);
    let name = if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_owned()
    };
    match port {
        Some(p) if p != 443 => format!("https://{name}:{p}{path_and_query}"),
        _ => format!("https://{name}{path_and_query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            https_location("a.com:80", Some(443), "/x?y"),
            "https://a.com/x?y"
        );
        assert_eq!(
            https_location("a.com", Some(8443), "/"),
            "https://a.com:8443/"
        );
        assert_eq!(https_location("[::1]:80", None, "/"), "https://[::1]/");
    }

    #[test]
    fn quotes_are_bounded() {
        let long = "é".repeat(300);
        let q = quote(&long);
        assert!(q.len() < 220, "{}", q.len());
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
