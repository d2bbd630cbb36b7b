//! The handlers of the commands that touch the network: each receives an
//! invocation and a configuration the protocol layer already validated.

mod add;
mod check;
mod del;
mod gc;
mod status;

use crate::config::NetworkConfig;
use crate::env::Invocation;
use crate::error::{CniError, ErrorCode};
use crate::ipam::{Store, StoreError};
use crate::netlink::Netlink;
use crate::netns::NetnsError;
use crate::options::Options;
use crate::wiring::routed::netlink_error;

/// Run the command; `Ok(Some(json))` is the result to print (ADD only).
pub fn execute(
    invocation: &Invocation,
    config: &NetworkConfig,
) -> Result<Option<String>, CniError> {
    match invocation {
        Invocation::Add(attach) => add::add(attach, config).map(Some),
        Invocation::Del(detach) => del::del(detach, config).map(|()| None),
        Invocation::Check(attach) => check::check(attach, config).map(|()| None),
        Invocation::Status(_) => status::status(config).map(|()| None),
        Invocation::Gc(_) => gc::gc(config).map(|()| None),
        Invocation::Version => Ok(None),
    }
}

/// A store failure as a CNI error: exhaustion is 50 ("cannot service
/// ADD"), anything else is the store's own code.
pub(crate) fn store_error(err: StoreError) -> CniError {
    match err {
        StoreError::Exhausted(_) => CniError::new(ErrorCode::PLUGIN_NOT_AVAILABLE, err.to_string())
            .with_details("every address of the range set is allocated: widen the range, or GC/DEL unused pods"),
        StoreError::NotInRange(_) => CniError::new(ErrorCode::INVALID_NETWORK_CONFIG, err.to_string())
            .with_details("runtimeConfig.ips may only name addresses inside ipam.ranges (and not the gateway)"),
        StoreError::Taken(..) => CniError::new(ErrorCode::REQUESTED_IP_TAKEN, err.to_string())
            .with_details("DEL the container holding it first, or request another address"),
        StoreError::Io { .. } => CniError::new(ErrorCode::IPAM_STORE_FAILED, err.to_string())
            .with_details("check that ipam.dataDir exists and is writable by the plugin"),
    }
}

/// A namespace failure as a CNI error.
pub(crate) fn netns_error(err: NetnsError) -> CniError {
    CniError::new(ErrorCode::NETNS_UNUSABLE, err.to_string()).with_details(
        "CNI_NETNS must be the path of a network namespace, e.g. /var/run/netns/<name>",
    )
}

/// The options and the network's store.
pub(crate) fn open_store(config: &NetworkConfig) -> Result<(Options, Store), CniError> {
    let options = Options::from_config(config)?;
    let store = Store::open(&options.ipam.data_dir, &config.name).map_err(store_error)?;
    Ok((options, store))
}

/// A netlink socket in the plugin's own (the node's) namespace.
pub(crate) fn host_netlink() -> Result<Netlink, CniError> {
    Netlink::open().map_err(netlink_error)
}
