//! Server-side search path (CoreDNS's `autopath`). A pod with the kubelet's
//! resolv.conf (`search <ns>.svc.<zone> svc.<zone> <zone>`, `ndots:5`)
//! looking up `www.example.com` first asks for
//! `www.example.com.<ns>.svc.<zone>`, gets NXDOMAIN, and walks the rest of
//! the list: four round trips before the real name. When the client's
//! namespace is known from its source address (watched Pods), the server
//! walks the list itself on that first query and answers with a CNAME to the
//! name that exists, plus its records, so the walk ends after one query.
use hickory_proto::rr::{Name, RData, Record, rdata::CNAME};

/// The rest of a client's search walk, when its query is the first
/// expansion of its search list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The later in-zone candidates, in search order (`X.svc.<zone>`,
    /// `X.<zone>`).
    pub in_zone: Vec<Name>,
    /// The name as the client typed it (`X.`), tried last, upstream.
    pub bare: Name,
}

/// The walk for `qname` from a client whose pods live in `namespaces`, or
/// `None` when `qname` is not `X.<ns>.svc.<zone>` for one of them.
pub fn walk(qname: &Name, namespaces: &[Box<str>], zone: &str) -> Option<Walk> {
    let lower = qname.to_lowercase().to_ascii();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    namespaces.iter().find_map(|ns| {
        let suffix = format!(".{ns}.svc.{zone}");
        let prefix = lower.strip_suffix(suffix.as_str())?;
        if prefix.is_empty() {
            return None;
        }
        let name = |tail: &str| Name::from_ascii(format!("{prefix}{tail}")).ok();
        Some(Walk {
            in_zone: vec![name(&format!(".svc.{zone}."))?, name(&format!(".{zone}."))?],
            bare: name(".")?,
        })
    })
}

/// The answer section of an autopath reply: `qname CNAME target`, then the
/// target's records.
pub fn cname_answer(qname: &Name, target: &Name, ttl: u32, records: Vec<Record>) -> Vec<Record> {
    let mut out = Vec::with_capacity(records.len() + 1);
    out.push(Record::from_rdata(
        qname.clone(),
        ttl,
        RData::CNAME(CNAME(target.clone())),
    ));
    out.extend(records);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn first_expansion_of_the_clients_namespace_walks_the_rest() {
        let ns: Vec<Box<str>> = vec!["default".into()];
        let w = walk(
            &n("WWW.Example.com.default.svc.cluster.local."),
            &ns,
            "cluster.local",
        )
        .unwrap();
        assert_eq!(w.bare, n("www.example.com."));
        assert_eq!(
            w.in_zone,
            vec![
                n("www.example.com.svc.cluster.local."),
                n("www.example.com.cluster.local.")
            ]
        );
    }

    #[test]
    fn other_namespaces_and_other_shapes_are_left_alone() {
        let ns: Vec<Box<str>> = vec!["default".into()];
        for q in [
            "www.example.com.other.svc.cluster.local.",
            "default.svc.cluster.local.",
            "www.example.com.svc.cluster.local.",
            "www.example.com.",
        ] {
            assert_eq!(walk(&n(q), &ns, "cluster.local"), None, "{q}");
        }
        assert_eq!(
            walk(&n("x.default.svc.cluster.local."), &[], "cluster.local"),
            None
        );
    }
}
