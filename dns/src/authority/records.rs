//! The zone's SOA, the record negative answers carry so resolvers know how
//! long to cache them (RFC 2308).

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};

use crate::name::Zone;

/// The SOA of the cluster zone and of the reverse zones we answer in.
#[derive(Debug, Clone)]
pub(super) struct Soa {
    apex: Name,
    in_addr: Name,
    ip6: Name,
    mname: Name,
    rname: Name,
    ttl: u32,
}

impl Soa {
    /// The SOA for `zone`; `ttl` is both its TTL and its negative TTL.
    pub(super) fn new(zone: &Zone, ttl: u32) -> Soa {
        let name = |s: &str| Name::from_ascii(s).unwrap_or_else(|_| Name::root());
        Soa {
            apex: name(&format!("{zone}.")),
            in_addr: name("in-addr.arpa."),
            ip6: name("ip6.arpa."),
            mname: name(&format!("ns.dns.{zone}.")),
            rname: name(&format!("hostmaster.{zone}.")),
            ttl,
        }
    }

    /// The SOA data with `serial`.
    pub(super) fn rdata(&self, serial: u32) -> SOA {
        SOA::new(
            self.mname.clone(),
            self.rname.clone(),
            serial,
            7200,
            1800,
            86400,
            self.ttl,
        )
    }

    /// The SOA record for a negative answer about `qname`: owned by the
    /// reverse tree for reverse names, by the cluster zone otherwise.
    pub(super) fn record(&self, qname: &Name, serial: u32) -> Record {
        let owner = if self.in_addr.zone_of(qname) {
            &self.in_addr
        } else if self.ip6.zone_of(qname) {
            &self.ip6
        } else {
            &self.apex
        };
        Record::from_rdata(owner.clone(), self.ttl, RData::SOA(self.rdata(serial)))
    }
}
