//! The echo server through real sockets on loopback: HTTP/1.1 with
//! keep-alive, plain TCP (talking and silent clients) and UDP.
use std::net::SocketAddr;

use strait_echo::{EchoConfig, EchoReply, EchoServer};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpStream, UdpSocket},
};

async fn start(name: &str) -> SocketAddr {
    let cfg = EchoConfig {
        name: name.into(),
        listen: vec!["127.0.0.1:0".parse().unwrap()],
    };
    let server = EchoServer::bind(&cfg).await.expect("bind");
    let addr = server.local_addrs()[0];
    tokio::spawn(server.run());
    addr
}

async fn http_get(stream: &mut TcpStream, path: &str) -> EchoReply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: web.example\r\nX-Test: a\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    // Read headers, then exactly Content-Length bytes.
    let mut reader = BufReader::new(stream);
    let mut len = 0usize;
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "status line {status:?}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).expect("json body")
}

#[tokio::test]
async fn http_reply_describes_the_request_and_keeps_alive() {
    let addr = start("pod-a").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let first = http_get(&mut stream, "/x?y=1").await;
    assert_eq!(first.pod, "pod-a");
    assert_eq!(first.method, "GET");
    assert_eq!(first.host, "web.example");
    assert_eq!(first.path, "/x?y=1");
    assert_eq!(first.headers.get("x-test").map(String::as_str), Some("a"));
    assert_eq!(first.peer, local.to_string());
    // Same connection, second request: keep-alive works.
    let second = http_get(&mut stream, "/again").await;
    assert_eq!(second.path, "/again");
    assert_eq!(second.peer, local.to_string());
}

#[tokio::test]
async fn tcp_line_for_talking_and_silent_clients() {
    let addr = start("pod-b").await;
    let mut talker = TcpStream::connect(addr).await.unwrap();
    let local = talker.local_addr().unwrap();
    talker.write_all(b"ping\n").await.unwrap();
    let mut line = String::new();
    BufReader::new(&mut talker)
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line, format!("pod-b {local}\n"));

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let local = silent.local_addr().unwrap();
    let mut line = String::new();
    BufReader::new(&mut silent)
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line, format!("pod-b {local}\n"));
}

#[tokio::test]
async fn udp_datagram_gets_a_line() {
    let addr = start("pod-c").await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"hi", addr).await.unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = sock.recv_from(&mut buf).await.unwrap();
    assert_eq!(from, addr);
    let local = sock.local_addr().unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        format!("pod-c {local}\n")
    );
}

#[tokio::test]
async fn bind_conflict_is_a_clear_error() {
    let addr = start("pod-d").await;
    let cfg = EchoConfig {
        name: "dup".into(),
        listen: vec![addr],
    };
    let err = EchoServer::bind(&cfg).await.err().expect("must fail");
    assert!(err.to_string().contains("cannot bind tcp"), "{err}");
}
