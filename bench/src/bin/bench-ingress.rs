//! `scripts/bench ingress`: wrk (HTTP/1.1) and h2load (h2 over TLS) over
//! loopback against `strait ingress`, and against nginx-light configured
//! as the equivalent reverse proxy (the baseline), in the same run.
//!
//! Both proxies serve the same Ingress rules (strait from manifests, nginx
//! from the configuration ingress-nginx would render, tuned by hand), with
//! the same certificate, over the same echo backends (`strait echo`), with
//! keep-alive upstreams and as many nginx workers as strait has runtime
//! worker threads. The proxy under test is pinned to CPU 0; the load
//! generator and the echo backends share CPU 1. Each run records the CPU
//! time of every process (from /proc/PID/stat) and how busy each core was,
//! to say which side was the bottleneck. The two proxies take turns within
//! each round; the round with the median RPS is reported.
//!
//! Prints a markdown table and ends with
//! `ingress: strait_rps=X nginx_rps=Y ratio=Z tls_ratio=W` (plain HTTP RPS;
//! the ratios are strait / nginx for plain HTTP and for TLS).
//!
//! usage: bench-ingress --strait PATH [--quick] [--seconds S] [--warmup S]
//!                      [--rounds R] [--connections C] [--streams M]
//!                      [--backends N] [--proxy-cpu LIST] [--client-cpu LIST]
//!                      [--backend-cpu LIST] [--nice N | --rr PRIO]
//!
//! Scheduling (the same for every process the benchmark starts, so for
//! both proxies): on a quiet machine (1-minute load average ≤ 1) they run
//! at nice -10; on a busy one SCHED_RR priority 10, because with CFS/EEVDF
//! each wake-up of a pinned process can wait out the slice of a CPU-bound
//! process on its CPU, and a proxied request is a chain of wake-ups: the
//! measurement would then be of the other work, not of the proxies (nice
//! -20 does not help). `--nice N` or `--rr PRIO` chooses explicitly.

#[path = "../ingress/mod.rs"]
mod ingress;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ingress::load::{self, Accounted, LoadShape, Protocol, Sample};
use ingress::procs::{self, Guard, NginxGuard, Sched, pinned};
use ingress::setup::{self, HOST, PATH};

struct Options {
    strait: PathBuf,
    seconds: u64,
    warmup: u64,
    rounds: usize,
    connections: usize,
    streams: usize,
    backends: usize,
    proxy_cpu: String,
    client_cpu: String,
    backend_cpu: Option<String>,
    sched: Option<Sched>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        strait: PathBuf::new(),
        seconds: 20,
        warmup: 3,
        rounds: 3,
        connections: 64,
        streams: 1,
        backends: 4,
        proxy_cpu: "0".into(),
        client_cpu: "1".into(),
        backend_cpu: None,
        sched: None,
    };
    let mut strait = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--strait" => strait = Some(PathBuf::from(value()?)),
            "--quick" => {
                o.seconds = 10;
                o.warmup = 2;
                o.rounds = 1;
            }
            "--seconds" => o.seconds = value()?.parse()?,
            "--warmup" => o.warmup = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse::<usize>()?.max(1),
            "--connections" => o.connections = value()?.parse()?,
            "--streams" => o.streams = value()?.parse()?,
            "--backends" => o.backends = value()?.parse::<usize>()?.max(1),
            "--proxy-cpu" => o.proxy_cpu = value()?,
            "--client-cpu" => o.client_cpu = value()?,
            "--backend-cpu" => o.backend_cpu = Some(value()?),
            "--nice" => o.sched = Some(Sched::Nice(value()?.parse()?)),
            "--rr" => o.sched = Some(Sched::RoundRobin(value()?.parse()?)),
            other => bail!("unknown argument {other}"),
        }
    }
    o.strait = strait.context("--strait PATH is required")?;
    Ok(o)
}

/// A plain HTTP/1.1 GET of [`PATH`] for [`HOST`]: status line and body.
fn http_get(port: u16) -> anyhow::Result<(String, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    Ok((status, body.to_owned()))
}

/// Waits until `port` answers [`PATH`] with 200 from an echo backend.
fn wait_ready(port: u16, child: &mut Guard, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        procs::check_interrupted()?;
        child.check_alive()?;
        if let Ok((status, body)) = http_get(port)
            && status.contains(" 200 ")
            && body.contains("\"pod\"")
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{what} not answering {PATH} with 200 after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The request header names an echo backend saw, from its JSON answer.
fn header_names(body: &str) -> anyhow::Result<BTreeSet<String>> {
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).with_context(|| format!("not an echo reply: {body}"))?;
    Ok(v.get("headers")
        .and_then(|h| h.as_object())
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default())
}

/// What one proxy looks like from outside: plain and TLS both answered by
/// an echo backend, the TLS one over h2 with the bench certificate
/// verified (curl), and the header names the backend received.
struct Probe {
    plain_headers: BTreeSet<String>,
    tls_headers: BTreeSet<String>,
}

fn probe(name: &str, http: u16, https: u16, cert: &Path) -> anyhow::Result<Probe> {
    let (status, body) = http_get(http)?;
    if !status.contains(" 200 ") {
        bail!("{name}: plain GET {PATH} gave {status}");
    }
    let plain_headers = header_names(&body)?;
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "5", "--cacert"])
        .arg(cert)
        .args(["--resolve", &format!("{HOST}:{https}:127.0.0.1")])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://{HOST}:{https}{PATH}"))
        .output()
        .context("running curl (scripts/setup installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    if !out.status.success() || last.trim() != "2 200" {
        bail!(
            "{name}: curl over TLS with the bench certificate gave {last:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Probe {
        plain_headers,
        tls_headers: header_names(body)?,
    })
}

/// One proxy under test.
struct Target {
    name: &'static str,
    http: u16,
    https: u16,
}

/// The median-RPS sample of a list.
fn median(samples: &[Sample]) -> Sample {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    v[v.len() / 2].clone()
}

/// Which side limited the run: the proxy's CPU (CPU 0), the load side's
/// (CPU 1: wrk/h2load and the echo backends), or neither. A CPU that is
/// full without our processes filling it says how much went to softirq and
/// to other processes on the machine.
fn bottleneck(s: &Sample, cores: &Cores) -> String {
    let load_side = s.client_cpu + if cores.shared { s.backend_cpu } else { 0.0 };
    let core = |cpu: Option<usize>| cpu.and_then(|c| s.cores.get(c)).copied();
    let full = |cpu: Option<usize>, ours: f64, label: &str| {
        core(cpu)
            .filter(|&(busy, _)| busy >= 0.95)
            .map(|(busy, softirq)| {
                format!(
                    "{label} full: {} ours, {} softirq, {} other processes",
                    pct(ours),
                    pct(softirq),
                    pct((busy - ours - softirq).max(0.0))
                )
            })
    };
    if s.proxy_cpu >= 0.9 {
        "proxy (its CPU saturated)".into()
    } else if load_side >= 0.9 {
        "load side (client + echo CPU saturated)".into()
    } else if let Some(why) = full(cores.proxy, s.proxy_cpu, "proxy CPU") {
        why
    } else if let Some(why) = full(cores.client, load_side, "load CPU") {
        why
    } else {
        "neither CPU saturated (latency-bound)".into()
    }
}

/// Which single CPUs the processes sit on (for the core columns).
struct Cores {
    proxy: Option<usize>,
    client: Option<usize>,
    /// Client and backends share their CPU.
    shared: bool,
}

/// The kernel's RT bandwidth limit, as text.
fn rt_throttle() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    match (read("sched_rt_runtime_us"), read("sched_rt_period_us")) {
        (Some(r), Some(p)) if r >= 0 => format!("{} of every {} ms", r / 1000, p / 1000),
        _ => "off here".to_owned(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn main() -> anyhow::Result<()> {
    let opts = options()?;
    procs::catch_signals();
    let backend_cpu = opts
        .backend_cpu
        .clone()
        .unwrap_or_else(|| opts.client_cpu.clone());
    let cores = Cores {
        proxy: opts.proxy_cpu.parse().ok(),
        client: opts.client_cpu.parse().ok(),
        shared: backend_cpu == opts.client_cpu,
    };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1: f64 = loadavg
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    let busy_machine = load1 > 1.0;
    let sched = opts.sched.unwrap_or(if busy_machine {
        Sched::RoundRobin(10)
    } else {
        Sched::Nice(-10)
    });

    let dir = tempfile::Builder::new()
        .prefix("strait-bench-ingress-")
        .tempdir()
        .context("creating the work directory")?;
    let root = dir.path();
    for sub in ["manifests", "body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    let ports = setup::free_ports(opts.backends + 4)?;
    let (backend_ports, proxy_ports) = ports.split_at(opts.backends);
    let (crt, key) = setup::certificate(root)?;

    // The echo backends.
    let mut backends = Vec::new();
    let mut backend_addrs = Vec::new();
    for (i, &port) in backend_ports.iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = pinned(sched, &backend_cpu, &opts.strait);
        cmd.args(["echo", "--name", &format!("echo-{i}"), "--listen"])
            .arg(addr.to_string())
            .env("STRAIT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        backends.push(Guard::spawn(&mut cmd, "strait echo")?);
        backend_addrs.push(addr);
    }
    for (b, addr) in backends.iter_mut().zip(&backend_addrs) {
        wait_ready(addr.port(), b, "strait echo")?;
    }
    let backend_pids: Vec<u32> = backends.iter().map(Guard::id).collect();

    // strait ingress.
    std::fs::write(
        root.join("manifests/bench.yaml"),
        setup::manifests(&backend_addrs, &crt, &key),
    )?;
    let strait_t = Target {
        name: "strait ingress",
        http: proxy_ports[0],
        https: proxy_ports[1],
    };
    let mut cmd = pinned(sched, &opts.proxy_cpu, &opts.strait);
    cmd.args(["ingress", "--no-access-log", "--manifests"])
        .arg(root.join("manifests"))
        .args(["--http", &format!("127.0.0.1:{}", strait_t.http)])
        .args(["--https", &format!("127.0.0.1:{}", strait_t.https)])
        .env("STRAIT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut strait = Guard::spawn(&mut cmd, "strait ingress")?;
    let strait_ready = wait_ready(strait_t.http, &mut strait, "strait ingress")?;
    let workers = procs::tokio_workers(strait.id()).max(1);

    // nginx, with as many workers as strait has worker threads.
    let nginx_t = Target {
        name: "nginx-light",
        http: proxy_ports[2],
        https: proxy_ports[3],
    };
    let conf = setup::nginx_conf(&setup::NginxSetup {
        dir: root,
        workers,
        http: nginx_t.http,
        https: nginx_t.https,
        backends: &backend_addrs,
    });
    std::fs::write(root.join("nginx.conf"), &conf)?;
    let mut cmd = pinned(sched, &opts.proxy_cpu, "nginx");
    cmd.arg("-p")
        .arg(root)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut nginx = NginxGuard(Guard::spawn(
        &mut cmd,
        "nginx (scripts/setup installs nginx-light)",
    )?);
    let nginx_ready = wait_ready(nginx_t.http, &mut nginx.0, "nginx")?;
    let nginx_workers = nginx.workers().len();
    let nginx_version = Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();

    // Both answer the same way before anything is measured.
    let cert = root.join("tls.crt");
    let probe_s = probe(strait_t.name, strait_t.http, strait_t.https, &cert)?;
    let probe_n = probe(nginx_t.name, nginx_t.http, nginx_t.https, &cert)?;

    let shape = LoadShape {
        connections: opts.connections,
        streams: opts.streams,
        seconds: opts.seconds,
        warmup: opts.warmup,
        cpu: opts.client_cpu.clone(),
        sched,
    };
    let protocols = [Protocol::Plain, Protocol::Tls];
    // samples[target][protocol] over the rounds.
    let mut samples: [[Vec<Sample>; 2]; 2] = Default::default();
    for round in 0..opts.rounds {
        for (pi, &protocol) in protocols.iter().enumerate() {
            // Alternate who goes first, so neither always runs on a warmer
            // (or busier) machine.
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for ti in order {
                let (target, proxy_pids) = if ti == 0 {
                    strait.check_alive()?;
                    (&strait_t, vec![strait.id()])
                } else {
                    nginx.0.check_alive()?;
                    (&nginx_t, nginx.pids())
                };
                let port = match protocol {
                    Protocol::Plain => target.http,
                    Protocol::Tls => target.https,
                };
                let s = load::run(
                    protocol,
                    port,
                    &shape,
                    &Accounted {
                        proxy: &proxy_pids,
                        backends: &backend_pids,
                    },
                    root,
                )
                .with_context(|| format!("{} over {}", target.name, protocol.label()))?;
                eprintln!(
                    "bench-ingress: round {}/{} {} {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, proxy CPU {}",
                    round + 1,
                    opts.rounds,
                    target.name,
                    protocol.label(),
                    s.rps,
                    s.p50_ms,
                    s.p99_ms,
                    pct(s.proxy_cpu)
                );
                samples[ti][pi].push(s);
            }
        }
    }
    let strait_rss = procs::rss_mib(strait.id());
    let nginx_rss: f64 = nginx.pids().iter().map(|&p| procs::rss_mib(p)).sum();
    drop(nginx);
    drop(strait);
    drop(backends);

    let med = |t: usize, p: usize| median(&samples[t][p]);
    let core_label = |c: Option<usize>| c.map_or_else(|| "-".into(), |c| format!("CPU {c}"));
    println!(
        "| proxy | load | RPS | p50 (ms) | p99 (ms) | errors | proxy CPU | proxy µs/req | client CPU | echo CPU | {} busy | {} busy | bottleneck |",
        core_label(cores.proxy),
        core_label(cores.client)
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (pi, &protocol) in protocols.iter().enumerate() {
        for (ti, target) in [&strait_t, &nginx_t].into_iter().enumerate() {
            let s = med(ti, pi);
            let busy = |c: Option<usize>| {
                c.and_then(|c| s.cores.get(c))
                    .map_or_else(|| "-".into(), |&(b, _)| pct(b))
            };
            println!(
                "| {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
                target.name,
                protocol.label(),
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.errors,
                pct(s.proxy_cpu),
                s.proxy_us_per_req,
                pct(s.client_cpu),
                pct(s.backend_cpu),
                busy(cores.proxy),
                busy(cores.client),
                bottleneck(&s, &cores)
            );
        }
    }
    println!();
    println!(
        "Loopback, {} echo backends (`strait echo`) on CPU {backend_cpu}; proxies on CPU {} \
         (strait: {workers} tokio worker thread(s); {nginx_version}: {nginx_workers} worker process(es)); \
         wrk/h2load on CPU {}; all at {}. {} connections (h2: {} stream(s) each), GET {PATH} for {HOST}. \
         {} s measured after {} s warm-up; {} round(s), proxies alternating, median-RPS round shown. \
         CPU columns are cores used (100% = one core) from /proc/PID/stat; \"busy\" is the whole CPU from /proc/stat. \
         Load average at start: {}.",
        opts.backends,
        opts.proxy_cpu,
        opts.client_cpu,
        sched,
        opts.connections,
        opts.streams,
        opts.seconds,
        opts.warmup,
        opts.rounds,
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if busy_machine {
        println!();
        println!(
            "**The machine was not idle** (load average {load1:.1} before the benchmark started). \
             {}",
            match sched {
                Sched::RoundRobin(_) => format!(
                    "Everything ran SCHED_RR so that the other work does not delay our wake-ups. \
                     RT throttling ({}) pauses a CPU that runs only RT tasks for the rest of each \
                     period: a p99 near 40-50 ms on a saturated CPU is that pause, not the proxy.",
                    rt_throttle()
                ),
                Sched::Nice(_) => "Under CFS the other work delays every wake-up of ours: RPS and \
                    latency measure the machine more than the proxies; proxy µs/req (CPU time per \
                    request) is the sturdier comparison. Run with `--rr 10`."
                    .to_owned(),
            }
        );
    }
    println!();
    let tls_s = med(0, 1).tls;
    let tls_n = med(1, 1).tls;
    println!(
        "- TLS negotiated (h2load): strait `{tls_s}`, nginx `{tls_n}`; same ECDSA P-256 certificate, verified by curl over h2 on both."
    );
    let same = probe_s.plain_headers == probe_n.plain_headers
        && probe_s.tls_headers == probe_n.tls_headers;
    if same {
        println!(
            "- Request headers the backends received are the same on both: {}.",
            probe_s
                .plain_headers
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        let list = |h: &BTreeSet<String>| h.iter().cloned().collect::<Vec<_>>().join(", ");
        println!(
            "- Request headers the backends received: strait plain [{}] TLS [{}]; nginx plain [{}] TLS [{}].",
            list(&probe_s.plain_headers),
            list(&probe_s.tls_headers),
            list(&probe_n.plain_headers),
            list(&probe_n.tls_headers)
        );
    }
    println!(
        "- Ready after: strait {:.2} s, nginx {:.2} s. RSS after the runs: strait {strait_rss:.1} MiB, nginx (master + workers) {nginx_rss:.1} MiB.",
        strait_ready.as_secs_f64(),
        nginx_ready.as_secs_f64()
    );
    if opts.rounds > 1 {
        for (pi, &protocol) in protocols.iter().enumerate() {
            for (ti, target) in [&strait_t, &nginx_t].into_iter().enumerate() {
                let rps: Vec<String> = samples[ti][pi]
                    .iter()
                    .map(|s| format!("{:.0}", s.rps))
                    .collect();
                println!(
                    "- Rounds, {} {}: {} req/s.",
                    target.name,
                    protocol.label(),
                    rps.join(", ")
                );
            }
        }
    }
    let (sp, np, st, nt) = (med(0, 0), med(1, 0), med(0, 1), med(1, 1));
    let ratio = sp.rps / np.rps;
    let tls_ratio = st.rps / nt.rps;
    let verdict = |s: &Sample, n: &Sample| {
        let rps = if s.rps >= n.rps { "met" } else { "missed" };
        let p99 = if s.p99_ms <= n.p99_ms {
            "met"
        } else {
            "missed"
        };
        format!("RPS ≥ 1× nginx {rps}, p99 no worse {p99}")
    };
    println!(
        "- Targets: plain {}; TLS {}. Proxy CPU per request: plain strait {:.1} µs vs nginx {:.1} µs; TLS strait {:.1} µs vs nginx {:.1} µs.",
        verdict(&sp, &np),
        verdict(&st, &nt),
        sp.proxy_us_per_req,
        np.proxy_us_per_req,
        st.proxy_us_per_req,
        nt.proxy_us_per_req
    );
    println!();
    println!(
        "ingress: strait_rps={:.0} nginx_rps={:.0} ratio={ratio:.2} tls_ratio={tls_ratio:.2}",
        sp.rps, np.rps
    );
    drop(dir);
    Ok(())
}
