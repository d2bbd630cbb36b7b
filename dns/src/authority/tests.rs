//! Authority rules that the socket tests do not reach: the pod-record
//! policies, CNAME loops, and which names are forwarded.

use std::sync::{Arc, RwLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use strait_cluster::{ClusterSnapshot, Component, ManifestLoader, Trim};

use super::*;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: default}
status: {podIP: 10.244.9.9}
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: loop}
spec: {type: ExternalName, externalName: b.loop.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: loop}
spec: {type: ExternalName, externalName: a.loop.svc.cluster.local}
"#;

fn authority(pods: PodRecords) -> Authority {
    let report = ManifestLoader::parse_str("c.yaml", CLUSTER);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let index = Index::from_snapshot("cluster.local", &report.to_snapshot());
    Authority::new(Zone::default(), 30, pods, Arc::new(RwLock::new(index)))
}

fn rcode(auth: &Authority, name: &str, qtype: RecordType) -> (ResponseCode, usize) {
    match auth.resolve(&Name::from_ascii(name).unwrap(), qtype) {
        Resolution::Answer(a) => (a.rcode, a.answers.len()),
        Resolution::Forward => panic!("{name} was forwarded"),
    }
}

const NOERROR: ResponseCode = ResponseCode::NoError;
const NXDOMAIN: ResponseCode = ResponseCode::NXDomain;

/// The cluster as `strait dns` holds it: cut down to what DNS reads.
fn trimmed_authority(pods: PodRecords) -> Authority {
    let trim = Trim::for_component(Component::Dns);
    let report = ManifestLoader::parse_str("c.yaml", CLUSTER);
    let snapshot = ClusterSnapshot::from_objects(report.objects.into_iter().map(|mut o| {
        trim.apply(&mut o);
        o
    }));
    let index = Index::from_snapshot("cluster.local", &snapshot);
    Authority::new(Zone::default(), 30, pods, Arc::new(RwLock::new(index)))
}

#[test]
fn verified_pod_records_need_a_watched_pod() {
    verified_pod_records(authority(PodRecords::Verified));
    verified_pod_records(trimmed_authority(PodRecords::Verified));
}

fn verified_pod_records(auth: Authority) {
    let a = RecordType::A;
    assert_eq!(
        rcode(&auth, "10-244-9-9.default.pod.cluster.local.", a),
        (NOERROR, 1)
    );
    assert_eq!(
        rcode(&auth, "10-244-9-9.DEFAULT.pod.cluster.local.", a),
        (NOERROR, 1)
    );
    assert_eq!(
        rcode(&auth, "10-244-9-9.other.pod.cluster.local.", a),
        (NXDOMAIN, 0)
    );
    assert_eq!(
        rcode(&auth, "1-2-3-4.default.pod.cluster.local.", a),
        (NXDOMAIN, 0)
    );
    assert_eq!(rcode(&auth, "default.pod.cluster.local.", a), (NOERROR, 0));
    assert_eq!(rcode(&auth, "other.pod.cluster.local.", a), (NXDOMAIN, 0));
}

#[test]
fn disabled_pod_records_do_not_exist() {
    let auth = authority(PodRecords::Disabled);
    let a = RecordType::A;
    assert_eq!(
        rcode(&auth, "10-244-9-9.default.pod.cluster.local.", a),
        (NXDOMAIN, 0)
    );
    assert_eq!(rcode(&auth, "default.pod.cluster.local.", a), (NXDOMAIN, 0));
    assert_eq!(rcode(&auth, "pod.cluster.local.", a), (NXDOMAIN, 0));
    let auth = authority(PodRecords::Insecure);
    assert_eq!(
        rcode(&auth, "1-2-3-4.any.pod.cluster.local.", a),
        (NOERROR, 1)
    );
}

#[test]
fn cname_loops_stop() {
    let auth = authority(PodRecords::Insecure);
    let (code, answers) = rcode(&auth, "a.loop.svc.cluster.local.", RecordType::A);
    assert_eq!(code, NOERROR);
    assert_eq!(answers, MAX_CHASE + 1);
}

#[test]
fn foreign_names_are_forwarded() {
    let auth = authority(PodRecords::Insecure);
    for name in [
        "www.example.com.",
        "1.2.0.192.in-addr.arpa.",
        "10.in-addr.arpa.",
        ".",
    ] {
        assert_eq!(
            auth.resolve(&Name::from_ascii(name).unwrap(), RecordType::A),
            Resolution::Forward,
            "{name}"
        );
    }
}
