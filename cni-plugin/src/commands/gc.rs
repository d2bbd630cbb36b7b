//! `GC` (CNI 1.1): release every attachment not listed in
//! `cni.dev/valid-attachments`, with its host veth.

use crate::config::NetworkConfig;
use crate::error::CniError;
use crate::ipam::Attachment;
use crate::wiring::routed;

use super::{host_netlink, open_store, store_error};

pub(super) fn gc(config: &NetworkConfig) -> Result<(), CniError> {
    let (_options, store) = open_store(config)?;
    // Under the store's lock throughout: a GC refused with code 11 has
    // removed nothing.
    let held = store.hold().map_err(store_error)?;
    let valid: Vec<Attachment> = config
        .valid_attachments()?
        .unwrap_or_default()
        .into_iter()
        .map(|a| Attachment::new(a.container_id, a.ifname))
        .collect();
    // Veths first, as in DEL: a GC killed half way leaves records that
    // the next GC finds, never a veth without a record.
    let stale: Vec<Attachment> = held
        .attachments()
        .map_err(store_error)?
        .into_iter()
        .filter(|a| !valid.contains(a))
        .collect();
    let mut host_nl = None;
    let mut detach = |att: &Attachment| -> Result<(), CniError> {
        let nl = match &mut host_nl {
            Some(nl) => nl,
            None => host_nl.insert(host_netlink()?),
        };
        let existed = routed::detach(nl, &att.container_id, &att.ifname)?;
        tracing::info!(container_id = %att.container_id, ifname = %att.ifname, veth_deleted = existed, "GC released attachment");
        Ok(())
    };
    for att in &stale {
        detach(att)?;
    }
    for att in held.gc(&valid).map_err(store_error)? {
        if !stale.contains(&att) {
            detach(&att)?;
        }
    }
    Ok(())
}
