//! The external client: a load generator run as a child process in the
//! client netns, pinned to one core, one thread. Commands on stdin, one
//! answer line each on stdout:
//!
//! - `conn SECS WARMUP CONC FILE`: CONC concurrent loops of connect, send
//!   `ping\n`, read the echo's line, close, over the targets round-robin;
//! - `rr SECS WARMUP CONC FILE`: CONC keep-alive connections (connection i
//!   to target i), each sending `ping\n` and reading the line in a loop;
//!
//! both answer `result OPS ERRORS ELAPSED_NS P50_NS P99_NS FIRST_ERROR`
//! (OPS: connections, resp. requests, completed inside the window; the
//! percentiles are of the connect, resp. of the request round trip).
use std::{
    cell::{Cell, RefCell},
    io::{BufRead, Write},
    net::SocketAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::super::load::{LoadResult, pin_to_cpu};

const REQUEST: &[u8] = b"ping\n";
/// Every backend's echo name.
pub const ECHO_NAME: &str = "ep";
/// An operation that takes longer than this counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads one reply line; returns the echo's name.
async fn read_line(s: &mut TcpStream) -> std::io::Result<String> {
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
    Ok(String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// One short connection; returns the connect latency and the echo's name.
async fn one_conn(target: SocketAddr) -> std::io::Result<(Duration, String)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(target).await?;
    let connect = t0.elapsed();
    s.set_nodelay(true)?;
    s.write_all(REQUEST).await?;
    Ok((connect, read_line(&mut s).await?))
}

/// One request on an open connection; returns the echo's name.
async fn one_request(s: &mut TcpStream) -> std::io::Result<String> {
    s.write_all(REQUEST).await?;
    read_line(s).await
}

/// Shared counters of one run.
#[derive(Default)]
struct Tally {
    ops: Cell<u64>,
    errors: Cell<u64>,
    lat: RefCell<Vec<u32>>,
    first_error: RefCell<String>,
}

impl Tally {
    fn ok(&self, counted: bool, lat: Duration) {
        if counted {
            self.ops.set(self.ops.get() + 1);
            self.lat
                .borrow_mut()
                .push(lat.as_nanos().min(u128::from(u32::MAX)) as u32);
        }
    }

    fn err(&self, counted: bool, what: String) {
        if counted {
            self.errors.set(self.errors.get() + 1);
        }
        if self.first_error.borrow().is_empty() {
            self.first_error.replace(what);
        }
    }

    fn outcome(&self, measure: Duration) -> LoadResult {
        let mut lat = self.lat.take();
        lat.sort_unstable();
        let pct = |p: f64| -> Duration {
            if lat.is_empty() {
                return Duration::ZERO;
            }
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            Duration::from_nanos(u64::from(lat[i]))
        };
        LoadResult {
            ops: self.ops.get(),
            errors: self.errors.get(),
            elapsed: measure,
            p50: pct(0.5),
            p99: pct(0.99),
            first_error: self.first_error.take(),
        }
    }
}

async fn run_conn(
    targets: Rc<Vec<SocketAddr>>,
    conc: usize,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let window = Instant::now() + warmup;
    let deadline = window + measure;
    let next = Rc::new(Cell::new(0usize));
    let tally = Rc::new(Tally::default());
    let local = tokio::task::LocalSet::new();
    for _ in 0..conc {
        let (targets, next, tally) = (targets.clone(), next.clone(), tally.clone());
        local.spawn_local(async move {
            loop {
                let t = Instant::now();
                if t >= deadline {
                    break;
                }
                let i = next.get();
                next.set(i.wrapping_add(1));
                let target = targets[i % targets.len()];
                let res = tokio::time::timeout(OP_TIMEOUT, one_conn(target)).await;
                let counted = t >= window && Instant::now() <= deadline;
                match res {
                    Ok(Ok((connect, name))) if name == ECHO_NAME => tally.ok(counted, connect),
                    other => {
                        tally.err(
                            counted,
                            match other {
                                Ok(Ok((_, name))) => format!("{target}: unexpected reply {name}"),
                                Ok(Err(e)) => format!("{target}: {e}"),
                                Err(_) => format!("{target}: timeout"),
                            },
                        );
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
    }
    local.await;
    tally.outcome(measure)
}

async fn run_rr(
    targets: Rc<Vec<SocketAddr>>,
    conc: usize,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let window = Instant::now() + warmup;
    let deadline = window + measure;
    let tally = Rc::new(Tally::default());
    let local = tokio::task::LocalSet::new();
    for c in 0..conc {
        let target = targets[c % targets.len()];
        let tally = tally.clone();
        local.spawn_local(async move {
            let mut conn: Option<TcpStream> = None;
            loop {
                let t = Instant::now();
                if t >= deadline {
                    break;
                }
                let res = tokio::time::timeout(OP_TIMEOUT, async {
                    if conn.is_none() {
                        let s = TcpStream::connect(target).await?;
                        s.set_nodelay(true)?;
                        conn = Some(s);
                    }
                    match conn.as_mut() {
                        Some(s) => one_request(s).await,
                        None => Err(std::io::Error::other("no connection")),
                    }
                })
                .await;
                let done = Instant::now();
                let counted = t >= window && done <= deadline;
                match res {
                    Ok(Ok(name)) if name == ECHO_NAME => tally.ok(counted, done - t),
                    other => {
                        conn = None;
                        tally.err(
                            counted,
                            match other {
                                Ok(Ok(name)) => format!("{target}: unexpected reply {name}"),
                                Ok(Err(e)) => format!("{target}: {e}"),
                                Err(_) => format!("{target}: timeout"),
                            },
                        );
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
    }
    local.await;
    tally.outcome(measure)
}

/// The child's main loop: pins itself, then serves commands until stdin ends.
pub fn client_main(cpu: Option<usize>) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let (kind, secs, warm, conc, file) = match f.as_slice() {
            [kind @ ("conn" | "rr"), secs, warm, conc, file] => (*kind, secs, warm, conc, file),
            _ => bail!("unknown command {line:?}"),
        };
        let targets: Vec<SocketAddr> = std::fs::read_to_string(file)?
            .lines()
            .map(|l| l.parse())
            .collect::<Result<_, _>>()?;
        if targets.is_empty() {
            bail!("no targets in {file}");
        }
        let measure = Duration::from_secs_f64(secs.parse()?);
        let warmup = Duration::from_secs_f64(warm.parse()?);
        let conc: usize = conc.parse()?;
        let targets = Rc::new(targets);
        let r = if kind == "conn" {
            rt.block_on(run_conn(targets, conc, warmup, measure))
        } else {
            rt.block_on(run_rr(targets, conc, warmup, measure))
        };
        writeln!(stdout, "{}", r.to_line())?;
        stdout.flush()?;
    }
    Ok(())
}
