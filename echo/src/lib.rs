//! `strait echo`: the backend that every lab pod, test and benchmark runs.
//!
//! It tells the client who answered and whom it saw, which is what a test of
//! a load balancer needs to check: HTTP gets a JSON document, any other TCP
//! stream and every UDP datagram get one line `<name> <peer>`.

mod http;
mod prefixed;
mod server;
mod sniff;

pub use http::EchoReply;
pub use server::{EchoConfig, EchoError, EchoServer};

/// The line sent to non-HTTP TCP clients and UDP clients.
pub fn line_reply(name: &str, peer: std::net::SocketAddr) -> String {
    format!("{name} {peer}\n")
}
