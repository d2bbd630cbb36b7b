//! Ready-made topologies for the common cases, all inside test namespaces and all on
//! 10.250.0.0/24 (the harness's test range; it never appears in the root netns).

use std::net::Ipv4Addr;

use crate::error::{Error, Result};
use crate::link::{Bridge, VethPair};
use crate::netns::NetNs;

/// The /24 the topologies number their hosts in.
pub const TEST_SUBNET: &str = "10.250.0.0/24";

/// Host `i` (0-based) of a topology: `10.250.0.(i+1)`.
pub fn host_addr(i: usize) -> Ipv4Addr {
    assert!(i < 253, "at most 253 hosts per /24");
    Ipv4Addr::new(10, 250, 0, (i + 1) as u8)
}

/// Two namespaces joined by one veth: `a` is 10.250.0.1/24, `b` is 10.250.0.2/24.
/// Neither has any other route.
#[derive(Debug)]
pub struct TwoHosts {
    /// The first host.
    pub a: NetNs,
    /// The second host.
    pub b: NetNs,
    /// The veth: `link.a()` is in `a`, `link.b()` in `b`.
    pub link: VethPair,
    /// `a`'s address.
    pub a_addr: Ipv4Addr,
    /// `b`'s address.
    pub b_addr: Ipv4Addr,
}

/// Builds a [`TwoHosts`].
pub fn two_hosts() -> Result<TwoHosts> {
    let a = NetNs::new("host-a")?;
    let b = NetNs::new("host-b")?;
    let (a_addr, b_addr) = (host_addr(0), host_addr(1));
    let link = VethPair::builder(&a, &b)
        .addr_a(&format!("{a_addr}/24"))
        .addr_b(&format!("{b_addr}/24"))
        .create()?;
    Ok(TwoHosts {
        a,
        b,
        link,
        a_addr,
        b_addr,
    })
}

/// One host on a [`BridgedHosts`] segment.
#[derive(Debug)]
pub struct Host {
    /// The host's namespace.
    pub ns: NetNs,
    /// Its veth: `link.a()` in the host, `link.b()` a bridge port in the switch.
    pub link: VethPair,
    /// Its address on the segment.
    pub addr: Ipv4Addr,
}

/// `n` hosts, each with a veth into a `switch` namespace whose bridge joins them.
/// Host `i` is `10.250.0.(i+1)/24`; the switch itself has no address.
#[derive(Debug)]
pub struct BridgedHosts {
    /// The namespace holding the bridge.
    pub switch: NetNs,
    /// The bridge.
    pub bridge: Bridge,
    /// The hosts, in address order.
    pub hosts: Vec<Host>,
}

/// Builds a [`BridgedHosts`] with `n` (1..=253) hosts.
pub fn bridged_hosts(n: usize) -> Result<BridgedHosts> {
    if n == 0 || n > 253 {
        return Err(Error::Invalid(format!("bridged_hosts({n}): need 1..=253")));
    }
    let switch = NetNs::new("switch")?;
    let bridge = Bridge::new(&switch)?;
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        let ns = NetNs::new(&format!("host-{i}"))?;
        let addr = host_addr(i);
        let link = VethPair::builder(&ns, &switch)
            .addr_a(&format!("{addr}/24"))
            .create()?;
        bridge.attach(link.b_name())?;
        hosts.push(Host { ns, link, addr });
    }
    Ok(BridgedHosts {
        switch,
        bridge,
        hosts,
    })
}
