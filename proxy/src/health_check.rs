//! Health check node ports of `externalTrafficPolicy: Local` services, as
//! kube-proxy serves them: an external load balancer probes
//! `http://<node>:<healthCheckNodePort>/` and sends traffic only to nodes
//! that answer 200 (a ready endpoint of the service runs here); 503 when
//! none does, also when only terminating endpoints remain.
use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};
use strait_cluster::{ClusterSnapshot, ObjectKey, TrafficPolicy, conditions, service};
use tokio::sync::watch;

use crate::agent::http;

/// What one health check port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The service.
    pub service: ObjectKey,
    /// Ready endpoints of the service on this node.
    pub local_endpoints: usize,
}

/// The health check ports `snapshot` asks this node to serve.
pub fn desired(snapshot: &ClusterSnapshot, node: &str) -> BTreeMap<u16, HealthCheck> {
    let mut out = BTreeMap::new();
    for (key, svc) in snapshot.services() {
        if service::external_traffic_policy(svc) != TrafficPolicy::Local {
            continue;
        }
        let Some(port) = svc
            .spec
            .as_ref()
            .and_then(|s| s.health_check_node_port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        let Some(namespace) = key.namespace.as_deref() else {
            continue;
        };
        let local_endpoints = snapshot
            .slices_for(namespace, &key.name)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.node_name.as_deref() == Some(node) && conditions(e).ready)
            .count();
        out.insert(
            port,
            HealthCheck {
                service: key.clone(),
                local_endpoints,
            },
        );
    }
    out
}

/// The running health check servers, one per port, each following its
/// entry through a watch channel so a count change needs no restart.
#[derive(Default)]
pub struct HealthChecks {
    servers: BTreeMap<u16, (watch::Sender<HealthCheck>, tokio::task::JoinHandle<()>)>,
}

impl HealthChecks {
    /// Serves exactly the ports of `wanted`: new ones are bound (a port that
    /// cannot be bound is logged and retried at the next call), changed ones
    /// updated, gone ones closed.
    pub async fn apply(&mut self, wanted: BTreeMap<u16, HealthCheck>) {
        let gone: Vec<u16> = self
            .servers
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for port in gone {
            if let Some((_, task)) = self.servers.remove(&port) {
                task.abort();
            }
        }
        for (port, check) in wanted {
            if let Some((tx, _)) = self.servers.get(&port) {
                tx.send_if_modified(|c| {
                    let changed = *c != check;
                    *c = check.clone();
                    changed
                });
                continue;
            }
            match listen_any(port) {
                Ok(listener) => {
                    let (tx, rx) = watch::channel(check);
                    let task = http::spawn_server(listener, move |_| respond(&rx.borrow()));
                    self.servers.insert(port, (tx, task));
                }
                Err(error) => {
                    tracing::warn!(port, %error, "cannot serve the health check node port");
                }
            }
        }
    }
}

/// A listener on `port` of every address of both families (one IPv6
/// socket that also accepts IPv4), so load balancers can probe over either;
/// IPv4 only where the node has no IPv6.
fn listen_any(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let dual = || -> std::io::Result<tokio::net::TcpListener> {
        let socket = tokio::net::TcpSocket::new_v6()?;
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &false)?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))?;
        socket.listen(1024)
    };
    dual().or_else(|e| {
        tracing::debug!(port, error = %e, "no IPv6 listener; health checks over IPv4 only");
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
        socket.listen(1024)
    })
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for (_, task) in self.servers.values() {
            task.abort();
        }
    }
}

/// Answers every request with the port's current state: 200 with the
/// count while a ready endpoint runs on this node, else 503.
fn respond(check: &HealthCheck) -> Response<Full<Bytes>> {
    let status = if check.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "service": {
            "namespace": check.service.namespace,
            "name": check.service.name,
        },
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": true,
    })
    .to_string();
    let mut resp = http::response(status, "application/json", body);
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // One answer a connection, as probes expect.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `GET /` as a load balancer sends it (no `Connection: close`).
    async fn get(addr: SocketAddr) -> String {
        http::tests::exchange(addr, "GET / HTTP/1.1\r\nHost: lb\r\n\r\n").await
    }

    #[tokio::test]
    async fn answers_200_with_local_endpoints_and_503_without() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let check = HealthCheck {
            service: ObjectKey {
                namespace: Some("default".into()),
                name: "edge".into(),
            },
            local_endpoints: 2,
        };
        let (tx, rx) = watch::channel(check.clone());
        let task = http::spawn_server(listener, move |_| respond(&rx.borrow()));

        let text = get(addr).await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        let lower = text.to_ascii_lowercase();
        for header in [
            "content-type: application/json",
            "x-content-type-options: nosniff",
            "connection: close",
        ] {
            assert!(lower.contains(&format!("{header}\r\n")), "{text}");
        }
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "service": {"namespace": "default", "name": "edge"},
                "localEndpoints": 2,
                "serviceProxyHealthy": true,
            })
        );

        // No ready endpoint left here (none, or only terminating ones).
        tx.send_replace(HealthCheck {
            local_endpoints: 0,
            ..check
        });
        let text = get(addr).await;
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["localEndpoints"], 0);
        task.abort();
    }
}
