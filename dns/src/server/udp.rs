//! The UDP listener: answers cluster names inline on the receive loop and
//! hands forwarded names to bounded background tasks.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::wire::{Handler, Step, Transport};

/// Largest datagram we read; longer ones are truncated by the kernel and
/// then fail to parse.
const MAX_DATAGRAM: usize = 4096;

pub(super) async fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>, max_forwards: usize) {
    let forwards = Arc::new(Semaphore::new(max_forwards));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "udp receive failed");
                continue;
            }
        };
        let Some(request) = buf.get(..len) else {
            continue;
        };
        match handler.handle_from(request, Transport::Udp, Some(peer.ip().to_canonical())) {
            Step::Reply(bytes) => {
                if let Err(error) = socket.send_to(&bytes, peer).await {
                    tracing::debug!(%error, %peer, "udp send failed");
                }
            }
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
}
