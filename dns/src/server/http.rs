//! `/health`, `/ready` and `/metrics` over a small HTTP/1 server, for
//! kubelet probes and Prometheus.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::wire::Handler;

pub(super) async fn serve(listener: TcpListener, handler: Arc<Handler>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "http accept failed");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(route(&req, &handler)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::trace!(%error, "http connection ended");
            }
        });
    }
}

fn route(req: &Request<Incoming>, handler: &Handler) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/health" => (StatusCode::OK, "ok\n".to_owned()),
        "/ready" => {
            let synced = handler.authority().index().read().is_ok_and(|i| i.synced());
            if synced {
                (StatusCode::OK, "ready\n".to_owned())
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "not synced\n".to_owned())
            }
        }
        "/metrics" => (StatusCode::OK, handler.metrics().render()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
