//! `proxy-send-timeout`: the upstream must receive something at least this
//! often while the request is sent. Two places can stall: the client pausing
//! in the middle of its body (watched here, on the body), and the upstream
//! not reading (watched on the socket, in the connector). Either ends the
//! request with a 504.
//!
//! The body also reports when it has been sent completely, so the read
//! timeout counts from then, not from the start of a long upload.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::watch;
use tokio::time::Sleep;

use super::{Body, BoxError};

/// Nothing reached the upstream for the send timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the upstream received nothing for {timeout:?} (proxy-send-timeout)")]
pub struct SendStalled {
    /// The send timeout.
    pub timeout: Duration,
}

/// A request body that fails when the client pauses longer than the send
/// timeout, and tells when it has been read to the end.
struct Watched {
    inner: Body,
    timeout: Duration,
    idle: Option<Pin<Box<Sleep>>>,
    sent: watch::Sender<bool>,
}

/// Wraps `body`; the receiver turns `true` once the body was sent whole.
pub(crate) fn watch_body(body: Body, timeout: Duration) -> (Body, watch::Receiver<bool>) {
    let (sent, rx) = watch::channel(body.is_end_stream());
    let watched = Watched {
        inner: body,
        timeout,
        idle: None,
        sent,
    };
    (watched.boxed_unsync(), rx)
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                if this.inner.is_end_stream() {
                    this.sent.send_replace(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.idle = None;
                this.sent.send_replace(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => {
                let timeout = this.timeout;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SendStalled { timeout })))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.sent.send_replace(true);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::responses::full;

    #[tokio::test(start_paused = true)]
    async fn a_paused_body_fails_and_a_whole_body_reports_sent() {
        let (body, sent) = watch_body(full("hello"), Duration::from_secs(1));
        assert!(!*sent.borrow());
        let bytes = body.collect().await.expect("body").to_bytes();
        assert_eq!(bytes, "hello");
        assert!(*sent.borrow());

        let (body, sent) = watch_body(Stalling(false).boxed_unsync(), Duration::from_secs(1));
        let err = body.collect().await.expect_err("stalled");
        assert!(err.is::<SendStalled>(), "{err}");
        assert!(!*sent.borrow());
    }

    /// One frame, then nothing ever again.
    struct Stalling(bool);

    impl HttpBody for Stalling {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let this = self.get_mut();
            if this.0 {
                Poll::Pending
            } else {
                this.0 = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"part")))))
            }
        }
    }
}
