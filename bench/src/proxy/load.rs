//! The client side: a load generator that runs as a child process (so it can
//! sit in the socket-LB cgroup and in the client netns), pinned to one core.
//! It reads commands on stdin and answers one line each on stdout:
//!
//! - `load SECS WARMUP_SECS CONCURRENCY TARGETS_FILE` → `result CONNS ERRORS
//!   ELAPSED_NS P50_NS P99_NS FIRST_ERROR`: a fixed number of concurrent
//!   connections, each one connect, a small request, the one-line reply and
//!   close, over the targets round-robin;
//! - `watch ADDR NAME` → `watching` once the first connection to ADDR is
//!   done, then connections one after the other until one is answered by the
//!   echo server named NAME → `seen T_NS ATTEMPTS` with T_NS the
//!   CLOCK_MONOTONIC time (shared by all processes) at which that
//!   connection's connect completed (or `watch-timeout`). The benchmark
//!   changes the datapath between the two lines, so the client is already
//!   busy connecting and its wake-up latency is not part of the figure.
use std::{
    cell::{Cell, RefCell},
    io::{BufRead, Write},
    net::SocketAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The request every connection sends.
const REQUEST: &[u8] = b"ping\n";
/// A connection that takes longer than this counts as an error.
const CONN_TIMEOUT: Duration = Duration::from_secs(2);

/// Pins the calling thread (and threads it spawns later) to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: cpu_set_t is plain data, zeroed is a valid empty set, and the
    // pointer passed to sched_setaffinity is valid for its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One connection: connect, send, read the line, close. Returns the connect
/// latency and the first word of the reply (the echo server's name).
async fn one(target: SocketAddr) -> std::io::Result<(Duration, String)> {
    one_at(target).await.map(|(d, _, name)| (d, name))
}

/// [`one`], also returning the [`mono_ns`] time at which connect completed.
async fn one_at(target: SocketAddr) -> std::io::Result<(Duration, u64, String)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(target).await?;
    let connect = t0.elapsed();
    let connected_at = mono_ns();
    s.write_all(REQUEST).await?;
    let mut buf = [0u8; 256];
    let mut n = 0;
    loop {
        let r = s.read(&mut buf[n..]).await?;
        if r == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the reply line",
            ));
        }
        n += r;
        if buf[..n].contains(&b'\n') || n == buf.len() {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    let name = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((connect, connected_at, name))
}

/// What a load run measured, for the ClusterIP and the NodePort clients
/// alike (one line format between the client process and the harness).
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    /// Connections (or, for keep-alive runs, requests) completed inside
    /// the measured window.
    pub ops: u64,
    /// Failures inside the window.
    pub errors: u64,
    /// Length of the window.
    pub elapsed: Duration,
    /// Median connect (or round-trip) latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The first error seen, for the report.
    pub first_error: String,
}

impl LoadResult {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `result` line a client process prints for the harness.
    pub fn to_line(&self) -> String {
        format!(
            "result {} {} {} {} {} {}",
            self.ops,
            self.errors,
            self.elapsed.as_nanos(),
            self.p50.as_nanos(),
            self.p99.as_nanos(),
            if self.first_error.is_empty() {
                "-".to_string()
            } else {
                self.first_error.replace(' ', "_")
            }
        )
    }

    /// Parses a `result` line.
    pub fn parse(line: &str) -> anyhow::Result<LoadResult> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 7 || f[0] != "result" {
            bail!("bad result line {line:?}");
        }
        let ns = |s: &str| -> anyhow::Result<Duration> { Ok(Duration::from_nanos(s.parse()?)) };
        Ok(LoadResult {
            ops: f[1].parse()?,
            errors: f[2].parse()?,
            elapsed: ns(f[3])?,
            p50: ns(f[4])?,
            p99: ns(f[5])?,
            first_error: if f[6] == "-" {
                String::new()
            } else {
                f[6].to_string()
            },
        })
    }
}

async fn run_load(
    targets: Rc<Vec<SocketAddr>>,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let start = Instant::now();
    let window_start = start + warmup;
    let deadline = window_start + measure;
    let next = Rc::new(Cell::new(0usize));
    let lat: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::with_capacity(1 << 20)));
    let conns = Rc::new(Cell::new(0u64));
    let errors = Rc::new(Cell::new(0u64));
    let first_error = Rc::new(RefCell::new(String::new()));
    let local = tokio::task::LocalSet::new();
    for _ in 0..concurrency {
        let (targets, next, lat, conns, errors, first_error) = (
            targets.clone(),
            next.clone(),
            lat.clone(),
            conns.clone(),
            errors.clone(),
            first_error.clone(),
        );
        local.spawn_local(async move {
            loop {
                let t = Instant::now();
                if t >= deadline {
                    break;
                }
                let i = next.get();
                next.set(i.wrapping_add(1));
                let target = targets[i % targets.len()];
                let res = tokio::time::timeout(CONN_TIMEOUT, one(target)).await;
                let done = Instant::now();
                let counted = t >= window_start && done <= deadline;
                match res {
                    Ok(Ok((connect, name))) if name == "ep" || name == "new" => {
                        if counted {
                            conns.set(conns.get() + 1);
                            lat.borrow_mut()
                                .push(connect.as_nanos().min(u32::MAX as u128) as u32);
                        }
                    }
                    other => {
                        if counted {
                            errors.set(errors.get() + 1);
                        }
                        if first_error.borrow().is_empty() {
                            first_error.replace(match other {
                                Ok(Ok((_, name))) => format!("{target}: unexpected reply {name}"),
                                Ok(Err(e)) => format!("{target}: {e}"),
                                Err(_) => format!("{target}: timeout"),
                            });
                        }
                        // Do not spin on a refusing target.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
    }
    local.await;
    let mut lat = lat.take();
    lat.sort_unstable();
    let pct = |p: f64| -> Duration {
        if lat.is_empty() {
            return Duration::ZERO;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        Duration::from_nanos(u64::from(lat[i]))
    };
    LoadResult {
        ops: conns.get(),
        errors: errors.get(),
        elapsed: measure,
        p50: pct(0.50),
        p99: pct(0.99),
        first_error: first_error.take(),
    }
}

/// How long `watch` waits for the change (iptables-nft's restore of a
/// change takes seconds at a few thousand services).
const WATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Connects to `addr` one connection at a time until `name` answers;
/// returns when that connect completed ([`mono_ns`]) and the attempts.
async fn watch(addr: SocketAddr, name: &str) -> Option<(u64, u64)> {
    let deadline = Instant::now() + WATCH_TIMEOUT;
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        match tokio::time::timeout(CONN_TIMEOUT, one_at(addr)).await {
            Ok(Ok((_, at, got))) if got == name => return Some((at, attempts)),
            Ok(Ok(_)) => {}
            // Do not spin on a refusing target.
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    None
}

/// The child's main loop: pins itself, then serves commands until stdin ends.
pub fn client_main(cpu: Option<usize>) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let reply = match f.as_slice() {
            ["load", secs, warm, conc, file] => {
                let targets: Vec<SocketAddr> = std::fs::read_to_string(file)?
                    .lines()
                    .map(|l| l.parse())
                    .collect::<Result<_, _>>()?;
                let measure = Duration::from_secs_f64(secs.parse()?);
                let warmup = Duration::from_secs_f64(warm.parse()?);
                let r = rt.block_on(run_load(Rc::new(targets), conc.parse()?, warmup, measure));
                r.to_line()
            }
            ["watch", addr, name] => {
                let addr: SocketAddr = addr.parse()?;
                // One connection first, so the path is warm, then tell the
                // benchmark the watch is running.
                let _ = rt.block_on(async { tokio::time::timeout(CONN_TIMEOUT, one(addr)).await });
                writeln!(stdout, "watching")?;
                stdout.flush()?;
                match rt.block_on(watch(addr, name)) {
                    Some((at, n)) => format!("seen {at} {n}"),
                    None => "watch-timeout".to_string(),
                }
            }
            _ => bail!("unknown command {line:?}"),
        };
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}
