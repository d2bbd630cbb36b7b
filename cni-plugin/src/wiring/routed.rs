//! Routed mode (the Calico and Cilium model): the pod gets its address as
//! a /32 (/128) with a default route via a link-local gateway that a
//! permanent neighbour entry resolves to the host veth's MAC; the host end
//! has no address, answers ARP by proxy, and routes the pod's /32 to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{CniError, ErrorCode};
use crate::names::{self, HOST_MAC};
use crate::netns::Netns;
use strait_netlink::link::{self, VethEnd};
use strait_netlink::route::{self, Route};
use strait_netlink::{Netlink, NetlinkError, addr, neigh};

use super::sysctl;

/// The pod's IPv4 gateway: link-local, on no subnet, never on the wire.
pub const GATEWAY_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 1, 1));
/// The pod's IPv6 gateway.
pub const GATEWAY_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));

/// The gateway the pod uses for `ip`'s family.
pub fn gateway_for(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() { GATEWAY_V4 } else { GATEWAY_V6 }
}

/// The host prefix of `ip`'s family: 32 or 128.
pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn unspecified(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    }
}

/// A netlink failure as a CNI error.
pub fn netlink_error(err: NetlinkError) -> CniError {
    if err.is_exists() {
        CniError::new(ErrorCode::INTERFACE_EXISTS, err.to_string())
            .with_details("an earlier ADD of this attachment was not deleted; run DEL first")
    } else {
        CniError::new(ErrorCode::NETLINK_FAILED, err.to_string())
    }
}

/// What one pod's wiring needs.
#[derive(Debug)]
pub struct PodWiring<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The pod's addresses.
    pub ips: &'a [IpAddr],
    /// Veth MTU.
    pub mtu: u32,
}

/// The two links `attach` made.
#[derive(Debug, Clone)]
pub struct Wired {
    /// Host-side veth name.
    pub host: String,
    /// Pod-side MAC.
    pub pod_mac: [u8; 6],
}

/// Create the veth pair: host end here, pod end inside `pod_ns`.
/// Returns the host veth name; nothing is left behind on failure.
pub fn create_veth(
    host_nl: &mut Netlink,
    pod_ns: &Netns,
    wiring: &PodWiring<'_>,
) -> Result<Wired, CniError> {
    let host = names::host_veth(wiring.container_id, wiring.ifname);
    let pod_mac = names::pod_mac(wiring.container_id, wiring.ifname);
    link::create_veth(
        host_nl,
        &VethEnd {
            name: &host,
            mac: Some(HOST_MAC),
            netns_fd: None,
            controller: None,
        },
        &VethEnd {
            name: wiring.ifname,
            mac: Some(pod_mac),
            netns_fd: Some(pod_ns.raw_fd()),
            controller: None,
        },
        wiring.mtu,
    )
    .map_err(netlink_error)?;
    Ok(Wired { host, pod_mac })
}

/// Configure both ends of a freshly created veth. On error the caller
/// deletes the veth, which removes everything configured here.
pub fn configure(
    host_nl: &mut Netlink,
    pod_nl: &mut Netlink,
    wiring: &PodWiring<'_>,
    wired: &Wired,
) -> Result<(), CniError> {
    let host = link::get(host_nl, &wired.host)
        .map_err(netlink_error)?
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::NETLINK_FAILED,
                format!("veth {} vanished", wired.host),
            )
        })?;
    let pod = link::get(pod_nl, wiring.ifname)
        .map_err(netlink_error)?
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::NETLINK_FAILED,
                format!("{} vanished from the pod", wiring.ifname),
            )
        })?;
    link::set_up(pod_nl, pod.index).map_err(netlink_error)?;
    // Proxy ARP / proxy NDP answer for the gateway should the pod's
    // permanent entry ever be flushed; no delay, as with Calico.
    let sys = |path: String, value: &str| {
        sysctl::write(&path, value).map_err(|e| {
            CniError::new(ErrorCode::NETLINK_FAILED, format!("sysctl net/{path}: {e}"))
        })
    };
    if wiring.ips.iter().any(IpAddr::is_ipv4) {
        sys(format!("ipv4/conf/{}/proxy_arp", wired.host), "1")?;
        sys(format!("ipv4/neigh/{}/proxy_delay", wired.host), "0")?;
    }
    if let Some(v6) = wiring.ips.iter().find(|ip| ip.is_ipv6()) {
        // Linux answers proxy NDP only for addresses listed as proxy
        // entries, so the gateway gets one on the host end.
        sys(format!("ipv6/conf/{}/proxy_ndp", wired.host), "1")?;
        sys(format!("ipv6/neigh/{}/proxy_delay", wired.host), "0")?;
        neigh::add_proxy(host_nl, host.index, gateway_for(*v6)).map_err(netlink_error)?;
    }
    for &ip in wiring.ips {
        let prefix = host_prefix(ip);
        let gw = gateway_for(ip);
        addr::add(pod_nl, pod.index, ip, prefix).map_err(netlink_error)?;
        neigh::add_permanent(pod_nl, pod.index, gw, HOST_MAC).map_err(netlink_error)?;
        route::add(
            pod_nl,
            &Route {
                dst: unspecified(ip),
                prefix: 0,
                gateway: Some(gw),
                oif: pod.index,
            },
        )
        .map_err(netlink_error)?;
        // Host side: the pod's /32 out of its veth, resolved statically.
        route::add(
            host_nl,
            &Route {
                dst: ip,
                prefix,
                gateway: None,
                oif: host.index,
            },
        )
        .map_err(netlink_error)?;
        neigh::add_permanent(host_nl, host.index, ip, wired.pod_mac).map_err(netlink_error)?;
    }
    Ok(())
}

/// Delete the pod's host veth (and with it the pod end, its addresses and
/// routes, and the host route). Missing is success.
pub fn detach(host_nl: &mut Netlink, container_id: &str, ifname: &str) -> Result<bool, CniError> {
    link::delete(host_nl, &names::host_veth(container_id, ifname)).map_err(netlink_error)
}

/// Compare the kernel's state with what `ADD` made; the first difference
/// is the error.
pub fn verify(
    host_nl: &mut Netlink,
    pod_nl: &mut Netlink,
    wiring: &PodWiring<'_>,
) -> Result<(), CniError> {
    let drift = |msg: String| CniError::new(ErrorCode::CHECK_DRIFT, msg);
    let host_name = names::host_veth(wiring.container_id, wiring.ifname);
    let host = link::get(host_nl, &host_name)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("host veth {host_name} is missing")))?;
    if host.kind != "veth" || !host.up {
        return Err(drift(format!(
            "host veth {host_name} is not an up veth (kind {:?}, up {})",
            host.kind, host.up
        )));
    }
    let pod = link::get(pod_nl, wiring.ifname)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("interface {} is missing in the pod", wiring.ifname)))?;
    if !pod.up {
        return Err(drift(format!("interface {} is down", wiring.ifname)));
    }
    if pod.mtu != wiring.mtu {
        return Err(drift(format!(
            "interface {} has MTU {}, expected {}",
            wiring.ifname, pod.mtu, wiring.mtu
        )));
    }
    let addrs = addr::list(pod_nl, pod.index).map_err(netlink_error)?;
    for &ip in wiring.ips {
        let prefix = host_prefix(ip);
        if !addrs.contains(&(ip, prefix)) {
            return Err(drift(format!(
                "address {ip}/{prefix} is missing on {}",
                wiring.ifname
            )));
        }
        let gw = gateway_for(ip);
        let pod_routes = route::list(pod_nl, ip).map_err(netlink_error)?;
        if !pod_routes
            .iter()
            .any(|r| r.prefix == 0 && r.gateway == Some(gw) && r.oif == pod.index)
        {
            return Err(drift(format!(
                "default route via {gw} dev {} is missing in the pod",
                wiring.ifname
            )));
        }
        let host_routes = route::list(host_nl, ip).map_err(netlink_error)?;
        if !host_routes
            .iter()
            .any(|r| r.dst == ip && r.prefix == prefix && r.oif == host.index)
        {
            return Err(drift(format!(
                "host route {ip}/{prefix} dev {host_name} is missing"
            )));
        }
    }
    Ok(())
}
