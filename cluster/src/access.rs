//! Which Kubernetes API resources each Strait component reads and writes,
//! defined once.
//!
//! The components pick their watched kinds from here ([`Component::kinds`]),
//! and the manifest test checks that each component's ClusterRole in
//! `deploy/` grants exactly [`Component::rules`], so code and RBAC cannot
//! drift apart silently.

use crate::kind::{Kind, KindSet};

/// The verbs a [`KubeSource`](crate::KubeSource) watcher uses: kube-rs's
/// `watcher` lists (and relists) then watches, cluster-wide; it never `get`s.
pub const WATCH_VERBS: &[&str] = &["list", "watch"];

impl Kind {
    /// The API group and plural resource name of the kind, as RBAC names it
    /// (`""` is the core group).
    pub fn api_resource(self) -> (&'static str, &'static str) {
        match self {
            Kind::Service => ("", "services"),
            Kind::EndpointSlice => ("discovery.k8s.io", "endpointslices"),
            Kind::Ingress => ("networking.k8s.io", "ingresses"),
            Kind::IngressClass => ("networking.k8s.io", "ingressclasses"),
            Kind::Secret => ("", "secrets"),
            Kind::Node => ("", "nodes"),
            Kind::Pod => ("", "pods"),
        }
    }
}

/// One RBAC permission a component needs: verbs on a resource of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiAccess {
    /// The API group (`""` for core).
    pub api_group: &'static str,
    /// The resource, with a subresource after a slash (`ingresses/status`).
    pub resource: &'static str,
    /// The verbs, e.g. [`WATCH_VERBS`].
    pub verbs: &'static [&'static str],
}

/// A Strait component that talks to the API server.
///
/// It exists so the binary (which kinds to watch) and the deployment (which
/// ClusterRole to grant) read the same list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// `strait agent`: the node's eBPF service proxy.
    Agent,
    /// `strait dns`: the cluster DNS server.
    Dns,
    /// `strait ingress`: the ingress controller.
    Ingress,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 3] = [Component::Agent, Component::Dns, Component::Ingress];

    /// The subcommand name, which is also the suffix of the component's
    /// ServiceAccount, ClusterRole and ClusterRoleBinding (`strait-<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Component::Agent => "agent",
            Component::Dns => "dns",
            Component::Ingress => "ingress",
        }
    }

    /// The kinds the component may watch (with [`WATCH_VERBS`]).
    ///
    /// DNS watches Pods only with `--pod-records verified`, the agent Nodes
    /// only with `--node-routes`; the set includes
    /// them so the deployed role allows that flag (see [`Self::optional_kinds`]).
    /// Secrets are watched with
    /// [`TLS_SECRET_FIELD_SELECTOR`](crate::TLS_SECRET_FIELD_SELECTOR), which
    /// RBAC cannot express: the role grants all Secrets.
    pub fn kinds(self) -> KindSet {
        let base = KindSet::only(Kind::Service).with(Kind::EndpointSlice);
        match self {
            Component::Agent => base.with(Kind::Node),
            Component::Dns => base.with(Kind::Pod),
            Component::Ingress => base
                .with(Kind::Ingress)
                .with(Kind::IngressClass)
                .with(Kind::Secret),
        }
    }

    /// The kinds of [`Self::kinds`] that only some flag turns on, so a caller
    /// removes them unless that flag is set.
    pub fn optional_kinds(self) -> KindSet {
        match self {
            Component::Dns => KindSet::only(Kind::Pod),
            // Nodes only for `--node-routes` and `--write-cni-config`.
            Component::Agent => KindSet::only(Kind::Node),
            Component::Ingress => KindSet::EMPTY,
        }
    }

    /// What the component writes besides watching: the ingress controller
    /// publishes its load-balancer address in `ingresses/status` and records
    /// problems as Events on the Ingresses (created, then patched as a
    /// series when they repeat).
    pub fn writes(self) -> &'static [ApiAccess] {
        match self {
            Component::Ingress => &[
                ApiAccess {
                    api_group: "networking.k8s.io",
                    resource: "ingresses/status",
                    verbs: &["patch"],
                },
                ApiAccess {
                    api_group: "events.k8s.io",
                    resource: "events",
                    verbs: &["create", "patch"],
                },
            ],
            Component::Agent | Component::Dns => &[],
        }
    }

    /// Every permission the component needs: its watched kinds, then its
    /// writes. A ClusterRole for it grants exactly these.
    pub fn rules(self) -> Vec<ApiAccess> {
        let watched = self.kinds().iter().map(|kind| {
            let (api_group, resource) = kind.api_resource();
            ApiAccess {
                api_group,
                resource,
                verbs: WATCH_VERBS,
            }
        });
        watched.chain(self.writes().iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_resource_in_its_api_version_group() {
        for kind in Kind::ALL {
            let (group, resource) = kind.api_resource();
            let version_group = kind.api_version().rsplit_once('/').map_or("", |(g, _)| g);
            assert_eq!(group, version_group, "{kind}");
            assert!(resource.ends_with('s'), "{kind}: {resource}");
        }
    }

    #[test]
    fn optional_kinds_are_watched_kinds() {
        for c in Component::ALL {
            assert!(c.kinds().is_superset(c.optional_kinds()), "{c:?}");
        }
    }

    #[test]
    fn ingress_rules_include_status_patch_and_events() {
        let rules = Component::Ingress.rules();
        assert_eq!(rules.len(), 7);
        assert!(rules.iter().any(|r| r.resource == "ingresses/status"));
        assert!(
            rules
                .iter()
                .any(|r| r.api_group == "events.k8s.io" && r.verbs == ["create", "patch"])
        );
        assert!(Component::Agent.writes().is_empty());
    }
}
