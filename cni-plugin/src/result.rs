//! The `ADD` result, written in the configuration's `cniVersion` (the
//! typed pieces are shared with [`crate::chain`], which reads them back
//! from a `prevResult`).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value, json};

use crate::version::CniVersion;

/// One interface of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC, `aa:bb:..`.
    pub mac: String,
    /// The netns path for container-side interfaces, `None` on the host.
    pub sandbox: Option<String>,
}

/// One address of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix, as configured on the interface.
    pub address: IpNetwork,
    /// The next hop the pod uses.
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` of the interface holding it.
    pub interface: Option<usize>,
}

/// One route of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop.
    pub gw: Option<IpAddr>,
}

/// A CNI result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CniResult {
    /// Interfaces created.
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    pub ips: Vec<IpConfig>,
    /// Routes installed in the container.
    pub routes: Vec<RouteEntry>,
    /// The `dns` section from the configuration, passed through.
    pub dns: Option<Value>,
}

impl CniResult {
    /// The result as JSON in `version`: before 1.0.0 each address carries
    /// `"version": "4"|"6"`, as those specs require.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let legacy = version < CniVersion::V1_0_0;
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut m = Map::new();
                m.insert("name".into(), i.name.clone().into());
                m.insert("mac".into(), i.mac.clone().into());
                if let Some(s) = &i.sandbox {
                    m.insert("sandbox".into(), s.clone().into());
                }
                Value::Object(m)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut m = Map::new();
                if legacy {
                    let v = if ip.address.is_ipv4() { "4" } else { "6" };
                    m.insert("version".into(), v.into());
                }
                m.insert("address".into(), ip.address.to_string().into());
                if let Some(gw) = ip.gateway {
                    m.insert("gateway".into(), gw.to_string().into());
                }
                if let Some(i) = ip.interface {
                    m.insert("interface".into(), i.into());
                }
                Value::Object(m)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| match r.gw {
                Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                None => json!({"dst": r.dst.to_string()}),
            })
            .collect();
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        out.insert("interfaces".into(), interfaces.into());
        out.insert("ips".into(), ips.into());
        out.insert("routes".into(), routes.into());
        out.insert("dns".into(), self.dns.clone().unwrap_or_else(|| json!({})));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "strait0123".into(),
                    mac: "ee:ee:ee:ee:ee:ee".into(),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    sandbox: Some("/run/netns/p".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.244.0.5/32".parse().expect("net"),
                gateway: Some("169.254.1.1".parse().expect("ip")),
                interface: Some(1),
            }],
            routes: vec![RouteEntry {
                dst: "0.0.0.0/0".parse().expect("net"),
                gw: Some("169.254.1.1".parse().expect("ip")),
            }],
            dns: None,
        }
    }

    #[test]
    fn result_shape_per_version() {
        let new = sample().to_json(CniVersion::V1_1_0);
        assert_eq!(new["cniVersion"], "1.1.0");
        assert_eq!(
            new["ips"][0],
            json!({"address": "10.244.0.5/32", "gateway": "169.254.1.1", "interface": 1})
        );
        assert_eq!(new["interfaces"][1]["sandbox"], "/run/netns/p");
        assert!(new["interfaces"][0].get("sandbox").is_none());
        assert_eq!(
            new["routes"][0],
            json!({"dst": "0.0.0.0/0", "gw": "169.254.1.1"})
        );
        let old = sample().to_json(CniVersion::V0_3_1);
        assert_eq!(old["ips"][0]["version"], "4");
    }
}
