//! Health check node ports of `externalTrafficPolicy: Local` services, as
//! kube-proxy serves them: an external load balancer probes
//! `http://<node>:<healthCheckNodePort>/` and sends traffic only to nodes
//! that answer 200 (a ready endpoint of the service runs here); 503 when
//! none does, also when only terminating endpoints remain.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use strait_cluster::{ClusterSnapshot, ObjectKey, TrafficPolicy, conditions, service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

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
            let addr = SocketAddr::from(([0, 0, 0, 0], port));
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let (tx, rx) = watch::channel(check);
                    let task = tokio::spawn(serve(listener, rx));
                    self.servers.insert(port, (tx, task));
                }
                Err(error) => {
                    tracing::warn!(port, %error, "cannot serve the health check node port");
                }
            }
        }
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for (_, task) in self.servers.values() {
            task.abort();
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, state: watch::Receiver<HealthCheck>) {
    let state = Arc::new(state);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            // Any request gets the answer; read what arrives first so the
            // client does not see a reset.
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf))
                .await;
            let check = state.borrow().clone();
            let (status, reason) = if check.local_endpoints > 0 {
                (200, "OK")
            } else {
                (503, "Service Unavailable")
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
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                 X-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
