//! The plugin's own configuration keys, read from the network
//! configuration after the protocol checks:
//!
//! - `mode`: `"routed"` (default; /32 per pod behind a link-local gateway),
//!   `"bridge"` (a Linux bridge holding each subnet's gateway address;
//!   a range without `gateway` gets its first address as gateway) or
//!   `"vxlan"` (routed, plus a VXLAN device to other nodes' pod CIDRs,
//!   configured by the `vxlan` section: [`crate::wiring::vxlan`]);
//! - `bridge`: the bridge name in bridge mode (default `strait0`);
//! - `mtu`: the veth MTU (default 1500; 1450 in vxlan mode, leaving room
//!   for the 50-byte encapsulation on a 1500-byte underlay);
//! - `ipam`: the built-in IPAM's section ([`crate::ipam::config`]).

use serde_json::Value;

use crate::config::NetworkConfig;
use crate::error::{CniError, ErrorCode};
use crate::ipam::{IpamConfig, IpamConfigError};
use crate::wiring::vxlan::VxlanConfig;

/// Default MTU of the pod veth.
pub const DEFAULT_MTU: u32 = 1500;
/// Default MTU of the pod veth and the VXLAN device in vxlan mode.
pub const DEFAULT_VXLAN_MTU: u32 = 1450;
/// Default bridge name in bridge mode.
pub const DEFAULT_BRIDGE: &str = "strait0";

/// How pods are wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One /32 (/128) per pod behind a link-local gateway; the host routes.
    Routed,
    /// Pods share a Linux bridge and subnet with a gateway address on it.
    Bridge,
    /// Routed, plus a VXLAN overlay to the other nodes' pod CIDRs.
    Vxlan,
}

/// The validated plugin options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Wiring mode.
    pub mode: Mode,
    /// Veth MTU.
    pub mtu: u32,
    /// Bridge name (bridge mode only).
    pub bridge: String,
    /// IPAM.
    pub ipam: IpamConfig,
    /// The overlay (vxlan mode only).
    pub vxlan: Option<VxlanConfig>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::INVALID_NETWORK_CONFIG, msg)
}

impl From<IpamConfigError> for CniError {
    fn from(err: IpamConfigError) -> Self {
        match err {
            IpamConfigError::UnsupportedType(t) => CniError::new(
                ErrorCode::UNSUPPORTED_FIELD,
                format!("unsupported field ipam.type = {t:?}"),
            )
            .with_details("strait-cni has its IPAM built in: use \"type\": \"strait-ipam\""),
            other => invalid(other.to_string()).with_details(
                "ipam needs \"subnet\" or \"ranges\": [[{\"subnet\": \"10.244.1.0/24\"}]]",
            ),
        }
    }
}

impl Options {
    /// Read the options from the configuration.
    pub fn from_config(config: &NetworkConfig) -> Result<Self, CniError> {
        let extra = &config.extra;
        let mode = match extra.get("mode") {
            None | Some(Value::Null) => Mode::Routed,
            Some(Value::String(s)) if s == "routed" => Mode::Routed,
            Some(Value::String(s)) if s == "bridge" => Mode::Bridge,
            Some(Value::String(s)) if s == "vxlan" => Mode::Vxlan,
            Some(other) => {
                return Err(CniError::new(
                    ErrorCode::UNSUPPORTED_FIELD,
                    format!("unsupported field mode = {other}"),
                )
                .with_details("mode must be \"routed\", \"bridge\" or \"vxlan\""));
            }
        };
        let mtu = match extra.get("mtu") {
            None | Some(Value::Null) if mode == Mode::Vxlan => DEFAULT_VXLAN_MTU,
            None | Some(Value::Null) => DEFAULT_MTU,
            Some(v) => v
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| invalid(format!("invalid mtu {v}: must be 68-65535")))?,
        };
        let bridge = match extra.get("bridge") {
            None | Some(Value::Null) => DEFAULT_BRIDGE.to_owned(),
            Some(Value::String(b)) if crate::env::validate_ifname(b).is_ok() => b.clone(),
            Some(v) => return Err(invalid(format!("invalid bridge name {v}"))),
        };
        let mut ipam = IpamConfig::parse(extra.get("ipam"))?;
        if !ipam.routes.is_empty() {
            return Err(CniError::new(
                ErrorCode::UNSUPPORTED_FIELD,
                "unsupported field ipam.routes in strait-cni",
            )
            .with_details(
                "strait-cni routes all pod traffic via its own gateway; ipam.routes is for the standalone strait-ipam plugin",
            ));
        }
        if mode == Mode::Bridge {
            // The gateway lives on the bridge: default it to the subnet's
            // first address, which IPAM then never hands out.
            for range in ipam.range_sets.iter_mut().flat_map(|s| s.ranges.iter_mut()) {
                if range.gateway.is_none() {
                    range.gateway = range.subnet.iter().nth(1);
                }
            }
        }
        let vxlan = match mode {
            Mode::Vxlan => Some(VxlanConfig::parse(extra.get("vxlan"))?),
            Mode::Routed | Mode::Bridge => None,
        };
        Ok(Self {
            mode,
            mtu,
            bridge,
            ipam,
            vxlan,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn opts(v: Value) -> Result<Options, CniError> {
        let mut base = json!({"cniVersion": "1.1.0", "name": "n", "type": "strait-cni",
                              "ipam": {"subnet": "10.244.0.0/24"}});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        Options::from_config(&NetworkConfig::parse(base.to_string().as_bytes()).expect("cfg"))
    }

    #[test]
    fn defaults_and_overrides() {
        let o = opts(json!({})).expect("ok");
        assert_eq!((o.mode, o.mtu), (Mode::Routed, 1500));
        let o = opts(json!({"mode": "routed", "mtu": 1400})).expect("ok");
        assert_eq!((o.mode, o.mtu), (Mode::Routed, 1400));
        assert_eq!(o.bridge, "strait0");
        assert_eq!(o.ipam.range_sets[0].ranges[0].gateway, None);
        let o = opts(json!({"mode": "bridge", "bridge": "br9"})).expect("ok");
        assert_eq!((o.mode, o.bridge.as_str()), (Mode::Bridge, "br9"));
        let gw = o.ipam.range_sets[0].ranges[0].gateway;
        assert_eq!(gw.map(|g| g.to_string()).as_deref(), Some("10.244.0.1"));
        let o = opts(json!({"mode": "vxlan", "vxlan": {"localIP": "10.250.0.1"}})).expect("ok");
        assert_eq!((o.mode, o.mtu), (Mode::Vxlan, DEFAULT_VXLAN_MTU));
        assert!(o.vxlan.is_some_and(|v| v.peers.is_empty()));
    }

    #[test]
    fn bad_options_have_codes() {
        let code = |v| opts(v).expect_err("bad").code.get();
        assert_eq!(code(json!({"mode": "vxlan"})), 7, "needs its section");
        assert_eq!(code(json!({"mode": "overlay"})), 2);
        assert_eq!(code(json!({"mode": 5})), 2);
        assert_eq!(code(json!({"bridge": "a/b"})), 7);
        assert_eq!(code(json!({"mtu": 10})), 7);
        assert_eq!(code(json!({"mtu": "x"})), 7);
        assert_eq!(
            code(json!({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}})),
            2
        );
        assert_eq!(code(json!({"ipam": {"subnet": "bad"}})), 7);
        assert_eq!(code(json!({"ipam": null})), 7);
        assert_eq!(
            code(json!({"ipam": {"subnet": "10.0.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}})),
            2
        );
    }
}
