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
use crate::netns::NetnsError;
use crate::options::Options;
use crate::wiring::routed::netlink_error;
use strait_netlink::Netlink;

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

/// A store failure as a CNI error (see the `From` impl in
/// [`crate::ipam::store`]).
pub(crate) fn store_error(err: StoreError) -> CniError {
    err.into()
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
    let store = Store::open(&options.ipam.data_dir, &config.name)
        .map_err(store_error)?
        .with_lock_timeout(options.ipam.lock_timeout);
    Ok((options, store))
}

/// A netlink socket in the plugin's own (the node's) namespace.
pub(crate) fn host_netlink() -> Result<Netlink, CniError> {
    Netlink::open().map_err(netlink_error)
}
