//! Sending a request to one of an upstream's endpoints: pooled keep-alive
//! HTTP/1.1 clients (plain or TLS), round-robin endpoint order (or the
//! affinity endpoint first), another endpoint when connecting fails, and the
//! send and read timeouts.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use super::connector::UpstreamConnector;
use super::responses::full;
use super::send_timeout::{SendStalled, watch_body};
use super::{Body, BoxError};
use crate::annotations::BackendProtocol;
use crate::backend::Upstream;
use crate::balance::{Balance, FAILURE_PENALTY};
use crate::config::Timeouts;
use crate::metrics::Metrics;

/// Request bodies up to this size are buffered so the request can be sent
/// to another endpoint when connecting fails; larger or streaming bodies
/// get one attempt.
pub const REPLAYABLE_BODY: u64 = 64 * 1024;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The upstream has no endpoints.
    #[error("{upstream} has no ready endpoints{why}")]
    NoEndpoints {
        /// `namespace/name:port`.
        upstream: String,
        /// Why, when it is a configuration problem: ` (the Service does not exist)`.
        why: String,
    },
    /// No endpoint accepted a connection.
    #[error("no endpoint of {upstream} accepted a connection (tried {tried}): {last}")]
    Connect {
        /// `namespace/name:port`.
        upstream: String,
        /// Endpoints tried.
        tried: usize,
        /// The last connect error.
        last: String,
        /// Whether the last failure was a timeout.
        timed_out: bool,
    },
    /// The upstream did not answer in time.
    #[error("{endpoint} of {upstream} sent no response within {timeout:?}")]
    Timeout {
        /// `namespace/name:port`.
        upstream: String,
        /// The endpoint.
        endpoint: SocketAddr,
        /// The read timeout.
        timeout: Duration,
    },
    /// The upstream received nothing for the send timeout.
    #[error("{endpoint} of {upstream}: {stalled}")]
    SendTimeout {
        /// `namespace/name:port`.
        upstream: String,
        /// The endpoint.
        endpoint: SocketAddr,
        /// The timeout.
        stalled: SendStalled,
    },
    /// The upstream connection failed after connecting.
    #[error("{endpoint} of {upstream} failed: {reason}")]
    Upstream {
        /// `namespace/name:port`.
        upstream: String,
        /// The endpoint.
        endpoint: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The client's request body failed while it was being buffered.
    #[error("reading the request body: {0}")]
    ClientBody(String),
    /// The request body is larger than the Ingress allows.
    #[error(
        "the request body is larger than the {limit} bytes this Ingress allows (nginx.ingress.kubernetes.io/proxy-body-size)"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

/// Per-request settings from the route (annotations).
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Connect timeout instead of the controller's.
    pub connect_timeout: Option<Duration>,
    /// Response-head timeout instead of the controller's.
    pub read_timeout: Option<Duration>,
    /// Send timeout instead of the controller's.
    pub send_timeout: Option<Duration>,
    /// Largest request body.
    pub body_limit: Option<u64>,
    /// HTTP or HTTPS to the upstream.
    pub protocol: BackendProtocol,
    /// Try this endpoint first (session affinity), if it is one of the
    /// upstream's.
    pub pinned: Option<SocketAddr>,
    /// How to choose among the upstream's endpoints.
    pub balance: Balance,
}

/// The part of the request that is re-sent on every attempt.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// Path and query (origin form).
    pub path_and_query: String,
    /// Headers, already rewritten for upstream.
    pub headers: HeaderMap,
}

/// A request body, buffered when it may be needed again.
enum Payload {
    Replayable(Bytes),
    Stream(Body),
}

/// The pooled upstream client.
///
/// It exists so connections to endpoints are reused across requests (and
/// across route-table rebuilds: the pool is keyed by endpoint address).
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    /// The client with the controller's timeouts, over plain HTTP.
    default: Pooled,
    /// Clients for other protocols or timeouts, created on first use.
    custom: Arc<Mutex<HashMap<ClientKey, Pooled>>>,
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
    send_timeout: Duration,
    idle_timeout: Duration,
    read_timeout: Duration,
    max_attempts: usize,
    metrics: Arc<Metrics>,
}

/// A pooled keep-alive HTTP/1.1 client.
type Pooled = Client<UpstreamConnector, Body>;

/// What distinguishes the pooled clients: protocol, connect timeout and
/// send timeout (the connection itself enforces the latter two).
type ClientKey = (BackendProtocol, Duration, Duration);

/// A pooled keep-alive HTTP/1.1 client over `connector`.
fn pooled(connector: UpstreamConnector, idle_timeout: Duration) -> Pooled {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(256)
        .retry_canceled_requests(true)
        .set_host(false)
        .build(connector)
}

impl UpstreamClient {
    /// A client with `timeouts`, trying at most `max_attempts` endpoints,
    /// counting connect failures into `metrics`; HTTPS upstreams use `tls`.
    pub fn new(
        timeouts: &Timeouts,
        max_attempts: usize,
        metrics: Arc<Metrics>,
        tls: Arc<ClientConfig>,
    ) -> Self {
        let connector = UpstreamConnector::new(timeouts.connect, timeouts.send, None);
        Self {
            default: pooled(connector, timeouts.upstream_idle),
            custom: Arc::default(),
            tls,
            connect_timeout: timeouts.connect,
            send_timeout: timeouts.send,
            idle_timeout: timeouts.upstream_idle,
            read_timeout: timeouts.read,
            max_attempts: max_attempts.max(1),
            metrics,
        }
    }

    /// The client for a route's protocol and timeouts (the shared one
    /// unless the Ingress changes them).
    fn client_for(&self, options: &SendOptions) -> Pooled {
        let key = (
            options.protocol,
            options.connect_timeout.unwrap_or(self.connect_timeout),
            options.send_timeout.unwrap_or(self.send_timeout),
        );
        if key
            == (
                BackendProtocol::Http,
                self.connect_timeout,
                self.send_timeout,
            )
        {
            return self.default.clone();
        }
        // A poisoned lock only means another request panicked while
        // inserting; the map is still usable.
        let mut map = self.custom.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                let (protocol, connect, send) = key;
                let tls = (protocol == BackendProtocol::Https).then(|| self.tls.clone());
                pooled(
                    UpstreamConnector::new(connect, send, tls),
                    self.idle_timeout,
                )
            })
            .clone()
    }

    /// Sends `request` to an endpoint of `upstream` and returns the
    /// response head (body streaming) and the endpoint that answered.
    pub async fn send(
        &self,
        upstream: &Upstream,
        request: Outgoing,
        body: Incoming,
        options: SendOptions,
    ) -> Result<(Response<Incoming>, SocketAddr), ForwardError> {
        if upstream.endpoints().is_empty() {
            return Err(ForwardError::NoEndpoints {
                upstream: upstream.name().to_owned(),
                why: upstream
                    .problem()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
            });
        }
        let client = self.client_for(&options);
        let read_timeout = options.read_timeout.unwrap_or(self.read_timeout);
        let send_timeout = options.send_timeout.unwrap_or(self.send_timeout);
        let mut payload = self.payload(body, options.body_limit, send_timeout).await?;
        let mut tried = 0;
        let mut last = String::new();
        let mut timed_out = false;
        let order = upstream.attempt_indices(self.max_attempts, options.pinned, options.balance);
        for index in order {
            let endpoint = upstream.endpoints()[index];
            // A request without a body is sent whole with its head: no
            // send timeout to watch, the read timeout starts at once.
            let bodiless = matches!(payload, Payload::Replayable(ref b) if b.is_empty());
            let (body, again) = match payload {
                Payload::Replayable(ref bytes) => (full(bytes.clone()), true),
                Payload::Stream(body) => {
                    // A streamed body is gone after one attempt.
                    payload = Payload::Replayable(Bytes::new());
                    (body, false)
                }
            };
            let (body, sent) = if bodiless {
                (body, None)
            } else {
                let (body, sent) = watch_body(body, send_timeout);
                (body, Some(sent))
            };
            let req = build(&request, endpoint, options.protocol, body)?;
            tried += 1;
            // Every request feeds the endpoint's latency average (used by
            // `load-balance: ewma`): the time to the response head, or a
            // penalty when the endpoint could not be reached.
            let stats = upstream.stats(index);
            let _in_flight = stats.map(|s| s.begin());
            let started = Instant::now();
            let outcome = exchange(&client, req, sent, read_timeout).await;
            if let Some(stats) = stats {
                let finished = Instant::now();
                let took = finished.duration_since(started);
                let latency = match &outcome {
                    Ok(Err(e)) if e.is_connect() => took.max(FAILURE_PENALTY),
                    _ => took,
                };
                stats.observe(latency, finished);
            }
            match outcome {
                Ok(Ok(resp)) => return Ok((resp, endpoint)),
                Ok(Err(e)) if e.is_connect() => {
                    self.metrics.connect_failure();
                    timed_out = is_timeout(&e);
                    last = chain(&e);
                    tracing::warn!(
                        upstream = upstream.name(),
                        %endpoint,
                        error = %last,
                        "upstream connect failed"
                    );
                    if !again {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    if let Some(limit) = options.body_limit.filter(|_| exceeded_limit(&e)) {
                        return Err(ForwardError::TooLarge { limit });
                    }
                    if let Some(stalled) = find_source::<SendStalled>(&e) {
                        return Err(ForwardError::SendTimeout {
                            upstream: upstream.name().to_owned(),
                            endpoint,
                            stalled: *stalled,
                        });
                    }
                    return Err(ForwardError::Upstream {
                        upstream: upstream.name().to_owned(),
                        endpoint,
                        reason: chain(&e),
                    });
                }
                Err(_) => {
                    return Err(ForwardError::Timeout {
                        upstream: upstream.name().to_owned(),
                        endpoint,
                        timeout: read_timeout,
                    });
                }
            }
        }
        Err(ForwardError::Connect {
            upstream: upstream.name().to_owned(),
            tried,
            last,
            timed_out,
        })
    }

    /// Buffers small request bodies so they can be sent again, and
    /// enforces the body limit.
    async fn payload(
        &self,
        body: Incoming,
        limit: Option<u64>,
        send_timeout: Duration,
    ) -> Result<Payload, ForwardError> {
        if body.is_end_stream() {
            return Ok(Payload::Replayable(Bytes::new()));
        }
        let hint = body.size_hint();
        if let Some(limit) = limit
            && hint.lower() > limit
        {
            return Err(ForwardError::TooLarge { limit });
        }
        if hint.upper().is_some_and(|n| n <= REPLAYABLE_BODY) {
            let collected = tokio::time::timeout(send_timeout, body.collect())
                .await
                .map_err(|_| {
                    ForwardError::ClientBody(format!(
                        "the client sent no complete body within {send_timeout:?}"
                    ))
                })?
                .map_err(|e| ForwardError::ClientBody(e.to_string()))?;
            return Ok(Payload::Replayable(collected.to_bytes()));
        }
        Ok(Payload::Stream(match limit {
            // usize is 64 bits on every target Strait builds for.
            Some(limit) => {
                Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).boxed_unsync()
            }
            None => body.map_err(BoxError::from).boxed_unsync(),
        }))
    }
}

/// One exchange: the request is sent (bounded by the send timeout, in the
/// body and the connection), then the response head must arrive within
/// `read_timeout` (`Err` when it does not).
async fn exchange(
    client: &Pooled,
    req: Request<Body>,
    sent: Option<tokio::sync::watch::Receiver<bool>>,
    read_timeout: Duration,
) -> Result<
    Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    tokio::time::error::Elapsed,
> {
    let response = client.request(req);
    tokio::pin!(response);
    if let Some(mut sent) = sent {
        tokio::select! {
            resp = &mut response => return Ok(resp),
            // Sent whole (or the body was dropped): the read timeout starts.
            _ = sent.wait_for(|sent| *sent) => {}
        }
    }
    tokio::time::timeout(read_timeout, response).await
}

/// One attempt's request to `endpoint`.
fn build(
    request: &Outgoing,
    endpoint: SocketAddr,
    protocol: BackendProtocol,
    body: Body,
) -> Result<Request<Body>, ForwardError> {
    let scheme = match protocol {
        BackendProtocol::Http => "http",
        BackendProtocol::Https => "https",
    };
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(endpoint.to_string())
        .path_and_query(request.path_and_query.as_str())
        .build()
        .map_err(|e| ForwardError::Upstream {
            upstream: String::new(),
            endpoint,
            reason: format!("bad request target: {e}"),
        })?;
    let mut req = Request::new(body);
    *req.method_mut() = request.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = request.headers.clone();
    Ok(req)
}

/// An error and its sources, for logs and bodies.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether a connect error was a timeout.
fn is_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The first error of type `T` among the sources of `e`.
fn find_source<T: std::error::Error + 'static>(
    e: &hyper_util::client::legacy::Error,
) -> Option<&T> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<T>() {
            return Some(found);
        }
        // An io::Error's source skips its own payload; look at it too.
        if let Some(found) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<T>())
        {
            return Some(found);
        }
        source = s.source();
    }
    None
}

/// Whether a request failed because its body went over the limit.
fn exceeded_limit(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
