//! From request bytes to response bytes: header checks, EDNS0, the
//! authority or the forwarder, and truncation for UDP.
//!
//! Nothing here does I/O except through the forwarder, so the transports
//! stay thin and every rule is testable with plain byte slices.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::authority::{Answer, Authority, Resolution};
use crate::autopath;
use crate::forward::{Forwarder, Source};
use crate::metrics::Metrics;

/// Largest message over TCP (two-octet length prefix).
const MAX_TCP: usize = 65_535;
/// Largest UDP answer to a client without EDNS (RFC 1035).
const CLASSIC_UDP: usize = 512;
/// Header length; anything shorter is not a DNS message at all.
const HEADER: usize = 12;

/// The transport a request came over; it sets the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: answers over the client's limit are truncated (TC bit).
    Udp,
    /// TCP: up to 64 KiB.
    Tcp,
}

impl Transport {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// What the transport should do with a request.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Send nothing (not a query, or too broken to answer).
    Drop,
    /// Ask upstream: call [`Handler::forward`], off the receive loop.
    Forward(Box<Pending>),
}

/// A request waiting for an upstream answer.
#[derive(Debug)]
pub struct Pending {
    request: Message,
    limit: usize,
    started: Instant,
    /// Set when this is the last step of an autopath walk: the bare name to
    /// ask upstream, and the NXDOMAIN to send if that fails too.
    autopath: Option<(Name, Answer)>,
}

/// The request handler shared by every transport.
///
/// It exists so UDP, TCP, tests and fuzzing run exactly the same code from
/// bytes in to bytes out.
#[derive(Debug)]
pub struct Handler {
    authority: Authority,
    forwarder: Option<Forwarder>,
    metrics: Arc<Metrics>,
    max_udp_payload: u16,
    autopath: bool,
}

impl Handler {
    /// A handler answering from `authority` and forwarding through
    /// `forwarder` (refusing other names when it is `None`).
    pub fn new(
        authority: Authority,
        forwarder: Option<Forwarder>,
        metrics: Arc<Metrics>,
        max_udp_payload: u16,
    ) -> Handler {
        Handler {
            authority,
            forwarder: forwarder.filter(Forwarder::enabled),
            metrics,
            max_udp_payload: max_udp_payload.max(512),
            autopath: false,
        }
    }

    /// Turns on the server-side search path ([`autopath`]) for requests
    /// whose client address is known.
    #[must_use]
    pub fn with_autopath(mut self, on: bool) -> Handler {
        self.autopath = on;
        self
    }

    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Handle one request without waiting on anything.
    pub fn handle(&self, bytes: &[u8], transport: Transport) -> Step {
        self.handle_from(bytes, transport, None)
    }

    /// [`Handler::handle`] for a request from `client` (autopath needs it).
    pub fn handle_from(&self, bytes: &[u8], transport: Transport, client: Option<IpAddr>) -> Step {
        let started = Instant::now();
        self.metrics.request(transport.label());
        let request = match Message::from_vec(bytes) {
            Ok(request) => request,
            Err(_) => return formerr(bytes).map_or(Step::Drop, Step::Reply),
        };
        if request.metadata.message_type != MessageType::Query {
            return Step::Drop;
        }
        let limit = match transport {
            Transport::Tcp => MAX_TCP,
            Transport::Udp => match &request.edns {
                Some(_) => usize::from(request.max_payload().min(self.max_udp_payload)),
                None => CLASSIC_UDP,
            },
        };
        let early = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if request.queries[0].query_class != DNSClass::IN
            || matches!(
                request.queries[0].query_type,
                RecordType::AXFR | RecordType::IXFR
            )
        {
            // Other classes are not ours; zone transfers are not offered.
            Some(ResponseCode::Refused)
        } else {
            None
        };
        if let Some(rcode) = early {
            let response = self.response(&request, rcode, false);
            return Step::Reply(self.finish(response, limit, started));
        }
        let query = &request.queries[0];
        match self.authority.resolve(&query.name, query.query_type) {
            Resolution::Answer(answer) => {
                let walk = match client {
                    Some(ip) if self.autopath && answer.rcode == ResponseCode::NXDomain => {
                        self.walk(&query.name, ip)
                    }
                    _ => None,
                };
                let Some(walk) = walk else {
                    let mut response = self.response(&request, answer.rcode, true);
                    fill(&mut response, answer);
                    return Step::Reply(self.finish(response, limit, started));
                };
                // The rest of the client's search list inside the zone.
                for candidate in &walk.in_zone {
                    if let Resolution::Answer(found) =
                        self.authority.resolve(candidate, query.query_type)
                        && found.rcode == ResponseCode::NoError
                        && !found.answers.is_empty()
                    {
                        let response = self.autopath_response(&request, candidate, found);
                        return Step::Reply(self.finish(response, limit, started));
                    }
                }
                if self.forwarder.is_some() {
                    return Step::Forward(Box::new(Pending {
                        request,
                        limit,
                        started,
                        autopath: Some((walk.bare, answer)),
                    }));
                }
                let mut response = self.response(&request, answer.rcode, true);
                fill(&mut response, answer);
                Step::Reply(self.finish(response, limit, started))
            }
            Resolution::Forward if self.forwarder.is_some() => Step::Forward(Box::new(Pending {
                request,
                limit,
                started,
                autopath: None,
            })),
            Resolution::Forward => {
                let response = self.response(&request, ResponseCode::Refused, false);
                Step::Reply(self.finish(response, limit, started))
            }
        }
    }

    /// Answer a request the authority declined, through the forwarder.
    pub async fn forward(&self, pending: Pending) -> Vec<u8> {
        let Pending {
            request,
            limit,
            started,
            autopath,
        } = pending;
        let Some(forwarder) = &self.forwarder else {
            let response = self.response(&request, ResponseCode::Refused, false);
            return self.finish(response, limit, started);
        };
        if let Some((bare, nxdomain)) = autopath {
            let query = Query::query(bare.clone(), request.queries[0].query_type);
            let response = match forwarder.resolve(&query).await {
                Ok((found, _))
                    if found.rcode == ResponseCode::NoError && !found.answers.is_empty() =>
                {
                    let answer = Answer {
                        rcode: found.rcode,
                        answers: found.answers,
                        authorities: Vec::new(),
                        additionals: Vec::new(),
                    };
                    self.autopath_response(&request, &bare, answer)
                }
                // The walk found nothing: the client's own NXDOMAIN, so it
                // goes on exactly as without autopath.
                _ => {
                    let mut response = self.response(&request, nxdomain.rcode, true);
                    fill(&mut response, nxdomain);
                    response
                }
            };
            return self.finish(response, limit, started);
        }
        let query = &request.queries[0];
        let response = match forwarder.resolve(query).await {
            Ok((cached, source)) => {
                match source {
                    Source::Cache => self.metrics.cache_hit(),
                    Source::Upstream => self.metrics.cache_miss(),
                    Source::Stale => {
                        self.metrics.cache_miss();
                        self.metrics.stale_answer();
                    }
                }
                let mut response = self.response(&request, cached.rcode, false);
                let mut answer = Answer {
                    rcode: cached.rcode,
                    answers: cached.answers,
                    authorities: cached.authorities,
                    additionals: cached.additionals,
                };
                // Keep the client's case on records owned by its name.
                for r in &mut answer.answers {
                    if r.name.eq_ignore_root(&query.name) {
                        r.name = query.name.clone();
                    }
                }
                fill(&mut response, answer);
                response
            }
            Err(error) => {
                tracing::debug!(%error, name = %query.name, "forwarding failed");
                self.metrics.cache_miss();
                self.response(&request, ResponseCode::ServFail, false)
            }
        };
        self.finish(response, limit, started)
    }

    /// Handle one request to the end, forwarding inline if needed (TCP,
    /// tests, fuzzing).
    pub async fn handle_full(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.handle_full_from(bytes, transport, None).await
    }

    /// [`Handler::handle_full`] for a request from `client`.
    pub async fn handle_full_from(
        &self,
        bytes: &[u8],
        transport: Transport,
        client: Option<IpAddr>,
    ) -> Option<Vec<u8>> {
        match self.handle_from(bytes, transport, client) {
            Step::Reply(bytes) => Some(bytes),
            Step::Drop => None,
            Step::Forward(pending) => Some(self.forward(*pending).await),
        }
    }

    /// The client's namespaces' search walk for `qname`.
    fn walk(&self, qname: &Name, client: IpAddr) -> Option<autopath::Walk> {
        let index = self.authority.index().read().ok()?;
        let namespaces = index.pods().namespaces_of(client);
        autopath::walk(qname, namespaces, self.authority.zone().name())
    }

    /// NOERROR with `qname CNAME target` and the target's records.
    fn autopath_response(&self, request: &Message, target: &Name, found: Answer) -> Message {
        self.metrics.autopath_answer();
        let qname = &request.queries[0].name;
        let mut response = self.response(request, ResponseCode::NoError, false);
        response.answers =
            autopath::cname_answer(qname, target, self.authority.ttl(), found.answers);
        response.additionals = found.additionals;
        response
    }

    fn response(&self, request: &Message, rcode: ResponseCode, authoritative: bool) -> Message {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.checking_disabled = request.metadata.checking_disabled;
        response.metadata.recursion_available = self.forwarder.is_some();
        response.metadata.authoritative = authoritative;
        response.metadata.response_code = rcode;
        response.queries.clone_from(&request.queries);
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(self.max_udp_payload);
            response.edns = Some(edns);
        }
        response
    }

    fn finish(&self, response: Message, limit: usize, started: Instant) -> Vec<u8> {
        let qtype = response
            .queries
            .first()
            .map_or(RecordType::NULL, |q| q.query_type);
        self.metrics
            .query(qtype, response.metadata.response_code, started.elapsed());
        encode(response, limit)
    }
}

fn fill(response: &mut Message, answer: Answer) {
    response.answers = answer.answers;
    response.authorities = answer.authorities;
    response.additionals = answer.additionals;
}

/// Encode `response` within `limit` octets: first drop the additional
/// section (glue is optional), then send the header and question alone with
/// the TC bit so the client retries over TCP.
pub fn encode(mut response: Message, limit: usize) -> Vec<u8> {
    if let Ok(bytes) = response.to_vec()
        && bytes.len() <= limit
    {
        return bytes;
    }
    if !response.additionals.is_empty() {
        response.additionals.clear();
        if let Ok(bytes) = response.to_vec()
            && bytes.len() <= limit
        {
            return bytes;
        }
    }
    response.answers.clear();
    response.authorities.clear();
    response.metadata.truncation = true;
    match response.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "encoding a truncated response failed");
            servfail_header(response.metadata.id)
        }
    }
}

/// A bare FORMERR for a request that does not parse but has a query
/// header, or `None` when it is too short or is itself a response.
fn formerr(bytes: &[u8]) -> Option<Vec<u8>> {
    let header = bytes.get(..HEADER)?;
    if header[2] & 0x80 != 0 {
        return None;
    }
    let mut out = vec![0u8; HEADER];
    out[..2].copy_from_slice(&header[..2]);
    // QR, the request's opcode and RD; RCODE 1.
    out[2] = 0x80 | (header[2] & 0x79);
    out[3] = 0x01;
    Some(out)
}

fn servfail_header(id: u16) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    out[..2].copy_from_slice(&id.to_be_bytes());
    out[2] = 0x80;
    out[3] = 0x02;
    out
}

#[cfg(test)]
mod tests;
