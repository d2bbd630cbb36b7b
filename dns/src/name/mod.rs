//! Classify a DNS query name against the cluster zone.
//!
//! The Kubernetes DNS-Based Service Discovery specification (schema 1.1.0)
//! gives every cluster record a fixed shape, for example
//! `<svc>.<ns>.svc.<zone>` or `_<port>._<proto>.<svc>.<ns>.svc.<zone>`.
//! The shape alone tells which index the answer lives in, and many names can
//! be refused before any lookup: the resolver's `ndots:5` search list turns
//! `www.example.com` into `www.example.com.default.svc.cluster.local`, a name
//! that cannot exist, and answering it NXDOMAIN at once is what keeps external
//! lookups from pods fast.
//!
//! Classification borrows the labels of the query and never allocates: the
//! parts it returns (`svc`, `ns`, ...) are slices of the input, in the case the
//! client sent them. Every comparison with cluster data must therefore be
//! ASCII case-insensitive, as the specification requires.
//!
//! Sub-modules, one job each: [`zone`] holds the configured zone,
//! `labels` validates and walks the input, `forward` classifies names inside
//! the zone, `pod_ip` decodes the dashed pod address and `reverse` decodes
//! `in-addr.arpa` / `ip6.arpa` names.

mod forward;
mod labels;
mod pod_ip;
mod reverse;
pub mod zone;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use zone::{Zone, ZoneError};

/// The schema version served in the `dns-version.<zone>` TXT record.
///
/// It lives next to the classifier because [`NameKind::DnsVersion`] is the
/// question it answers, and both must change together when the schema moves.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// What a query name refers to in the cluster's DNS schema.
///
/// This is the contract between the wire side (which only knows a name) and
/// the record index (which knows Services, EndpointSlices and Pods). Borrowed
/// parts keep the case of the query; compare them ASCII case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind<'a> {
    /// `<zone>` itself: SOA and NS live here.
    ZoneApex,
    /// `dns-version.<zone>`: the TXT record carrying [`SCHEMA_VERSION`].
    DnsVersion,
    /// `svc.<zone>`: an empty non-terminal above every namespace.
    ServiceApex,
    /// `pod.<zone>`: an empty non-terminal above the pod records.
    PodApex,
    /// `<ns>.svc.<zone>`: an empty non-terminal when the namespace has
    /// services (NODATA), NXDOMAIN otherwise.
    Namespace {
        /// The namespace label.
        ns: &'a str,
    },
    /// `<svc>.<ns>.svc.<zone>`: A/AAAA (ClusterIP or ready endpoints of a
    /// headless service) or CNAME (ExternalName).
    Service {
        /// The service label.
        svc: &'a str,
        /// The namespace label.
        ns: &'a str,
    },
    /// `_<proto>.<svc>.<ns>.svc.<zone>`: the empty non-terminal between a
    /// service and its SRV records.
    ServiceProtocol {
        /// The protocol of the SRV records below this name.
        proto: Protocol,
        /// The service label.
        svc: &'a str,
        /// The namespace label.
        ns: &'a str,
    },
    /// `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: SRV records of a named port.
    ServicePort {
        /// The port name, without its leading underscore.
        port: &'a str,
        /// The port protocol.
        proto: Protocol,
        /// The service label.
        svc: &'a str,
        /// The namespace label.
        ns: &'a str,
    },
    /// `<hostname>.<svc>.<ns>.svc.<zone>`: A/AAAA of one endpoint of a
    /// headless service.
    Endpoint {
        /// The endpoint hostname label.
        hostname: &'a str,
        /// The service label.
        svc: &'a str,
        /// The namespace label.
        ns: &'a str,
    },
    /// `<ns>.pod.<zone>`: an empty non-terminal above the namespace's pod
    /// records.
    PodNamespace {
        /// The namespace label.
        ns: &'a str,
    },
    /// `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` (or the IPv6 address with `:`
    /// written as `-`): the deprecated but required pod A/AAAA record.
    Pod {
        /// The address spelled by the first label.
        ip: IpAddr,
        /// The namespace label.
        ns: &'a str,
    },
    /// A complete `in-addr.arpa` or `ip6.arpa` name: a PTR question about
    /// one address.
    Reverse(IpAddr),
    /// A reverse name shorter than a full address, such as
    /// `10.in-addr.arpa`. It is an empty non-terminal when the prefix covers
    /// or lies inside a served CIDR, and someone else's name otherwise.
    ReversePartial {
        /// The prefix, with the unspecified bits set to zero.
        network: IpAddr,
        /// How many leading bits of `network` the name spells.
        prefix_len: u8,
    },
    /// The name is outside the cluster zone and is not an address in reverse
    /// form: forward it upstream.
    NotInZone,
    /// The name is inside the cluster zone but no record can ever exist
    /// there: answer NXDOMAIN without a lookup.
    Invalid(InvalidReason),
}

/// The transport protocol in the `_<proto>` label of an SRV name.
///
/// A closed set: Kubernetes Service ports are TCP, UDP or SCTP, so any other
/// protocol label is known not to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `_tcp`
    Tcp,
    /// `_udp`
    Udp,
    /// `_sctp`
    Sctp,
}

impl Protocol {
    /// Parse the label after its underscore, ignoring ASCII case.
    fn from_label(label: &[u8]) -> Option<Self> {
        if label.eq_ignore_ascii_case(b"tcp") {
            Some(Self::Tcp)
        } else if label.eq_ignore_ascii_case(b"udp") {
            Some(Self::Udp)
        } else if label.eq_ignore_ascii_case(b"sctp") {
            Some(Self::Sctp)
        } else {
            None
        }
    }

    /// The Kubernetes spelling (`TCP`, `UDP`, `SCTP`), for matching
    /// `ServicePort.protocol`.
    pub fn as_k8s_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

/// Why a name inside the zone cannot exist.
///
/// The answer is NXDOMAIN whatever the reason; the reason is kept for logs,
/// metrics and tests, so a surprising NXDOMAIN can be explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// An empty label, a label over 63 octets or a name over 255 octets.
    Malformed,
    /// The label right under the zone is not `svc`, `pod` or `dns-version`.
    UnknownBranch,
    /// Deeper than any record shape, typically a search-list expansion such
    /// as `www.example.com.default.svc.cluster.local`.
    TooManyLabels,
    /// A namespace, service, hostname or port label that is not a valid
    /// DNS-1123 label, so no Kubernetes object can carry it.
    BadLabel,
    /// The `_<proto>` label is missing its underscore or is not TCP, UDP or
    /// SCTP.
    BadProtocol,
    /// The pod label does not spell an IPv4 or IPv6 address.
    BadPodAddress,
}

impl Zone {
    /// Classify a name in dotted form (`kubernetes.default.svc.cluster.local`,
    /// trailing dot optional).
    ///
    /// The name is taken literally: presentation-format escapes such as `\.`
    /// are not decoded. Use [`Zone::classify_labels`] for names that came off
    /// the wire.
    pub fn classify<'a>(&self, name: &'a str) -> NameKind<'a> {
        match labels::dotted(name) {
            Ok(labels) => self.classify_rev(labels),
            Err(labels::Malformed) => NameKind::Invalid(InvalidReason::Malformed),
        }
    }

    /// Classify a name given as its labels, most specific first and without
    /// the root label, as a wire-format parser yields them.
    pub fn classify_labels<'a, I>(&self, labels: I) -> NameKind<'a>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator + Clone,
    {
        let labels = labels.into_iter();
        match labels::check_wire(labels.clone()) {
            Ok(()) => self.classify_rev(labels.rev()),
            Err(labels::Malformed) => NameKind::Invalid(InvalidReason::Malformed),
        }
    }

    /// Shared core: `rev` walks the labels from the root towards the host.
    fn classify_rev<'a, I>(&self, rev: I) -> NameKind<'a>
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        let mut below_zone = rev.clone();
        if self.strip(&mut below_zone) {
            forward::classify(below_zone)
        } else {
            reverse::classify(rev)
        }
    }
}

/// Whether `label` could name a Kubernetes object (a DNS-1123 label in
/// either case). The index uses it to skip endpoint hostnames no query could
/// ever reach.
pub(crate) fn is_object_name(label: &[u8]) -> bool {
    labels::is_dns1123_label(label)
}
