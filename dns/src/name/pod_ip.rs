//! Decode the first label of a pod record: an address with its separators
//! written as dashes (`10-244-1-5`, `fd00--1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::labels::MAX_LABEL;

/// Parse a dashed address label into the address it spells.
///
/// Exactly three dashes and no `--` is IPv4, as CoreDNS reads it; anything
/// else is tried as IPv6 with every dash standing for a colon (so `1--3-4`
/// is `1::3:4`). The
/// standard library parsers do the real work, so leading-zero octets and
/// out-of-range values are refused exactly as in address literals.
pub(super) fn parse(label: &[u8]) -> Option<IpAddr> {
    if label.is_empty() || label.len() > MAX_LABEL {
        return None;
    }
    let mut buf = [0u8; MAX_LABEL];
    let text = &mut buf[..label.len()];
    let dashes = label.iter().filter(|b| **b == b'-').count();
    let v4_shaped = dashes == 3 && !label.windows(2).any(|pair| pair == b"--");
    let separator = if v4_shaped { b'.' } else { b':' };
    for (out, b) in text.iter_mut().zip(label) {
        *out = if *b == b'-' { separator } else { *b };
    }
    let text = std::str::from_utf8(text).ok()?;
    if v4_shaped {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}
