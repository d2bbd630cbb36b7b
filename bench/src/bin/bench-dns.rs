//! `scripts/bench dns`: dnsperf over loopback against `strait dns` serving
//! 10 000 services from manifests, and against unbound serving the same
//! names as local data (the baseline), in the same run.
//!
//! Each server is pinned to CPU 0 and dnsperf to CPU 1 with taskset. The
//! query mix is the cluster-zone mix of the DNS issue: A, SRV, PTR and
//! NXDOMAIN search expansions in equal parts. Prints a markdown table and
//! ends with `dns: qps=X baseline=Y ratio=Z rss_mib=M`.
//!
//! Usage: bench-dns --strait PATH [--services N] [--seconds S] [--quick]

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strait_bench::workload::services_yaml;

const ZONE: &str = "cluster.local";
const STRAIT_PORT: u16 = 25353;
const UNBOUND_PORT: u16 = 25354;
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";

struct Options {
    strait: PathBuf,
    services: usize,
    seconds: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut strait = None;
    let mut services = 10_000;
    let mut seconds = 10;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--strait" => strait = args.next().map(PathBuf::from),
            "--services" => services = args.next().context("--services N")?.parse()?,
            "--seconds" => seconds = args.next().context("--seconds S")?.parse()?,
            "--quick" => seconds = 3,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(Options {
        strait: strait.context("--strait PATH is required")?,
        services,
        seconds,
    })
}

/// The VIP of service `i`, as `bench::workload` assigns it.
fn vip(i: usize) -> [u8; 4] {
    [10, 96 + (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

/// The dnsperf input: A, SRV, PTR and a search expansion, per service, in
/// a shuffled service order.
fn queries(services: usize) -> String {
    let mut order: Vec<usize> = (0..services).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let mut out = String::new();
    for i in order {
        let [a, b, c, d] = vip(i);
        let _ = writeln!(out, "svc-{i}.bench.svc.{ZONE} A");
        let _ = writeln!(out, "_http._tcp.svc-{i}.bench.svc.{ZONE} SRV");
        let _ = writeln!(out, "{d}.{c}.{b}.{a}.in-addr.arpa PTR");
        let _ = writeln!(out, "www.example-{i}.com.bench.svc.{ZONE} A");
    }
    out
}

/// unbound serving the same names as static local data, tuned as its
/// documentation advises for speed (one thread per core, reuseport, large
/// caches, no validator).
fn unbound_conf(dir: &Path, services: usize) -> String {
    let mut out = format!(
        "server:\n  interface: 127.0.0.1\n  port: {UNBOUND_PORT}\n  do-ip6: no\n  do-daemonize: no\n\
         \x20 username: \"\"\n  chroot: \"\"\n  directory: \"{}\"\n  pidfile: \"\"\n  use-syslog: no\n\
         \x20 logfile: \"\"\n  verbosity: 0\n  num-threads: 1\n  so-reuseport: yes\n\
         \x20 msg-cache-size: 256m\n  rrset-cache-size: 512m\n  num-queries-per-thread: 4096\n\
         \x20 so-rcvbuf: 4m\n  so-sndbuf: 4m\n  module-config: \"iterator\"\n\
         \x20 access-control: 127.0.0.0/8 allow\n  local-zone: \"{ZONE}.\" static\n\
         \x20 local-zone: \"10.in-addr.arpa.\" static\n",
        dir.display()
    );
    for i in 0..services {
        let [a, b, c, d] = vip(i);
        let name = format!("svc-{i}.bench.svc.{ZONE}.");
        let _ = writeln!(out, "  local-data: \"{name} 30 IN A {a}.{b}.{c}.{d}\"");
        let _ = writeln!(
            out,
            "  local-data: \"_http._tcp.{name} 30 IN SRV 0 100 80 {name}\""
        );
        let _ = writeln!(out, "  local-data-ptr: \"{a}.{b}.{c}.{d} 30 {name}\"");
    }
    out
}

/// A raw A query for `name` (the readiness probe; no DNS library needed).
fn probe(port: u16, name: &str) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if socket.send_to(&q, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    // NOERROR with one answer.
    matches!(socket.recv(&mut buf), Ok(n) if n > 12 && buf[3] & 0x0f == 0 && buf[7] == 1)
}

fn wait_ready(port: u16, child: &mut Child, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !probe(port, &format!("svc-0.bench.svc.{ZONE}")) {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited early: {status}");
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{what} not answering after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(started.elapsed())
}

/// A process killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds (user + system) used so far by `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / USER_HZ
}

/// The kernel's USER_HZ (clock ticks in /proc), 100 on every Linux
/// architecture we run on.
const USER_HZ: f64 = 100.0;

struct Run {
    qps: f64,
    avg_latency_ms: f64,
    lost: String,
    server_cpu: f64,
    client_cpu: f64,
}

fn dnsperf(port: u16, queries: &Path, seconds: u64, server_pid: u32) -> anyhow::Result<Run> {
    let cpu0 = cpu_seconds(server_pid);
    let started = Instant::now();
    let child = Command::new("taskset")
        .args(["-c", CLIENT_CPU, "dnsperf", "-s", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .arg("-d")
        .arg(queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "16",
            "-q",
            "1000",
            "-T",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running dnsperf (scripts/setup installs it)")?;
    // Sample dnsperf's CPU while it runs (it is gone once reaped).
    let client_pid = child.id();
    let mut client_cpu_s = 0.0;
    let mut child = child;
    while child.try_wait()?.is_none() {
        let now = cpu_seconds(client_pid);
        if now > 0.0 {
            client_cpu_s = now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = (cpu_seconds(server_pid) - cpu0) / wall;
    let client_cpu = client_cpu_s / wall;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let value = |key: &str| -> Option<String> {
        let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
        Some(line.split(':').nth(1)?.trim().to_owned())
    };
    let qps: f64 = value("Queries per second")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no QPS in dnsperf output:\n{text}"))?;
    let avg = value("Average Latency (s)")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let lost = value("Queries lost").unwrap_or_default();
    Ok(Run {
        qps,
        avg_latency_ms: avg * 1000.0,
        lost,
        server_cpu,
        client_cpu,
    })
}

fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let dir = std::env::temp_dir().join(format!("strait-bench-dns-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("manifests"))?;
    let _cleanup = Cleanup(dir.clone());
    std::fs::write(
        dir.join("manifests/bench.yaml"),
        services_yaml(opts.services),
    )?;
    let query_file = dir.join("queries.txt");
    std::fs::write(&query_file, queries(opts.services))?;
    std::fs::write(dir.join("unbound.conf"), unbound_conf(&dir, opts.services))?;

    // strait dns, pinned to the server CPU.
    let mut strait = Guard(
        Command::new("taskset")
            .args(["-c", SERVER_CPU])
            .arg(&opts.strait)
            .args(["dns", "--manifests"])
            .arg(dir.join("manifests"))
            .args(["--listen", &format!("127.0.0.1:{STRAIT_PORT}")])
            .args(["--upstream", "127.0.0.1:9", "--zone", ZONE])
            .env("STRAIT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting strait dns")?,
    );
    let load = wait_ready(STRAIT_PORT, &mut strait.0, "strait dns")?;
    let pid = strait.0.id();
    let rss_loaded = proc_field(pid, "status", "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    let ours = dnsperf(STRAIT_PORT, &query_file, opts.seconds, pid)?;
    let rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    drop(strait);

    // unbound, same CPU.
    let mut unbound = Guard(
        Command::new("taskset")
            .args(["-c", SERVER_CPU, "unbound", "-d", "-c"])
            .arg(dir.join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting unbound (scripts/setup installs it)")?,
    );
    let unbound_load = wait_ready(UNBOUND_PORT, &mut unbound.0, "unbound")?;
    let upid = unbound.0.id();
    let base = dnsperf(UNBOUND_PORT, &query_file, opts.seconds, upid)?;
    let unbound_rss = proc_field(upid, "status", "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    drop(unbound);

    let ratio = ours.qps / base.qps;
    let objects = opts.services * (1 + strait_bench::workload::ENDPOINTS_PER_SERVICE);
    let budget = 60.0 + objects as f64 / 1024.0;
    println!(
        "| server | QPS | avg latency (ms) | lost | server CPU | dnsperf CPU | RSS (MiB) | ready after |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    println!(
        "| strait dns | {:.0} | {:.3} | {} | {:.0}% | {:.0}% | {rss:.1} (loaded {rss_loaded:.1}) | {:.1} s |",
        ours.qps,
        ours.avg_latency_ms,
        ours.lost,
        ours.server_cpu * 100.0,
        ours.client_cpu * 100.0,
        load.as_secs_f64()
    );
    println!(
        "| unbound (local-data) | {:.0} | {:.3} | {} | {:.0}% | {:.0}% | {unbound_rss:.1} | {:.1} s |",
        base.qps,
        base.avg_latency_ms,
        base.lost,
        base.server_cpu * 100.0,
        base.client_cpu * 100.0,
        unbound_load.as_secs_f64()
    );
    println!();
    println!(
        "{} services, {} endpoints; mix A/SRV/PTR/NXDOMAIN 1:1:1:1; servers on CPU {SERVER_CPU}, \
         dnsperf on CPU {CLIENT_CPU}, {} s each. Memory budget {budget:.0} MiB.",
        opts.services,
        objects - opts.services,
        opts.seconds
    );
    for (name, run) in [("strait dns", &ours), ("unbound", &base)] {
        let bound = if run.server_cpu >= run.client_cpu && run.server_cpu > 0.9 {
            "server-bound (its CPU is saturated)"
        } else if run.client_cpu > 0.9 {
            "client-bound (dnsperf's CPU is saturated; the server had headroom)"
        } else {
            "neither CPU saturated (latency-bound)"
        };
        println!("{name}: {bound}");
    }
    println!(
        "dns: qps={:.0} baseline={:.0} ratio={ratio:.2} rss_mib={rss:.1}",
        ours.qps, base.qps
    );
    Ok(())
}

/// Removes the work directory.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
