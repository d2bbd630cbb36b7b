//! Tiny TCP and UDP servers that run inside a test namespace and answer one line,
//! `<name> <peer-address>`, so a test can see which backend answered and which client
//! address it saw. Same line format as `strait echo` for TCP and UDP. The client helpers
//! must be called from inside a namespace (`ns.run(|| tcp_ask(..))`).

use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_ctx};
use crate::netns::NetNs;

/// How often server loops look at their stop flag.
const POLL: Duration = Duration::from_millis(50);

/// One parsed answer: which server answered and the client address it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// The server's name.
    pub name: String,
    /// The client address as the server saw it.
    pub peer: SocketAddr,
}

impl EchoReply {
    /// Parses `<name> <peer>`.
    pub fn parse(line: &str) -> Option<EchoReply> {
        let (name, peer) = line.trim().split_once(' ')?;
        Some(EchoReply {
            name: name.to_string(),
            peer: peer.parse().ok()?,
        })
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "echo server name must be non-empty without spaces: {name:?}"
        )));
    }
    Ok(())
}

/// An echo backend in a namespace: the real `strait echo` server (TCP, UDP
/// and HTTP on one port), so tests exercise the same backend as the lab and
/// the benchmarks. Its sockets are bound inside the namespace; it stops when
/// dropped.
#[derive(Debug)]
pub struct Echo {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    _ns: NetNs,
}

/// The name older tests use for a TCP backend; it is the same server.
pub type TcpEcho = Echo;
/// The name older tests use for a UDP backend; it is the same server.
pub type UdpEcho = Echo;

impl Echo {
    /// Binds `bind` (TCP and UDP; port 0 picks a free port) inside `ns` and
    /// starts serving as `name`.
    pub fn start(ns: &NetNs, name: &str, bind: SocketAddr) -> Result<Echo> {
        check_name(name)?;
        let config = strait_echo::EchoConfig {
            name: name.to_string(),
            listen: vec![bind],
        };
        let context = format!("starting echo {name} on {bind} in {}", ns.name());
        // Worker threads are spawned from the namespace thread and inherit it.
        let (runtime, addr) = ns
            .run(move || -> io::Result<_> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()?;
                let server = runtime
                    .block_on(strait_echo::EchoServer::bind(&config))
                    .map_err(io::Error::other)?;
                let addr = server.local_addrs()[0];
                runtime.spawn(server.run());
                Ok((runtime, addr))
            })
            .map_err(io_ctx(context))?;
        Ok(Echo {
            addr,
            runtime: Some(runtime),
            _ns: ns.clone(),
        })
    }

    /// The bound address (TCP and UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Connects to an echo server at `addr` and returns its answer. Call it inside a
/// namespace. Connection errors come back unchanged (`ErrorKind::NetworkUnreachable`,
/// `ConnectionRefused`...), so tests can assert on them.
pub fn tcp_ask(addr: SocketAddr, timeout: Duration) -> io::Result<EchoReply> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    EchoReply::parse(&line).ok_or_else(|| bad_reply(&line))
}

/// Sends a datagram to an echo server at `addr` (retrying until `timeout`) and returns
/// its answer. Call it inside a namespace.
pub fn udp_ask(addr: SocketAddr, timeout: Duration) -> io::Result<EchoReply> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(addr)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        socket.send(b"ping\n")?;
        let left = deadline.saturating_duration_since(Instant::now());
        socket.set_read_timeout(Some(left.clamp(Duration::from_millis(1), POLL * 4)))?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                return EchoReply::parse(&line).ok_or_else(|| bad_reply(&line));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    }
}

fn bad_reply(line: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not an echo reply: {line:?}"),
    )
}
