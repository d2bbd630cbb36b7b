//! The HTTP side of the echo server: every request gets a JSON description of
//! itself, so a test behind a proxy can see exactly what arrived.
use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use serde::{Deserialize, Serialize};

/// The JSON document the echo server answers every HTTP request with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EchoReply {
    /// The name the server was started with (the pod name in the lab).
    pub pod: String,
    /// The request method.
    pub method: String,
    /// The Host header (or the URI authority for h2).
    pub host: String,
    /// The request path with its query string.
    pub path: String,
    /// Request headers; repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The client address as the server saw it.
    pub peer: String,
}

/// Answers one request. Reads (and discards) the body so keep-alive works.
pub(crate) async fn handle(
    name: Arc<str>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    // A body that fails mid-way is still answered; the reply says what arrived.
    let _ = body.collect().await;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_owned())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let reply = EchoReply {
        pod: name.to_string(),
        method: parts.method.to_string(),
        host,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into()),
        headers,
        peer: peer.to_string(),
    };
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&name) {
        resp.headers_mut().insert("x-strait-pod", v);
    }
    Ok(resp)
}
