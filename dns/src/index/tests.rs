//! The index: built from a snapshot, and kept equal to a full rebuild by
//! incremental updates whatever the sequence of edits.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strait_cluster::k8s_openapi::api::core::v1::{
    Pod, PodIP, PodStatus, Service, ServicePort, ServiceSpec,
};
use strait_cluster::k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_cluster::{ClusterSnapshot, Kind, KindSet, ObjectKey, SnapshotBuilder};

use super::*;

/// A canonical, order-independent picture of the index.
fn dump(index: &Index) -> String {
    let mut services = BTreeMap::new();
    for (ns, map) in &index.namespaces {
        assert!(!map.is_empty(), "empty namespace {ns} kept");
        for (name, entry) in map {
            services.insert(format!("{ns}/{name}"), format!("{entry:?}"));
        }
    }
    let mut reverse = BTreeMap::new();
    for (ip, targets) in &index.reverse {
        let mut t: Vec<String> = targets.iter().map(ToString::to_string).collect();
        t.sort();
        reverse.insert(*ip, t);
    }
    let mut pods = BTreeMap::new();
    for (ip, list) in &index.pods.by_ip {
        let mut l: Vec<&str> = list.iter().map(|s| &**s).collect();
        l.sort();
        pods.insert(*ip, l.join(","));
    }
    let per_ns: BTreeMap<_, _> = index.pods.per_namespace.iter().collect();
    format!("{services:#?}\n{reverse:?}\n{pods:?}\n{per_ns:?}")
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

fn service(ns: &str, name: &str, ip: Option<u8>) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.map_or("None".into(), |i| format!("10.96.0.{i}"))),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(ns: &str, name: &str, owner: &str, ips: &[u8]) -> EndpointSlice {
    let mut m = meta(ns, name);
    m.labels = Some([(SERVICE_NAME_LABEL.to_owned(), owner.to_owned())].into());
    EndpointSlice {
        metadata: m,
        address_type: "IPv4".into(),
        endpoints: ips
            .iter()
            .map(|i| Endpoint {
                addresses: vec![format!("10.244.0.{i}")],
                hostname: (i % 2 == 0).then(|| format!("h{i}")),
                ..Default::default()
            })
            .collect(),
        ports: None,
    }
}

fn pod(ns: &str, name: &str, ip: u8) -> Pod {
    Pod {
        metadata: meta(ns, name),
        status: Some(PodStatus {
            pod_ips: Some(vec![PodIP {
                ip: format!("10.244.0.{ip}"),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_changed_service_is_recomputed_alone() {
    let mut builder = SnapshotBuilder::new(KindSet::ALL);
    builder.apply(service("a", "web", Some(1)));
    builder.apply(service("a", "db", None));
    builder.apply(slice("a", "db-1", "db", &[1, 2]));
    for kind in Kind::ALL {
        builder.mark_synced(kind);
    }
    let s1 = builder.build();
    let mut index = Index::from_snapshot("cluster.local", &s1);
    let db_before = index.namespaces["a"]["db"].clone();
    assert_eq!(index.service_count(), 2);
    assert_eq!(index.ptr("10.96.0.1".parse().unwrap()).len(), 1);

    builder.apply(service("a", "web", Some(9)));
    let s2 = builder.build();
    index.apply(&s2, &s2.changes_since(&s1));
    // The untouched service keeps its entry (same allocation).
    assert!(Arc::ptr_eq(&db_before, &index.namespaces["a"]["db"]));
    assert!(index.ptr("10.96.0.1".parse().unwrap()).is_empty());
    assert_eq!(index.ptr("10.96.0.9".parse().unwrap()).len(), 1);

    // Moving a slice to another service updates both.
    builder.apply(service("a", "db2", None));
    builder.apply(slice("a", "db-1", "db2", &[1, 2]));
    let s3 = builder.build();
    index.apply(&s3, &s3.changes_since(&s2));
    assert!(!index.service("a", "db").unwrap().exists());
    assert!(index.service("A", "DB2").unwrap().exists());
    assert_eq!(
        dump(&index),
        dump(&Index::from_snapshot("cluster.local", &s3))
    );

    builder.delete(Kind::Service, &ObjectKey::namespaced("a", "web"));
    builder.delete(Kind::Service, &ObjectKey::namespaced("a", "db"));
    builder.delete(Kind::Service, &ObjectKey::namespaced("a", "db2"));
    let s4 = builder.build();
    index.apply(&s4, &s4.changes_since(&s3));
    assert!(!index.has_namespace("a"));
    assert!(index.reverse.is_empty());
}

#[test]
fn unsynced_snapshots_leave_the_index_unsynced() {
    let index = Index::from_snapshot("cluster.local", &ClusterSnapshot::empty(KindSet::ALL));
    assert!(!index.synced());
    let index = Index::from_snapshot("cluster.local", &ClusterSnapshot::from_objects([]));
    assert!(index.synced());
}

/// One edit of a small cluster.
#[derive(Debug, Clone)]
enum Edit {
    Service {
        ns: u8,
        name: u8,
        ip: Option<u8>,
    },
    DeleteService {
        ns: u8,
        name: u8,
    },
    Slice {
        ns: u8,
        name: u8,
        owner: u8,
        ips: Vec<u8>,
    },
    DeleteSlice {
        ns: u8,
        name: u8,
    },
    Pod {
        ns: u8,
        name: u8,
        ip: u8,
    },
    DeletePod {
        ns: u8,
        name: u8,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let small = 0u8..3;
    prop_oneof![
        (small.clone(), small.clone(), proptest::option::of(0u8..4))
            .prop_map(|(ns, name, ip)| Edit::Service { ns, name, ip }),
        (small.clone(), small.clone()).prop_map(|(ns, name)| Edit::DeleteService { ns, name }),
        (
            small.clone(),
            small.clone(),
            small.clone(),
            proptest::collection::vec(0u8..6, 0..4)
        )
            .prop_map(|(ns, name, owner, ips)| Edit::Slice {
                ns,
                name,
                owner,
                ips
            }),
        (small.clone(), small.clone()).prop_map(|(ns, name)| Edit::DeleteSlice { ns, name }),
        (small.clone(), small.clone(), 0u8..4).prop_map(|(ns, name, ip)| Edit::Pod {
            ns,
            name,
            ip
        }),
        (small.clone(), small).prop_map(|(ns, name)| Edit::DeletePod { ns, name }),
    ]
}

fn run(builder: &mut SnapshotBuilder, edit: &Edit) {
    let ns = |n: &u8| format!("ns{n}");
    match edit {
        Edit::Service { ns: n, name, ip } => {
            builder.apply(service(&ns(n), &format!("s{name}"), *ip));
        }
        Edit::DeleteService { ns: n, name } => {
            builder.delete(
                Kind::Service,
                &ObjectKey::namespaced(ns(n), format!("s{name}")),
            );
        }
        Edit::Slice {
            ns: n,
            name,
            owner,
            ips,
        } => {
            builder.apply(slice(
                &ns(n),
                &format!("e{name}"),
                &format!("s{owner}"),
                ips,
            ));
        }
        Edit::DeleteSlice { ns: n, name } => {
            builder.delete(
                Kind::EndpointSlice,
                &ObjectKey::namespaced(ns(n), format!("e{name}")),
            );
        }
        Edit::Pod { ns: n, name, ip } => {
            builder.apply(pod(&ns(n), &format!("p{name}"), *ip));
        }
        Edit::DeletePod { ns: n, name } => {
            builder.delete(Kind::Pod, &ObjectKey::namespaced(ns(n), format!("p{name}")));
        }
    }
}

proptest! {
    #[test]
    fn incremental_updates_equal_a_full_rebuild(
        batches in proptest::collection::vec(proptest::collection::vec(edit(), 1..4), 1..12)
    ) {
        let mut builder = SnapshotBuilder::new(KindSet::ALL);
        for kind in Kind::ALL {
            builder.mark_synced(kind);
        }
        let mut last = builder.build();
        let mut index = Index::from_snapshot("cluster.local", &last);
        for batch in &batches {
            for e in batch {
                run(&mut builder, e);
            }
            let next = builder.build();
            index.apply(&next, &next.changes_since(&last));
            prop_assert_eq!(dump(&index), dump(&Index::from_snapshot("cluster.local", &next)));
            last = next;
        }
    }
}
