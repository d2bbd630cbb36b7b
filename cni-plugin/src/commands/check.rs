//! `CHECK`: the attachment must still be exactly what `ADD` reported.
//!
//! The expected state comes from `prevResult` (the spec: "consult the
//! prevResult to determine the expected interfaces and addresses"): our
//! pod interface is the one named `CNI_IFNAME` with `CNI_NETNS` as sandbox,
//! our addresses are those listed on it. They must match the store's
//! allocation, the listed MACs must match the kernel's links, and the
//! kernel must still have every address, route and neighbour entry `ADD`
//! made. Other plugins' entries in a chained result are not ours to check.

use std::net::IpAddr;

use crate::chain::PrevResult;
use crate::config::NetworkConfig;
use crate::env::Attach;
use crate::error::{CniError, ErrorCode};
use crate::ipam::Attachment;
use crate::names::{self, format_mac};
use crate::netns::Netns;
use crate::options::Mode;
use crate::wiring::routed::{self, PodWiring, netlink_error};
use crate::wiring::{bridge, vxlan};
use strait_netlink::{Netlink, link};

use super::{host_netlink, netns_error, open_store, store_error};

fn drift(msg: String) -> CniError {
    CniError::new(ErrorCode::CHECK_DRIFT, msg)
}

pub(super) fn check(attach: &Attach, config: &NetworkConfig) -> Result<(), CniError> {
    let (options, store) = open_store(config)?;
    let prev = PrevResult::parse(
        config
            .prev_result
            .as_ref()
            .unwrap_or(&serde_json::Value::Null),
    )?;
    let att = Attachment::new(&attach.container_id, &attach.ifname);
    let ips = store.get(&att).map_err(store_error)?.ok_or_else(|| {
        drift(format!(
            "no addresses are allocated to {}/{}",
            attach.container_id, attach.ifname
        ))
    })?;
    let (ifname, netns) = (&attach.ifname, &attach.netns);
    let pod_index = prev.sandbox_interface(ifname, netns).ok_or_else(|| {
        drift(format!(
            "prevResult lists no interface {ifname} in {}: it is not the result of this attachment's ADD",
            netns.display()
        ))
    })?;
    let host_name = names::host_veth(&attach.container_id, ifname);
    let host_listed = prev.host_interface(&host_name).ok_or_else(|| {
        drift(format!(
            "prevResult does not list the host veth {host_name} of {}/{ifname}",
            attach.container_id
        ))
    })?;
    // Addresses: what prevResult puts on our interface is what the store
    // holds, with the prefix this mode configures.
    let listed = prev.addresses_on(pod_index, &ips);
    let listed_ips: Vec<IpAddr> = listed.iter().map(|n| n.ip()).collect();
    if let Some(ip) = ips.iter().find(|ip| !listed_ips.contains(ip)) {
        return Err(drift(format!(
            "allocated address {ip} is not in prevResult on {ifname}"
        )));
    }
    if let Some(extra) = listed_ips.iter().find(|ip| !ips.contains(ip)) {
        return Err(drift(format!(
            "prevResult address {extra} on {ifname} is not allocated to this attachment"
        )));
    }
    let on_link = match options.mode {
        Mode::Bridge => Some(bridge::on_link(&ips, &options.ipam.range_sets)?),
        Mode::Routed | Mode::Vxlan => None,
    };
    for net in &listed {
        let want = match &on_link {
            Some(addrs) => addrs
                .iter()
                .find(|a| a.ip == net.ip())
                .map_or(0, |a| a.prefix),
            None => routed::host_prefix(net.ip()),
        };
        if net.prefix() != want {
            return Err(drift(format!(
                "prevResult address {net} on {ifname} should have prefix /{want}"
            )));
        }
    }

    let pod_ns = Netns::open(netns).map_err(netns_error)?;
    let mut host_nl = host_netlink()?;
    let mut pod_nl = pod_ns.netlink().map_err(netns_error)?;
    match &on_link {
        Some(addrs) => bridge::verify(
            &mut host_nl,
            &mut pod_nl,
            &options.bridge,
            &attach.container_id,
            ifname,
            addrs,
        )?,
        None => routed::verify(
            &mut host_nl,
            &mut pod_nl,
            &PodWiring {
                container_id: &attach.container_id,
                ifname,
                ips: &ips,
                mtu: options.mtu,
            },
        )?,
    }
    if let Some(overlay) = &options.vxlan {
        vxlan::verify(&mut host_nl, overlay)?;
    }
    // The MACs prevResult reports are the links' (a re-created link has
    // another one, so this catches an interface replaced behind our back).
    let pod_mac = prev
        .interfaces
        .get(pod_index)
        .map(|i| i.mac.clone())
        .unwrap_or_default();
    expect_mac(&mut pod_nl, ifname, &pod_mac, "in the pod")?;
    expect_mac(&mut host_nl, &host_name, &host_listed.mac, "on the node")
}

/// The link's MAC equals the listed one (an empty listed MAC is not
/// checked: results may omit it).
fn expect_mac(nl: &mut Netlink, name: &str, listed: &str, place: &str) -> Result<(), CniError> {
    if listed.is_empty() {
        return Ok(());
    }
    let link = link::get(nl, name)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("interface {name} is missing {place}")))?;
    let actual = format_mac(&link.mac);
    if !actual.eq_ignore_ascii_case(listed) {
        return Err(drift(format!(
            "interface {name} {place} has MAC {actual}, prevResult says {listed}"
        )));
    }
    Ok(())
}
