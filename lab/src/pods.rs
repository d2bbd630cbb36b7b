//! A lab pod's life: a netns wired by the CNI plugin, a resolv.conf like the
//! kubelet writes, a cgroup under its node, and the process it runs.
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use strait_cluster::k8s_openapi::api::core::v1::Pod;

use crate::error::{LabError, Result};
use crate::paths::{LabPaths, pod_netns};
use crate::process::{self, Spawn};
use crate::state::{LabState, PodState, create_dir};
use crate::{cgroup, cni, netns};

/// Annotation choosing what a lab pod runs: `echo` (default), `dns`,
/// `ingress` or `none`.
pub const RUN_ANNOTATION: &str = "lab.strait.dev/run";
/// Annotation pinning a pod's address (passed to the CNI plugin as the
/// `ips` capability), for manifests that must name it in advance.
pub const IP_ANNOTATION: &str = "lab.strait.dev/ip";

/// Where `ip netns exec` finds a namespace's own /etc files.
pub const ETC_NETNS: &str = "/etc/netns";

/// What the lab makes of a Pod object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// What it runs.
    pub run: String,
    /// Ports its process serves.
    pub ports: Vec<u16>,
    /// A pinned address.
    pub ip: Option<IpAddr>,
}

impl PodPlan {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Plans `pod` on one of `nodes`: its `spec.nodeName`, or, like a
    /// scheduler, a node picked from its name when it has none. A pod bound
    /// to a node the lab does not have is an error naming `--nodes`.
    pub fn from_pod(pod: &Pod, nodes: &[String]) -> Result<PodPlan, String> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let node = match spec.and_then(|s| s.node_name.clone()) {
            Some(n) if nodes.contains(&n) => n,
            Some(n) => {
                return Err(format!(
                    "pod {namespace}/{name} is bound to node {n}, which the lab does not have \
                     (nodes: {}); raise --nodes or change spec.nodeName",
                    nodes.join(", ")
                ));
            }
            None => {
                let sum: usize = name.bytes().map(usize::from).sum();
                nodes
                    .get(sum % nodes.len().max(1))
                    .cloned()
                    .ok_or_else(|| "the lab has no nodes".to_string())?
            }
        };
        let run = annotations
            .get(RUN_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| "echo".into());
        let mut ports: Vec<u16> = spec
            .map(|s| s.containers.iter())
            .into_iter()
            .flatten()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let ports = match run.as_str() {
            "echo" if ports.is_empty() => vec![8080],
            "echo" => ports,
            "dns" => vec![53, 9153],
            "ingress" => vec![8080, 8443],
            "none" => Vec::new(),
            other => {
                return Err(format!(
                    "pod {namespace}/{name}: {RUN_ANNOTATION}: {other:?} is not one of echo, dns, ingress, none"
                ));
            }
        };
        let ip = match annotations.get(IP_ANNOTATION) {
            Some(v) => Some(v.parse().map_err(|_| {
                format!("pod {namespace}/{name}: {IP_ANNOTATION}: {v:?} is not an IP address")
            })?),
            None => None,
        };
        Ok(PodPlan {
            namespace,
            name,
            node,
            run,
            ports,
            ip,
        })
    }
}

/// The resolv.conf the kubelet would write for a pod in `namespace`.
pub fn resolv_conf(namespace: &str, dns_ip: IpAddr) -> String {
    format!(
        "# written by strait lab (like the kubelet's ClusterFirst policy)\n\
         nameserver {dns_ip}\n\
         search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n\
         options ndots:5\n"
    )
}

/// Creates the pod: netns, resolv.conf, cgroup, CNI ADD, process. The pod is
/// in the state file before anything exists, so a crash leaves nothing
/// `down` does not know about.
pub fn add(state: &mut LabState, paths: &LabPaths, plan: &PodPlan, dns_ip: IpAddr) -> Result<()> {
    let node = state
        .node(&plan.node)
        .cloned()
        .ok_or_else(|| LabError::State(format!("node {} is not in the lab", plan.node)))?;
    let ns = pod_netns(&plan.namespace, &plan.name);
    let mut pod = PodState {
        namespace: plan.namespace.clone(),
        name: plan.name.clone(),
        node: plan.node.clone(),
        netns: ns.clone(),
        container_id: format!("lab-{}-{}", plan.namespace, plan.name),
        ip: None,
        cgroup: node
            .cgroup
            .join("pods")
            .join(format!("{}_{}", plan.namespace, plan.name)),
        run: plan.run.clone(),
        ports: plan.ports.clone(),
        process: None,
        problem: None,
    };
    state.pods.insert(pod.key(), pod.clone());
    state.save(paths)?;

    netns::create(&ns)?;
    let etc = PathBuf::from(ETC_NETNS).join(&ns);
    create_dir(&etc)?;
    let resolv = etc.join("resolv.conf");
    std::fs::write(&resolv, resolv_conf(&plan.namespace, dns_ip))
        .map_err(LabError::io("writing a pod's resolv.conf", &resolv))?;
    cgroup::create(&pod.cgroup)?;
    pod.ip = Some(cni::add(state, paths, &node, &pod, plan.ip)?);
    state.pods.insert(pod.key(), pod.clone());
    state.save(paths)?;

    if let Some(spawn) = command(state, paths, &pod) {
        pod.process = Some(process::spawn(&spawn)?);
    }
    state.pods.insert(pod.key(), pod);
    state.save(paths)
}

/// What the pod's process is.
fn command(state: &LabState, paths: &LabPaths, pod: &PodState) -> Option<Spawn> {
    let cluster = paths.cluster_dir().display().to_string();
    let args: Vec<String> = match pod.run.as_str() {
        "echo" => {
            let mut a = vec!["echo".to_string(), "--name".into(), pod.name.clone()];
            for port in &pod.ports {
                a.push("--listen".into());
                a.push(format!("0.0.0.0:{port}"));
            }
            a
        }
        "dns" => [
            "dns",
            "--manifests",
            &cluster,
            "--listen",
            "0.0.0.0:53",
            "--http",
            "0.0.0.0:9153",
            "--no-forward",
            "--autopath",
        ]
        .map(String::from)
        .to_vec(),
        "ingress" => [
            "ingress",
            "--manifests",
            &cluster,
            "--http",
            "0.0.0.0:8080",
            "--https",
            "0.0.0.0:8443",
        ]
        .map(String::from)
        .to_vec(),
        _ => return None,
    };
    Some(Spawn {
        program: state.strait_bin.clone(),
        args,
        env: vec![("STRAIT_LOG".into(), "info".into())],
        netns: Some(pod.netns.clone()),
        cgroup: pod.cgroup.clone(),
        log: paths.log_file(&format!("pod-{}-{}", pod.namespace, pod.name)),
    })
}

/// Removes the pod: process, CNI DEL, cgroup, netns, resolv.conf. Each step
/// tolerates what is already gone, so it also cleans half-created pods.
pub fn remove(state: &mut LabState, paths: &LabPaths, key: &str) -> Result<()> {
    let Some(pod) = state.pods.get(key).cloned() else {
        return Ok(());
    };
    if let Some(p) = &pod.process {
        process::stop(p, Duration::from_secs(2));
    }
    if let Some(node) = state.node(&pod.node).cloned()
        && netns::exists(&node.netns)
        && let Err(e) = cni::del(state, paths, &node, &pod)
    {
        tracing::warn!(pod = key, error = %e, "CNI DEL failed; removing the netns anyway");
    }
    cgroup::destroy(&pod.cgroup)?;
    netns::delete(&pod.netns)?;
    let etc = PathBuf::from(ETC_NETNS).join(&pod.netns);
    if etc.exists() {
        std::fs::remove_dir_all(&etc).map_err(LabError::io("removing a pod's /etc/netns", &etc))?;
    }
    state.pods.remove(key);
    state.save(paths)
}
