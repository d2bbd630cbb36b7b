//! Hostile input on the query path: arbitrary bytes and mutated queries
//! never panic, and every answer is a well-formed response to the request.

use std::sync::{Arc, RwLock};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use proptest::prelude::*;
use strait_cluster::ManifestLoader;

use super::*;
use crate::config::PodRecords;
use crate::forward::{Cache, Forwarder};
use crate::index::Index;
use crate::name::Zone;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
"#;

fn handler(forward: bool) -> Handler {
    let report = ManifestLoader::parse_str("c.yaml", CLUSTER);
    let index = Index::from_snapshot("cluster.local", &report.to_snapshot());
    let authority = Authority::new(
        Zone::default(),
        30,
        PodRecords::Insecure,
        Arc::new(RwLock::new(index)),
    );
    // An upstream nobody listens on: forwarding fails fast.
    let forwarder = forward.then(|| {
        Forwarder::new(
            vec!["127.0.0.1:9".parse().unwrap()],
            std::time::Duration::from_millis(1),
            Cache::new(10, 60, std::time::Duration::ZERO),
        )
    });
    Handler::new(authority, forwarder, Arc::new(Metrics::new()), 1232)
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

fn reply(step: Step) -> Option<Message> {
    match step {
        Step::Reply(bytes) => Some(Message::from_vec(&bytes).expect("our answer parses")),
        Step::Drop => None,
        Step::Forward(_) => panic!("unexpected forward"),
    }
}

#[test]
fn header_only_garbage_gets_formerr() {
    let h = handler(false);
    assert!(matches!(h.handle(&[], Transport::Udp), Step::Drop));
    assert!(matches!(h.handle(&[1, 2, 3], Transport::Udp), Step::Drop));
    let mut bytes = query("web.default.svc.cluster.local.", RecordType::A);
    bytes.truncate(20);
    let got = reply(h.handle(&bytes, Transport::Udp)).unwrap();
    assert_eq!(got.metadata.response_code, ResponseCode::FormErr);
    // A response is never answered (no loops between servers).
    let mut bytes = query("web.default.svc.cluster.local.", RecordType::A);
    bytes[2] |= 0x80;
    assert!(matches!(h.handle(&bytes, Transport::Udp), Step::Drop));
}

#[test]
fn protocol_level_refusals() {
    let h = handler(false);
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
    m.add_query(Query::query(Name::from_ascii("b.").unwrap(), RecordType::A));
    let got = reply(h.handle(&m.to_vec().unwrap(), Transport::Udp)).unwrap();
    assert_eq!(got.metadata.response_code, ResponseCode::FormErr);

    let mut m = Message::query();
    m.metadata.op_code = OpCode::Update;
    m.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
    let got = reply(h.handle(&m.to_vec().unwrap(), Transport::Udp)).unwrap();
    assert_eq!(got.metadata.response_code, ResponseCode::NotImp);

    let mut m = Message::query();
    let mut q = Query::query(
        Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
        RecordType::A,
    );
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let got = reply(h.handle(&m.to_vec().unwrap(), Transport::Udp)).unwrap();
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);

    let bytes = query("cluster.local.", RecordType::AXFR);
    let got = reply(h.handle(&bytes, Transport::Tcp)).unwrap();
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);

    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_version(1);
    m.set_edns(edns);
    let got = reply(h.handle(&m.to_vec().unwrap(), Transport::Udp)).unwrap();
    // BADVERS shares code 16 with BADSIG; the decoder names it BADSIG.
    assert_eq!(u16::from(got.metadata.response_code), 16);
    assert!(got.edns.is_some());
}

#[tokio::test]
async fn failed_upstreams_give_servfail() {
    let h = handler(true);
    let bytes = query("www.example.com.", RecordType::A);
    let got = h.handle_full(&bytes, Transport::Udp).await.unwrap();
    let got = Message::from_vec(&got).unwrap();
    assert_eq!(got.metadata.response_code, ResponseCode::ServFail);
    assert!(got.metadata.recursion_available);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let h = handler(false);
        if let Some(got) = reply(h.handle(&bytes, Transport::Udp)) {
            prop_assert_eq!(&got.metadata.id.to_be_bytes()[..], &bytes[..2]);
        }
    }

    #[test]
    fn mutated_queries_never_panic(
        name in "[a-zA-Z0-9_.-]{0,80}",
        qtype in any::<u16>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    ) {
        let h = handler(false);
        let mut m = Message::query();
        let Ok(name) = Name::from_ascii(format!("{name}.svc.cluster.local.")) else {
            return Ok(());
        };
        m.add_query(Query::query(name, RecordType::from(qtype)));
        let Ok(mut bytes) = m.to_vec() else {
            return Ok(());
        };
        for (at, byte) in flips {
            let len = bytes.len();
            bytes[at % len] = byte;
        }
        let _ = h.handle(&bytes, Transport::Udp);
        let _ = h.handle(&bytes, Transport::Tcp);
    }
}
