//! The authority for the cluster zone and the cluster's reverse names: it
//! turns a question into an answer from the [`Index`], following the
//! Kubernetes DNS specification 1.1.0, or says the question belongs
//! upstream.
//!
//! Rules kept in one place: NXDOMAIN for names that do not exist, NODATA
//! (NOERROR, empty answer, SOA in authority) for names that exist without
//! the asked type, SERVFAIL for the zone before the first full sync, and
//! owner names copied from the question so the client's case is kept.

mod records;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{CNAME, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::PodRecords;
use crate::index::{Index, ServiceBody, ServiceEntry};
use crate::name::{NameKind, Protocol, SCHEMA_VERSION, Zone};
use records::Soa;

/// Longest chain of in-zone CNAMEs (ExternalName to ExternalName) we follow.
const MAX_CHASE: usize = 8;

/// Most labels a legal name can have (255 octets of wire format).
const MAX_LABELS: usize = 128;

/// The answer to one question, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response code.
    pub rcode: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of negative answers).
    pub authorities: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
}

impl Answer {
    fn rcode(rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// What to do with a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// We are authoritative: send this.
    Answer(Answer),
    /// The name is not ours: forward it upstream.
    Forward,
}

/// The cluster-zone authority.
///
/// It exists to keep the specification's rules apart from the transport
/// (which only moves bytes) and from the index (which only stores records).
#[derive(Debug)]
pub struct Authority {
    zone: Zone,
    soa: Soa,
    ttl: u32,
    pod_records: PodRecords,
    index: Arc<RwLock<Index>>,
}

/// Whether a question of type `qtype` asks for records of type `want`.
fn wants(qtype: RecordType, want: RecordType) -> bool {
    qtype == want || qtype == RecordType::ANY
}

fn address_type(ip: IpAddr) -> RecordType {
    match ip {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

impl Authority {
    /// An authority for `zone`, answering from `index`.
    pub fn new(
        zone: Zone,
        ttl: u32,
        pod_records: PodRecords,
        index: Arc<RwLock<Index>>,
    ) -> Authority {
        Authority {
            soa: Soa::new(&zone, ttl),
            zone,
            ttl,
            pod_records,
            index,
        }
    }

    /// The zone served.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The TTL of cluster records.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The shared index this authority reads.
    pub fn index(&self) -> &Arc<RwLock<Index>> {
        &self.index
    }

    /// Classify `qname` without touching the index (used to keep the
    /// cluster zone out of the forward cache).
    pub fn classify<'a>(&self, qname: &'a Name) -> NameKind<'a> {
        let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
        let mut count = 0;
        for label in qname.iter() {
            let Some(slot) = labels.get_mut(count) else {
                return NameKind::Invalid(crate::name::InvalidReason::Malformed);
            };
            *slot = label;
            count += 1;
        }
        self.zone
            .classify_labels(labels.get(..count).unwrap_or(&[]).iter().copied())
    }

    /// Answer `qname`/`qtype`, or say it must be forwarded.
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Resolution {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        self.resolve_with(&index, qname, qtype, 0)
    }

    fn resolve_with(
        &self,
        index: &Index,
        qname: &Name,
        qtype: RecordType,
        depth: usize,
    ) -> Resolution {
        let kind = self.classify(qname);
        let ours = !matches!(
            kind,
            NameKind::NotInZone | NameKind::Reverse(_) | NameKind::ReversePartial { .. }
        );
        if ours && !index.synced() {
            return Resolution::Answer(Answer::rcode(ResponseCode::ServFail));
        }
        let serial = index.generation() as u32;
        let ctx = Ctx {
            auth: self,
            index,
            qname,
            qtype,
            serial,
        };
        let answer = match kind {
            NameKind::NotInZone | NameKind::ReversePartial { .. } => return Resolution::Forward,
            NameKind::Reverse(ip) => {
                if !index.synced() {
                    return Resolution::Answer(Answer::rcode(ResponseCode::ServFail));
                }
                let targets = index.ptr(ip);
                if targets.is_empty() {
                    return Resolution::Forward;
                }
                ctx.records(RecordType::PTR, || {
                    targets.iter().map(|t| RData::PTR(PTR(t.clone()))).collect()
                })
            }
            NameKind::Invalid(reason) => {
                tracing::trace!(?reason, name = %qname, "name cannot exist");
                ctx.nxdomain()
            }
            NameKind::ZoneApex => {
                ctx.records(RecordType::SOA, || vec![RData::SOA(self.soa.rdata(serial))])
            }
            NameKind::DnsVersion => ctx.records(RecordType::TXT, || {
                vec![RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]))]
            }),
            NameKind::ServiceApex => ctx.nodata(),
            NameKind::PodApex => match self.pod_records {
                PodRecords::Disabled => ctx.nxdomain(),
                _ => ctx.nodata(),
            },
            NameKind::Namespace { ns } => {
                if index.has_namespace(ns) {
                    ctx.nodata()
                } else {
                    ctx.nxdomain()
                }
            }
            NameKind::Service { svc, ns } => match index.service(ns, svc) {
                Some(entry) if entry.exists() => return ctx.service(entry, depth),
                _ => ctx.nxdomain(),
            },
            NameKind::ServiceProtocol { proto, svc, ns } => match index.service(ns, svc) {
                Some(entry) if has_protocol(entry, proto) => ctx.nodata(),
                _ => ctx.nxdomain(),
            },
            NameKind::ServicePort {
                port,
                proto,
                svc,
                ns,
            } => match index.service(ns, svc) {
                Some(entry) => ctx.srv(entry, port, proto),
                None => ctx.nxdomain(),
            },
            NameKind::Endpoint { hostname, svc, ns } => match index.service(ns, svc) {
                Some(ServiceEntry {
                    body: ServiceBody::Headless(endpoints),
                    ..
                }) => {
                    let ips: Vec<IpAddr> = endpoints
                        .iter()
                        .filter(|e| e.label.eq_ignore_ascii_case(hostname))
                        .map(|e| e.ip)
                        .collect();
                    if ips.is_empty() {
                        ctx.nxdomain()
                    } else {
                        ctx.addresses(&ips)
                    }
                }
                _ => ctx.nxdomain(),
            },
            NameKind::PodNamespace { ns } => match self.pod_records {
                PodRecords::Disabled => ctx.nxdomain(),
                PodRecords::Insecure => ctx.nodata(),
                PodRecords::Verified if index.pods().has_namespace(ns) => ctx.nodata(),
                PodRecords::Verified => ctx.nxdomain(),
            },
            NameKind::Pod { ip, ns } => match self.pod_records {
                PodRecords::Disabled => ctx.nxdomain(),
                PodRecords::Verified if !index.pods().has(ns, ip) => ctx.nxdomain(),
                _ => ctx.addresses(&[ip]),
            },
        };
        Resolution::Answer(answer)
    }
}

fn has_protocol(entry: &ServiceEntry, proto: Protocol) -> bool {
    match &entry.body {
        ServiceBody::Headless(eps) => eps.iter().any(|e| e.ports.iter().any(|p| p.proto == proto)),
        ServiceBody::ClusterIp(_) => entry.ports.iter().any(|p| p.proto == proto),
        ServiceBody::ExternalName(_) => false,
    }
}

/// One question being answered.
struct Ctx<'a> {
    auth: &'a Authority,
    index: &'a Index,
    qname: &'a Name,
    qtype: RecordType,
    serial: u32,
}

impl Ctx<'_> {
    fn record(&self, rdata: RData) -> Record {
        Record::from_rdata(self.qname.clone(), self.auth.ttl, rdata)
    }

    fn negative(&self, rcode: ResponseCode) -> Answer {
        let mut answer = Answer::rcode(rcode);
        answer
            .authorities
            .push(self.auth.soa.record(self.qname, self.serial));
        answer
    }

    fn nxdomain(&self) -> Answer {
        self.negative(ResponseCode::NXDomain)
    }

    fn nodata(&self) -> Answer {
        self.negative(ResponseCode::NoError)
    }

    /// The name holds records of type `have`: answer them if asked, NODATA
    /// otherwise.
    fn records(&self, have: RecordType, rdata: impl FnOnce() -> Vec<RData>) -> Answer {
        if !wants(self.qtype, have) {
            return self.nodata();
        }
        let mut answer = Answer::rcode(ResponseCode::NoError);
        answer.answers = rdata().into_iter().map(|r| self.record(r)).collect();
        answer
    }

    /// A and AAAA records for `ips` (NODATA when none has the asked family).
    fn addresses(&self, ips: &[IpAddr]) -> Answer {
        let mut answer = Answer::rcode(ResponseCode::NoError);
        for ip in ips {
            if wants(self.qtype, address_type(*ip))
                && !answer.answers.iter().any(|r| r.data.ip_addr() == Some(*ip))
            {
                answer.answers.push(self.record(RData::from(*ip)));
            }
        }
        if answer.answers.is_empty() {
            return self.nodata();
        }
        answer
    }

    fn service(&self, entry: &ServiceEntry, depth: usize) -> Resolution {
        let answer = match &entry.body {
            ServiceBody::ClusterIp(ips) => self.addresses(ips),
            ServiceBody::Headless(eps) => {
                let ips: Vec<IpAddr> = eps.iter().map(|e| e.ip).collect();
                self.addresses(&ips)
            }
            ServiceBody::ExternalName(target) => return self.cname(target, depth),
        };
        Resolution::Answer(answer)
    }

    /// The CNAME of an ExternalName service, followed while it stays in the
    /// cluster zone.
    fn cname(&self, target: &Name, depth: usize) -> Resolution {
        let cname = self.record(RData::CNAME(CNAME(target.clone())));
        let mut answer = Answer::rcode(ResponseCode::NoError);
        answer.answers.push(cname);
        if self.qtype == RecordType::CNAME || depth >= MAX_CHASE {
            return Resolution::Answer(answer);
        }
        if let Resolution::Answer(next) =
            self.auth
                .resolve_with(self.index, target, self.qtype, depth + 1)
        {
            answer.rcode = next.rcode;
            answer.answers.extend(next.answers);
            answer.authorities = next.authorities;
            answer.additionals = next.additionals;
        }
        Resolution::Answer(answer)
    }

    /// SRV records of a named port.
    fn srv(&self, entry: &ServiceEntry, port: &str, proto: Protocol) -> Answer {
        let matches =
            |p: &crate::index::NamedPort| p.proto == proto && p.name.eq_ignore_ascii_case(port);
        // (port, target) pairs, and the addresses behind each target.
        let mut srvs: Vec<(u16, &Name)> = Vec::new();
        let mut targets: Vec<(&Name, IpAddr)> = Vec::new();
        match &entry.body {
            ServiceBody::ClusterIp(ips) => {
                if let Some(p) = entry.ports.iter().find(|p| matches(p)) {
                    srvs.push((p.port, &entry.name));
                    targets.extend(ips.iter().map(|ip| (&entry.name, *ip)));
                }
            }
            ServiceBody::Headless(eps) => {
                for e in eps {
                    if let Some(p) = e.ports.iter().find(|p| matches(p)) {
                        // A shared hostname yields one SRV (an RRset has no
                        // duplicates) and glue for every address.
                        if !srvs
                            .iter()
                            .any(|(port, name)| *port == p.port && **name == e.name)
                        {
                            srvs.push((p.port, &e.name));
                        }
                        if !targets
                            .iter()
                            .any(|(name, ip)| **name == e.name && *ip == e.ip)
                        {
                            targets.push((&e.name, e.ip));
                        }
                    }
                }
            }
            ServiceBody::ExternalName(_) => {}
        }
        if srvs.is_empty() {
            return self.nxdomain();
        }
        if !wants(self.qtype, RecordType::SRV) {
            return self.nodata();
        }
        // Equal priority; weights split 100 between the targets.
        let weight = u16::try_from(100 / srvs.len()).unwrap_or(1).max(1);
        let mut answer = Answer::rcode(ResponseCode::NoError);
        for (port, target) in srvs {
            answer
                .answers
                .push(self.record(RData::SRV(SRV::new(0, weight, port, target.clone()))));
        }
        let glue = targets
            .into_iter()
            .map(|(name, ip)| Record::from_rdata(name.clone(), self.auth.ttl, RData::from(ip)))
            .collect();
        answer.additionals = glue;
        answer
    }
}
