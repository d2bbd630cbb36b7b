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
    // The veth first, outside the store's lock: deleting a veth costs the
    // kernel tens of milliseconds (RCU grace periods under RTNL), and
    // holding the lock through it would queue every concurrent ADD and DEL
    // on the node behind it. A veth never exists without its addresses'
    // record, so a DEL that stops here (killed, or refused with code 11 at
    // the lock below) is finished by the runtime's retry or by GC.
    let mut host_nl = host_netlink()?;
    routed::detach(&mut host_nl, &detach.container_id, &detach.ifname)?;
    store
        .release(&Attachment::new(&detach.container_id, &detach.ifname))
        .map_err(store_error)?;
    Ok(())
}
