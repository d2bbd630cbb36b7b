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
    let task = spawn_server(listener, move |req| route(req, &metrics, &health.borrow()));
    Ok((bound, task))
}

/// Accepts connections on `listener` until the returned task is aborted and
/// answers every request on them with `handler` (HTTP/1 or HTTP/2, through
/// hyper). It exists so the agent speaks HTTP in one place: its `/healthz`
/// and `/metrics` endpoint and the health check node ports
/// ([`crate::health_check`]) are both served by it.
pub(crate) fn spawn_server<H>(listener: TcpListener, handler: H) -> tokio::task::JoinHandle<()>
where
    H: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = handler(&req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// A response with `status`, a `Content-Type` of `content_type` and `body`.
/// Shared by every handler given to [`spawn_server`].
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

fn route(
    req: &Request<Incoming>,
    metrics: &AgentMetrics,
    health: &Health,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" | "/livez" => {
            let (status, body) = healthz(health);
            response(status, "application/json", body)
        }
        "/metrics" => response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        _ => response(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// Sends `request` (raw HTTP) to `addr` and returns the whole answer,
    /// read until the server closes the connection. Shared with the health
    /// check node port tests.
    pub(crate) async fn exchange(addr: SocketAddr, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
            .await
            .expect("the server closes the connection after its answer")
            .unwrap();
        text
    }

    /// The status line and body of `GET path`.
    async fn get(addr: SocketAddr, path: &str) -> (String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
        let text = exchange(addr, &request).await;
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn serves_healthz_metrics_and_404() {
        let (tx, rx) = watch::channel(Health::default());
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(AgentMetrics::default()),
            rx,
        )
        .await
        .unwrap();
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["healthy"],
            false
        );
        tx.send_replace(Health {
            last_synced: Some(SystemTime::now()),
            last_change: None,
        });
        let (status, _) = get(addr, "/livez").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains("# EOF"), "{body}");
        let (status, _) = get(addr, "/nope").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        task.abort();
    }
}
