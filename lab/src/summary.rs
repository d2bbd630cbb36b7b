//! What `strait lab up` prints at the end: the nodes, pods and Services, and
//! commands to try, so a new user sees what exists and how to reach it.
use std::fmt::Write;

use strait_cluster::{ServiceType, service};

use crate::error::{LabError, Result};
use crate::paths::LabPaths;
use crate::state::LabState;

/// The summary text.
pub fn summary(paths: &LabPaths) -> Result<String> {
    let state = LabState::load(paths)?
        .ok_or_else(|| LabError::State("no lab state to summarise".into()))?;
    let snapshot = strait_cluster::load_dir(paths.cluster_dir())
        .map_err(|e| LabError::Manifests(e.to_string()))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nThe lab is up. Services are proxied by {}.\n\nNODES",
        state.proxy.describe()
    );
    for node in &state.nodes {
        let _ = writeln!(
            out,
            "  {:<8} underlay {:<12} pods {}",
            node.name, node.underlay_ip, node.pod_cidr
        );
    }
    let _ = writeln!(out, "\nPODS");
    for (key, pod) in snapshot.pods() {
        let status = pod.status.as_ref();
        let ip = status
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_else(|| "-".into());
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<30} {:<7} {:<13} {}",
            format!("{}/{}", key.namespace.as_deref().unwrap_or(""), key.name),
            node,
            ip,
            if ready {
                "ready"
            } else {
                "NOT READY (left out of endpoints)"
            }
        );
    }
    let _ = writeln!(out, "\nSERVICES");
    for (key, svc) in snapshot.services() {
        let kind = service::service_type(svc);
        let vip = if service::is_headless(svc) {
            "None (headless)".to_string()
        } else {
            service::cluster_ips(svc)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let target = match kind {
            ServiceType::ExternalName => svc
                .spec
                .as_ref()
                .and_then(|s| s.external_name.clone())
                .map(|n| format!("-> {n}"))
                .unwrap_or_default(),
            _ => service::ports(svc)
                .iter()
                .map(|p| {
                    let proto = p.protocol.as_deref().unwrap_or("TCP");
                    match p.node_port {
                        Some(np) => format!("{}:{np}/{proto}", p.port),
                        None => format!("{}/{proto}", p.port),
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        };
        let _ = writeln!(
            out,
            "  {:<30} {:<13} {:<16} {}",
            format!("{}/{}", key.namespace.as_deref().unwrap_or(""), key.name),
            kind.as_str(),
            vip,
            target
        );
    }
    // How the user invoked the lab (scripts/lab sets this), for copy-paste.
    let lab = std::env::var("STRAIT_LAB_CMD").unwrap_or_else(|_| "strait lab".into());
    let _ = writeln!(
        out,
        "\nTRY\n  \
         {lab} exec client -- curl -s http://web/\n  \
         {lab} exec client -- dig +short db.default.svc.cluster.local\n  \
         {lab} exec client -- curl -sk --resolve shop.lab.strait.dev:443:10.96.0.105 https://shop.lab.strait.dev/api\n  \
         {lab} exec external -- curl -s http://192.0.2.12:30080/     # NodePort, from outside the cluster\n  \
         {lab} exec external -- curl -s http://192.0.2.100/          # LoadBalancer, Local policy: the pod sees your address\n\n\
         Edit {} to change the cluster live; `{lab} status` checks every component;\n\
         `{lab} down` removes everything.",
        state.manifests.display()
    );
    Ok(out)
}
