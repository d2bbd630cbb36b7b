//! `CHECK`: the attachment must still be exactly what `ADD` reported.

use crate::config::NetworkConfig;
use crate::env::Attach;
use crate::error::{CniError, ErrorCode};
use crate::ipam::Attachment;
use crate::netns::Netns;
use crate::options::Mode;
use crate::result::CniResult;
use crate::wiring::bridge;
use crate::wiring::routed::{self, PodWiring};

use super::{host_netlink, netns_error, open_store, store_error};

pub(super) fn check(attach: &Attach, config: &NetworkConfig) -> Result<(), CniError> {
    let (options, store) = open_store(config)?;
    let drift = |msg: String| CniError::new(ErrorCode::CHECK_DRIFT, msg);
    let att = Attachment::new(&attach.container_id, &attach.ifname);
    let ips = store.get(&att).map_err(store_error)?.ok_or_else(|| {
        drift(format!(
            "no addresses are allocated to {}/{}",
            attach.container_id, attach.ifname
        ))
    })?;
    let prev = CniResult::from_prev(
        config
            .prev_result
            .as_ref()
            .unwrap_or(&serde_json::Value::Null),
    );
    let reported: Vec<_> = prev.ips.iter().map(|ip| ip.address.ip()).collect();
    for ip in &ips {
        if !reported.contains(ip) {
            return Err(drift(format!(
                "allocated address {ip} is not in prevResult"
            )));
        }
    }
    if let Some(extra) = reported.iter().find(|ip| !ips.contains(ip)) {
        return Err(drift(format!(
            "prevResult address {extra} is not allocated to this attachment"
        )));
    }
    let pod_ns = Netns::open(&attach.netns).map_err(netns_error)?;
    let mut host_nl = host_netlink()?;
    let mut pod_nl = pod_ns.netlink().map_err(netns_error)?;
    if options.mode == Mode::Bridge {
        let addrs = bridge::on_link(&ips, &options.ipam.range_sets)?;
        return bridge::verify(
            &mut host_nl,
            &mut pod_nl,
            &options.bridge,
            &attach.container_id,
            &attach.ifname,
            &addrs,
        );
    }
    routed::verify(
        &mut host_nl,
        &mut pod_nl,
        &PodWiring {
            container_id: &attach.container_id,
            ifname: &attach.ifname,
            ips: &ips,
            mtu: options.mtu,
        },
    )
}
