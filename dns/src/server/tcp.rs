//! The TCP listener: length-prefixed messages (RFC 1035 4.2.2, RFC 7766),
//! several per connection, with a bound on connections and an idle timeout
//! so slow or silent clients cannot pile up.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::wire::{Handler, Transport};

/// How long a connection may stay silent before it is closed.
const IDLE: Duration = Duration::from_secs(10);

pub(super) async fn serve(listener: TcpListener, handler: Arc<Handler>, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many tcp connections; closing");
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(error) = connection(stream, &handler).await {
                tracing::trace!(%error, %peer, "tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let client = stream.peer_addr().ok().map(|a| a.ip().to_canonical());
    loop {
        let len = match tokio::time::timeout(IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let mut request = vec![0u8; len];
        tokio::time::timeout(IDLE, stream.read_exact(&mut request))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let Some(response) = handler
            .handle_full_from(&request, Transport::Tcp, client)
            .await
        else {
            continue;
        };
        let Ok(len) = u16::try_from(response.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        stream.write_all(&framed).await?;
    }
}
