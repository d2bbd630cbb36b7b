//! How the proxy talks to upstreams, through the real server:
//! `backend-protocol: HTTPS` (TLS without verification, no SNI) and
//! `proxy-send-timeout` (an upstream that stops reading, a client that
//! pauses in its body).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const P: &str = "nginx.ingress.kubernetes.io/";

/// What the TLS front of a backend saw in one handshake.
#[derive(Debug, Clone)]
struct Handshake {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
}

/// A TLS terminator on `ip`:0 with a self-signed certificate, in front of
/// the echo backend `backend` (so the echo reply shows the request that
/// came through TLS).
async fn tls_front(
    ip: [u8; 4],
    backend: SocketAddr,
) -> (SocketAddr, Arc<Mutex<Vec<Handshake>>>, Task) {
    let (crt, key) = cert(&["backend.invalid"]);
    let certs = vec![CertificateDer::from_pem_slice(crt.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                log.lock().expect("lock").push(Handshake {
                    sni: conn.server_name().map(str::to_owned),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                });
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, seen, Task(task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends_are_reached_over_tls_without_verification() {
    let m = Manifests::new();
    let web = echo("secure-web", [127, 0, 0, 2]).await;
    let (front, handshakes, _front) = tls_front([127, 0, 0, 3], web.addr).await;
    let plain = echo("plain-web", [127, 0, 0, 4]).await;
    m.write(
        "svc.yaml",
        &[
            service("apps", "secure", "https", 80, &[front]),
            "---\n".into(),
            service("apps", "plain", "http", 80, &[plain.addr]),
        ]
        .concat(),
    );
    let protocol = format!("{P}backend-protocol");
    m.write(
        "ing.yaml",
        &[
            ingress_yaml(
                "secure",
                &[(&protocol, "HTTPS")],
                &[("secure.test", "/", "Prefix", "secure")],
            ),
            // HTTPS to a plain-HTTP backend: the handshake fails, 502.
            ingress_yaml(
                "mismatch",
                &[(&protocol, "HTTPS")],
                &[("mismatch.test", "/", "Prefix", "plain")],
            ),
            // HTTP (the default, or said explicitly) stays plain.
            ingress_yaml(
                "plain",
                &[(&protocol, "HTTP")],
                &[("plain.test", "/", "Prefix", "plain")],
            ),
            ingress_yaml(
                "grpc",
                &[(&protocol, "GRPC")],
                &[("grpc.test", "/", "Prefix", "plain")],
            ),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");

    for i in 0..3 {
        let reply = send(
            addr,
            &Req::get("secure.test", "/over/tls?i=1").header("x-test", "through"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{i}: {}", reply.text());
        let seen = reply.echo();
        assert_eq!(seen.pod, "secure-web");
        assert_eq!(seen.path, "/over/tls?i=1");
        assert_eq!(seen.host, "secure.test", "Host is preserved");
        assert_eq!(
            seen.headers.get("x-test").map(String::as_str),
            Some("through")
        );
    }
    let handshakes = handshakes.lock().expect("lock").clone();
    assert!(!handshakes.is_empty());
    for h in &handshakes {
        assert_eq!(h.sni, None, "no SNI to an endpoint address");
        assert_eq!(h.alpn.as_deref(), Some(&b"http/1.1"[..]));
    }
    let reply = get(addr, "mismatch.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(reply.text().contains("TLS handshake"), "{}", reply.text());
    assert_eq!(
        get(addr, "plain.test", "/").await.pod().as_deref(),
        Some("plain-web")
    );
    assert_eq!(
        get(addr, "grpc.test", "/").await.status,
        StatusCode::NOT_FOUND,
        "unsupported protocols reject the Ingress"
    );
    ingress.shutdown().await;
}

/// Sends a request head announcing `length` body bytes, then `sent` bytes
/// of body (in the background, ignoring errors), and returns the
/// response's status line and body.
async fn post_partially(addr: SocketAddr, host: &str, length: usize, sent: usize) -> String {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = format!("POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\n");
    write.write_all(head.as_bytes()).await.expect("head");
    let _writer = Task(tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let n = left.min(chunk.len());
            if write.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
        // Keep the connection open without sending the rest.
        std::future::pending::<()>().await;
    }));
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&response).contains("proxy-send-timeout") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the send timeout ends the request");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_ends_requests_the_upstream_stops_receiving() {
    let m = Manifests::new();
    // An upstream that accepts and never reads.
    let deaf = TcpListener::bind("127.0.0.2:0").await.expect("bind");
    let deaf_addr = deaf.local_addr().expect("addr");
    let _hold = Task(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = deaf.accept().await {
            held.push(s);
        }
    }));
    let web = echo("web", [127, 0, 0, 3]).await;
    m.write(
        "svc.yaml",
        &[
            service("apps", "deaf", "http", 80, &[deaf_addr]),
            "---\n".into(),
            service("apps", "web", "http", 80, &[web.addr]),
        ]
        .concat(),
    );
    let send_timeout = format!("{P}proxy-send-timeout");
    m.write(
        "ing.yaml",
        &[
            ingress_yaml(
                "deaf",
                &[(&send_timeout, "1")],
                &[("deaf.test", "/", "Prefix", "deaf")],
            ),
            ingress_yaml(
                "paused",
                &[(&send_timeout, "1")],
                &[("paused.test", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let mut cfg = config();
    cfg.timeouts.send = Duration::from_secs(600);
    cfg.timeouts.read = Duration::from_secs(600);
    let ingress = start(&m, cfg).await;
    let addr = ingress.http_addr().expect("addr");

    // The upstream stops reading: its socket buffers fill up, then nothing
    // moves for 1 s. 256 MiB is far more than loopback buffers hold.
    let body = 256 << 20;
    let reply = post_partially(addr, "deaf.test", body, body).await;
    assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
    assert!(reply.contains("proxy-send-timeout"), "{reply}");

    // The client pauses after 100 KiB of 1 MiB: nothing reaches the
    // upstream for 1 s.
    let reply = post_partially(addr, "paused.test", 1 << 20, 100 << 10).await;
    assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
    assert!(reply.contains("proxy-send-timeout"), "{reply}");

    // A complete upload still works.
    let reply = send(
        addr,
        &Req::get("paused.test", "/")
            .method(hyper::Method::POST)
            .body(&[b'y'; 4096]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    ingress.shutdown().await;
}
