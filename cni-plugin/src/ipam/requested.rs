//! The `ips` capability: addresses the runtime pins through
//! `runtimeConfig.ips`, honoured by the built-in IPAM and by the standalone
//! `strait-ipam` plugin alike.

use std::net::IpAddr;

use crate::config::NetworkConfig;
use crate::error::{CniError, ErrorCode};

/// Addresses the runtime asks for through the `ips` capability
/// (`runtimeConfig.ips`: `"10.244.2.200"` or `"10.244.2.200/24"`).
pub fn requested_ips(config: &NetworkConfig) -> Result<Vec<IpAddr>, CniError> {
    let Some(list) = config
        .extra
        .get("runtimeConfig")
        .and_then(|rc| rc.get("ips"))
    else {
        return Ok(Vec::new());
    };
    let bad = |v: &serde_json::Value| {
        CniError::new(
            ErrorCode::INVALID_NETWORK_CONFIG,
            format!("invalid runtimeConfig.ips entry {v}"),
        )
        .with_details("each entry is an address, optionally with a prefix: \"10.244.2.200/24\"")
    };
    let Some(items) = list.as_array() else {
        return Err(bad(list));
    };
    items
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.split('/').next())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(v))
        })
        .collect()
}
