//! CNI `ADD` then `DEL` latency, measured exactly as a runtime sees it: the
//! plugin is exec'd with `CNI_*` variables and its config on stdin, inside
//! a node network namespace, wiring a fresh pod namespace each time.
//!
//! Everything runs inside test namespaces built with the `strait-tests`
//! guards (the node, every pod), so no link or route ever appears in the
//! root namespace and everything is removed on drop.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use strait_cni::ipam::{Attachment, IpamConfig, Store};
use strait_tests::NetNs;

/// The pod CIDR both plugins allocate from (inside their node netns only).
pub const SUBNET: &str = "10.244.0.0/16";
/// The network name of both configurations.
pub const NETWORK: &str = "bench-cni";
/// Where Debian's containernetworking-plugins installs the reference.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// A plugin under test and its configuration.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// Short name for the report.
    pub name: &'static str,
    /// The executable.
    pub bin: PathBuf,
    /// `CNI_PATH` (where it finds delegated IPAM plugins).
    pub cni_path: String,
    /// The network configuration.
    pub config: Value,
}

impl Plugin {
    /// strait-cni in routed mode with its IPAM store under `data_dir`.
    pub fn strait(bin: &Path, data_dir: &Path) -> Plugin {
        Plugin {
            name: "strait-cni",
            bin: bin.to_owned(),
            cni_path: "/nonexistent".into(),
            config: json!({
                "cniVersion": "1.0.0", "name": NETWORK, "type": "strait-cni",
                "ipam": {"type": "strait-ipam", "subnet": SUBNET,
                         "dataDir": data_dir.display().to_string()},
            }),
        }
    }

    /// The reference: `bridge` + `host-local` on an equivalent config (no
    /// masquerade, so no iptables work that strait does not do either).
    pub fn reference(data_dir: &Path) -> Plugin {
        Plugin {
            name: "bridge+host-local",
            bin: Path::new(REFERENCE_DIR).join("bridge"),
            cni_path: REFERENCE_DIR.into(),
            config: json!({
                "cniVersion": "1.0.0", "name": NETWORK, "type": "bridge",
                "bridge": "cnibr0", "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                         "dataDir": data_dir.display().to_string()},
            }),
        }
    }
}

/// One ADD and its DEL, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// ADD latency.
    pub add_ms: f64,
    /// DEL latency.
    pub del_ms: f64,
}

/// A node namespace with the plugin's command ready to spawn.
pub struct Bench {
    node: NetNs,
    plugin: Plugin,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Bench {
    /// A fresh node netns for `plugin`.
    pub fn new(plugin: Plugin) -> anyhow::Result<Bench> {
        let node = NetNs::new("bench-cni-node").context("node netns")?;
        node.trust_links_created_by_product();
        Ok(Bench { node, plugin })
    }

    /// Run one command for container `id` in `pod` (or without netns) and
    /// return its latency. The namespace safety check runs before, outside
    /// the timed part.
    fn exec(
        &self,
        cmd: &mut Command,
        command: &str,
        id: &str,
        pod: Option<&NetNs>,
    ) -> anyhow::Result<Duration> {
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.plugin.cni_path)
            .env(
                "CNI_NETNS",
                pod.map(|p| p.path().display().to_string())
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let config = self.plugin.config.to_string();
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.plugin.bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(config.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let took = start.elapsed();
        if !out.status.success() {
            bail!(
                "{} {command} {id} failed: {} {}",
                self.plugin.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    }

    /// `iterations` times: a fresh pod netns, ADD, DEL.
    pub fn serial(&self, iterations: usize) -> anyhow::Result<Vec<Sample>> {
        let mut ns_cmd = self.node.command(&self.plugin.bin);
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let pod = NetNs::new("bench-cni-pod").context("pod netns")?;
            let id = format!("bench-{i}");
            let add = self.exec(ns_cmd.as_command_mut(), "ADD", &id, Some(&pod))?;
            let del = self.exec(ns_cmd.as_command_mut(), "DEL", &id, Some(&pod))?;
            samples.push(Sample {
                add_ms: ms(add),
                del_ms: ms(del),
            });
            if i % 50 == 49 {
                self.node.check_isolated().context("node isolation")?;
            }
        }
        self.node.check_isolated().context("node isolation")?;
        Ok(samples)
    }

    /// `n` ADDs in parallel (one pod netns each), then `n` DELs in
    /// parallel: each batch's wall time and each call's latency.
    pub fn parallel(&self, n: usize) -> anyhow::Result<Parallel> {
        let pods: Vec<NetNs> = (0..n)
            .map(|_| NetNs::new("bench-cni-par"))
            .collect::<Result<_, _>>()
            .context("pod netns")?;
        let batch = |command: &'static str| -> anyhow::Result<(f64, Vec<f64>)> {
            // Build (and safety-check) every command first: a check that
            // runs while other plugins are creating links sees them half
            // made.
            let cmds: Vec<_> = pods
                .iter()
                .map(|_| self.node.command(&self.plugin.bin))
                .collect();
            let start = Instant::now();
            let results: Vec<anyhow::Result<Duration>> = std::thread::scope(|s| {
                let handles: Vec<_> = pods
                    .iter()
                    .zip(cmds)
                    .enumerate()
                    .map(|(i, (pod, mut ns_cmd))| {
                        s.spawn(move || {
                            self.exec(
                                ns_cmd.as_command_mut(),
                                command,
                                &format!("par-{i}"),
                                Some(pod),
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
                    })
                    .collect()
            });
            let wall = ms(start.elapsed());
            let lat = results
                .into_iter()
                .map(|r| r.map(ms))
                .collect::<anyhow::Result<Vec<f64>>>()?;
            Ok((wall, lat))
        };
        let (add_wall_ms, add_ms) = batch("ADD")?;
        let (del_wall_ms, del_ms) = batch("DEL")?;
        Ok(Parallel {
            add_wall_ms,
            del_wall_ms,
            add_ms,
            del_ms,
        })
    }
}

/// The result of a parallel batch.
#[derive(Debug, Clone)]
pub struct Parallel {
    /// Wall time of all ADDs.
    pub add_wall_ms: f64,
    /// Wall time of all DELs.
    pub del_wall_ms: f64,
    /// Each ADD's latency.
    pub add_ms: Vec<f64>,
    /// Each DEL's latency.
    pub del_ms: Vec<f64>,
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Fill strait's store with `n` allocations made by its own allocator.
pub fn prefill_strait(data_dir: &Path, n: usize) -> anyhow::Result<()> {
    let ipam = IpamConfig::parse(Some(&json!({"subnet": SUBNET})))?;
    let store = Store::open(data_dir, NETWORK)?;
    for i in 0..n {
        store.allocate(
            &Attachment::new(format!("prefill-{i}"), "eth0"),
            &ipam.range_sets,
        )?;
    }
    Ok(())
}

/// Fill host-local's store with `n` allocations in its on-disk format
/// (`<dataDir>/<network>/<ip>` holding `id\r\nifname`, and
/// `last_reserved_ip.0`), as if it had allocated them.
pub fn prefill_host_local(data_dir: &Path, n: usize) -> anyhow::Result<()> {
    let dir = data_dir.join(NETWORK);
    std::fs::create_dir_all(&dir)?;
    let base = u32::from(std::net::Ipv4Addr::new(10, 244, 0, 0));
    let mut last = None;
    for i in 0..n {
        let ip = IpAddr::V4((base + 1 + u32::try_from(i)?).into());
        std::fs::write(dir.join(ip.to_string()), format!("prefill-{i}\r\neth0"))?;
        last = Some(ip);
    }
    if let Some(ip) = last {
        std::fs::write(dir.join("last_reserved_ip.0"), ip.to_string())?;
    }
    Ok(())
}

/// What the kernel alone charges any plugin that deletes its veth on DEL,
/// measured the same way as the plugins (one exec, timed from spawn to
/// exit): `ip link del` of a veth pair in a fresh pod netns, and `true` as
/// the cost of the exec itself. Without it a DEL figure cannot be read:
/// most of a DEL is RCU grace periods under RTNL, not plugin code.
pub fn veth_delete_floor(iterations: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut del = Vec::with_capacity(iterations);
    let mut exec = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let pod = NetNs::new("bench-cni-floor").context("floor netns")?;
        // The veth pair below lives wholly inside this namespace.
        pod.trust_links_created_by_product();
        pod.ip(&[
            "link", "add", "name", "a", "type", "veth", "peer", "name", "b",
        ])?;
        pod.ip(&["link", "set", "dev", "a", "up"])?;
        pod.ip(&["link", "set", "dev", "b", "up"])?;
        del.push(ms(timed(
            pod.command("ip")
                .args(["link", "del", "dev", "a"])
                .as_command_mut(),
        )?));
        exec.push(ms(timed(pod.command("true").as_command_mut())?));
    }
    Ok((del, exec))
}

fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).status()?;
    let took = start.elapsed();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
