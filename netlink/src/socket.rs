//! A small synchronous rtnetlink socket: one request, its acknowledgement or
//! its dump, nothing else.
//!
//! The plugin is exec'd per pod and does a handful of requests, so a
//! blocking socket is both the fastest and the simplest transport: no
//! runtime to start, no task to spawn.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// How many times a dump interrupted by a concurrent change
/// (`NLM_F_DUMP_INTR`) is restarted before giving up.
const DUMP_RETRIES: usize = 10;

/// Receive buffer size: large enough for any single rtnetlink datagram the
/// kernel sends to a default socket.
const RECV_BUF: usize = 64 * 1024;

/// Why a netlink exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened, written or read.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the request; `errno` is the positive error number.
    #[error("{what}: {source}")]
    Kernel {
        /// What was asked, for the operator.
        what: String,
        /// The kernel's errno as an I/O error.
        source: io::Error,
    },
    /// The kernel's answer did not decode.
    #[error("netlink decode: {0}")]
    Decode(String),
    /// A dump kept being interrupted by concurrent changes.
    #[error("netlink dump interrupted {DUMP_RETRIES} times in a row")]
    DumpInterrupted,
}

impl NetlinkError {
    /// The kernel errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the kernel said the object does not exist (`ENODEV`,
    /// `ENOENT`, `ESRCH`): what idempotent deletes ignore.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH)
        )
    }

    /// Whether the kernel said the object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }
}

/// A connected `NETLINK_ROUTE` socket in the network namespace the calling
/// thread was in when it was opened.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    restarts: u64,
}

impl Netlink {
    /// Open a socket in the current thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Extended acks give better messages; old kernels just ignore it.
        let _ = socket.set_ext_ack(true);
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            restarts: 0,
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Read one datagram and decode every message in it that answers `seq`.
    fn recv_batch(
        &mut self,
        seq: u32,
    ) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NetlinkError> {
        self.buf.clear();
        self.socket.recv(&mut self.buf, 0)?;
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < self.buf.len() {
            let bytes = &self.buf[offset..];
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .map_err(|e| NetlinkError::Decode(e.to_string()))?;
            let len = usize::try_from(message.header.length).unwrap_or(0);
            if len == 0 {
                break;
            }
            offset += (len + 3) & !3;
            if message.header.sequence_number == seq {
                out.push(message);
            }
        }
        Ok(out)
    }

    /// Send a change request (`NEW*`, `DEL*`) with `extra_flags`
    /// (`NLM_F_CREATE | NLM_F_EXCL`, ...) and wait for its acknowledgement.
    pub fn request(
        &mut self,
        what: impl FnOnce() -> String,
        message: RouteNetlinkMessage,
        extra_flags: u16,
    ) -> Result<(), NetlinkError> {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_ACK | extra_flags)?;
        loop {
            for reply in self.recv_batch(seq)? {
                if let NetlinkPayload::Error(err) = reply.payload {
                    return match err.code {
                        None => Ok(()),
                        Some(code) => Err(NetlinkError::Kernel {
                            what: what(),
                            source: io::Error::from_raw_os_error(-code.get()),
                        }),
                    };
                }
            }
        }
    }

    /// Send a `GET*` for one object and return the kernel's answer.
    pub fn get(
        &mut self,
        what: impl FnOnce() -> String,
        message: RouteNetlinkMessage,
    ) -> Result<RouteNetlinkMessage, NetlinkError> {
        let seq = self.send(message, NLM_F_REQUEST)?;
        loop {
            for reply in self.recv_batch(seq)? {
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => return Ok(inner),
                    NetlinkPayload::Error(err) => {
                        let code = err.code.map_or(0, |c| c.get());
                        return Err(NetlinkError::Kernel {
                            what: what(),
                            source: io::Error::from_raw_os_error(-code),
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Dump every object matching `message` (a `GET*` request), restarting
    /// when the kernel flags the dump as interrupted by a concurrent change.
    pub fn dump(
        &mut self,
        what: impl Fn() -> String,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        for _ in 0..DUMP_RETRIES {
            let seq = self.send(message.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                for reply in self.recv_batch(seq)? {
                    if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match reply.payload {
                        NetlinkPayload::InnerMessage(inner) => out.push(inner),
                        NetlinkPayload::Done(_) => break 'recv,
                        NetlinkPayload::Error(err) => match err.code {
                            None => break 'recv,
                            Some(code) => {
                                return Err(NetlinkError::Kernel {
                                    what: what(),
                                    source: io::Error::from_raw_os_error(-code.get()),
                                });
                            }
                        },
                        _ => {}
                    }
                    if reply.header.flags & NLM_F_MULTIPART == 0 {
                        break 'recv;
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
            self.restarts += 1;
            tracing::debug!(what = %what(), "netlink dump interrupted, retrying");
        }
        Err(NetlinkError::DumpInterrupted)
    }

    /// How many dumps on this socket were restarted because the kernel
    /// flagged them as interrupted (for logs and tests).
    pub fn dump_restarts(&self) -> u64 {
        self.restarts
    }
}
