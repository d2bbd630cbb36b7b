//! Tiny TCP and UDP servers that run inside a test namespace and answer one line,
//! `<name> <peer-address>`, so a test can see which backend answered and which client
//! address it saw. Same line format as `strait echo` for TCP and UDP. The client helpers
//! must be called from inside a namespace (`ns.run(|| tcp_ask(..))`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
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

    fn line(name: &str, peer: SocketAddr) -> String {
        format!("{name} {peer}\n")
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

/// A TCP server in a namespace: on every connection it writes its line, then drains
/// the connection until the client closes. Stops (and joins its thread) on drop.
#[derive(Debug)]
pub struct TcpEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _ns: NetNs,
}

impl TcpEcho {
    /// Binds `bind` inside `ns` (port 0 picks a free port) and starts serving as `name`.
    pub fn start(ns: &NetNs, name: &str, bind: SocketAddr) -> Result<TcpEcho> {
        check_name(name)?;
        let listener = ns
            .run(|| TcpListener::bind(bind))
            .map_err(io_ctx(format!("binding tcp {bind} in {}", ns.name())))?;
        let addr = listener.local_addr().map_err(io_ctx("local_addr"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (name, flag) = (name.to_string(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tcp-echo {name}"))
            .spawn(move || tcp_loop(listener, &name, &flag))
            .map_err(io_ctx("spawning tcp echo thread"))?;
        Ok(TcpEcho {
            addr,
            stop,
            thread: Some(thread),
            _ns: ns.clone(),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn tcp_loop(listener: TcpListener, name: &str, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if !readable(listener.as_raw_fd(), POLL) {
            continue;
        }
        let Ok((stream, peer)) = listener.accept() else {
            std::thread::sleep(POLL);
            continue;
        };
        let line = EchoReply::line(name, peer);
        std::thread::spawn(move || serve_tcp(stream, &line));
    }
}

fn serve_tcp(mut stream: TcpStream, line: &str) {
    if stream.write_all(line.as_bytes()).is_err() {
        return;
    }
    // Drain until the client closes, so closing never resets unread client data.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 512];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP server in a namespace: answers every datagram with its line. Stops on drop.
#[derive(Debug)]
pub struct UdpEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _ns: NetNs,
}

impl UdpEcho {
    /// Binds `bind` inside `ns` (port 0 picks a free port) and starts serving as `name`.
    pub fn start(ns: &NetNs, name: &str, bind: SocketAddr) -> Result<UdpEcho> {
        check_name(name)?;
        let socket = ns
            .run(|| UdpSocket::bind(bind))
            .map_err(io_ctx(format!("binding udp {bind} in {}", ns.name())))?;
        let addr = socket.local_addr().map_err(io_ctx("local_addr"))?;
        socket
            .set_read_timeout(Some(POLL))
            .map_err(io_ctx("udp read timeout"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (name, flag) = (name.to_string(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("udp-echo {name}"))
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while !flag.load(Ordering::Relaxed) {
                    if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(EchoReply::line(&name, peer).as_bytes(), peer);
                    }
                }
            })
            .map_err(io_ctx("spawning udp echo thread"))?;
        Ok(UdpEcho {
            addr,
            stop,
            thread: Some(thread),
            _ns: ns.clone(),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

/// Waits up to `timeout` for `fd` to become readable.
fn readable(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}
