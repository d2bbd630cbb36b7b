//! Keeps the desired state up to date from snapshot diffs, so one endpoint
//! change among 10 000 services recomputes one service and writes one
//! frontend instead of walking the whole cluster.
use std::collections::{BTreeSet, HashMap};

use strait_cluster::{ClusterSnapshot, Kind, ObjectKey, SERVICE_NAME_LABEL};

use crate::{DesiredState, Frontend, FrontendSpec, desired::service_frontends, desired_state};

/// The desired state plus which service contributed which frontends.
#[derive(Default)]
pub struct IncrementalDesired {
    desired: DesiredState,
    by_service: HashMap<ObjectKey, Vec<Frontend>>,
}

/// What changed in the desired state: frontends to (re)write and frontends
/// to remove.
#[derive(Debug, Default, PartialEq)]
pub struct Delta {
    /// New or changed frontends with their spec.
    pub upserts: Vec<(Frontend, FrontendSpec)>,
    /// Frontends no service wants any more.
    pub removals: Vec<Frontend>,
}

impl IncrementalDesired {
    /// Computes everything from scratch.
    pub fn full(snapshot: &ClusterSnapshot, node: &str) -> IncrementalDesired {
        let mut this = IncrementalDesired::default();
        for (key, svc) in snapshot.services() {
            let fronts = service_frontends(snapshot, key, svc, node);
            this.by_service
                .insert(key.clone(), fronts.iter().map(|(f, _)| *f).collect());
            this.desired.extend(fronts);
        }
        debug_assert_eq!(this.desired, desired_state(snapshot, node));
        this
    }

    /// The current desired state.
    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    /// Moves from `older` to `newer`, recomputing only the services whose
    /// Service or EndpointSlices changed.
    pub fn update(
        &mut self,
        older: &ClusterSnapshot,
        newer: &ClusterSnapshot,
        node: &str,
    ) -> Delta {
        let mut affected: BTreeSet<ObjectKey> = BTreeSet::new();
        for change in newer.changes_since(older) {
            match change.kind {
                Kind::Service => {
                    affected.insert(change.key);
                }
                Kind::EndpointSlice => {
                    // The owning service, from whichever snapshot has the slice.
                    for snap in [older, newer] {
                        if let Some(slice) = snap.endpoint_slices().get(&change.key)
                            && let Some(svc) = slice
                                .metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                        {
                            affected.insert(ObjectKey {
                                namespace: change.key.namespace.clone(),
                                name: svc.clone(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        let mut delta = Delta::default();
        for key in affected {
            let old = self.by_service.remove(&key).unwrap_or_default();
            let new: Vec<(Frontend, FrontendSpec)> = newer
                .services()
                .get(&key)
                .map(|svc| service_frontends(newer, &key, svc, node))
                .unwrap_or_default();
            let new_set: BTreeSet<Frontend> = new.iter().map(|(f, _)| *f).collect();
            for fe in old.iter().filter(|f| !new_set.contains(f)) {
                self.desired.remove(fe);
                delta.removals.push(*fe);
            }
            for (fe, spec) in new {
                if self.desired.get(&fe) != Some(&spec) {
                    self.desired.insert(fe, spec.clone());
                    delta.upserts.push((fe, spec));
                }
            }
            if !new_set.is_empty() {
                self.by_service.insert(key, new_set.into_iter().collect());
            }
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use strait_cluster::ManifestLoader;

    use super::*;

    fn snap(yaml: &str) -> ClusterSnapshot {
        let r = ManifestLoader::parse_str("t.yaml", yaml);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r.to_snapshot()
    }

    fn svc(name: &str, vip: &str, endpoints: &[&str]) -> String {
        let mut y = format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
             spec:\n  clusterIP: {vip}\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-a, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n"
        );
        for e in endpoints {
            y.push_str(&format!("  - addresses: [{e}]\n"));
        }
        y
    }

    #[test]
    fn incremental_updates_equal_a_full_recompute_and_touch_only_changes() {
        let steps = [
            svc("a", "10.96.0.1", &["10.244.0.1"]) + &svc("b", "10.96.0.2", &["10.244.0.2"]),
            // one endpoint added to b
            svc("a", "10.96.0.1", &["10.244.0.1"])
                + &svc("b", "10.96.0.2", &["10.244.0.2", "10.244.0.3"]),
            // b's VIP changes, a is deleted
            svc("b", "10.96.0.9", &["10.244.0.2", "10.244.0.3"]),
            // a comes back with no endpoints
            svc("a", "10.96.0.1", &[]) + &svc("b", "10.96.0.9", &["10.244.0.3"]),
        ];
        let mut prev = snap(&steps[0]);
        let mut inc = IncrementalDesired::full(&prev, "n");
        let deltas: Vec<Delta> = steps[1..]
            .iter()
            .map(|y| {
                let next = snap(y);
                let d = inc.update(&prev, &next, "n");
                assert_eq!(inc.desired(), &desired_state(&next, "n"));
                prev = next;
                d
            })
            .collect();
        // Step 1 touched only b.
        assert_eq!(deltas[0].upserts.len(), 1);
        assert!(deltas[0].removals.is_empty());
        assert_eq!(deltas[0].upserts[0].0.vip.to_string(), "10.96.0.2");
        // Step 2 removed a and b's old VIP, wrote b's new VIP.
        assert_eq!(deltas[1].removals.len(), 2);
        assert_eq!(deltas[1].upserts.len(), 1);
    }
}
