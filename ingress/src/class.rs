//! IngressClass filtering: which Ingresses this controller serves.
//!
//! The rules, in order:
//! 1. `spec.ingressClassName: X` — served when the IngressClass `X` names our
//!    controller (`spec.controller`). When no IngressClass `X` exists, it is
//!    served when `X` is the configured class name (`--class`), so a manifest
//!    directory without IngressClass objects still works.
//! 2. The deprecated annotation `kubernetes.io/ingress.class: X` — the same
//!    test as 1.
//! 3. No class at all — served only when one of our IngressClasses carries
//!    `ingressclass.kubernetes.io/is-default-class: "true"`.

use std::collections::BTreeSet;

use strait_cluster::ObjectMap;
use strait_cluster::k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::config::ClassConfig;

/// The deprecated class annotation on Ingresses.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The annotation that makes an IngressClass the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Why an Ingress is (or is not) ours, for logs and the build report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassVerdict {
    /// Served: the named class (field or annotation) is ours.
    Ours(String),
    /// Served: no class, and one of our classes is the default.
    DefaultClass,
    /// Not served: the class belongs to another controller or is unknown.
    OtherClass(String),
    /// Not served: no class and none of our classes is the default.
    NoClass,
}

impl ClassVerdict {
    /// Whether the Ingress is served.
    pub fn served(&self) -> bool {
        matches!(self, Self::Ours(_) | Self::DefaultClass)
    }
}

/// The class facts of one snapshot, computed once per rebuild.
///
/// It exists so deciding about each Ingress is a set lookup instead of a
/// scan of every IngressClass.
#[derive(Debug, Clone)]
pub struct ClassFilter {
    /// IngressClass names whose controller is ours.
    ours: BTreeSet<String>,
    /// IngressClass names that exist (any controller).
    existing: BTreeSet<String>,
    /// The configured class name served without an IngressClass object.
    class_name: String,
    /// One of our classes is the cluster default.
    default: bool,
}

impl ClassFilter {
    /// The filter for `classes` under `config`.
    pub fn new(config: &ClassConfig, classes: &ObjectMap<IngressClass>) -> Self {
        let mut ours = BTreeSet::new();
        let mut existing = BTreeSet::new();
        let mut default = false;
        for class in classes.values() {
            let Some(name) = class.metadata.name.clone() else {
                continue;
            };
            let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref());
            if controller == Some(config.controller.as_str()) {
                default |= class
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true");
                ours.insert(name.clone());
            }
            existing.insert(name);
        }
        Self {
            ours,
            existing,
            class_name: config.class_name.clone(),
            default,
        }
    }

    /// Whether class `name` is ours.
    fn is_ours(&self, name: &str) -> bool {
        self.ours.contains(name) || (!self.existing.contains(name) && name == self.class_name)
    }

    /// Decides about one Ingress.
    pub fn verdict(&self, ingress: &Ingress) -> ClassVerdict {
        let field = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref());
        let annotation = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLASS_ANNOTATION))
            .map(String::as_str);
        match field.or(annotation) {
            Some(name) if self.is_ours(name) => ClassVerdict::Ours(name.to_owned()),
            Some(name) => ClassVerdict::OtherClass(name.to_owned()),
            None if self.default => ClassVerdict::DefaultClass,
            None => ClassVerdict::NoClass,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strait_cluster::ObjectKey;
    use strait_cluster::k8s_openapi::api::networking::v1::{IngressClassSpec, IngressSpec};
    use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn class(name: &str, controller: &str, default: bool) -> (ObjectKey, Arc<IngressClass>) {
        let annotations = default.then(|| {
            [(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned())]
                .into_iter()
                .collect()
        });
        (
            ObjectKey::cluster(name),
            Arc::new(IngressClass {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    annotations,
                    ..Default::default()
                },
                spec: Some(IngressClassSpec {
                    controller: Some(controller.into()),
                    parameters: None,
                }),
            }),
        )
    }

    fn ingress(field: Option<&str>, annotation: Option<&str>) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                name: Some("i".into()),
                annotations: annotation.map(|a| {
                    [(CLASS_ANNOTATION.to_owned(), a.to_owned())]
                        .into_iter()
                        .collect()
                }),
                ..Default::default()
            },
            spec: Some(IngressSpec {
                ingress_class_name: field.map(Into::into),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn class_rules() {
        let config = ClassConfig::default();
        let classes: ObjectMap<IngressClass> = [
            class("mine", "strait.dev/ingress", false),
            class("nginx", "k8s.io/ingress-nginx", true),
            class("strait", "k8s.io/ingress-nginx", false),
        ]
        .into_iter()
        .collect();
        let f = ClassFilter::new(&config, &classes);
        let served = |field, ann| f.verdict(&ingress(field, ann)).served();
        assert!(served(Some("mine"), None));
        assert!(served(None, Some("mine")));
        assert!(!served(Some("nginx"), None));
        assert!(!served(None, Some("nginx")));
        // An IngressClass named like our --class but for another controller wins.
        assert!(!served(Some("strait"), None));
        assert!(!served(Some("unknown"), None));
        // nginx is the default class, not ours: classless Ingresses are not ours.
        assert_eq!(f.verdict(&ingress(None, None)), ClassVerdict::NoClass);

        // Without IngressClass objects, --class is served by name.
        let f = ClassFilter::new(&config, &ObjectMap::new());
        assert!(f.verdict(&ingress(Some("strait"), None)).served());
        assert!(f.verdict(&ingress(None, Some("strait"))).served());
        assert!(!f.verdict(&ingress(None, None)).served());

        // Our class as default: classless Ingresses are served.
        let classes: ObjectMap<IngressClass> = [class("mine", "strait.dev/ingress", true)]
            .into_iter()
            .collect();
        let f = ClassFilter::new(&config, &classes);
        assert_eq!(f.verdict(&ingress(None, None)), ClassVerdict::DefaultClass);
        assert!(!f.verdict(&ingress(Some("other"), None)).served());
    }
}
