//! The HTTP proxy: request handling, header rewriting, upstream forwarding
//! with retries and timeouts over plain or TLS connections, and the
//! responses the proxy makes itself.

mod connector;
mod forward;
mod handler;
pub mod headers;
pub mod responses;
mod send_timeout;

pub use forward::{ForwardError, Outgoing, REPLAYABLE_BODY, SendOptions, UpstreamClient};
pub use handler::{ConnInfo, Handler};
pub use send_timeout::SendStalled;

/// The body type of every request sent upstream and every response sent
/// to clients: streamed upstream bodies and the proxy's own small ones.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// The error type of [`Body`]: hyper's, or a request body over its limit.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
