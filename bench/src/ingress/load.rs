//! The load generators: wrk (HTTP/1.1, plain) and h2load (h2 over TLS),
//! pinned to the client CPU, and what their output says.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::procs::{
    Guard, Sched, Ticks, busy_between, check_interrupted, cpu_seconds, cpu_ticks, cpu_total, pinned,
};
use super::setup::{HOST, PATH};

/// Which load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// wrk, HTTP/1.1 over plain TCP.
    Plain,
    /// h2load, h2 over TLS (ALPN h2).
    Tls,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Plain => "HTTP/1.1 (wrk)",
            Protocol::Tls => "h2 + TLS (h2load)",
        }
    }
}

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct LoadShape {
    /// Connections.
    pub connections: usize,
    /// h2 streams in flight per connection.
    pub streams: usize,
    /// Measured seconds.
    pub seconds: u64,
    /// Unmeasured seconds before.
    pub warmup: u64,
    /// CPU list of the load generator.
    pub cpu: String,
    /// Its scheduling.
    pub sched: Sched,
}

/// The processes whose CPU is accounted during a run.
pub struct Accounted<'a> {
    /// The proxy under test (for nginx: master and workers).
    pub proxy: &'a [u32],
    /// The echo backends.
    pub backends: &'a [u32],
}

/// One measured run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Non-2xx answers plus socket errors and failed requests.
    pub errors: u64,
    /// CPU of the proxy, in cores, over the measured window.
    pub proxy_cpu: f64,
    /// CPU of the load generator, in cores.
    pub client_cpu: f64,
    /// CPU of all echo backends together, in cores.
    pub backend_cpu: f64,
    /// Proxy CPU time per request, µs.
    pub proxy_us_per_req: f64,
    /// How busy each CPU was (everything on it, not only our processes)
    /// and how much of it was softirq.
    pub cores: Vec<(f64, f64)>,
    /// TLS version, cipher and ALPN as h2load reports them.
    pub tls: String,
}

/// Runs one load against `port` while accounting CPU; `dir` holds the
/// h2load log. For wrk, a separate unmeasured run of `warmup` seconds goes
/// first (wrk has no warm-up of its own).
pub fn run(
    protocol: Protocol,
    port: u16,
    shape: &LoadShape,
    procs: &Accounted<'_>,
    dir: &Path,
) -> anyhow::Result<Sample> {
    match protocol {
        Protocol::Plain => {
            if shape.warmup > 0 {
                let mut warm = wrk(port, shape, shape.warmup);
                let (_, out) = watch(&mut warm, "wrk (warm-up)", Duration::ZERO, procs)?;
                parse_wrk(&out)?;
            }
            let mut cmd = wrk(port, shape, shape.seconds);
            let (cpu, out) = watch(&mut cmd, "wrk", Duration::ZERO, procs)?;
            let mut s = parse_wrk(&out)?;
            cpu.fill(&mut s);
            Ok(s)
        }
        Protocol::Tls => {
            let log = dir.join("h2load.log");
            let _ = std::fs::remove_file(&log);
            let mut cmd = pinned(shape.sched, &shape.cpu, "h2load");
            cmd.args(["-t", "1", "-c", &shape.connections.to_string()])
                .args(["-m", &shape.streams.to_string()])
                .args(["-D", &shape.seconds.to_string()])
                .args(["--warm-up-time", &shape.warmup.max(1).to_string()])
                .args(["--connect-to", &format!("127.0.0.1:{port}")])
                .arg("--log-file")
                .arg(&log)
                .arg(format!("https://{HOST}:{port}{PATH}"));
            let (cpu, out) = watch(
                &mut cmd,
                "h2load",
                Duration::from_secs(shape.warmup.max(1)),
                procs,
            )?;
            let mut s = parse_h2load(&out)?;
            let (p50, p99) = log_percentiles(&log)?;
            let _ = std::fs::remove_file(&log);
            s.p50_ms = p50;
            s.p99_ms = p99;
            cpu.fill(&mut s);
            Ok(s)
        }
    }
}

fn wrk(port: u16, shape: &LoadShape, seconds: u64) -> Command {
    let mut cmd = pinned(shape.sched, &shape.cpu, "wrk");
    cmd.args(["-t", "1", "-c", &shape.connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "5s", "--latency"])
        .args(["-H", &format!("Host: {HOST}")])
        .arg(format!("http://127.0.0.1:{port}{PATH}"));
    cmd
}

/// CPU used in the measured window.
struct Cpu {
    proxy: f64,
    client: f64,
    backends: f64,
    wall: f64,
    cores: Vec<(f64, f64)>,
}

impl Cpu {
    fn fill(&self, s: &mut Sample) {
        let wall = self.wall.max(1e-9);
        s.proxy_cpu = self.proxy / wall;
        s.client_cpu = self.client / wall;
        s.backend_cpu = self.backends / wall;
        s.proxy_us_per_req = if s.requests > 0 {
            self.proxy * 1e6 / s.requests as f64
        } else {
            0.0
        };
        s.cores = self.cores.clone();
    }
}

/// Runs `cmd` to completion, sampling the CPU of everything from
/// `skip` after the start (the end of h2load's warm-up) to its exit.
fn watch(
    cmd: &mut Command,
    what: &str,
    skip: Duration,
    procs: &Accounted<'_>,
) -> anyhow::Result<(Cpu, String)> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Guard::spawn(cmd, &format!("{what} (scripts/setup installs it)"))?;
    let pid = child.id();
    let started = Instant::now();
    let mut start: Option<(Instant, f64, f64, f64, Vec<Ticks>)> = None;
    let mut client_now = 0.0;
    let snapshot = || (cpu_total(procs.proxy), cpu_total(procs.backends));
    if skip.is_zero() {
        let (p, b) = snapshot();
        start = Some((Instant::now(), p, b, 0.0, cpu_ticks()));
    }
    // Drain the pipes on threads so a chatty child never blocks.
    let stdout = child.child_mut().stdout.take().context("stdout")?;
    let stderr = child.child_mut().stderr.take().context("stderr")?;
    let out_reader = std::thread::spawn(move || read_all(stdout));
    let err_reader = std::thread::spawn(move || read_all(stderr));
    let status = loop {
        if let Some(status) = child.child_mut().try_wait()? {
            break status;
        }
        check_interrupted()?;
        let c = cpu_seconds(pid);
        if c > 0.0 {
            client_now = c;
        }
        if start.is_none() && started.elapsed() >= skip {
            let (p, b) = snapshot();
            start = Some((Instant::now(), p, b, client_now, cpu_ticks()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let end = Instant::now();
    let ticks_end = cpu_ticks();
    let (proxy_end, backends_end) = snapshot();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{what} failed ({status}):\n{out}{err}");
    }
    let (t0, p0, b0, c0, ticks0) = start.context("the load ended before its warm-up did")?;
    Ok((
        Cpu {
            proxy: proxy_end - p0,
            client: client_now - c0,
            backends: backends_end - b0,
            wall: end.duration_since(t0).as_secs_f64(),
            cores: busy_between(&ticks0, &ticks_end),
        },
        format!("{out}{err}"),
    ))
}

fn read_all(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// `635.91us`, `1.02ms`, `1.5s`, `2m` → milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let i = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(i);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// RPS, p50, p99, requests and errors from `wrk --latency`.
fn parse_wrk(out: &str) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => s.rps = v.parse()?,
            ["50%", v] => s.p50_ms = duration_ms(v).context("wrk p50")?,
            ["99%", v] => s.p99_ms = duration_ms(v).context("wrk p99")?,
            [n, "requests", "in", ..] => s.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => s.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        s.errors += n.trim_end_matches(',').parse::<u64>().unwrap_or(0);
                    }
                }
            }
            _ => {}
        }
    }
    if s.rps == 0.0 || s.requests == 0 {
        bail!("no requests in wrk's output:\n{out}");
    }
    Ok(s)
}

/// RPS, requests, errors and the TLS parameters from h2load.
fn parse_h2load(out: &str) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    let mut tls = Vec::new();
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // finished in 10.00s, 12345.60 req/s, 5.2MB/s
            s.rps = rest
                .split(", ")
                .nth(1)
                .and_then(|v| v.strip_suffix(" req/s"))
                .context("h2load req/s")?
                .parse()?;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // N total, N started, N done, N succeeded, N failed, N errored, N timeout
            for part in rest.split(", ") {
                let mut w = part.split_whitespace();
                let (Some(n), Some(what)) = (w.next(), w.next()) else {
                    continue;
                };
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "done" => s.requests = n,
                    // failed covers errored and timed-out requests.
                    "failed" => s.errors += n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            // N 2xx, N 3xx, N 4xx, N 5xx
            for part in rest.split(", ") {
                let mut w = part.split_whitespace();
                if let (Some(n), Some(class)) = (w.next(), w.next())
                    && class != "2xx"
                {
                    s.errors += n.parse::<u64>().unwrap_or(0);
                }
            }
        } else if line.starts_with("TLS Protocol:")
            || line.starts_with("Cipher:")
            || line.starts_with("Application protocol:")
        {
            tls.push(
                line.split_once(':')
                    .map_or("", |(_, v)| v)
                    .trim()
                    .to_owned(),
            );
        }
    }
    if s.rps == 0.0 || s.requests == 0 {
        bail!("no requests in h2load's output:\n{out}");
    }
    s.tls = tls.join(" ");
    Ok(s)
}

/// p50 and p99 (ms) of the request times in an h2load log (third column,
/// µs, one line per request of the measured period).
fn log_percentiles(path: &Path) -> anyhow::Result<(f64, f64)> {
    let text = std::fs::read_to_string(path).context("reading the h2load log")?;
    let mut us: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    if us.is_empty() {
        bail!("the h2load log has no requests");
    }
    us.sort_unstable();
    let rank = |p: f64| us[((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
    Ok((rank(0.50) as f64 / 1000.0, rank(0.99) as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output() {
        let out = "Running 10s test @ http://127.0.0.1:1/api\n  1 threads and 64 connections\n\
                   \x20 Latency Distribution\n     50%  635.91us\n     75%  712.27us\n\
                   \x20    90%    1.02ms\n     99%    1.84ms\n\
                   \x20 123456 requests in 10.00s, 1.20MB read\n\
                   \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
                   \x20 Non-2xx or 3xx responses: 5\nRequests/sec:  12345.67\n";
        let s = parse_wrk(out).unwrap();
        assert_eq!(s.requests, 123_456);
        assert_eq!(s.errors, 8);
        assert!((s.rps - 12345.67).abs() < 1e-6);
        assert!((s.p50_ms - 0.63591).abs() < 1e-9);
        assert!((s.p99_ms - 1.84).abs() < 1e-9);
    }

    #[test]
    fn h2load_output() {
        let out = "TLS Protocol: TLSv1.3\nCipher: TLS_AES_256_GCM_SHA384\n\
                   Application protocol: h2\n\
                   finished in 10.00s, 23456.70 req/s, 12.34MB/s\n\
                   requests: 234567 total, 234567 started, 234567 done, 234560 succeeded, 7 failed, 7 errored, 0 timeout\n\
                   status codes: 234560 2xx, 0 3xx, 0 4xx, 3 5xx\n";
        let s = parse_h2load(out).unwrap();
        assert_eq!(s.requests, 234_567);
        assert_eq!(s.errors, 10);
        assert!((s.rps - 23456.7).abs() < 1e-6);
        assert_eq!(s.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384 h2");
    }
}
