//! Label plumbing: turn the input into a root-first label iterator, enforce
//! the RFC 1035 size limits, and recognise DNS-1123 labels.
//!
//! Kept apart so the classifiers only ever see well-formed labels.

/// Longest label, in octets (RFC 1035 2.3.4).
pub(super) const MAX_LABEL: usize = 63;
/// Longest name in wire format, root label included (RFC 1035 2.3.4).
const MAX_WIRE_NAME: usize = 255;
/// Longest name in dotted text without the trailing dot: 255 wire octets
/// minus the root label and the first length octet.
pub(super) const MAX_NAME_TEXT: usize = MAX_WIRE_NAME - 2;

/// The name breaks a size or emptiness rule of RFC 1035.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

/// Split a dotted name into labels, root-most first.
///
/// One trailing dot is accepted; the root name (`""` or `"."`) yields no
/// labels. Empty inner labels and over-long labels or names are malformed.
pub(super) fn dotted(name: &str) -> Result<impl Iterator<Item = &[u8]> + Clone, Malformed> {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    if name.len() > MAX_NAME_TEXT {
        return Err(Malformed);
    }
    // `rsplit` of an empty slice yields one empty item; the root has none.
    let labels = name
        .rsplit(|b| *b == b'.')
        .filter(move |_| !name.is_empty());
    if labels
        .clone()
        .any(|label| label.is_empty() || label.len() > MAX_LABEL)
    {
        return Err(Malformed);
    }
    Ok(labels)
}

/// Check wire-format labels (most specific first, root excluded) against
/// the RFC 1035 limits.
pub(super) fn check_wire<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Result<(), Malformed> {
    let mut wire_len = 1; // the root label's length octet
    for label in labels {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(Malformed);
        }
        wire_len += 1 + label.len();
        if wire_len > MAX_WIRE_NAME {
            return Err(Malformed);
        }
    }
    Ok(())
}

/// Whether `label` is a DNS-1123 label in either case: 1 to 63 letters,
/// digits and hyphens, starting and ending with a letter or digit.
///
/// Namespaces, service names, endpoint hostnames and service port names
/// are all DNS-1123 labels in Kubernetes, so any other label cannot name a
/// cluster object.
pub(super) fn is_dns1123_label(label: &[u8]) -> bool {
    match (label.first(), label.last()) {
        (Some(first), Some(last)) => {
            label.len() <= MAX_LABEL
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// Borrow a label as the name of a Kubernetes object, or `None` when it
/// cannot be one.
pub(super) fn object_name(label: &[u8]) -> Option<&str> {
    if is_dns1123_label(label) {
        // DNS-1123 labels are ASCII, so this conversion cannot fail.
        std::str::from_utf8(label).ok()
    } else {
        None
    }
}
