//! The loader keeps complete objects by default (the lab's path), trims and
//! filters only when asked, and shares its copy of each object with the
//! snapshot.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::*;
use crate::access::Component;
use crate::manifest::parse::split_yaml;

const FIXTURE: &str = include_str!("../trim/fixture.yaml");

fn dir_with(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.yaml"), text).unwrap();
    dir
}

/// The fixture decoded straight into the k8s-openapi types, no loader.
fn decoded() -> Vec<Object> {
    split_yaml(FIXTURE)
        .iter()
        .map(|segment| {
            let text = &segment.text;
            let kind = text.lines().find_map(|l| l.strip_prefix("kind: ")).unwrap();
            match kind {
                "Service" => Object::Service(serde_yaml_ng::from_str::<Service>(text).unwrap()),
                "EndpointSlice" => {
                    Object::EndpointSlice(serde_yaml_ng::from_str::<EndpointSlice>(text).unwrap())
                }
                "Pod" => Object::Pod(serde_yaml_ng::from_str::<Pod>(text).unwrap()),
                "Secret" => Object::Secret(serde_yaml_ng::from_str::<Secret>(text).unwrap()),
                other => panic!("unexpected kind {other}"),
            }
        })
        .collect()
}

#[test]
fn untrimmed_loading_returns_complete_objects() {
    let dir = dir_with(FIXTURE);
    let report = ManifestLoader::new(dir.path()).reload();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.objects, decoded());
    assert_eq!(
        crate::ManifestSource::load_once(dir.path()).objects,
        decoded()
    );
    assert_eq!(
        ManifestLoader::parse_str("fixture.yaml", FIXTURE).objects,
        decoded()
    );
    // the parts the lab re-renders are all there
    let Object::Pod(pod) = &report.objects[4] else {
        panic!("{:?}", report.objects[4])
    };
    assert!(pod.metadata.annotations.is_some());
    assert_eq!(pod.spec.as_ref().unwrap().containers.len(), 1);
    assert!(report.objects[0].meta().managed_fields.is_some());
}

#[test]
fn trimmed_loading_equals_trimming_complete_objects() {
    let dir = dir_with(FIXTURE);
    for component in Component::ALL {
        let trim = Trim::for_component(component);
        let report = ManifestLoader::new(dir.path()).with_trim(trim).reload();
        let want: Vec<Object> = decoded()
            .into_iter()
            .map(|mut o| {
                trim.apply(&mut o);
                o
            })
            .collect();
        assert_eq!(report.objects, want, "{component:?}");
    }
}

#[test]
fn with_kinds_skips_other_kinds() {
    let dir = dir_with(FIXTURE);
    let report = ManifestLoader::new(dir.path())
        .with_kinds(KindSet::only(Kind::Service).with(Kind::EndpointSlice))
        .reload();
    assert!(report.errors.is_empty());
    let kinds: Vec<Kind> = report.objects.iter().map(Object::kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Service,
            Kind::EndpointSlice,
            Kind::Service,
            Kind::Service
        ]
    );
    assert_eq!(report.skipped, 2); // the Pod and the Secret
}

const MIRRORED: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: a, \
    annotations: {note: x}}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Endpoints\n\
    metadata: {name: ext, namespace: a}\nsubsets: [{addresses: [{ip: 192.0.2.1, \
    targetRef: {kind: Pod, name: p}}], ports: [{port: 80}]}]\n";

#[test]
fn endpoints_are_mirrored_only_when_slices_are_kept_and_trimmed_like_slices() {
    let dir = dir_with(MIRRORED);
    let report = ManifestLoader::new(dir.path())
        .with_kinds(KindSet::only(Kind::Service))
        .reload();
    assert_eq!(report.objects.len(), 1);
    assert_eq!(report.skipped, 1);

    let report = ManifestLoader::new(dir.path())
        .with_trim(Trim::for_component(Component::Dns))
        .reload();
    let Object::EndpointSlice(slice) = &report.objects[1] else {
        panic!("{:?}", report.objects)
    };
    assert_eq!(slice.endpoints[0].addresses, ["192.0.2.1"]);
    assert_eq!(slice.endpoints[0].target_ref, None);
    let untrimmed = ManifestLoader::new(dir.path()).reload();
    let Object::EndpointSlice(slice) = &untrimmed.objects[1] else {
        panic!("{:?}", untrimmed.objects)
    };
    assert!(slice.endpoints[0].target_ref.is_some());
}

fn service_arc(objects: &[SharedObject], name: &str) -> Arc<Service> {
    objects
        .iter()
        .find_map(|o| match o {
            SharedObject::Service(s) if s.metadata.name.as_deref() == Some(name) => Some(s.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn the_snapshot_shares_the_loaders_objects() {
    let dir = dir_with(FIXTURE);
    let mut loader = ManifestLoader::new(dir.path());
    let first = loader.reload_shared();
    let mut builder = SnapshotBuilder::new(KindSet::ALL);
    assert!(builder.replace_shared(KindSet::ALL, first.objects.clone()));
    let snapshot = builder.build();
    let web = service_arc(&first.objects, "web");
    assert!(Arc::ptr_eq(snapshot.service("shop", "web").unwrap(), &web));
    // loader + snapshot + `web` + `first`: one object, four handles
    assert_eq!(Arc::strong_count(&web), 4);

    // an unchanged directory hands out the same allocations
    let again = loader.reload_shared();
    assert!(Arc::ptr_eq(&service_arc(&again.objects, "web"), &web));
    assert!(!builder.replace_shared(KindSet::ALL, again.objects));

    // editing one object of the file keeps the others shared
    let edited = FIXTURE.replace(
        "externalName: db.example.com",
        "externalName: db2.example.com",
    );
    std::fs::write(dir.path().join("fixture.yaml"), edited).unwrap();
    let third = loader.reload_shared();
    assert!(Arc::ptr_eq(&service_arc(&third.objects, "web"), &web));
    let ext_before = service_arc(&first.objects, "ext");
    assert!(!Arc::ptr_eq(
        &service_arc(&third.objects, "ext"),
        &ext_before
    ));
    assert!(builder.replace_shared(KindSet::ALL, third.objects.clone()));
    let snapshot = builder.build();
    assert!(Arc::ptr_eq(snapshot.service("shop", "web").unwrap(), &web));
    assert!(Arc::ptr_eq(
        snapshot.service("shop", "ext").unwrap(),
        &service_arc(&third.objects, "ext")
    ));
}
