//! Reading and rewriting the IPv4 or IPv6 TCP/UDP packets the tc programs
//! translate: where the addresses, ports and checksums sit, and how each
//! family fixes its checksums after a rewrite.
use core::cell::Cell;

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::bpf_csum_diff,
    programs::TcContext,
};
use strait_ebpf_common::{CtKey, FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
/// IPv4 header checksum and addresses.
const IP_CSUM_OFF: usize = ETH_HLEN + 10;
const IP_SRC_OFF: usize = ETH_HLEN + 12;
const IP_DST_OFF: usize = ETH_HLEN + 16;
/// IPv6 addresses; the fixed header is 40 bytes and has no checksum.
const IP6_SRC_OFF: usize = ETH_HLEN + 8;
const IP6_DST_OFF: usize = ETH_HLEN + 24;
const IP6_HLEN: usize = 40;

/// A parsed TCP/UDP packet of either family; addresses in map
/// representation (IPv4 in word 0, the rest zero).
pub struct Packet {
    pub family: u8,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    l4: usize,
    /// A TCP segment with FIN or RST.
    pub closing: bool,
    /// A TCP SYN without ACK: opens a flow, never a reply.
    pub opening: bool,
}

impl Packet {
    /// The conntrack key of this packet as seen in direction `dir`.
    #[inline(always)]
    pub fn key(&self, dir: u8) -> CtKey {
        CtKey {
            saddr: self.saddr,
            daddr: self.daddr,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            dir,
            family: self.family,
            pad: 0,
        }
    }

    /// Offset of the L4 checksum.
    fn csum_off(&self) -> usize {
        if self.proto == PROTO_TCP {
            self.l4 + 16
        } else {
            self.l4 + 6
        }
    }

    /// A UDP checksum of 0 means "none" (IPv4); keep it so after a rewrite.
    fn l4_flags(&self) -> u64 {
        if self.proto == PROTO_UDP {
            u64::from(BPF_F_MARK_MANGLED_0)
        } else {
            0
        }
    }
}

/// The packet's TCP/UDP header fields, or `None` for anything the tc
/// programs leave alone (other protocols, non-first IPv4 fragments, IPv6
/// with extension headers before the transport header). Headers are read
/// straight from the packet's linear data (no helper call per field); a
/// packet whose headers are not all linear is read with
/// `bpf_skb_load_bytes` instead.
#[inline(always)]
pub fn parse(ctx: &TcContext) -> Option<Packet> {
    let linear = Linear {
        start: ctx.data(),
        end: ctx.data_end(),
        short: Cell::new(false),
    };
    // (A plain Option, not a Result around it: LLVM leaves registers of
    // the nested layout uninitialised, which the verifier refuses.)
    if let Some(p) = parse_with(&linear) {
        return Some(p);
    }
    if !linear.short.get() {
        return None;
    }
    parse_with(&Loaded(ctx))
}

/// Where header fields are read from; `None` past what it can see.
trait Reader {
    fn read<T: Copy>(&self, off: usize) -> Option<T>;
}

/// The linear part of the packet, by direct packet access.
struct Linear {
    start: usize,
    end: usize,
    /// A read went past the linear data.
    short: Cell<bool>,
}

impl Reader for Linear {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        let at = self.start + off;
        if at + core::mem::size_of::<T>() > self.end {
            self.short.set(true);
            return None;
        }
        // SAFETY: the verifier-checked bounds above keep the read inside
        // the packet; fields may be unaligned.
        Some(unsafe { core::ptr::read_unaligned(at as *const T) })
    }
}

/// The whole packet, copied field by field with `bpf_skb_load_bytes`.
struct Loaded<'a>(&'a TcContext);

impl Reader for Loaded<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        self.0.load(off).ok()
    }
}

#[inline(always)]
fn parse_with<R: Reader>(r: &R) -> Option<Packet> {
    let ethertype = u16::from_be(r.read::<u16>(12)?);
    let (family, proto, l4, saddr, daddr) = if ethertype == ETH_P_IP {
        let ver_ihl: u8 = r.read(ETH_HLEN)?;
        if ver_ihl >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(ver_ihl & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        // Fragments other than the first carry no ports; leave them alone.
        let frag = u16::from_be(r.read::<u16>(ETH_HLEN + 6)?);
        if frag & 0x1fff != 0 {
            return None;
        }
        let proto: u8 = r.read(ETH_HLEN + 9)?;
        let saddr: u32 = r.read(IP_SRC_OFF)?;
        let daddr: u32 = r.read(IP_DST_OFF)?;
        (
            FAMILY_V4,
            proto,
            ETH_HLEN + ihl,
            [saddr, 0, 0, 0],
            [daddr, 0, 0, 0],
        )
    } else if ethertype == ETH_P_IPV6 {
        let ver: u8 = r.read(ETH_HLEN)?;
        if ver >> 4 != 6 {
            return None;
        }
        let proto: u8 = r.read(ETH_HLEN + 6)?;
        (
            FAMILY_V6,
            proto,
            ETH_HLEN + IP6_HLEN,
            r.read::<[u32; 4]>(IP6_SRC_OFF)?,
            r.read::<[u32; 4]>(IP6_DST_OFF)?,
        )
    } else {
        return None;
    };
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let flags = if proto == PROTO_TCP {
        r.read::<u8>(l4 + 13)?
    } else {
        0
    };
    let closing = flags & (TCP_FIN | TCP_RST) != 0;
    let opening = flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    Some(Packet {
        family,
        saddr,
        daddr,
        sport: r.read(l4)?,
        dport: r.read(l4 + 2)?,
        proto,
        l4,
        closing,
        opening,
    })
}

/// Rewrites one address and port (source or destination), fixing the
/// checksums: the IPv4 header's and the L4 one (whose pseudo-header holds
/// the addresses) for IPv4, the L4 one by a checksum difference for IPv6.
#[inline(always)]
pub fn rewrite(
    ctx: &TcContext,
    p: &Packet,
    dst: bool,
    addr: [u32; 4],
    port: u16,
) -> Result<(), i64> {
    let (old_addr, old_port, port_off) = if dst {
        (p.daddr, p.dport, p.l4 + 2)
    } else {
        (p.saddr, p.sport, p.l4)
    };
    let csum = p.csum_off();
    let flags = p.l4_flags();
    if old_addr != addr {
        if p.family == FAMILY_V4 {
            let (old, new) = (old_addr[0], addr[0]);
            ctx.l4_csum_replace(
                csum,
                u64::from(old),
                u64::from(new),
                flags | u64::from(BPF_F_PSEUDO_HDR) | 4,
            )?;
            ctx.l3_csum_replace(IP_CSUM_OFF, u64::from(old), u64::from(new), 4)?;
            ctx.store(if dst { IP_DST_OFF } else { IP_SRC_OFF }, &new, 0)?;
        } else {
            let mut from = old_addr;
            let mut to = addr;
            // SAFETY: both buffers are 16 bytes on this stack frame.
            let diff = unsafe { bpf_csum_diff(from.as_mut_ptr(), 16, to.as_mut_ptr(), 16, 0) };
            if diff < 0 {
                return Err(diff);
            }
            // Size 0: `to` is a checksum difference, not a 2/4-byte field.
            ctx.l4_csum_replace(csum, 0, diff as u64, flags | u64::from(BPF_F_PSEUDO_HDR))?;
            ctx.store(if dst { IP6_DST_OFF } else { IP6_SRC_OFF }, &addr, 0)?;
        }
    }
    if old_port != port {
        ctx.l4_csum_replace(csum, u64::from(old_port), u64::from(port), flags | 2)?;
        ctx.store(port_off, &port, 0)?;
    }
    Ok(())
}
