//! Arbitrary bytes into the request handler over both transports: it must
//! never panic, whatever the packet.
#![no_main]

use std::sync::{Arc, LazyLock, RwLock};

use libfuzzer_sys::fuzz_target;
use strait_cluster::ManifestLoader;
use strait_dns::{Authority, Handler, Index, Metrics, PodRecords, Transport, Zone};

const CLUSTER: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
                       spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}\n";

static HANDLER: LazyLock<Handler> = LazyLock::new(|| {
    let snapshot = ManifestLoader::parse_str("c.yaml", CLUSTER).to_snapshot();
    let index = Index::from_snapshot("cluster.local", &snapshot);
    let authority = Authority::new(
        Zone::default(),
        30,
        PodRecords::Verified,
        Arc::new(RwLock::new(index)),
    );
    Handler::new(authority, None, Arc::new(Metrics::new()), 1232)
});

fuzz_target!(|data: &[u8]| {
    let _ = HANDLER.handle(data, Transport::Udp);
    let _ = HANDLER.handle(data, Transport::Tcp);
});
