//! `DEL`: remove the veth, release the addresses. Everything already gone
//! is success, so it may run any number of times, with or without netns.
//! `prevResult` is not needed (everything is found from the attachment),
//! so a DEL without it, or with a chain's result that lists other
//! plugins' interfaces, cleans up exactly what strait-cni made.

use crate::config::NetworkConfig;
use crate::env::Detach;
use crate::error::CniError;
use crate::ipam::Attachment;
use crate::wiring::routed;

use super::{host_netlink, open_store, store_error};

pub(super) fn del(detach: &Detach, config: &NetworkConfig) -> Result<(), CniError> {
    let (_options, store) = open_store(config)?;
    // Under the store's lock from the start: a DEL refused with code 11
    // has removed nothing.
    let held = store.hold().map_err(store_error)?;
    // The veth first: a veth never exists without its addresses' record,
    // so a DEL killed half way is finished by the next DEL or by GC.
    let mut host_nl = host_netlink()?;
    routed::detach(&mut host_nl, &detach.container_id, &detach.ifname)?;
    held.release(&Attachment::new(&detach.container_id, &detach.ifname))
        .map_err(store_error)?;
    Ok(())
}
