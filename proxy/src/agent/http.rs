//! The agent's HTTP endpoint on :10256, like kube-proxy's: `/healthz` says
//! whether the datapath was programmed recently, `/metrics` exports metrics.
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpListener, sync::watch};

use super::metrics::AgentMetrics;
use crate::ProxyError;

/// What `/healthz` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Health {
    /// When the maps last matched the desired state.
    pub last_synced: Option<SystemTime>,
    /// When the cluster view last changed (what the agent still has to apply).
    pub last_change: Option<SystemTime>,
}

/// How long the datapath may lag a change before `/healthz` turns 503,
/// as kube-proxy's healthz does with its sync period.
const STALE_AFTER: Duration = Duration::from_secs(60);

fn healthz(health: &Health) -> (StatusCode, String) {
    let now = SystemTime::now();
    let secs = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(serde_json::Value::Null, |d| d.as_secs_f64().into())
    };
    let healthy = match (health.last_synced, health.last_change) {
        (None, _) => false,
        (Some(synced), Some(change)) if change > synced => {
            now.duration_since(change).unwrap_or_default() < STALE_AFTER
        }
        (Some(_), _) => true,
    };
    let body = serde_json::json!({
        "lastUpdated": secs(health.last_synced),
        "lastChange": secs(health.last_change),
        "currentTime": secs(Some(now)),
        "healthy": healthy,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body.to_string())
}

/// Binds `addr` and serves until the returned task is dropped.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<AgentMetrics>,
    health: watch::Receiver<Health>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ProxyError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Listen { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (metrics, health) = (metrics.clone(), health.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (metrics, health) = (metrics.clone(), health.clone());
                    async move { Ok::<_, Infallible>(route(&req, &metrics, &health.borrow())) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn route(
    req: &Request<Incoming>,
    metrics: &AgentMetrics,
    health: &Health,
) -> Response<Full<Bytes>> {
    let (status, body, ctype) = match req.uri().path() {
        "/healthz" | "/livez" => {
            let (s, b) = healthz(health);
            (s, b, "application/json")
        }
        "/metrics" => (
            StatusCode::OK,
            metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_follows_sync_state() {
        let now = SystemTime::now();
        assert_eq!(
            healthz(&Health::default()).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let synced = Health {
            last_synced: Some(now),
            last_change: Some(now - Duration::from_secs(5)),
        };
        assert_eq!(healthz(&synced).0, StatusCode::OK);
        let lagging = Health {
            last_synced: Some(now - Duration::from_secs(300)),
            last_change: Some(now - Duration::from_secs(120)),
        };
        assert_eq!(healthz(&lagging).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
