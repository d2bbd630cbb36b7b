//! One exchange with an upstream resolver: a query over UDP, retried over
//! TCP when the answer is truncated.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::error::ForwardError;

/// EDNS payload size we advertise upstream (the DNS Flag Day 2020 value).
const UPSTREAM_PAYLOAD: u16 = 1232;

/// A fresh random message id: the random half of spoofing protection (the
/// other half is the ephemeral source port the kernel picks).
fn random_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish() as u16
}

/// Ask `server` the question `query` with recursion desired, and return
/// its answer (validated against the id and the question).
pub(crate) async fn exchange(
    server: SocketAddr,
    query: &Query,
    timeout: Duration,
) -> Result<Message, ForwardError> {
    let id = random_id();
    let mut request = Message::query();
    request.metadata.id = id;
    request.metadata.recursion_desired = true;
    request.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    request.set_edns(edns);
    let bytes = request.to_vec().map_err(ForwardError::encode)?;
    let answer = tokio::time::timeout(timeout, udp(server, &bytes, id, query))
        .await
        .map_err(|_| ForwardError::Timeout(server))??;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    tokio::time::timeout(timeout, tcp(server, &bytes, id, query))
        .await
        .map_err(|_| ForwardError::Timeout(server))?
}

fn matches(answer: &Message, id: u16, query: &Query) -> bool {
    answer.metadata.id == id
        && answer.queries.len() == 1
        && answer.queries[0].query_type == query.query_type
        && answer.queries[0].name.eq_ignore_root(&query.name)
}

async fn udp(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, ForwardError> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(ForwardError::io(server))?;
    socket
        .connect(server)
        .await
        .map_err(ForwardError::io(server))?;
    socket.send(bytes).await.map_err(ForwardError::io(server))?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let len = socket
            .recv(&mut buf)
            .await
            .map_err(ForwardError::io(server))?;
        // Ignore anything that is not the answer to our question.
        if let Ok(answer) = Message::from_vec(&buf[..len])
            && matches(&answer, id, query)
        {
            return Ok(answer);
        }
    }
}

async fn tcp(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, ForwardError> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(ForwardError::io(server))?;
    let len = u16::try_from(bytes.len()).map_err(|_| ForwardError::Malformed(server))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream
        .write_all(&framed)
        .await
        .map_err(ForwardError::io(server))?;
    let len = stream.read_u16().await.map_err(ForwardError::io(server))?;
    let mut buf = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(ForwardError::io(server))?;
    let answer = Message::from_vec(&buf).map_err(|_| ForwardError::Malformed(server))?;
    if matches(&answer, id, query) {
        Ok(answer)
    } else {
        Err(ForwardError::Malformed(server))
    }
}
