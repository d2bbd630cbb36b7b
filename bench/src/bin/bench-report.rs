//! Prints the markdown table and summary line for one `scripts/bench`
//! component from criterion's saved estimates.
use std::path::PathBuf;

use anyhow::{Context, bail};
use strait_bench::report;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let component = args
        .next()
        .context("usage: bench-report <component> <criterion-dir>")?;
    let dir = PathBuf::from(
        args.next()
            .context("usage: bench-report <component> <criterion-dir>")?,
    );
    match component.as_str() {
        "cluster" => cluster(&dir),
        other => bail!("no report for component {other:?}"),
    }
}

fn cluster(dir: &std::path::Path) -> anyhow::Result<()> {
    let ids = ["parse_baseline", "snapshot_build", "incremental_update"];
    let est = report::load(dir, "cluster_10000_services", &ids)?;
    println!("### cluster view, 10 000 services × 5 endpoints (20 000 objects)\n");
    println!("{}", report::markdown(&est, "parse_baseline"));
    let (base, build, incr) = (est[0].median_ns, est[1].median_ns, est[2].median_ns);
    println!(
        "cluster: snapshot_build_ms={:.1} parse_baseline_ms={:.1} ratio={:.2} incremental_update_us={:.1}",
        build / 1e6,
        base / 1e6,
        build / base,
        incr / 1e3
    );
    Ok(())
}
