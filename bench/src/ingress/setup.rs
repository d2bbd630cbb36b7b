//! What both proxies serve: the same Ingress rules, written once as
//! manifests for `strait ingress` and once as the nginx configuration an
//! ingress-nginx operator would tune by hand, over the same echo backends
//! and the same certificate.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// The host the load goes to (the TLS host).
pub const HOST: &str = "bench.strait.test";
/// A wildcard host with its own rule (routing that is not exercised by the
/// load but has to be looked past, as in a real route table).
pub const WILDCARD: &str = "*.apps.strait.test";
/// The path every load request asks for: matched by the `/api` Prefix rule.
pub const PATH: &str = "/api/v1/items";
/// Namespace of every object.
const NS: &str = "bench";

/// `n` distinct free loopback TCP ports (all held open until every one is
/// chosen, so they differ; free again once returned).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("binding 127.0.0.1:0 to find free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A self-signed ECDSA P-256 certificate for [`HOST`] and [`WILDCARD`],
/// written as `tls.crt` and `tls.key` into `dir` (both proxies load it).
pub fn certificate(dir: &Path) -> anyhow::Result<(String, String)> {
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={HOST}")])
        .args([
            "-addext",
            &format!("subjectAltName=DNS:{HOST},DNS:{WILDCARD}"),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .context("running openssl (scripts/setup installs it)")?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((std::fs::read_to_string(crt)?, std::fs::read_to_string(key)?))
}

/// One Service `name` (port 80, named http) and one EndpointSlice per
/// backend (each echo backend listens on its own port).
fn service(out: &mut String, name: &str, backends: &[SocketAddr]) {
    let _ = write!(
        out,
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NS}\n\
         spec:\n  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n"
    );
    for (i, b) in backends.iter().enumerate() {
        let _ = write!(
            out,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n\
             \x20 namespace: {NS}\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\n\
             ports:\n- name: http\n  port: {port}\n  protocol: TCP\nendpoints:\n\
             - addresses: [\"{ip}\"]\n  conditions:\n    ready: true\n",
            port = b.port(),
            ip = b.ip()
        );
    }
}

/// The manifests `strait ingress --manifests` reads: Services `api` and
/// `web` over the same echo backends, the TLS Secret, an IngressClass and
/// the Ingress. Plain HTTP is served, not redirected (`ssl-redirect:
/// "false"`), so both protocols can be measured on the same rules.
pub fn manifests(backends: &[SocketAddr], crt: &str, key: &str) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let mut y = String::new();
    service(&mut y, "api", backends);
    service(&mut y, "web", backends);
    let _ = write!(
        y,
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: bench-tls\n  namespace: {NS}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    );
    let backend = |svc: &str| {
        format!(
            "backend:\n            service:\n              name: {svc}\n              port:\n                number: 80"
        )
    };
    let _ = write!(
        y,
        "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: strait\n\
         spec:\n  controller: strait.dev/ingress\n\
         ---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: bench\n  namespace: {NS}\n\
         \x20 creationTimestamp: \"2026-01-01T00:00:00Z\"\n  annotations:\n\
         \x20   nginx.ingress.kubernetes.io/ssl-redirect: \"false\"\n\
         spec:\n  ingressClassName: strait\n  tls:\n  - hosts: [\"{HOST}\"]\n    secretName: bench-tls\n\
         \x20 rules:\n  - host: {HOST}\n    http:\n      paths:\n\
         \x20     - path: /healthz\n        pathType: Exact\n        {api}\n\
         \x20     - path: /api\n        pathType: Prefix\n        {api}\n\
         \x20     - path: /\n        pathType: Prefix\n        {web}\n\
         \x20 - host: \"{WILDCARD}\"\n    http:\n      paths:\n\
         \x20     - path: /\n        pathType: Prefix\n        {web}\n",
        api = backend("api"),
        web = backend("web"),
    );
    y
}

/// Where nginx listens and what it forwards to.
pub struct NginxSetup<'a> {
    /// Its prefix directory (config, pid file, temp paths).
    pub dir: &'a Path,
    /// Worker processes: the number of strait's runtime worker threads.
    pub workers: usize,
    /// Plain HTTP port.
    pub http: u16,
    /// HTTPS port.
    pub https: u16,
    /// The echo backends.
    pub backends: &'a [SocketAddr],
}

/// nginx as ingress-nginx would render the same Ingress, tuned the way its
/// operators tune it for throughput: one worker per strait worker thread,
/// keep-alive upstreams (`keepalive 64`, HTTP/1.1, `Connection ""`), no
/// access log, TLS 1.2 and 1.3 with the same ECDSA certificate, h2 on the
/// TLS listener, the same forwarded headers and timeouts as strait's
/// defaults, and request limits per connection raised so no client or
/// upstream connection is closed during a run.
///
/// nginx 1.22 (Debian 12) has no `http2 on;` directive (1.25.1+): h2 is
/// turned on with `listen … ssl http2`, which is the same thing.
pub fn nginx_conf(s: &NginxSetup<'_>) -> String {
    let dir = s.dir.display();
    let upstream = |name: &str| {
        let mut u = format!("    upstream {NS}-{name}-80 {{\n");
        for b in s.backends {
            let _ = writeln!(u, "        server {b} max_fails=0;");
        }
        u.push_str(
            "        keepalive 64;\n        keepalive_requests 1000000;\n        keepalive_timeout 60s;\n    }\n",
        );
        u
    };
    let listen = format!(
        "        listen 127.0.0.1:{http};\n        listen 127.0.0.1:{https} ssl http2;\n",
        http = s.http,
        https = s.https
    );
    let default_listen = format!(
        "        listen 127.0.0.1:{http} default_server;\n        listen 127.0.0.1:{https} ssl http2 default_server;\n",
        http = s.http,
        https = s.https
    );
    let wildcard_re = WILDCARD.trim_start_matches("*.").replace('.', "\\.");
    format!(
        "# Generated by bench-ingress: the bench/{NS} Ingress, as ingress-nginx renders it.
worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    keepalive_timeout 75s;
    keepalive_requests 1000000;
    tcp_nodelay on;

    ssl_certificate {dir}/tls.crt;
    ssl_certificate_key {dir}/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;

    proxy_http_version 1.1;
    proxy_set_header Connection \"\";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_connect_timeout 5s;
    proxy_send_timeout 60s;
    proxy_read_timeout 60s;
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;

{api}{web}
    # Nothing matched: 404 (strait answers its own 404 body).
    server {{
{default_listen}        server_name _;
        location / {{
            return 404;
        }}
    }}

    server {{
{listen}        server_name {HOST};
        location = /healthz {{
            proxy_pass http://{NS}-api-80;
        }}
        location = /api {{
            proxy_pass http://{NS}-api-80;
        }}
        location /api/ {{
            proxy_pass http://{NS}-api-80;
        }}
        location / {{
            proxy_pass http://{NS}-web-80;
        }}
    }}

    server {{
{listen}        server_name \"~^[^.]+\\.{wildcard_re}$\";
        location / {{
            proxy_pass http://{NS}-web-80;
        }}
    }}
}}
",
        workers = s.workers,
        api = upstream("api"),
        web = upstream("web"),
    )
}
