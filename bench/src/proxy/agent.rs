//! The strait side driven the way the agent drives it: the services become
//! Service and EndpointSlice objects in a cluster snapshot, the desired state
//! comes from [`IncrementalDesired`], the first programming is a full
//! [`ServiceMaps::sync`], and an endpoint change is one new snapshot built
//! from the previous one, turned into a [`Delta`](strait_proxy::Delta) by
//! [`IncrementalDesired::update`] and written by [`ServiceMaps::apply_delta`]
//! (the agent's incremental path, not a full resync).
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use strait_cluster::{ClusterSnapshot, Kind, ManifestLoader, ObjectKey, SnapshotBuilder};
use strait_proxy::{DesiredState, IncrementalDesired, ServiceMaps, SyncStats};

use super::kube;

/// The node the benchmark's agent runs on (no service uses a node-local
/// policy, so it only has to be a name).
const NODE: &str = "bench-node";

/// The endpoints of `svc` grouped by port: one EndpointSlice per port, as
/// the EndpointSlice controller writes them.
fn slices(svc: &kube::Service) -> BTreeMap<u16, Vec<std::net::Ipv4Addr>> {
    let mut by_port: BTreeMap<u16, Vec<_>> = BTreeMap::new();
    for ep in &svc.endpoints {
        by_port.entry(ep.port()).or_default().push(*ep.ip());
    }
    by_port
}

fn slice_name(svc: &kube::Service, port: u16) -> String {
    format!("{}-p{port}", svc.name)
}

/// The Service (named targetPort, resolved per endpoint) of `svc`.
fn service_yaml(out: &mut String, svc: &kube::Service) {
    let _ = write!(
        out,
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: {}}}\n\
         spec: {{clusterIP: {}, ports: [{{name: {}, port: {}, protocol: TCP, targetPort: {}}}]}}\n",
        svc.name,
        svc.namespace,
        svc.vip.ip(),
        svc.port_name,
        svc.vip.port(),
        svc.port_name,
    );
}

/// The EndpointSlices of `svc` (ready endpoints).
fn slices_yaml(out: &mut String, svc: &kube::Service) {
    for (port, addrs) in slices(svc) {
        let _ = write!(
            out,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {}, namespace: {}, labels: {{kubernetes.io/service-name: {}}}}}\n\
             addressType: IPv4\nports: [{{name: {}, port: {port}, protocol: TCP}}]\nendpoints:\n",
            slice_name(svc, port),
            svc.namespace,
            svc.name,
            svc.port_name,
        );
        for a in addrs {
            let _ = writeln!(
                out,
                "- {{addresses: [\"{a}\"], conditions: {{ready: true}}}}"
            );
        }
    }
}

fn parse(name: &str, yaml: &str) -> anyhow::Result<strait_cluster::LoadReport> {
    let report = ManifestLoader::parse_str(name, yaml);
    if let Some(e) = report.errors.first() {
        bail!(
            "{} errors in the generated manifests, first: {e}",
            report.errors.len()
        );
    }
    Ok(report)
}

/// Checks that the agent's view of `services` is what the baselines program.
fn check(desired: &DesiredState, services: &[kube::Service]) -> anyhow::Result<()> {
    if desired.len() != services.len() {
        bail!(
            "the agent computed {} frontends for {} services",
            desired.len(),
            services.len()
        );
    }
    for svc in services {
        let fe = strait_proxy::Frontend {
            vip: (*svc.vip.ip()).into(),
            port: svc.vip.port(),
            proto: 6,
        };
        let got: BTreeSet<SocketAddr> = desired
            .get(&fe)
            .with_context(|| format!("no frontend for {}", svc.vip))?
            .backends
            .iter()
            .copied()
            .collect();
        let want: BTreeSet<SocketAddr> = svc.endpoints.iter().map(|e| (*e).into()).collect();
        if got != want {
            bail!(
                "{}: the agent wants {got:?}, the baselines {want:?}",
                svc.vip
            );
        }
    }
    Ok(())
}

/// The agent's state: the last snapshot and the desired state derived from it.
pub struct Agent {
    snapshot: ClusterSnapshot,
    inc: IncrementalDesired,
}

impl Agent {
    /// The snapshot of `services` and its desired state (not timed: the
    /// baselines' generators are not timed either).
    pub fn new(services: &[kube::Service]) -> anyhow::Result<Agent> {
        let mut yaml = String::with_capacity(services.len() * 600);
        for svc in services {
            service_yaml(&mut yaml, svc);
            slices_yaml(&mut yaml, svc);
        }
        let snapshot = parse("bench.yaml", &yaml)?.to_snapshot();
        let inc = IncrementalDesired::full(&snapshot, NODE);
        check(inc.desired(), services)?;
        Ok(Agent { snapshot, inc })
    }

    /// The desired state.
    pub fn desired(&self) -> &DesiredState {
        self.inc.desired()
    }

    /// The snapshot after `before` became `after` (the EndpointSlice
    /// objects of that one service replaced), built from the current one so
    /// that unchanged objects are shared, as the cluster view publishes it.
    pub fn next_snapshot(
        &self,
        before: &kube::Service,
        after: &kube::Service,
    ) -> anyhow::Result<ClusterSnapshot> {
        let mut yaml = String::new();
        slices_yaml(&mut yaml, after);
        let report = parse("change.yaml", &yaml)?;
        let mut builder = SnapshotBuilder::from_snapshot(&self.snapshot);
        let after_ports = slices(after);
        for port in slices(before)
            .keys()
            .filter(|p| !after_ports.contains_key(p))
        {
            builder.delete(
                Kind::EndpointSlice,
                &ObjectKey {
                    namespace: Some(before.namespace.clone()),
                    name: slice_name(before, *port),
                },
            );
        }
        for object in report.objects {
            builder.apply(object);
        }
        Ok(builder.build())
    }

    /// The agent's incremental step to `next`: one delta computed and
    /// written. Returns the time of that step and what it wrote.
    pub fn apply(
        &mut self,
        maps: &mut ServiceMaps,
        next: ClusterSnapshot,
    ) -> anyhow::Result<(Duration, SyncStats)> {
        let t = Instant::now();
        let delta = self.inc.update(&self.snapshot, &next, NODE);
        let stats = maps.apply_delta(&delta, self.inc.desired())?;
        let took = t.elapsed();
        self.snapshot = next;
        Ok((took, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(i: usize, port: u16) -> kube::Service {
        kube::Service {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port_name: "http".into(),
            vip: format!("10.96.0.{}:80", 10 + i).parse().unwrap(),
            endpoints: vec![
                format!("10.244.0.{}:8080", 1 + i).parse().unwrap(),
                format!("10.244.1.{}:{port}", 1 + i).parse().unwrap(),
            ],
        }
    }

    #[test]
    fn an_endpoint_change_is_a_one_service_delta() {
        let services: Vec<_> = (0..3).map(|i| svc(i, 8080)).collect();
        let mut agent = Agent::new(&services).unwrap();
        let after = svc(1, 8081);
        let next = agent.next_snapshot(&services[1], &after).unwrap();
        let delta = agent.inc.update(&agent.snapshot, &next, NODE);
        assert_eq!(delta.upserts.len(), 1);
        assert!(delta.removals.is_empty());
        let mut want = services.clone();
        want[1] = after;
        check(agent.desired(), &want).unwrap();
    }
}
