//! Arbitrary bytes into the request handler over both transports, from a
//! client the index knows (autopath on) and from an unknown one: it must
//! never panic, whatever the packet.
#![no_main]

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, LazyLock, RwLock},
};

use libfuzzer_sys::fuzz_target;
use strait_cluster::ManifestLoader;
use strait_dns::{Authority, Handler, Index, Metrics, PodRecords, Transport, Zone};

/// Every record shape the authority serves: a ClusterIP with named ports, a
/// headless service with hostnames (shared and not), an ExternalName chain
/// that ends inside the zone, a second service on the same IP (two PTRs) and
/// a pod the autopath walk resolves the client's namespace from.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-alias, namespace: shop}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: default, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: [10.244.1.5], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.244.1.6], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.244.1.7], conditions: {ready: false}}
---
apiVersion: v1
kind: Service
metadata: {name: out, namespace: default}
spec: {type: ExternalName, externalName: web.default.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop, namespace: default}
spec: {type: ExternalName, externalName: loop.default.svc.cluster.local}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.244.1.9, podIPs: [{ip: 10.244.1.9}]}
"#;

static HANDLER: LazyLock<Handler> = LazyLock::new(|| {
    let snapshot = ManifestLoader::parse_str("c.yaml", CLUSTER).to_snapshot();
    let index = Index::from_snapshot("cluster.local", &snapshot);
    let authority = Authority::new(
        Zone::default(),
        30,
        PodRecords::Verified,
        Arc::new(RwLock::new(index)),
    );
    Handler::new(authority, None, Arc::new(Metrics::new()), 1232).with_autopath(true)
});

const KNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 244, 1, 9));

fuzz_target!(|data: &[u8]| {
    let _ = HANDLER.handle(data, Transport::Udp);
    let _ = HANDLER.handle(data, Transport::Tcp);
    let _ = HANDLER.handle_from(data, Transport::Udp, Some(KNOWN_CLIENT));
});
