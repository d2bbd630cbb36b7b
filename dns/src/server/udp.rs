//! The UDP listener: answers cluster names inline on the receive loop, a
//! batch of datagrams per system call ([`super::mmsg`]), and hands
//! forwarded names to bounded background tasks.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::mmsg::{self, RecvBatch};
use crate::wire::{Handler, Step, Transport};

/// Largest datagram we read; longer ones are truncated by the kernel and
/// then fail to parse.
const MAX_DATAGRAM: usize = 4096;

pub(super) async fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>, max_forwards: usize) {
    let forwards = Arc::new(Semaphore::new(max_forwards));
    let fd = socket.as_raw_fd();
    let mut batch = RecvBatch::new(MAX_DATAGRAM);
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(mmsg::BATCH);
    loop {
        if let Err(error) = socket.readable().await {
            tracing::debug!(%error, "udp socket not readable");
            continue;
        }
        let received = match socket.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(received) => received,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) => {
                tracing::debug!(%error, "udp receive failed");
                continue;
            }
        };
        for i in 0..received {
            let Some((request, peer)) = batch.get(i) else {
                continue;
            };
            match handler.handle_from(request, Transport::Udp, Some(peer.ip().to_canonical())) {
                Step::Reply(bytes) => replies.push((bytes, peer)),
                Step::Drop => {}
                Step::Forward(pending) => {
                    let Ok(permit) = forwards.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "too many forwards in flight; dropping query");
                        continue;
                    };
                    let (socket, handler) = (socket.clone(), handler.clone());
                    tokio::spawn(async move {
                        let bytes = handler.forward(*pending).await;
                        if let Err(error) = socket.send_to(&bytes, peer).await {
                            tracing::debug!(%error, %peer, "udp send failed");
                        }
                        drop(permit);
                    });
                }
            }
        }
        flush(&socket, &mut replies).await;
    }
}

/// Sends the batch's replies: together while the socket takes them, then
/// one by one (waiting for buffer space) for whatever is left.
async fn flush(socket: &UdpSocket, replies: &mut Vec<(Vec<u8>, SocketAddr)>) {
    let fd = socket.as_raw_fd();
    let sent = socket
        .try_io(Interest::WRITABLE, || mmsg::send(fd, replies))
        .unwrap_or(0);
    for (bytes, peer) in replies.drain(..).skip(sent) {
        if let Err(error) = socket.send_to(&bytes, peer).await {
            tracing::debug!(%error, %peer, "udp send failed");
        }
    }
}
