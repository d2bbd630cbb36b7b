//! Shared fixtures of the ingress integration tests: echo backends on
//! loopback addresses, manifests written into a temporary directory, the
//! controller started on ephemeral ports, and plain, TLS and h2 clients.
//!
//! Every resource is released on drop (backend tasks aborted, the
//! directory removed, the server shut down by the test).

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::{http1, http2};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use strait_cluster::{ClusterView, ManifestSource};
use strait_echo::{EchoConfig, EchoReply, EchoServer};
use strait_ingress::tls::AcceptAnyServerCert;
use strait_ingress::{IngressConfig, IngressServer, RunningIngress};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long a test waits for a reconfiguration to show.
pub const SETTLE: Duration = Duration::from_secs(15);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A running task aborted on drop.
pub struct Task(pub JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One echo backend.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    _task: Task,
}

/// Starts an echo backend named `name` on `ip`:0.
pub async fn echo(name: &str, ip: [u8; 4]) -> Backend {
    let server = EchoServer::bind(&EchoConfig {
        name: name.to_owned(),
        listen: vec![SocketAddr::from((ip, 0))],
    })
    .await
    .expect("bind echo backend");
    let addr = server.local_addrs()[0];
    Backend {
        name: name.to_owned(),
        addr,
        _task: Task(tokio::spawn(server.run())),
    }
}

/// Starts one echo backend per name, on 127.0.0.2, 127.0.0.3, … in order,
/// and writes `svc.yaml`: a Service `apps/<name>` (port `http`, 80) for
/// each, with its backend as the one endpoint.
pub async fn echo_services(m: &Manifests, names: &[&str]) -> Vec<Backend> {
    let mut backends = Vec::new();
    let mut yaml = Vec::new();
    for (i, name) in (2u8..).zip(names) {
        let backend = echo(name, [127, 0, 0, i]).await;
        yaml.push(service("apps", name, "http", 80, &[backend.addr]));
        backends.push(backend);
    }
    m.write("svc.yaml", &yaml.join("---\n"));
    backends
}

/// An address where nothing listens (bound, then closed).
pub fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The manifest directory.
pub struct Manifests {
    pub dir: tempfile::TempDir,
}

impl Manifests {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces, atomically) `name`.
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("rename manifest");
    }

    /// Writes the `kubernetes.io/tls` Secret `ns/name` with `crt` and `key`
    /// (PEM) into a file of its own, so writing it again rotates it.
    pub fn write_tls_secret(&self, ns: &str, name: &str, crt: &str, key: &str) {
        self.write(
            &format!("secret-{ns}-{name}.yaml"),
            &tls_secret(ns, name, crt, key),
        );
    }

    /// Writes the Secret `ns/name` with a fresh self-signed certificate for
    /// `names`; returns the certificate and its key (PEM).
    pub fn self_signed_secret(&self, ns: &str, name: &str, names: &[&str]) -> (String, String) {
        let (crt, key) = cert(names);
        self.write_tls_secret(ns, name, &crt, &key);
        (crt, key)
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove manifest");
    }
}

/// A Service `ns/name` with one port (`port_name`, `port`) and one
/// EndpointSlice per endpoint (each echo backend has its own port).
pub fn service(
    ns: &str,
    name: &str,
    port_name: &str,
    port: u16,
    endpoints: &[SocketAddr],
) -> String {
    let mut y = format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  ports:
  - name: {port_name}
    port: {port}
    protocol: TCP
"
    );
    for (i, ep) in endpoints.iter().enumerate() {
        write!(
            y,
            "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-{i}
  namespace: {ns}
  labels:
    kubernetes.io/service-name: {name}
addressType: IPv4
ports:
- name: {port_name}
  port: {port}
  protocol: TCP
endpoints:
- addresses: [\"{ip}\"]
  conditions:
    ready: true
",
            ip = ep.ip(),
            port = ep.port()
        )
        .expect("fmt");
    }
    y
}

/// An IngressClass for `controller`.
pub fn ingress_class(name: &str, controller: &str, default: bool) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: {name}
  annotations:
    ingressclass.kubernetes.io/is-default-class: \"{default}\"
spec:
  controller: {controller}
"
    )
}

/// A self-signed certificate and key (PEM) for `names`.
pub fn cert(names: &[&str]) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(
        names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
    )
    .expect("rcgen");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// The DER of the first certificate in `pem`.
pub fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

/// A `kubernetes.io/tls` Secret with `stringData`.
pub fn tls_secret(ns: &str, name: &str, crt: &str, key: &str) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {ns}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{crt}  tls.key: |
{key}",
        crt = indent(crt),
        key = indent(key)
    )
}

/// The test configuration: ephemeral loopback ports, no access log.
pub fn config() -> IngressConfig {
    IngressConfig {
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        https: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        access_log: false,
        ..IngressConfig::default()
    }
}

/// Starts the controller on `manifests` with `config`.
pub async fn start(manifests: &Manifests, config: IngressConfig) -> RunningIngress {
    init_tracing();
    let source = ManifestSource::new(manifests.path()).with_debounce(Duration::from_millis(20));
    let view = ClusterView::spawn(source);
    let server = IngressServer::bind(config, view)
        .await
        .expect("bind ingress");
    tokio::time::timeout(SETTLE, server.start())
        .await
        .expect("ingress start timed out")
        .expect("ingress start")
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The echo backend's description of the request it saw.
    pub fn echo(&self) -> EchoReply {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not an echo reply ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Which echo backend answered (from its response header, so HEAD works).
    pub fn pod(&self) -> Option<String> {
        self.headers
            .get("x-strait-pod")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to send.
pub struct Req<'a> {
    pub method: Method,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Bytes,
}

impl<'a> Req<'a> {
    pub fn get(host: &'a str, path: &'a str) -> Self {
        Self {
            method: Method::GET,
            host,
            path,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn body(mut self, body: &'static [u8]) -> Self {
        self.body = Bytes::from_static(body);
        self
    }

    fn build(&self, h2: bool) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(self.method.clone());
        if h2 {
            b = b.uri(format!("https://{}{}", self.host, self.path));
        } else {
            b = b.uri(self.path).header("host", self.host);
        }
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(self.body.clone())).expect("request")
    }
}

/// An HTTP/1.1 connection that sends requests one after another.
pub struct H1 {
    send: http1::SendRequest<Full<Bytes>>,
    _conn: Task,
}

impl H1 {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::over(stream).await
    }

    pub async fn over<S>(stream: S) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("h1 handshake");
        let task = tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Self {
            send,
            _conn: Task(task),
        }
    }

    pub async fn send(&mut self, req: &Req<'_>) -> Result<Reply, hyper::Error> {
        self.send.ready().await?;
        let resp = self.send.send_request(req.build(false)).await?;
        read(resp).await
    }
}

async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Result<Reply, hyper::Error> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// One request on a fresh plain HTTP/1.1 connection.
pub async fn send(addr: SocketAddr, req: &Req<'_>) -> Reply {
    let mut c = H1::connect(addr).await;
    tokio::time::timeout(SETTLE, c.send(req))
        .await
        .expect("request timed out")
        .expect("request failed")
}

/// `GET host path` on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(addr, &Req::get(host, path)).await
}

/// Asserts that `n` requests `req` in a row, each on a fresh connection, are
/// answered by the echo backend `pod`.
pub async fn assert_answered_by(addr: SocketAddr, req: &Req<'_>, pod: &str, n: usize) {
    for _ in 0..n {
        assert_eq!(send(addr, req).await.pod().as_deref(), Some(pod));
    }
}

/// Waits until `n` requests `req` in a row are answered by `pod`, so that an
/// answer of an older configuration does not count; then asserts the next
/// `n` are too.
pub async fn eventually_answered_by(addr: SocketAddr, req: &Req<'_>, pod: &str, n: usize) {
    eventually(&format!("{n} answers in a row from {pod}"), || async {
        for _ in 0..n {
            if send(addr, req).await.pod().as_deref() != Some(pod) {
                return false;
            }
        }
        true
    })
    .await;
    assert_answered_by(addr, req, pod, n).await;
}

/// Retries `check` until it returns true or [`SETTLE`] passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a TLS handshake produced.
pub struct Tls {
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// DER of the certificate the server presented.
    pub leaf: Vec<u8>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The negotiated TLS version.
    pub version: Option<rustls::ProtocolVersion>,
}

/// Connects with TLS to `addr`, sending `sni` (none when `None`) and
/// offering `alpn`; `versions` limits the TLS versions offered. Panics when
/// the connection or the handshake fails.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        // Any certificate: the tests compare the presented one's bytes.
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).expect("server name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let stream = connector.connect(name, tcp).await.expect("tls handshake");
    let (_, conn) = stream.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let version = conn.protocol_version();
    Tls {
        stream,
        leaf,
        alpn,
        version,
    }
}

/// The default TLS versions (1.3 and 1.2).
pub const ALL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// One HTTPS request over HTTP/1.1 with SNI `sni`; returns the reply and
/// the presented certificate.
pub async fn https(addr: SocketAddr, sni: Option<&str>, req: &Req<'_>) -> (Reply, Vec<u8>) {
    let tls = tls_connect(addr, sni, &[b"http/1.1"], ALL_VERSIONS).await;
    let leaf = tls.leaf.clone();
    let mut c = H1::over(tls.stream).await;
    let reply = tokio::time::timeout(SETTLE, c.send(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    (reply, leaf)
}

/// `GET host path` over HTTPS with `host` as the SNI too; returns the
/// reply and the presented certificate.
pub async fn https_get(addr: SocketAddr, host: &str, path: &str) -> (Reply, Vec<u8>) {
    https(addr, Some(host), &Req::get(host, path)).await
}

/// Waits until a handshake with SNI `sni` presents the certificate `leaf`
/// (DER), as after a Secret was written.
pub async fn eventually_presents(addr: SocketAddr, sni: &str, leaf: &[u8]) {
    eventually(&format!("{sni} presents the new certificate"), || async {
        tls_connect(addr, Some(sni), &[b"http/1.1"], ALL_VERSIONS)
            .await
            .leaf
            == leaf
    })
    .await;
}

/// One request over h2 (negotiated with ALPN) with SNI `sni`.
pub async fn https_h2(addr: SocketAddr, sni: &str, req: &Req<'_>) -> (Reply, Option<Vec<u8>>) {
    let tls = tls_connect(addr, Some(sni), &[b"h2"], ALL_VERSIONS).await;
    let alpn = tls.alpn.clone();
    let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls.stream))
        .await
        .expect("h2 handshake");
    let _conn = Task(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = send
        .send_request(req.build(true))
        .await
        .expect("h2 request");
    (read(resp).await.expect("h2 body"), alpn)
}

/// An empty-body request helper for raw hyper use.
pub fn empty() -> Empty<Bytes> {
    Empty::new()
}

/// An Ingress `apps/name` of class strait with `annotations` (full keys)
/// and one rule per `(host, path, pathType, service)`; each Service port is
/// 80. Values are YAML-quoted, so regexes and `$1` pass unchanged.
pub fn ingress_yaml(
    name: &str,
    annotations: &[(&str, &str)],
    paths: &[(&str, &str, &str, &str)],
) -> String {
    tls_ingress_yaml(name, annotations, &[], paths)
}

/// [`ingress_yaml`] that also terminates TLS: one `spec.tls` entry per
/// `(host, secretName)`. Hosts are quoted, so wildcards pass unchanged.
pub fn tls_ingress_yaml(
    name: &str,
    annotations: &[(&str, &str)],
    tls: &[(&str, &str)],
    paths: &[(&str, &str, &str, &str)],
) -> String {
    let mut y = format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: apps
"
    );
    if !annotations.is_empty() {
        y.push_str("  annotations:\n");
        for (k, v) in annotations {
            writeln!(y, "    {k}: {v:?}").expect("fmt");
        }
    }
    y.push_str("spec:\n  ingressClassName: strait\n");
    if !tls.is_empty() {
        y.push_str("  tls:\n");
        for (host, secret) in tls {
            writeln!(y, "  - hosts: [{host:?}]\n    secretName: {secret}").expect("fmt");
        }
    }
    y.push_str("  rules:\n");
    for (host, path, path_type, svc) in paths {
        write!(
            y,
            "  - host: {host:?}
    http:
      paths:
      - path: {path:?}
        pathType: {path_type}
        backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}
"
        )
        .expect("fmt");
    }
    y.push_str("---\n");
    y
}
