//! Opt-in trimming: cutting each object down to the fields one consumer
//! reads before it enters the view.
//!
//! What each [`Component`] keeps (everything else is dropped):
//!
//! | | agent | dns | ingress |
//! |---|---|---|---|
//! | metadata | name, namespace, labels | name, namespace, labels | all but managedFields |
//! | Service | spec; status.loadBalancer | spec | whole |
//! | EndpointSlice | addressType, ports; endpoints' addresses, conditions, hostname, nodeName, zone, targetRef | the same without targetRef | whole |
//! | Pod | spec.nodeName, hostname, subdomain, hostNetwork; status.phase, podIP, podIPs, conditions | the same | whole |
//! | Node | spec.podCIDR, podCIDRs; status.addresses | (not watched) | whole |
//! | other kinds | metadata as above | metadata as above | whole |
//!
//! Labels stay whole: the view's own slice index and both data planes read
//! them (`kubernetes.io/service-name`, `service.kubernetes.io/service-proxy-name`),
//! and a Service's `spec.selector` stays for Endpoints mirroring. No
//! consumer but the ingress controller reads annotations. The agent and DNS
//! never read a Pod's containers (named target ports are resolved by
//! callers that build EndpointSlices themselves, such as the lab, which
//! does not trim); a container costs 2 KiB before any of its strings.
//!
//! Trimmed objects also drop `resourceVersion`, `uid` and the timestamps,
//! so an update that only touched dropped fields compares equal to the
//! stored object and wakes no consumer.

mod fields;
#[cfg(test)]
mod tests;

use crate::access::Component;
use crate::kind::Object;

/// The fields of each object one component keeps; see the
/// [module documentation](self) for the table.
///
/// It exists because the view otherwise stores whole k8s-openapi objects,
/// most of which (annotations, managed fields, a Pod's containers, status
/// history) no data plane reads: for the DNS server that was most of its
/// memory. Trimming is opt-in per source
/// ([`ManifestSource::with_trim`](crate::ManifestSource::with_trim),
/// [`KubeConfig::with_trim`](crate::KubeConfig::with_trim)); without it a
/// source delivers complete objects, as the lab needs to re-render them.
/// Trimming also shrinks lists to their length (deserialisers leave up to
/// twice the room).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Trim {
    component: Component,
}

impl Trim {
    /// The trim that keeps what `component` reads.
    pub fn for_component(component: Component) -> Trim {
        Trim { component }
    }

    /// The component whose reads this trim keeps.
    pub fn component(self) -> Component {
        self.component
    }

    /// Cuts `object` down to what the component reads, in place. The
    /// object's kind and key never change.
    pub fn apply(self, object: &mut Object) {
        if self.component == Component::Ingress {
            // Annotations, TLS data and backends: the controller reads
            // nearly everything, so only what nobody reads goes.
            object.meta_mut().managed_fields = None;
            return;
        }
        fields::identity_meta(object.meta_mut());
        match object {
            Object::Service(service) => fields::service(service, self.component),
            Object::EndpointSlice(slice) => fields::endpoint_slice(slice, self.component),
            Object::Pod(pod) => fields::pod(pod),
            Object::Node(node) => fields::node(node),
            // Not read by the agent or DNS; the source's kinds decide
            // whether they are kept at all.
            Object::Ingress(_) | Object::IngressClass(_) | Object::Secret(_) => {}
        }
    }
}
