//! What the ClusterIP and NodePort reports and command lines share: tool
//! versions, the machine's load, the CPU pinning sentence, and the list
//! arguments (`--sizes`, `--modes`), so both benches say and parse them the
//! same way.

use anyhow::Context;

/// `<program> --version`, first line trimmed; empty when it cannot run.
pub fn tool_version(program: &str) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `/proc/loadavg`, for the report's machine line.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Where the client and the backends ran (`cpus` = (client, backend)).
pub fn pinning(cpus: Option<(usize, usize)>, backends: &str) -> String {
    match cpus {
        Some((c, b)) => {
            format!("client pinned to CPU {c}, {backends} (and this process) to CPU {b}")
        }
        None => "no pinning (fewer than 2 CPUs)".into(),
    }
}

/// `--sizes 100,1000`.
pub fn parse_sizes(value: &str) -> anyhow::Result<Vec<usize>> {
    value
        .split(',')
        .map(|x| x.parse().with_context(|| format!("bad size {x:?}")))
        .collect()
}

/// `--modes a,b`: the named members of `all`, in the order given.
pub fn parse_modes<M: Copy>(
    value: &str,
    all: &[M],
    name: impl Fn(&M) -> &'static str,
) -> anyhow::Result<Vec<M>> {
    value
        .split(',')
        .map(|m| {
            all.iter()
                .find(|x| name(x) == m)
                .copied()
                .with_context(|| format!("unknown mode {m}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_unknown_names_are_errors() {
        assert_eq!(parse_sizes("100,1000").unwrap(), vec![100, 1000]);
        assert!(parse_sizes("100,x").is_err());
        let all = ["a", "b", "c"];
        assert_eq!(parse_modes("c,a", &all, |m| m).unwrap(), vec!["c", "a"]);
        assert!(parse_modes("d", &all, |m| m).is_err());
    }
}
