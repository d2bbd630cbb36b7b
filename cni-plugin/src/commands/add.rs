//! `ADD`: allocate, wire, answer; on any failure undo everything. When
//! chained after other plugins, their result is passed through with ours
//! appended, and an interface they already made is refused
//! ([`crate::chain`]).

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::chain::PrevResult;
use crate::config::NetworkConfig;
use crate::env::Attach;
use crate::error::CniError;
use crate::ipam::Attachment;
use crate::names::{self, HOST_MAC, format_mac};
use crate::netns::Netns;
use crate::options::{Mode, Options};
use crate::result::{CniResult, Interface, IpConfig, RouteEntry};
use crate::testhook;
use crate::wiring::routed::{self, PodWiring};
use crate::wiring::{bridge, vxlan};

use super::{host_netlink, netns_error, open_store, store_error};

pub(super) fn add(attach: &Attach, config: &NetworkConfig) -> Result<String, CniError> {
    let (options, store) = open_store(config)?;
    let prev = config
        .prev_result
        .as_ref()
        .map(PrevResult::parse)
        .transpose()?;
    if let Some(prev) = &prev {
        let host = names::host_veth(&attach.container_id, &attach.ifname);
        prev.refuse_conflicts(&attach.ifname, &attach.netns, &[host.as_str()])?;
    }
    let att = Attachment::new(&attach.container_id, &attach.ifname);
    let existed = store.get(&att).map_err(store_error)?.is_some();
    let requested = crate::ipam::requested_ips(config)?;
    let ips = store
        .allocate_requested(&att, &options.ipam.range_sets, &requested)
        .map_err(store_error)?;
    testhook::pause("ipam-allocated");
    let wired = match options.mode {
        Mode::Routed => wire(attach, config, &options, &ips),
        // The node's overlay first (idempotent, shared by every pod, never
        // rolled back), then the pod exactly as in routed mode.
        Mode::Vxlan => ensure_overlay(&options).and_then(|()| wire(attach, config, &options, &ips)),
        Mode::Bridge => wire_bridge(attach, config, &options, &ips),
    };
    match wired {
        Ok(result) => Ok(match &prev {
            Some(prev) => prev.merge(&result, config.cni_version),
            None => result.to_json(config.cni_version),
        }
        .to_string()),
        Err(err) => {
            // Roll back the addresses unless a previous ADD owned them.
            if !existed && let Err(e) = store.release(&att) {
                tracing::warn!(error = %e, "rollback: releasing addresses failed");
            }
            Err(err)
        }
    }
}

fn ensure_overlay(options: &Options) -> Result<(), CniError> {
    match &options.vxlan {
        Some(cfg) => vxlan::ensure(&mut host_netlink()?, cfg, options.mtu),
        None => Ok(()),
    }
}

fn wire(
    attach: &Attach,
    config: &NetworkConfig,
    options: &Options,
    ips: &[IpAddr],
) -> Result<CniResult, CniError> {
    let pod_ns = Netns::open(&attach.netns).map_err(netns_error)?;
    let mut host_nl = host_netlink()?;
    let mut pod_nl = pod_ns.netlink().map_err(netns_error)?;
    let wiring = PodWiring {
        container_id: &attach.container_id,
        ifname: &attach.ifname,
        ips,
        mtu: options.mtu,
    };
    let wired = routed::create_veth(&mut host_nl, &pod_ns, &wiring)?;
    testhook::pause("veth-created");
    if let Err(err) = routed::configure(&mut host_nl, &mut pod_nl, &wiring, &wired) {
        if let Err(e) = routed::detach(&mut host_nl, &attach.container_id, &attach.ifname) {
            tracing::warn!(error = %e, "rollback: deleting the veth failed");
        }
        return Err(err);
    }
    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: wired.host.clone(),
                mac: format_mac(&HOST_MAC),
                sandbox: None,
            },
            Interface {
                name: attach.ifname.clone(),
                mac: format_mac(&wired.pod_mac),
                sandbox: Some(attach.netns.display().to_string()),
            },
        ],
        dns: config.extra.get("dns").cloned(),
        ..CniResult::default()
    };
    for &ip in ips {
        let gw = routed::gateway_for(ip);
        result.ips.push(IpConfig {
            address: IpNetwork::new(ip, routed::host_prefix(ip)).map_err(|e| {
                CniError::new(crate::error::ErrorCode::NETLINK_FAILED, e.to_string())
            })?,
            gateway: Some(gw),
            interface: Some(1),
        });
        let any = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        if let Ok(dst) = any.parse() {
            result.routes.push(RouteEntry { dst, gw: Some(gw) });
        }
    }
    Ok(result)
}

fn wire_bridge(
    attach: &Attach,
    config: &NetworkConfig,
    options: &Options,
    ips: &[IpAddr],
) -> Result<CniResult, CniError> {
    let addrs = bridge::on_link(ips, &options.ipam.range_sets)?;
    let pod_ns = Netns::open(&attach.netns).map_err(netns_error)?;
    let mut host_nl = host_netlink()?;
    let mut pod_nl = pod_ns.netlink().map_err(netns_error)?;
    let br = bridge::ensure_bridge(&mut host_nl, &options.bridge, options.mtu, &addrs)?;
    let wired = bridge::create_veth(
        &mut host_nl,
        &pod_ns,
        &br,
        &attach.container_id,
        &attach.ifname,
        options.mtu,
    )?;
    testhook::pause("veth-created");
    if let Err(err) = bridge::configure(&mut pod_nl, &attach.ifname, &addrs) {
        if let Err(e) = routed::detach(&mut host_nl, &attach.container_id, &attach.ifname) {
            tracing::warn!(error = %e, "rollback: deleting the veth failed");
        }
        return Err(err);
    }
    let host_mac = strait_netlink::link::get(&mut host_nl, &wired.host)
        .ok()
        .flatten()
        .map(|l| format_mac(&l.mac))
        .unwrap_or_default();
    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: options.bridge.clone(),
                mac: format_mac(&br.mac),
                sandbox: None,
            },
            Interface {
                name: wired.host.clone(),
                mac: host_mac,
                sandbox: None,
            },
            Interface {
                name: attach.ifname.clone(),
                mac: format_mac(&wired.pod_mac),
                sandbox: Some(attach.netns.display().to_string()),
            },
        ],
        dns: config.extra.get("dns").cloned(),
        ..CniResult::default()
    };
    for a in &addrs {
        result.ips.push(IpConfig {
            address: IpNetwork::new(a.ip, a.prefix).map_err(|e| {
                CniError::new(crate::error::ErrorCode::NETLINK_FAILED, e.to_string())
            })?,
            gateway: Some(a.gateway),
            interface: Some(2),
        });
        let any = if a.ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        if let Ok(dst) = any.parse() {
            result.routes.push(RouteEntry {
                dst,
                gw: Some(a.gateway),
            });
        }
    }
    Ok(result)
}
