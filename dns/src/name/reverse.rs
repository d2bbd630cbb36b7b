//! Decode `in-addr.arpa` and `ip6.arpa` names.
//!
//! The reverse trees are shared with the rest of the world: the cluster only
//! serves the parts that cover its service and pod CIDRs. A name that does not
//! spell an address (or an address prefix) can therefore never be ours, and
//! is classified [`NameKind::NotInZone`] so it is forwarded, as CoreDNS does
//! with `fallthrough in-addr.arpa ip6.arpa`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::NameKind;

/// Classify a name given root-most first.
pub(super) fn classify<'a>(mut rev: impl Iterator<Item = &'a [u8]>) -> NameKind<'a> {
    let is =
        |label: Option<&[u8]>, want: &[u8]| label.is_some_and(|l| l.eq_ignore_ascii_case(want));
    if !is(rev.next(), b"arpa") {
        return NameKind::NotInZone;
    }
    match rev.next() {
        Some(l) if l.eq_ignore_ascii_case(b"in-addr") => v4(rev),
        Some(l) if l.eq_ignore_ascii_case(b"ip6") => v6(rev),
        _ => NameKind::NotInZone,
    }
}

/// Labels after `in-addr.arpa`: up to four decimal octets, most significant
/// first.
fn v4<'a>(rev: impl Iterator<Item = &'a [u8]>) -> NameKind<'a> {
    let mut octets = [0u8; 4];
    let mut count = 0;
    for label in rev {
        let (Some(slot), Some(octet)) = (octets.get_mut(count), decimal_octet(label)) else {
            return NameKind::NotInZone;
        };
        *slot = octet;
        count += 1;
    }
    let addr = IpAddr::V4(Ipv4Addr::from(octets));
    if count == octets.len() {
        NameKind::Reverse(addr)
    } else {
        partial(addr, count * 8)
    }
}

/// Labels after `ip6.arpa`: up to 32 hex nibbles, most significant first.
fn v6<'a>(rev: impl Iterator<Item = &'a [u8]>) -> NameKind<'a> {
    let mut bits: u128 = 0;
    let mut count = 0;
    for label in rev {
        let nibble = match label {
            [digit] if count < 32 => char::from(*digit).to_digit(16),
            _ => None,
        };
        let Some(nibble) = nibble else {
            return NameKind::NotInZone;
        };
        bits |= u128::from(nibble) << (124 - 4 * count);
        count += 1;
    }
    let addr = IpAddr::V6(Ipv6Addr::from(bits));
    if count == 32 {
        NameKind::Reverse(addr)
    } else {
        partial(addr, count * 4)
    }
}

/// A prefix name (an empty non-terminal when it overlaps a served CIDR).
fn partial<'a>(network: IpAddr, prefix_len: usize) -> NameKind<'a> {
    match u8::try_from(prefix_len) {
        Ok(prefix_len) => NameKind::ReversePartial {
            network,
            prefix_len,
        },
        // Unreachable: at most 24 or 124 bits here.
        Err(_) => NameKind::NotInZone,
    }
}

/// A decimal octet as written in reverse names: `0` to `255`, no sign, no
/// leading zero (the same rule as address literals).
fn decimal_octet(label: &[u8]) -> Option<u8> {
    let digits_only = !label.is_empty() && label.iter().all(u8::is_ascii_digit);
    let leading_zero = label.len() > 1 && label.starts_with(b"0");
    if !digits_only || leading_zero || label.len() > 3 {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse::<u8>().ok()
}
