//! `scripts/bench cni`: strait-cni against the reference `bridge` +
//! `host-local` plugins, ADD then DEL on fresh pod namespaces (serial, in
//! parallel, and with many existing allocations). Needs root.
//!
//! usage: bench-cni --plugin PATH [--iterations N] [--parallel N] [--quick]

use std::path::PathBuf;

use anyhow::{Context, bail};
use strait_bench::cni::{self, Bench, Plugin, Sample, percentile};

struct Args {
    plugin: PathBuf,
    iterations: usize,
    parallel: usize,
    prefill_iterations: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        plugin: PathBuf::new(),
        iterations: 200,
        parallel: 50,
        prefill_iterations: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--plugin" => args.plugin = PathBuf::from(value()?),
            "--iterations" => args.iterations = value()?.parse()?,
            "--parallel" => args.parallel = value()?.parse()?,
            "--quick" => {
                args.iterations = 30;
                args.parallel = 10;
                args.prefill_iterations = 10;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if args.plugin.as_os_str().is_empty() {
        bail!(
            "usage: bench-cni --plugin PATH-TO-strait-cni [--iterations N] [--parallel N] [--quick]"
        );
    }
    Ok(args)
}

fn row(name: &str, samples: &[Sample], baseline_p50: Option<f64>) -> (String, f64) {
    let add: Vec<f64> = samples.iter().map(|s| s.add_ms).collect();
    let del: Vec<f64> = samples.iter().map(|s| s.del_ms).collect();
    let both: Vec<f64> = samples.iter().map(|s| s.add_ms + s.del_ms).collect();
    let p50 = percentile(&both, 50.0);
    let ratio = baseline_p50.map_or_else(
        || "1.00 (baseline)".to_owned(),
        |b| format!("{:.2}", p50 / b),
    );
    (
        format!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {p50:.2} | {:.2} | {ratio} |",
            percentile(&add, 50.0),
            percentile(&add, 99.0),
            percentile(&del, 50.0),
            percentile(&del, 99.0),
            percentile(&both, 99.0),
        ),
        p50,
    )
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !strait_tests::require_root() {
        bail!("bench-cni needs root (network namespaces and veths)");
    }
    let reference_bin = PathBuf::from(cni::REFERENCE_DIR).join("bridge");
    if !reference_bin.exists() {
        bail!(
            "{} is missing: install containernetworking-plugins (scripts/setup does)",
            reference_bin.display()
        );
    }
    let plugin = std::fs::canonicalize(&args.plugin)
        .with_context(|| format!("{}", args.plugin.display()))?;

    // Serial ADD+DEL, reference first (the baseline).
    let ref_dir = tempfile::tempdir()?;
    let strait_dir = tempfile::tempdir()?;
    let reference = Bench::new(Plugin::reference(ref_dir.path()))?;
    let strait = Bench::new(Plugin::strait(&plugin, strait_dir.path()))?;
    // Warm the page cache and the binaries.
    reference.serial(3)?;
    strait.serial(3)?;
    let ref_samples = reference.serial(args.iterations)?;
    let strait_samples = strait.serial(args.iterations)?;
    println!(
        "### CNI ADD then DEL on a fresh pod netns, {} iterations each (ms)\n",
        args.iterations
    );
    println!(
        "| plugin | ADD p50 | ADD p99 | DEL p50 | DEL p99 | ADD+DEL p50 | ADD+DEL p99 | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (line, ref_p50) = row("bridge+host-local", &ref_samples, None);
    println!("{line}");
    let (line, strait_p50) = row("strait-cni", &strait_samples, Some(ref_p50));
    println!("{line}\n");

    // Parallel.
    println!(
        "### {} ADDs in parallel, then {} DELs (ms)\n",
        args.parallel, args.parallel
    );
    println!(
        "| plugin | ADD batch wall | ADD p50 | ADD p99 | DEL batch wall | DEL p50 | DEL p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for bench in [&reference, &strait] {
        let p = bench.parallel(args.parallel)?;
        let name = if std::ptr::eq(bench, &reference) {
            "bridge+host-local"
        } else {
            "strait-cni"
        };
        println!(
            "| {name} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} |",
            p.add_wall_ms,
            percentile(&p.add_ms, 50.0),
            percentile(&p.add_ms, 99.0),
            p.del_wall_ms,
            percentile(&p.del_ms, 50.0),
            percentile(&p.del_ms, 99.0),
        );
    }
    drop((reference, strait));

    // Flat in the number of existing allocations?
    println!(
        "\n### ADD+DEL p50 with existing allocations, {} iterations each (ms)\n",
        args.prefill_iterations
    );
    println!("| existing allocations | strait-cni | bridge+host-local |");
    println!("|---|---|---|");
    for n in [1usize, 1_000, 10_000] {
        let sd = tempfile::tempdir()?;
        cni::prefill_strait(sd.path(), n)?;
        let s = Bench::new(Plugin::strait(&plugin, sd.path()))?.serial(args.prefill_iterations)?;
        let rd = tempfile::tempdir()?;
        cni::prefill_host_local(rd.path(), n)?;
        let r = Bench::new(Plugin::reference(rd.path()))?.serial(args.prefill_iterations)?;
        let p50 = |v: &[Sample]| {
            percentile(
                &v.iter().map(|s| s.add_ms + s.del_ms).collect::<Vec<_>>(),
                50.0,
            )
        };
        println!("| {n} | {:.2} | {:.2} |", p50(&s), p50(&r));
    }
    println!();

    let (floor_del, floor_exec) = cni::veth_delete_floor(args.iterations)?;
    let (floor_del, floor_exec) = (percentile(&floor_del, 50.0), percentile(&floor_exec, 50.0));
    let strait_add = percentile(
        &strait_samples.iter().map(|s| s.add_ms).collect::<Vec<_>>(),
        50.0,
    );
    println!(
        "### The kernel's share of DEL, {} iterations (ms)\n",
        args.iterations
    );
    println!(
        "| `ip link del` of an up veth pair (p50) | exec of `true` (p50) | best ratio for strait's ADD p50 + that DEL |"
    );
    println!("|---|---|---|");
    println!(
        "| {floor_del:.2} | {floor_exec:.2} | {:.2} |\n",
        (strait_add + floor_del) / ref_p50
    );
    println!(
        "cni: strait_p50_ms={strait_p50:.2} reference_p50_ms={ref_p50:.2} ratio={:.2}",
        strait_p50 / ref_p50
    );
    Ok(())
}
