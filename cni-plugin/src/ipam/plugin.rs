//! `strait-ipam`: the built-in IPAM as a CNI IPAM plugin of its own, for
//! interface plugins that delegate address management (`"ipam": {"type":
//! "strait-ipam", ...}`), the way the reference plugins call `host-local`.
//!
//! It runs the same [`Store`] and range logic as strait-cni (one network's
//! allocations live in one store whichever binary made them):
//!
//! - `ADD`: one address per range set (honouring `runtimeConfig.ips`),
//!   answered host-local style: each address with its subnet's prefix and
//!   the range's `gateway` if configured, plus `ipam.routes`; no
//!   `interfaces` (an IPAM plugin knows none).
//! - `DEL`: release; nothing allocated is success.
//! - `CHECK`: the attachment holds its addresses, and they are exactly the
//!   `prevResult` addresses inside the configured ranges.
//! - `GC`: release every attachment not in `cni.dev/valid-attachments`.
//! - `STATUS`: code 50 when a range set is full.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{Attachment, IpamConfig, Store, requested_ips};
use crate::chain::PrevResult;
use crate::config::NetworkConfig;
use crate::env::Invocation;
use crate::error::{CniError, ErrorCode};
use crate::result::{CniResult, IpConfig};

/// Run one `strait-ipam` command (the [`crate::dispatch::Handler`] of the
/// `strait-ipam` binary).
pub fn execute(
    invocation: &Invocation,
    config: &NetworkConfig,
) -> Result<Option<String>, CniError> {
    match invocation {
        Invocation::Add(a) => add(&Attachment::new(&a.container_id, &a.ifname), config).map(Some),
        Invocation::Del(d) => {
            let (_, store) = open(config)?;
            store.release(&Attachment::new(&d.container_id, &d.ifname))?;
            Ok(None)
        }
        Invocation::Check(a) => {
            check(&Attachment::new(&a.container_id, &a.ifname), config).map(|()| None)
        }
        Invocation::Gc(_) => {
            let (_, store) = open(config)?;
            let valid: Vec<Attachment> = config
                .valid_attachments()?
                .unwrap_or_default()
                .into_iter()
                .map(|a| Attachment::new(a.container_id, a.ifname))
                .collect();
            for att in store.gc(&valid)? {
                tracing::info!(container_id = %att.container_id, ifname = %att.ifname, "GC released attachment");
            }
            Ok(None)
        }
        Invocation::Status(_) => {
            let (ipam, store) = open(config)?;
            for (set, free) in ipam
                .range_sets
                .iter()
                .zip(store.has_free(&ipam.range_sets)?)
            {
                if !free {
                    return Err(CniError::new(
                        ErrorCode::PLUGIN_NOT_AVAILABLE,
                        format!(
                            "no IP addresses left in range set {}",
                            super::store::describe(set)
                        ),
                    )
                    .with_details(
                        "ADD will fail until pods are deleted (DEL/GC) or the range is widened",
                    ));
                }
            }
            Ok(None)
        }
        Invocation::Version => Ok(None),
    }
}

/// The `ipam` section and its network's store.
fn open(config: &NetworkConfig) -> Result<(IpamConfig, Store), CniError> {
    let ipam = IpamConfig::parse(config.extra.get("ipam"))?;
    let store = Store::open(&ipam.data_dir, &config.name)?.with_lock_timeout(ipam.lock_timeout);
    Ok((ipam, store))
}

/// Where `ip` sits: its range's subnet prefix and gateway.
fn placed(ipam: &IpamConfig, ip: IpAddr) -> Result<IpConfig, CniError> {
    let range = ipam
        .range_sets
        .iter()
        .flat_map(|s| &s.ranges)
        .find(|r| r.subnet.contains(ip))
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::IPAM_STORE_FAILED,
                format!("allocated address {ip} is in no configured subnet"),
            )
            .with_details("the store holds an allocation from an older ipam.ranges: DEL it")
        })?;
    let address = IpNetwork::new(ip, range.subnet.prefix())
        .map_err(|e| CniError::new(ErrorCode::INVALID_NETWORK_CONFIG, format!("{ip}: {e}")))?;
    Ok(IpConfig {
        address,
        gateway: range.gateway,
        interface: None,
    })
}

fn add(att: &Attachment, config: &NetworkConfig) -> Result<String, CniError> {
    let (ipam, store) = open(config)?;
    let requested = requested_ips(config)?;
    let ips = store.allocate_requested(att, &ipam.range_sets, &requested)?;
    let result = ips
        .iter()
        .map(|&ip| placed(&ipam, ip))
        .collect::<Result<Vec<_>, _>>()
        .map(|ips| CniResult {
            ips,
            routes: ipam.routes.clone(),
            ..CniResult::default()
        });
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            if let Err(release) = store.release(att) {
                tracing::warn!(error = %release, "rollback: releasing addresses failed");
            }
            return Err(e);
        }
    };
    let mut json = result.to_json(config.cni_version);
    if let Some(map) = json.as_object_mut() {
        // An IPAM plugin's result has no interfaces, and DNS only when it
        // has something to say.
        map.remove("interfaces");
        map.remove("dns");
    }
    Ok(json.to_string())
}

fn check(att: &Attachment, config: &NetworkConfig) -> Result<(), CniError> {
    let (ipam, store) = open(config)?;
    let drift = |msg: String| CniError::new(ErrorCode::CHECK_DRIFT, msg);
    let ips = store.get(att)?.ok_or_else(|| {
        drift(format!(
            "no addresses are allocated to {}/{}",
            att.container_id, att.ifname
        ))
    })?;
    let prev = PrevResult::parse(
        config
            .prev_result
            .as_ref()
            .unwrap_or(&serde_json::Value::Null),
    )?;
    let ours = |ip: IpAddr| {
        ipam.range_sets
            .iter()
            .flat_map(|s| &s.ranges)
            .any(|r| r.subnet.contains(ip))
    };
    let listed: Vec<IpAddr> = prev
        .ips
        .iter()
        .map(|c| c.address.ip())
        .filter(|ip| ours(*ip))
        .collect();
    if let Some(ip) = ips.iter().find(|ip| !listed.contains(ip)) {
        return Err(drift(format!(
            "allocated address {ip} is not in prevResult"
        )));
    }
    if let Some(ip) = listed.iter().find(|ip| !ips.contains(ip)) {
        return Err(drift(format!(
            "prevResult address {ip} is not allocated to {}/{}",
            att.container_id, att.ifname
        )));
    }
    Ok(())
}
