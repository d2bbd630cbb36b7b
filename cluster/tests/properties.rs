//! Property tests: the manifest parser never panics on arbitrary input, and
//! `changes_since` is exactly the difference between two snapshots however
//! many snapshots lie between them.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strait_cluster::k8s_openapi::api::core::v1::{Service, ServiceSpec};
use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_cluster::{ChangeOp, Kind, KindSet, ManifestLoader, Object, ObjectKey, SnapshotBuilder};

const VALID: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {a: b}\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: n1}\n";

fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: v1\n".to_string()),
        Just("kind: Service\n".to_string()),
        Just("kind: List\n".to_string()),
        Just("kind: EndpointSlice\n".to_string()),
        Just("apiVersion: discovery.k8s.io/v1\n".to_string()),
        Just("metadata:\n".to_string()),
        Just("  name: x\n".to_string()),
        Just("items:\n- ".to_string()),
        Just("---\n".to_string()),
        Just("...\n".to_string()),
        Just("spec: {ports: [{port: 99999999999}]}\n".to_string()),
        Just("endpoints: [{addresses: [\"::1\"]}]\n".to_string()),
        Just("&a [*a]\n".to_string()),
        Just("!!binary x\n".to_string()),
        Just("  ".to_string()),
        Just("\t".to_string()),
        Just("{".to_string()),
        Just("]".to_string()),
        Just(": ".to_string()),
        "[a-z0-9:\\-\\[\\]{}\"' \n#&*!|>%@`]{0,12}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_strings(text in "\\PC{0,400}") {
        let _ = ManifestLoader::parse_str("fuzz.yaml", &text);
        let _ = ManifestLoader::parse_str("fuzz.json", &text);
    }

    #[test]
    fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = ManifestLoader::parse_str("fuzz.yml", &text);
        let _ = ManifestLoader::parse_str("fuzz.json", &text);
    }

    #[test]
    fn parser_never_panics_on_yamlish_input(text in yamlish()) {
        let report = ManifestLoader::parse_str("fuzz.yaml", &text);
        // a report with errors never contributes objects from that file
        if !report.errors.is_empty() {
            prop_assert!(report.objects.is_empty());
        }
        let _ = report.to_snapshot();
    }

    #[test]
    fn parser_never_panics_on_mutated_manifests(
        edits in prop::collection::vec((any::<prop::sample::Index>(), "[\\x00-\\x7f]{0,3}", 0usize..4), 1..6)
    ) {
        let mut text = VALID.to_string();
        for (at, insert, remove) in edits {
            let mut pos = at.index(text.len() + 1);
            while !text.is_char_boundary(pos) { pos -= 1; }
            let mut end = (pos + remove).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(pos..end.max(pos), &insert);
        }
        let _ = ManifestLoader::parse_str("fuzz.yaml", &text);
    }

    #[test]
    fn changes_since_is_the_exact_difference(
        ops in prop::collection::vec((0u8..3, 0u8..6, 0u8..3), 0..60),
        cut in 0usize..60,
    ) {
        // op 0: apply service n with value v; op 1: delete service n; op 2: build
        let svc = |n: u8, v: u8| Object::Service(Service {
            metadata: ObjectMeta { name: Some(format!("s{n}")), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(ServiceSpec { cluster_ip: Some(format!("10.0.0.{v}")), ..Default::default() }),
            ..Default::default()
        });
        // The model: name -> (value, identity). Re-applying an equal value keeps
        // the identity; a new value or a re-creation after delete gets a new one.
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        let mut model: BTreeMap<String, (u8, u32)> = BTreeMap::new();
        let mut next_id = 0u32;
        let mut snapshots = vec![(b.build(), model.clone())];
        for (op, n, v) in ops {
            let name = format!("s{n}");
            match op {
                0 => {
                    b.apply(svc(n, v));
                    if model.get(&name).map(|e| e.0) != Some(v) {
                        next_id += 1;
                        model.insert(name, (v, next_id));
                    }
                }
                1 => { b.delete(Kind::Service, &ObjectKey::namespaced("ns", name.clone())); model.remove(&name); }
                _ => snapshots.push((b.build(), model.clone())),
            }
        }
        snapshots.push((b.build(), model.clone()));
        let (old, old_model) = &snapshots[cut % snapshots.len()];
        let (new, new_model) = snapshots.last().unwrap();
        let got: Vec<(String, ChangeOp)> = new
            .changes_since(old)
            .into_iter()
            .map(|c| { assert_eq!(c.kind, Kind::Service); (c.key.name, c.op) })
            .collect();
        let mut want = Vec::new();
        let names: std::collections::BTreeSet<&String> = old_model.keys().chain(new_model.keys()).collect();
        for name in names {
            match (old_model.get(name), new_model.get(name)) {
                (Some(_), None) => want.push((name.clone(), ChangeOp::Deleted)),
                (None, Some(_)) => want.push((name.clone(), ChangeOp::Applied)),
                (Some(a), Some(b)) if a.1 != b.1 => want.push((name.clone(), ChangeOp::Applied)),
                _ => {}
            }
        }
        prop_assert_eq!(got, want);
        // the snapshots agree with the model
        prop_assert_eq!(new.services().len(), new_model.len());
    }
}
