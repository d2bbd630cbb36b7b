//! Shared test support: the fixture cluster, a server on loopback with an
//! ephemeral port, and a raw DNS client over real UDP and TCP sockets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use strait_cluster::{ClusterSnapshot, ClusterView, Component, ManifestLoader, Trim};
use strait_dns::{DnsConfig, DnsServer, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The fixture cluster: every record shape of the specification.
pub const FIXTURE: &str = include_str!("fixture.yaml");

/// The fixture as a synced snapshot.
pub fn fixture() -> ClusterSnapshot {
    let report = ManifestLoader::parse_str("fixture.yaml", FIXTURE);
    assert!(
        report.errors.is_empty(),
        "fixture errors: {:?}",
        report.errors
    );
    report.to_snapshot()
}

/// The fixture as `strait dns` holds it: every object cut down with
/// [`Trim::for_component`]`(Component::Dns)`.
pub fn fixture_trimmed() -> ClusterSnapshot {
    let trim = Trim::for_component(Component::Dns);
    let report = ManifestLoader::parse_str("fixture.yaml", FIXTURE);
    ClusterSnapshot::from_objects(report.objects.into_iter().map(|mut o| {
        trim.apply(&mut o);
        o
    }))
}

/// A config listening on an ephemeral loopback port.
pub fn config() -> DnsConfig {
    DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..DnsConfig::default()
    }
}

/// Start a server for `view` with `config`.
pub async fn start(config: DnsConfig, view: ClusterView) -> RunningServer {
    DnsServer::bind(config, view).await.expect("bind").spawn()
}

/// A query in wire format (random id), as a stub resolver sends it.
pub fn request(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        message.set_edns(e);
    }
    message.to_vec().unwrap()
}

/// Send raw bytes over UDP and wait for one datagram back.
pub async fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
        Ok(Ok(len)) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

/// Ask over UDP (with an EDNS payload size when given).
pub async fn udp(server: SocketAddr, name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let bytes = udp_raw(server, &request(name, qtype, edns))
        .await
        .unwrap_or_else(|| panic!("no udp answer for {name} {qtype}"));
    Message::from_vec(&bytes).expect("answer parses")
}

/// Ask over TCP.
pub async fn tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = request(name, qtype, None);
    stream.write_u16(bytes.len() as u16).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).expect("answer parses")
}

/// Records as sorted `owner TYPE rdata` lines (owner case kept).
pub fn lines(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    out.sort();
    out
}
