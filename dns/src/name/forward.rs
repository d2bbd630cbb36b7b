//! Classify the labels below the cluster zone into the record shapes of the
//! Kubernetes DNS specification.

use super::labels::object_name;
use super::{InvalidReason, NameKind, Protocol, pod_ip};

/// The deepest shape below the zone has five labels
/// (`_<port>._<proto>.<svc>.<ns>.svc`); one more is enough to know a name
/// is too deep.
const MAX_DEPTH: usize = 5;

/// Classify the labels below the zone, given root-most first.
pub(super) fn classify<'a>(rev: impl Iterator<Item = &'a [u8]>) -> NameKind<'a> {
    // rel[0] is the label right under the zone; depth > MAX_DEPTH means
    // "too deep" whatever the exact count.
    let mut rel: [&[u8]; MAX_DEPTH] = [&[]; MAX_DEPTH];
    let mut depth = 0;
    for label in rev {
        if depth == MAX_DEPTH {
            depth += 1;
            break;
        }
        rel[depth] = label;
        depth += 1;
    }
    let rel = &rel[..depth.min(MAX_DEPTH)];
    let Some((branch, rest)) = rel.split_first() else {
        return NameKind::ZoneApex;
    };
    if depth > MAX_DEPTH {
        return NameKind::Invalid(InvalidReason::TooManyLabels);
    }
    if branch.eq_ignore_ascii_case(b"svc") {
        service_branch(rest)
    } else if branch.eq_ignore_ascii_case(b"pod") {
        pod_branch(rest)
    } else if branch.eq_ignore_ascii_case(b"dns-version") {
        if rest.is_empty() {
            NameKind::DnsVersion
        } else {
            NameKind::Invalid(InvalidReason::TooManyLabels)
        }
    } else {
        NameKind::Invalid(InvalidReason::UnknownBranch)
    }
}

/// Names under `svc.<zone>`; `rest` is root-most first.
fn service_branch<'a>(rest: &[&'a [u8]]) -> NameKind<'a> {
    use InvalidReason::{BadLabel, BadProtocol, TooManyLabels};
    let invalid = NameKind::Invalid;
    let Some((ns, rest)) = rest.split_first() else {
        return NameKind::ServiceApex;
    };
    let Some(ns) = object_name(ns) else {
        return invalid(BadLabel);
    };
    let Some((svc, rest)) = rest.split_first() else {
        return NameKind::Namespace { ns };
    };
    let Some(svc) = object_name(svc) else {
        return invalid(BadLabel);
    };
    match rest {
        [] => NameKind::Service { svc, ns },
        [fourth] => match underscored(fourth) {
            // Hostnames are DNS-1123 labels, so an underscore means the
            // protocol level of the SRV tree.
            Some(proto) => match Protocol::from_label(proto) {
                Some(proto) => NameKind::ServiceProtocol { proto, svc, ns },
                None => invalid(BadProtocol),
            },
            None => match object_name(fourth) {
                Some(hostname) => NameKind::Endpoint { hostname, svc, ns },
                None => invalid(BadLabel),
            },
        },
        [proto, port] => {
            // Five labels only fit the SRV shape; anything else is a
            // search-list expansion or a typo.
            let Some(proto) = underscored(proto) else {
                return invalid(TooManyLabels);
            };
            let Some(proto) = Protocol::from_label(proto) else {
                return invalid(BadProtocol);
            };
            match underscored(port).and_then(object_name) {
                Some(port) => NameKind::ServicePort {
                    port,
                    proto,
                    svc,
                    ns,
                },
                None => invalid(BadLabel),
            }
        }
        _ => invalid(TooManyLabels),
    }
}

/// Names under `pod.<zone>`; `rest` is root-most first.
fn pod_branch<'a>(rest: &[&'a [u8]]) -> NameKind<'a> {
    match rest {
        [] => NameKind::PodApex,
        [ns, tail @ ..] => {
            let Some(ns) = object_name(ns) else {
                return NameKind::Invalid(InvalidReason::BadLabel);
            };
            match tail {
                [] => NameKind::PodNamespace { ns },
                [ip] => match pod_ip::parse(ip) {
                    Some(ip) => NameKind::Pod { ip, ns },
                    None => NameKind::Invalid(InvalidReason::BadPodAddress),
                },
                _ => NameKind::Invalid(InvalidReason::TooManyLabels),
            }
        }
    }
}

/// The label without its leading underscore, if it has one.
fn underscored(label: &[u8]) -> Option<&[u8]> {
    label.strip_prefix(b"_")
}
