//! A tiny client for datapath tests. It runs as its own process so a test
//! can place it in a cgroup and a netns, and it reports exactly what the
//! kernel said: which backend answered, the peer the client saw, or the
//! errno of a failed call.
//!
//! `strait-probe tcp|udp|udp-connected|udp-hold ADDR [COUNT]` prints one
//! line per attempt: `ok <backend-name> <peer-seen-by-backend>
//! <peer-seen-by-client>` or `err <errno> <message>`. `udp-hold` keeps one
//! connected UDP socket across attempts (50 ms apart) and, like a resilient
//! DNS client, reconnects only after the socket reports an error.
use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    process::ExitCode,
    time::Duration,
};

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(addr)) = (args.first(), args.get(1)) else {
        eprintln!("usage: strait-probe tcp|udp|udp-connected ADDR [COUNT]");
        return ExitCode::from(2);
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("strait-probe: bad address {addr:?}");
        return ExitCode::from(2);
    };
    let count: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1);
    if mode == "udp-hold" {
        udp_hold(addr, count);
        return ExitCode::SUCCESS;
    }
    for _ in 0..count {
        let result = match mode.as_str() {
            "tcp" => tcp(addr),
            "udp" => udp(addr, false),
            "udp-connected" => udp(addr, true),
            other => {
                eprintln!("strait-probe: unknown mode {other:?}");
                return ExitCode::from(2);
            }
        };
        match result {
            Ok((line, seen)) => println!("ok {} {seen}", line.trim()),
            Err(e) => println!("err {} {e}", e.raw_os_error().unwrap_or(0)),
        }
    }
    ExitCode::SUCCESS
}

fn tcp(addr: SocketAddr) -> std::io::Result<(String, SocketAddr)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"probe\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok((line, stream.peer_addr()?))
}

fn udp(addr: SocketAddr, connected: bool) -> std::io::Result<(String, SocketAddr)> {
    let local: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = [0u8; 512];
    if connected {
        socket.connect(addr)?;
        socket.send(b"probe\n")?;
        let n = socket.recv(&mut buf)?;
        Ok((
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            socket.peer_addr()?,
        ))
    } else {
        socket.send_to(b"probe\n", addr)?;
        let (n, from) = socket.recv_from(&mut buf)?;
        Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    }
}

fn udp_hold(addr: SocketAddr, count: usize) {
    let connect = || -> std::io::Result<UdpSocket> {
        let local: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let s = UdpSocket::bind(local)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        s.connect(addr)?;
        Ok(s)
    };
    let mut socket = connect();
    let mut buf = [0u8; 512];
    for _ in 0..count {
        let attempt = socket
            .as_ref()
            .map_err(|e| std::io::Error::from(e.kind()))
            .and_then(|s| {
                s.send(b"probe\n")?;
                let n = s.recv(&mut buf)?;
                Ok((
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                    s.peer_addr()?,
                ))
            });
        match attempt {
            Ok((line, seen)) => println!("ok {} {seen}", line.trim()),
            Err(e) => {
                println!("err {} {e}", e.raw_os_error().unwrap_or(0));
                // A timeout is not a broken socket; anything else is.
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
                {
                    socket = connect();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
