//! Reading the configuration from stdin, bounded.

use std::io::Read;

use crate::config::MAX_CONFIG_BYTES;
use crate::error::{CniError, ErrorCode};

/// Read all of `input`, refusing more than [`MAX_CONFIG_BYTES`]. Failures
/// are code 5 (I/O), as the spec names "failed to read network config bytes
/// from stdin".
pub fn read_bounded(input: impl Read) -> Result<Vec<u8>, CniError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_CONFIG_BYTES).unwrap_or(u64::MAX);
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| {
            CniError::new(
                ErrorCode::IO_FAILURE,
                format!("error reading from stdin: {e}"),
            )
        })?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(CniError::new(
            ErrorCode::IO_FAILURE,
            format!("network config on stdin is larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}
