//! Probes the lab uses to decide a component is up: an HTTP GET from inside
//! the component's netns, and "is this process listening on that port" read
//! from the process's own /proc view of its netns.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::netns::in_netns;

/// The HTTP status of `GET path` on `addr`, as seen from inside `netns`.
pub fn http_status(netns: &str, addr: SocketAddr, path: &str) -> Option<u16> {
    let path = path.to_owned();
    in_netns(netns, move || {
        let timeout = Duration::from_millis(500);
        let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        stream.set_write_timeout(Some(timeout)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).ok()?;
        let line = std::str::from_utf8(&head[..n]).ok()?;
        line.split_whitespace().nth(1)?.parse().ok()
    })
    .ok()
    .flatten()
}

/// Whether process `pid` (through its netns) has a TCP socket listening on `port`.
pub fn listening(pid: i32, port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
            .map(|text| {
                text.lines().skip(1).any(|line| {
                    let mut fields = line.split_whitespace();
                    let local = fields.nth(1).unwrap_or_default();
                    let st = fields.nth(1).unwrap_or_default();
                    st == "0A"
                        && local
                            .rsplit(':')
                            .next()
                            .and_then(|p| u16::from_str_radix(p, 16).ok())
                            == Some(port)
                })
            })
            .unwrap_or(false)
    })
}

/// The routes to pod CIDRs in `netns` that an agent programmed with
/// `--node-routes` (routing protocol [`NODE_ROUTE_PROTOCOL`]), as
/// destinations (`10.244.2.0/24`); empty when `ip` fails.
pub fn node_routes(netns: &str) -> Vec<String> {
    let proto = NODE_ROUTE_PROTOCOL.to_string();
    std::process::Command::new("ip")
        .args(["-n", netns, "route", "show", "proto", &proto])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The routing protocol of the agent's node routes (the value of
/// `strait_proxy::node_routes::ROUTE_PROTOCOL`; the lab does not link the
/// proxy, a test in the cli crate keeps them equal).
pub const NODE_ROUTE_PROTOCOL: u8 = 212;

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
