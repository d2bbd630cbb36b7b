//! `STATUS`: can an `ADD` succeed now? Not when a range set is full.

use crate::config::NetworkConfig;
use crate::error::{CniError, ErrorCode};
use crate::ipam::store::describe;

use super::{open_store, store_error};

pub(super) fn status(config: &NetworkConfig) -> Result<(), CniError> {
    let (options, store) = open_store(config)?;
    let free = store
        .has_free(&options.ipam.range_sets)
        .map_err(store_error)?;
    for (set, has_free) in options.ipam.range_sets.iter().zip(free) {
        if !has_free {
            return Err(CniError::new(
                ErrorCode::PLUGIN_NOT_AVAILABLE,
                format!("no IP addresses left in range set {}", describe(set)),
            )
            .with_details(
                "ADD will fail until pods are deleted (DEL/GC) or the range is widened",
            ));
        }
    }
    Ok(())
}
