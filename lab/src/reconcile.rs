//! Making the lab match its manifests: pods that appeared are created, pods
//! that went away (or moved node, or changed what they run) are removed, and
//! the cluster view the components read is rewritten. `up` runs it once; the
//! controller runs it on every manifest change.
use std::net::IpAddr;

use strait_cluster::{Object, ObjectKey, service};

use crate::default_manifest::with_system_objects;
use crate::error::{LabError, Result};
use crate::paths::LabPaths;
use crate::pods::{self, PodPlan};
use crate::render;
use crate::state::LabState;

/// The DNS address written into pods' resolv.conf when the manifests have no
/// kube-system/kube-dns Service.
pub const DEFAULT_DNS_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 96, 0, 10));

/// What a reconcile did, for progress output and logs.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Pods created.
    pub added: Vec<String>,
    /// Pods removed.
    pub removed: Vec<String>,
    /// Pods that could not be created or planned, with the reason.
    pub problems: Vec<String>,
}

/// Reports progress of pod creation: (done, total, pod key).
pub type PodProgress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// Brings the lab to the manifests' `objects` (system objects are added here).
pub fn reconcile(
    state: &mut LabState,
    paths: &LabPaths,
    objects: Vec<Object>,
    progress: PodProgress<'_>,
) -> Result<Outcome> {
    let objects = with_system_objects(objects).map_err(|e| LabError::Manifests(e.to_string()))?;
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let mut outcome = Outcome::default();
    let mut plans = Vec::new();
    for object in &objects {
        if let Object::Pod(pod) = object {
            match PodPlan::from_pod(pod, &nodes) {
                Ok(plan) => plans.push(plan),
                Err(problem) => outcome.problems.push(problem),
            }
        }
    }
    let dns_ip = dns_ip(&objects);

    let stale: Vec<String> = state
        .pods
        .iter()
        .filter(|(key, have)| {
            !plans.iter().any(|p| {
                &p.key() == *key
                    && p.node == have.node
                    && p.run == have.run
                    && p.ports == have.ports
                    && p.ip.is_none_or(|ip| have.ip == Some(ip))
                    && have.ip.is_some()
            })
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in stale {
        pods::remove(state, paths, &key)?;
        outcome.removed.push(key);
    }
    let new: Vec<&PodPlan> = plans
        .iter()
        .filter(|p| !state.pods.contains_key(&p.key()))
        .collect();
    // Components started below read the cluster view at once: give them one
    // (new pods show as Pending until they have an address).
    render::write(paths, &render::render(&objects, state, paths)?)?;
    let total = new.len();
    for (i, plan) in new.into_iter().enumerate() {
        progress(i, total, &plan.key());
        match pods::add(state, paths, plan, dns_ip) {
            Ok(()) => outcome.added.push(plan.key()),
            Err(e) => {
                let key = plan.key();
                tracing::warn!(pod = %key, error = %e, "pod could not be created");
                outcome.problems.push(format!("pod {key}: {e}"));
                // Keep nothing half-made; the next reconcile retries.
                pods::remove(state, paths, &key)?;
            }
        }
        progress(i + 1, total, &plan.key());
    }
    let rendered = render::render(&objects, state, paths)?;
    render::write(paths, &rendered)?;
    let announced = crate::announce::plan(&rendered, state);
    crate::announce::apply(state, announced)?;
    state.save(paths)?;
    Ok(outcome)
}

/// The ClusterIP of kube-system/kube-dns.
fn dns_ip(objects: &[Object]) -> IpAddr {
    let key = ObjectKey::namespaced("kube-system", "kube-dns");
    objects
        .iter()
        .find_map(|o| match o {
            Object::Service(s) if o.key().as_ref() == Some(&key) => {
                service::cluster_ips(s).into_iter().next()
            }
            _ => None,
        })
        .unwrap_or(DEFAULT_DNS_IP)
}
