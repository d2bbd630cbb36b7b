//! The manifest test of issue #9: every YAML document under `deploy/` parses
//! into its k8s-openapi type with no unknown field, `kustomization.yaml`
//! lists every manifest, and each component's ClusterRole grants exactly the
//! resources and verbs that `strait_cluster::Component` says the code uses.
//! Needs no root and no cluster.
//!
//! k8s-openapi ignores unknown fields when deserializing, so a misspelled
//! field (`hostNetwrok: true`) would parse and silently do nothing. The test
//! catches it by serializing the typed object back to JSON and checking that
//! every key path of the original document survived the round trip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strait_cluster::Component;
use strait_cluster::k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use strait_cluster::k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount,
};
use strait_cluster::k8s_openapi::api::networking::v1::IngressClass;
use strait_cluster::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

const KUSTOMIZATION: &str = "kustomization.yaml";

/// One parsed document, typed by its apiVersion and kind.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Manifest {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    ConfigMap(ConfigMap),
    DaemonSet(DaemonSet),
    Deployment(Deployment),
    Service(Service),
    IngressClass(IngressClass),
}

/// Parses one document into `T` and fails on any field `T` does not know.
fn parse_strict<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut lost = Vec::new();
    lost_paths(doc, &back, "", &mut lost);
    if lost.is_empty() {
        Ok(typed)
    } else {
        Err(format!(
            "unknown fields (or null values, which the typed object drops): {}",
            lost.join(", ")
        ))
    }
}

/// Pushes onto `out` every key path of `original` that `round_trip` lacks.
/// Objects are compared key by key and arrays element by element; scalars
/// need no check, since the typed parse already checked their types.
fn lost_paths(original: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(orig), Value::Object(back)) => {
            for (key, value) in orig {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match back.get(key) {
                    Some(back_value) => lost_paths(value, back_value, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(orig), Value::Array(back)) => {
            if orig.len() != back.len() {
                out.push(format!(
                    "{path} (had {} items, kept {})",
                    orig.len(),
                    back.len()
                ));
            }
            for (i, (o, b)) in orig.iter().zip(back).enumerate() {
                lost_paths(o, b, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(_) | Value::Array(_), other) => {
            out.push(format!("{path} (became {other})"));
        }
        _ => {}
    }
}

/// Dispatches a document to its k8s-openapi type by apiVersion and kind.
fn parse_manifest(doc: &Value) -> Result<Manifest, String> {
    let api_version = doc.get("apiVersion").and_then(Value::as_str);
    let kind = doc.get("kind").and_then(Value::as_str);
    match (api_version, kind) {
        (Some("v1"), Some("Namespace")) => parse_strict(doc).map(Manifest::Namespace),
        (Some("v1"), Some("ServiceAccount")) => parse_strict(doc).map(Manifest::ServiceAccount),
        (Some("v1"), Some("ConfigMap")) => parse_strict(doc).map(Manifest::ConfigMap),
        (Some("v1"), Some("Service")) => parse_strict(doc).map(Manifest::Service),
        (Some("apps/v1"), Some("DaemonSet")) => parse_strict(doc).map(Manifest::DaemonSet),
        (Some("apps/v1"), Some("Deployment")) => parse_strict(doc).map(Manifest::Deployment),
        (Some("networking.k8s.io/v1"), Some("IngressClass")) => {
            parse_strict(doc).map(Manifest::IngressClass)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
            parse_strict(doc).map(Manifest::ClusterRole)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            parse_strict(doc).map(Manifest::ClusterRoleBinding)
        }
        other => Err(format!(
            "no type for apiVersion/kind {other:?} (add it to parse_manifest)"
        )),
    }
}

/// Every YAML document of `text` as JSON, skipping empty documents.
fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(de).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The YAML files under `deploy/`, relative to it with `/` separators, sorted.
fn yaml_files() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let rel = path.strip_prefix(base).expect("under deploy/");
                let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    let base = deploy_dir();
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

/// Every manifest under `deploy/` (kustomization.yaml aside), parsed, with
/// the file and document index it came from; panics listing every problem.
fn load_all() -> Vec<(String, Manifest)> {
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for file in yaml_files() {
        if file == KUSTOMIZATION {
            continue;
        }
        let text = std::fs::read_to_string(deploy_dir().join(&file)).expect("read manifest");
        let docs = match yaml_documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                problems.push(format!("{file}: not YAML: {e}"));
                continue;
            }
        };
        if docs.is_empty() {
            problems.push(format!("{file}: no documents"));
        }
        for (i, doc) in docs.iter().enumerate() {
            match parse_manifest(doc) {
                Ok(m) => manifests.push((format!("{file}#{i}"), m)),
                Err(e) => problems.push(format!("{file} document {i}: {e}")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "deploy/ has invalid manifests:\n  {}",
        problems.join("\n  ")
    );
    manifests
}

#[test]
fn every_manifest_parses_into_its_type_with_no_unknown_fields() {
    let manifests = load_all();
    assert!(manifests.len() >= 10, "only {} documents", manifests.len());
    // Namespaced objects go to a namespace deploy/ creates, or kube-system.
    let mut namespaces: BTreeSet<String> = ["kube-system".to_owned()].into();
    for (_, m) in &manifests {
        if let Manifest::Namespace(ns) = m {
            namespaces.extend(ns.metadata.name.clone());
        }
    }
    for (at, m) in &manifests {
        let ns = match m {
            Manifest::ServiceAccount(o) => &o.metadata.namespace,
            Manifest::ConfigMap(o) => &o.metadata.namespace,
            Manifest::DaemonSet(o) => &o.metadata.namespace,
            Manifest::Deployment(o) => &o.metadata.namespace,
            Manifest::Service(o) => &o.metadata.namespace,
            _ => continue,
        };
        let ns = ns
            .as_deref()
            .unwrap_or_else(|| panic!("{at}: no namespace"));
        assert!(
            namespaces.contains(ns),
            "{at}: namespace {ns} is not created"
        );
    }
}

#[test]
fn ingress_class_names_the_controller_the_deployment_runs() {
    let manifests = load_all();
    let class = manifests
        .iter()
        .find_map(|(_, m)| match m {
            Manifest::IngressClass(c) => Some(c),
            _ => None,
        })
        .expect("an IngressClass");
    let name = class.metadata.name.as_deref().expect("name");
    let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref());
    assert_eq!((name, controller), ("strait", Some("strait.dev/ingress")));
    let workloads = workloads(&manifests);
    let (_, pod) = &workloads["strait-ingress"];
    let args = container(pod, "ingress").args.clone().unwrap_or_default();
    assert!(args.contains(&"--class=strait".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--controller-name=strait.dev/ingress".to_owned()),
        "{args:?}"
    );
}

#[test]
fn kustomization_lists_every_manifest() {
    let text = std::fs::read_to_string(deploy_dir().join(KUSTOMIZATION)).expect("kustomization");
    let docs = yaml_documents(&text).expect("kustomization is YAML");
    assert_eq!(docs.len(), 1, "one kustomization document");
    let listed: BTreeSet<String> = docs[0]["resources"]
        .as_array()
        .expect("resources: a list")
        .iter()
        .map(|r| r.as_str().expect("resource: a path").to_owned())
        .collect();
    let files: BTreeSet<String> = yaml_files()
        .into_iter()
        .filter(|f| f != KUSTOMIZATION)
        .collect();
    let unlisted: Vec<_> = files.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&files).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "kustomization.yaml out of date: not listed {unlisted:?}; listed but absent {missing:?}"
    );
}

/// A ClusterRole's grants as (apiGroup, resource, verb) triples; wildcards,
/// resourceNames and nonResourceURLs are refused outright.
fn grants(role: &ClusterRole) -> BTreeSet<(String, String, String)> {
    let name = role.metadata.name.as_deref().unwrap_or("?");
    assert!(
        role.aggregation_rule.is_none(),
        "{name}: aggregation grants what it aggregates"
    );
    let mut out = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{name}: only plain resource rules are expected"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert!(
                        ![group, resource, verb].iter().any(|s| s.contains('*')),
                        "{name}: wildcard in {group}/{resource} {verb}"
                    );
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn expected_grants(component: Component) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for access in component.rules() {
        for verb in access.verbs {
            out.insert((
                access.api_group.to_owned(),
                access.resource.to_owned(),
                (*verb).to_owned(),
            ));
        }
    }
    out
}

fn role_name(component: Component) -> String {
    format!("strait-{}", component.name())
}

#[test]
fn each_component_role_grants_exactly_what_the_code_uses() {
    let manifests = load_all();
    let roles: BTreeMap<String, &ClusterRole> = manifests
        .iter()
        .filter_map(|(_, m)| match m {
            Manifest::ClusterRole(r) => Some((r.metadata.name.clone().unwrap_or_default(), r)),
            _ => None,
        })
        .collect();
    let components: BTreeSet<String> = Component::ALL.into_iter().map(role_name).collect();
    let strays: Vec<_> = roles.keys().filter(|n| !components.contains(*n)).collect();
    assert!(
        strays.is_empty(),
        "ClusterRoles that belong to no component: {strays:?}"
    );
    for component in Component::ALL {
        let name = role_name(component);
        let role = roles
            .get(&name)
            .unwrap_or_else(|| panic!("no ClusterRole {name} in deploy/"));
        let granted = grants(role);
        let expected = expected_grants(component);
        let extra: Vec<_> = granted.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&granted).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{name}: grants more than the code uses {extra:?}; lacks {missing:?} \
             (the list lives in strait_cluster::Component)"
        );
    }
}

/// The pod spec and namespace of each workload, keyed by its ServiceAccount.
fn workloads(manifests: &[(String, Manifest)]) -> BTreeMap<String, (String, &PodSpec)> {
    let mut out = BTreeMap::new();
    for (at, m) in manifests {
        let (meta, template) = match m {
            Manifest::DaemonSet(d) => (&d.metadata, d.spec.as_ref().map(|s| &s.template)),
            Manifest::Deployment(d) => (&d.metadata, d.spec.as_ref().map(|s| &s.template)),
            _ => continue,
        };
        let pod = template
            .and_then(|t| t.spec.as_ref())
            .unwrap_or_else(|| panic!("{at}: no pod spec"));
        let sa = pod
            .service_account_name
            .clone()
            .unwrap_or_else(|| panic!("{at}: no serviceAccountName"));
        let ns = meta
            .namespace
            .clone()
            .unwrap_or_else(|| panic!("{at}: no namespace"));
        assert!(
            out.insert(sa.clone(), (ns, pod)).is_none(),
            "{sa} used twice"
        );
    }
    out
}

#[test]
fn each_component_runs_under_its_own_bound_service_account() {
    let manifests = load_all();
    let workloads = workloads(&manifests);
    assert_eq!(
        workloads.len(),
        Component::ALL.len(),
        "one workload per component"
    );
    for component in Component::ALL {
        let name = role_name(component);
        let (ns, pod) = workloads
            .get(&name)
            .unwrap_or_else(|| panic!("no workload runs as {name}"));
        let main = &pod.containers[0];
        assert_eq!(
            main.args
                .as_ref()
                .and_then(|a| a.first())
                .map(String::as_str),
            Some(component.name()),
            "{name}: the first container runs `strait {}`",
            component.name()
        );
        let sa_found = manifests.iter().any(|(_, m)| {
            matches!(m, Manifest::ServiceAccount(sa)
                if sa.metadata.name.as_deref() == Some(&name)
                    && sa.metadata.namespace.as_deref() == Some(ns))
        });
        assert!(sa_found, "no ServiceAccount {ns}/{name}");
        let binding = manifests
            .iter()
            .find_map(|(_, m)| match m {
                Manifest::ClusterRoleBinding(b) if b.metadata.name.as_deref() == Some(&name) => {
                    Some(b)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no ClusterRoleBinding {name}"));
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("ClusterRole", name.as_str())
        );
        let subjects: Vec<_> = binding
            .subjects
            .iter()
            .flatten()
            .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()))
            .collect();
        assert_eq!(
            subjects,
            vec![("ServiceAccount", name.as_str(), Some(ns.as_str()))],
            "{name}: bound to exactly its own ServiceAccount"
        );
    }
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn agent_is_host_network_unprivileged_with_listed_capabilities() {
    let manifests = load_all();
    let workloads = workloads(&manifests);
    let (_, pod) = &workloads["strait-agent"];
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let agent = container(pod, "agent");
    let sc = agent.security_context.as_ref().expect("securityContext");
    assert_ne!(sc.privileged, Some(true), "the agent is not privileged");
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    let allowed = ["BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"];
    for cap in caps.add.iter().flatten() {
        assert!(
            allowed.contains(&cap.as_str()),
            "unexpected capability {cap}"
        );
    }
    let probe = agent.readiness_probe.as_ref().expect("readiness probe");
    let http = probe.http_get.as_ref().expect("HTTP probe");
    assert_eq!(http.path.as_deref(), Some("/healthz"));
    assert_eq!(
        serde_json::to_value(&http.port).expect("port"),
        serde_json::json!(10256)
    );
}

#[test]
fn kube_dns_service_serves_dns_and_metrics_at_the_placeholder_ip() {
    let manifests = load_all();
    let svc = manifests
        .iter()
        .find_map(|(_, m)| match m {
            Manifest::Service(s) if s.metadata.name.as_deref() == Some("kube-dns") => Some(s),
            _ => None,
        })
        .expect("a kube-dns Service");
    assert_eq!(svc.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = svc.spec.as_ref().expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    let ports: BTreeSet<_> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.port, p.protocol.clone().unwrap_or_default()))
        .collect();
    let want: BTreeSet<_> = [(53, "UDP"), (53, "TCP"), (9153, "TCP")]
        .into_iter()
        .map(|(p, proto)| (p, proto.to_owned()))
        .collect();
    assert_eq!(ports, want);
}

/// The agent writes the conflist (`--write-cni-config`) into the host's
/// /etc/cni/net.d through a writable hostPath mount, and what it renders
/// (the shared `strait_cni::conflist`) is accepted by strait-cni's own
/// configuration parser.
#[test]
fn agent_writes_a_valid_strait_cni_config_to_the_hosts_net_d() {
    let manifests = load_all();
    let workloads = workloads(&manifests);
    let (_, pod) = &workloads["strait-agent"];
    let agent = container(pod, "agent");
    let path = agent
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--write-cni-config="))
        .expect("the agent has --write-cni-config=PATH");
    let mount = agent
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
        .unwrap_or_else(|| panic!("no volume mount holds {path}"));
    assert_ne!(
        mount.read_only,
        Some(true),
        "{} is written",
        mount.mount_path
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume");
    let host = volume.host_path.as_ref().expect("a hostPath volume");
    assert_eq!(host.path, "/etc/cni/net.d");
    assert!(path.ends_with(".conflist"), "{path}");

    let list = strait_cni::conflist::ConflistSpec::node(vec![
        "10.244.1.0/24".into(),
        "fd00:10:244:1::/64".into(),
    ])
    .render();
    let plugins = list["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 1);
    // libcni hands each plugin the list's name and cniVersion.
    let mut plugin = plugins[0].clone();
    plugin["name"] = list["name"].clone();
    plugin["cniVersion"] = list["cniVersion"].clone();
    assert_eq!(plugin["type"], "strait-cni", "the installed binary's name");
    let config = strait_cni::NetworkConfig::parse(plugin.to_string().as_bytes())
        .expect("strait-cni accepts the config");
    let options = strait_cni::options::Options::from_config(&config).expect("valid options");
    assert_eq!(options.ipam.range_sets.len(), 2, "dual-stack ranges");
}

#[test]
fn unknown_field_detector_catches_a_misspelling() {
    let good = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x, namespace: y}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      hostNetwork: true
      containers:
        - name: c
          image: i
          imagePullPolicy: IfNotPresent
          resources: {requests: {cpu: 100m}}
          volumeMounts: []
      volumes:
        - name: v
          emptyDir: {}
"#;
    let doc = &yaml_documents(good).expect("yaml")[0];
    parse_manifest(doc).expect("a correct manifest passes");

    let bad = good
        .replace("hostNetwork", "hostNetwrok")
        .replace("imagePullPolicy", "imagePulPolicy")
        .replace("emptyDir", "emptydir");
    let doc = &yaml_documents(&bad).expect("yaml")[0];
    let err = parse_manifest(doc).expect_err("misspellings are caught");
    for path in [
        "spec.template.spec.hostNetwrok",
        "spec.template.spec.containers[0].imagePulPolicy",
        "spec.template.spec.volumes[0].emptydir",
    ] {
        assert!(err.contains(path), "{path} not reported in: {err}");
    }

    // A wrong kind for the apiVersion, and a null value, are caught too.
    let doc =
        &yaml_documents("apiVersion: v1\nkind: DaemonSet\nmetadata: {name: x}\n").expect("yaml")[0];
    assert!(parse_manifest(doc).is_err());
    let doc = &yaml_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n")
        .expect("yaml")[0];
    let err = parse_manifest(doc).expect_err("null is dropped");
    assert!(err.contains("data"), "{err}");
}
