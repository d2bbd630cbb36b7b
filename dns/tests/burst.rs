//! Many clients sending at once: the UDP listener reads and answers
//! datagrams in batches (recvmmsg/sendmmsg), so a burst from several
//! sockets must still get every answer, each to the socket that asked and
//! for the question it asked.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use strait_cluster::ClusterView;
use tokio::net::UdpSocket;

use common::{config, fixture, request, start};

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 64;

/// The name a client asks for its `i`th query: a mix of an answer and a
/// negative answer, different per client, so a reply sent to the wrong
/// socket or matched to the wrong query shows.
fn name(client: usize, i: usize) -> (String, ResponseCode) {
    if i.is_multiple_of(2) {
        (
            "web.default.svc.cluster.local.".into(),
            ResponseCode::NoError,
        )
    } else {
        (
            format!("c{client}-q{i}.default.svc.cluster.local."),
            ResponseCode::NXDomain,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_many_sockets_is_answered_each_to_its_sender() {
    let server = start(config(), ClusterView::from_snapshot(fixture())).await;
    let target = server.udp_addr();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // Large enough that the kernel keeps every answer of the burst.
        socket2::SockRef::from(&socket)
            .set_recv_buffer_size(1 << 20)
            .unwrap();
        let mut asked = HashMap::new();
        for i in 0..PER_CLIENT {
            let bytes = request(&name(c, i).0, RecordType::A, None);
            let id = u16::from_be_bytes([bytes[0], bytes[1]]);
            // Ids are random; a query whose id this client already used
            // is not sent (its answer could not be told apart).
            if asked.contains_key(&id) {
                continue;
            }
            asked.insert(id, i);
            socket.send_to(&bytes, target).await.unwrap();
        }
        clients.push((c, socket, asked));
    }
    for (c, socket, mut asked) in clients {
        let mut buf = vec![0u8; 4096];
        while !asked.is_empty() {
            let len = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("client {c}: {} queries unanswered", asked.len()))
                .unwrap();
            let answer = Message::from_vec(&buf[..len]).expect("answer parses");
            let i = asked
                .remove(&answer.metadata.id)
                .unwrap_or_else(|| panic!("client {c} got an answer it did not ask for"));
            let (qname, rcode) = name(c, i);
            assert_eq!(answer.queries[0].name().to_string(), qname, "client {c}");
            assert_eq!(answer.metadata.response_code, rcode, "client {c} {qname}");
        }
    }
}
