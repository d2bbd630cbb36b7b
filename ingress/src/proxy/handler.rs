//! One request, start to finish: route it, redirect or refuse it, or pick
//! the canary or the main backend, rewrite it and forward it (to the
//! affinity endpoint first, when the Ingress has cookie affinity); then
//! count and log it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

use super::forward::{ForwardError, Outgoing, SendOptions, UpstreamClient};
use super::headers::{
    ClientSide, join_cookies, remove_hop_by_hop, restore_upgrade, set_forwarded, upgrade_request,
};
use super::responses::{https_location, not_found, permanent_redirect, quote, text};
use super::{Body, BoxError};
use crate::affinity;
use crate::backend::Upstream;
use crate::metrics::{Metrics, RouteLabels};
use crate::router::{Route, Router, Target};

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address the client connected to.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The request handler shared by every connection.
///
/// It exists so the listeners only deal with sockets and TLS, and every
/// HTTP decision lives here, reading the current [`Router`].
#[derive(Debug)]
pub struct Handler {
    router: Arc<ArcSwap<Router>>,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
    https_port: Option<u16>,
    access_log: bool,
}

/// Labels of requests that matched nothing.
fn unmatched() -> RouteLabels {
    let dash: Arc<str> = Arc::from("-");
    RouteLabels {
        ingress: dash.clone(),
        host: dash.clone(),
        path: dash,
    }
}

impl Handler {
    /// A handler routing with `router` and forwarding with `client`;
    /// redirects go to `https_port`.
    pub fn new(
        router: Arc<ArcSwap<Router>>,
        client: UpstreamClient,
        metrics: Arc<Metrics>,
        https_port: Option<u16>,
        access_log: bool,
    ) -> Self {
        Self {
            router,
            client,
            metrics,
            https_port,
            access_log,
        }
    }

    /// Answers one request. Never fails: every problem becomes a response.
    pub async fn handle(&self, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let method = req.method().clone();
        let version = req.version();
        let host_value = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let host = host_value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_owned();

        let matched = {
            let router = self.router.load();
            router.route(&host, &target).map(|(r, _)| r.clone())
        };
        let mut endpoint = None;
        let (mut resp, labels) = match matched {
            _ if method == Method::CONNECT => (
                text(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported"),
                unmatched(),
            ),
            None => (not_found(&host, &target), unmatched()),
            Some(route) => {
                // A canary for this host/path takes its share here.
                let (ingress, backend) = match &route.canary {
                    Some(canary) if canary.takes(req.headers()) => {
                        (canary.ingress.clone(), &canary.target)
                    }
                    _ => (route.ingress.clone(), &route.target),
                };
                let labels = RouteLabels {
                    ingress,
                    host: route.rule_host.clone(),
                    path: route.rule_path.clone(),
                };
                let resp = if !route.settings.allows(conn.peer.ip()) {
                    text(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "client address {} is not in the whitelist-source-range of ingress {}",
                            conn.peer.ip().to_canonical(),
                            route.ingress
                        ),
                    )
                } else if route.https_redirect && !conn.tls {
                    permanent_redirect(&https_location(&host, self.https_port, &target))
                } else {
                    match backend {
                        Target::Unavailable(message) => {
                            text(StatusCode::SERVICE_UNAVAILABLE, message)
                        }
                        Target::Service(upstream) => {
                            let (resp, ep) = self
                                .forward(conn, &route, upstream, req, host_value, &target)
                                .await;
                            endpoint = ep;
                            resp
                        }
                    }
                };
                (resp, labels)
            }
        };
        *resp.version_mut() = version;
        let took = start.elapsed();
        let status = resp.status().as_u16();
        self.metrics.request(&labels, status, took);
        if self.access_log {
            tracing::info!(
                target: "strait_ingress::access",
                peer = %conn.peer,
                tls = conn.tls,
                method = %method,
                host = %quote(&host),
                path = %quote(&target),
                status,
                ingress = %labels.ingress,
                endpoint = ?endpoint,
                micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                "request"
            );
        }
        resp
    }

    /// Rewrites the request for upstream and forwards it.
    async fn forward(
        &self,
        conn: ConnInfo,
        route: &Route,
        upstream: &Upstream,
        mut req: Request<Incoming>,
        host_value: Option<HeaderValue>,
        target: &str,
    ) -> (Response<Body>, Option<SocketAddr>) {
        let upgrade = if req.version() == Version::HTTP_11 {
            upgrade_request(req.headers())
        } else {
            None
        };
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        remove_hop_by_hop(&mut headers);
        if let Some(protocol) = &upgrade {
            restore_upgrade(&mut headers, protocol.clone());
        }
        let pinned = route
            .settings
            .affinity_cookie
            .as_deref()
            .and_then(|name| affinity::requested(&headers, name))
            .and_then(|key| upstream.endpoint_for(key));
        join_cookies(&mut headers);
        // HTTP/1.1 upstreams require a Host header; an HTTP/1.0 client may
        // have sent none, and then it is empty (RFC 9112 §3.2).
        headers.insert(
            header::HOST,
            host_value
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("")),
        );
        let client = ClientSide {
            ip: conn.peer.ip().to_canonical(),
            port: conn.local.port(),
            tls: conn.tls,
        };
        set_forwarded(&mut headers, client, host_value.as_ref());
        let path_and_query = if target.starts_with('/') {
            target
        } else {
            // Absolute-form or asterisk targets: send the path only.
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .filter(|p| p.starts_with('/'))
                .unwrap_or("/")
        };
        let outgoing = Outgoing {
            method: parts.method,
            path_and_query: match &route.rewrite {
                Some(rewrite) => rewrite.apply(path_and_query),
                None => path_and_query.to_owned(),
            },
            headers,
        };
        let options = SendOptions {
            connect_timeout: route.settings.connect_timeout,
            read_timeout: route.settings.read_timeout,
            send_timeout: route.settings.send_timeout,
            body_limit: route.settings.body_limit,
            protocol: route.settings.backend_protocol,
            pinned,
            balance: route.settings.load_balance.unwrap_or_default(),
        };
        match self.client.send(upstream, outgoing, body, options).await {
            Ok((mut resp, endpoint)) => {
                let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
                let protocol = resp.headers().get(header::UPGRADE).cloned();
                match (upgraded, client_upgrade, protocol) {
                    (true, Some(client_side), Some(protocol)) => {
                        let upstream_side = hyper::upgrade::on(&mut resp);
                        tokio::spawn(tunnel(client_side, upstream_side, endpoint));
                        remove_hop_by_hop(resp.headers_mut());
                        restore_upgrade(resp.headers_mut(), protocol);
                    }
                    (true, _, _) => {
                        return (
                            text(
                                StatusCode::BAD_GATEWAY,
                                &format!(
                                    "{endpoint} of {} switched protocols without an upgrade \
                                     request",
                                    upstream.name()
                                ),
                            ),
                            Some(endpoint),
                        );
                    }
                    _ => remove_hop_by_hop(resp.headers_mut()),
                }
                // Pin the client to the endpoint that answered, unless its
                // cookie already does.
                if let Some(name) = route.settings.affinity_cookie.as_deref()
                    && pinned != Some(endpoint)
                    && let Some(cookie) =
                        affinity::set_cookie(name, upstream.key_of(endpoint), conn.tls)
                {
                    resp.headers_mut().append(header::SET_COOKIE, cookie);
                }
                (
                    resp.map(|b| b.map_err(BoxError::from).boxed_unsync()),
                    Some(endpoint),
                )
            }
            Err(e) => {
                let status = match &e {
                    ForwardError::NoEndpoints { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    ForwardError::Connect {
                        timed_out: true, ..
                    }
                    | ForwardError::Timeout { .. }
                    | ForwardError::SendTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                    ForwardError::Connect { .. } | ForwardError::Upstream { .. } => {
                        StatusCode::BAD_GATEWAY
                    }
                    ForwardError::ClientBody(_) => StatusCode::BAD_REQUEST,
                    ForwardError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                };
                tracing::warn!(upstream = upstream.name(), error = %e, status = status.as_u16(), "proxy error");
                (text(status, &e.to_string()), None)
            }
        }
    }
}

/// Copies bytes both ways between an upgraded client connection and the
/// upgraded upstream connection (WebSocket and other upgrades).
async fn tunnel(client: OnUpgrade, upstream: OnUpgrade, endpoint: SocketAddr) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%endpoint, %error, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%endpoint, %error, "upgraded connection ended");
    }
}
