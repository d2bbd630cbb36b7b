//! Reads criterion's estimates for a benchmark group and prints them as a
//! markdown table, so every `scripts/bench` run ends the same way.
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One benchmark's timing, in nanoseconds per iteration.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// The benchmark id within its group.
    pub id: String,
    /// Median time per iteration.
    pub median_ns: f64,
    /// Lower bound of the 95% confidence interval of the median.
    pub low_ns: f64,
    /// Upper bound of the 95% confidence interval of the median.
    pub high_ns: f64,
}

/// Loads `<criterion_dir>/<group>/<id>/new/estimates.json` for each id.
pub fn load(criterion_dir: &Path, group: &str, ids: &[&str]) -> anyhow::Result<Vec<Estimate>> {
    ids.iter()
        .map(|id| {
            let path: PathBuf = criterion_dir
                .join(group)
                .join(id)
                .join("new/estimates.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (did the benchmark run?)", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let get = |field: &str| -> anyhow::Result<f64> {
                v.pointer(&format!("/median/{field}"))
                    .and_then(serde_json::Value::as_f64)
                    .with_context(|| format!("{} has no median.{field}", path.display()))
            };
            Ok(Estimate {
                id: (*id).to_string(),
                median_ns: get("point_estimate")?,
                low_ns: get("confidence_interval/lower_bound")?,
                high_ns: get("confidence_interval/upper_bound")?,
            })
        })
        .collect()
}

/// Formats nanoseconds with a unit a reader can take in at a glance.
pub fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A markdown table of the estimates with each one's ratio to `baseline`.
pub fn markdown(estimates: &[Estimate], baseline: &str) -> String {
    let base = estimates
        .iter()
        .find(|e| e.id == baseline)
        .map(|e| e.median_ns);
    let mut out =
        String::from("| benchmark | median | 95% CI | ratio to baseline |\n|---|---|---|---|\n");
    for e in estimates {
        let ratio = base.map_or("-".into(), |b| format!("{:.2}", e.median_ns / b));
        out.push_str(&format!(
            "| {}{} | {} | {} – {} | {} |\n",
            e.id,
            if e.id == baseline { " (baseline)" } else { "" },
            human(e.median_ns),
            human(e.low_ns),
            human(e.high_ns),
            ratio
        ));
    }
    out
}
