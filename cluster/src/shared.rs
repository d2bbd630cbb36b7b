//! [`SharedObject`]: an [`Object`] whose value already sits behind the `Arc`
//! the snapshot stores, so a source that keeps its own copy (the manifest
//! loader's per-file "last good" state) shares it with the snapshot instead
//! of holding a second, deep copy.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::kind::{Kind, Object, ObjectKey};

/// One object of the seven kinds, reference-counted.
///
/// It exists because [`Object`] holds its value inline (2 KiB whatever the
/// kind, the size of a Pod), so a `Vec<Object>` kept by a source costs far
/// more than the objects, and handing an `Object` to the snapshot means a
/// second copy. A `SharedObject` is two words and its `Arc` goes into the
/// snapshot as is.
#[derive(Clone, Debug)]
pub(crate) enum SharedObject {
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Ingress(Arc<Ingress>),
    IngressClass(Arc<IngressClass>),
    Secret(Arc<Secret>),
    Node(Arc<Node>),
    Pod(Arc<Pod>),
}

/// Applies `$body` to the `Arc` inside any variant, bound as `$o`.
macro_rules! each {
    ($value:expr, $o:ident => $body:expr) => {
        match $value {
            SharedObject::Service($o) => $body,
            SharedObject::EndpointSlice($o) => $body,
            SharedObject::Ingress($o) => $body,
            SharedObject::IngressClass($o) => $body,
            SharedObject::Secret($o) => $body,
            SharedObject::Node($o) => $body,
            SharedObject::Pod($o) => $body,
        }
    };
}

impl SharedObject {
    /// The kind of the object.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            SharedObject::Service(_) => Kind::Service,
            SharedObject::EndpointSlice(_) => Kind::EndpointSlice,
            SharedObject::Ingress(_) => Kind::Ingress,
            SharedObject::IngressClass(_) => Kind::IngressClass,
            SharedObject::Secret(_) => Kind::Secret,
            SharedObject::Node(_) => Kind::Node,
            SharedObject::Pod(_) => Kind::Pod,
        }
    }

    /// The object's metadata.
    pub(crate) fn meta(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    /// The key the object is stored under, or `None` when it has no name.
    pub(crate) fn key(&self) -> Option<ObjectKey> {
        ObjectKey::from_meta(self.kind(), self.meta())
    }

    /// A deep copy as an owned [`Object`] (for [`LoadReport`](crate::LoadReport)).
    pub(crate) fn to_object(&self) -> Object {
        match self {
            SharedObject::Service(o) => Object::Service((**o).clone()),
            SharedObject::EndpointSlice(o) => Object::EndpointSlice((**o).clone()),
            SharedObject::Ingress(o) => Object::Ingress((**o).clone()),
            SharedObject::IngressClass(o) => Object::IngressClass((**o).clone()),
            SharedObject::Secret(o) => Object::Secret((**o).clone()),
            SharedObject::Node(o) => Object::Node((**o).clone()),
            SharedObject::Pod(o) => Object::Pod((**o).clone()),
        }
    }

    /// Whether both are the same allocation or equal objects of one kind.
    pub(crate) fn same_contents(&self, other: &SharedObject) -> bool {
        use SharedObject as S;
        fn eq<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
            Arc::ptr_eq(a, b) || **a == **b
        }
        match (self, other) {
            (S::Service(a), S::Service(b)) => eq(a, b),
            (S::EndpointSlice(a), S::EndpointSlice(b)) => eq(a, b),
            (S::Ingress(a), S::Ingress(b)) => eq(a, b),
            (S::IngressClass(a), S::IngressClass(b)) => eq(a, b),
            (S::Secret(a), S::Secret(b)) => eq(a, b),
            (S::Node(a), S::Node(b)) => eq(a, b),
            (S::Pod(a), S::Pod(b)) => eq(a, b),
            _ => false,
        }
    }
}

impl From<Object> for SharedObject {
    fn from(object: Object) -> SharedObject {
        match object {
            Object::Service(o) => SharedObject::Service(Arc::new(o)),
            Object::EndpointSlice(o) => SharedObject::EndpointSlice(Arc::new(o)),
            Object::Ingress(o) => SharedObject::Ingress(Arc::new(o)),
            Object::IngressClass(o) => SharedObject::IngressClass(Arc::new(o)),
            Object::Secret(o) => SharedObject::Secret(Arc::new(o)),
            Object::Node(o) => SharedObject::Node(Arc::new(o)),
            Object::Pod(o) => SharedObject::Pod(Arc::new(o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ip: &str) -> Object {
        Object::Service(Service {
            metadata: ObjectMeta {
                name: Some("a".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ip: Some(ip.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn round_trips_and_compares_by_contents() {
        let a = SharedObject::from(svc("10.0.0.1"));
        assert!(std::mem::size_of::<SharedObject>() <= 16);
        assert_eq!(a.kind(), Kind::Service);
        assert_eq!(a.key(), Some(ObjectKey::namespaced("ns", "a")));
        assert_eq!(a.to_object(), svc("10.0.0.1"));
        assert!(a.same_contents(&a.clone()));
        assert!(a.same_contents(&SharedObject::from(svc("10.0.0.1"))));
        assert!(!a.same_contents(&SharedObject::from(svc("10.0.0.2"))));
        let node = SharedObject::from(Object::Node(Node::default()));
        assert!(!a.same_contents(&node));
    }
}
