//! Building the cluster view for 10 000 services, against the floor of
//! simply deserializing the same YAML into the same k8s-openapi types.
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use strait_bench::workload::services_yaml;
use strait_cluster::{
    ManifestLoader, Object, SnapshotBuilder,
    k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice},
};

const SERVICES: usize = 10_000;

/// The baseline: split documents and deserialize each straight into its
/// known type, with no kind dispatch, validation, indexing or dedup.
fn parse_only(yaml: &str) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::with_capacity(SERVICES);
    let mut slices = Vec::with_capacity(SERVICES);
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        if i % 2 == 0 {
            services.push(Service::deserialize(doc).expect("service"));
        } else {
            slices.push(EndpointSlice::deserialize(doc).expect("slice"));
        }
    }
    (services, slices)
}

fn bench(c: &mut Criterion) {
    let yaml = services_yaml(SERVICES);
    let mut group = c.benchmark_group("cluster_10000_services");
    group.sample_size(10);
    group.bench_function("parse_baseline", |b| {
        b.iter(|| black_box(parse_only(&yaml)))
    });
    group.bench_function("snapshot_build", |b| {
        b.iter(|| {
            let report = ManifestLoader::parse_str("bench.yaml", &yaml);
            assert!(report.errors.is_empty());
            black_box(report.to_snapshot())
        })
    });
    let snapshot = ManifestLoader::parse_str("bench.yaml", &yaml).to_snapshot();
    let mut changed = (**snapshot.service("bench", "svc-5000").expect("svc")).clone();
    changed.metadata.resource_version = Some("2".into());
    group.bench_function("incremental_update", |b| {
        b.iter(|| {
            let mut builder = SnapshotBuilder::from_snapshot(&snapshot);
            builder.apply(Object::from(changed.clone()));
            let next = builder.build();
            black_box(next.changes_since(&snapshot))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
