//! `prevResult`: what the plugins before us in a conflist produced (`ADD`),
//! or the whole chain's result of the attachment's last `ADD` (`CHECK`,
//! `DEL`).
//!
//! The spec requires a plugin to handle `prevResult` by passing it through,
//! modifying it or suppressing it, never by ignoring it. strait-cni is an
//! interface plugin, so:
//!
//! - `ADD` **passes the previous result through** and appends its own
//!   interfaces, addresses and routes (its `interface` indexes shifted past
//!   the previous interfaces), in the configuration's `cniVersion`. A
//!   previous result that already holds the interface strait-cni must
//!   create (`CNI_IFNAME` in `CNI_NETNS`, or the host veth's name) is
//!   refused with code 7 before anything is allocated or created: two
//!   interface plugins for one interface is a broken conflist.
//! - `CHECK` finds its own interface in the previous result by name and
//!   sandbox, and checks exactly the addresses listed on it (and the MACs
//!   listed) against the store and the kernel; other plugins' entries are
//!   theirs to check.
//! - `DEL` does not need the previous result (everything it removes is
//!   found from the attachment), so it never fails because of it.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use crate::error::{CniError, ErrorCode};
use crate::result::{CniResult, Interface, IpConfig, RouteEntry};
use crate::version::CniVersion;

/// A decoded `prevResult`: the fields strait-cni reads, typed, and the
/// original JSON so that passing it through loses nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct PrevResult {
    raw: Map<String, Value>,
    /// The interfaces, in order (addresses refer to them by index).
    pub interfaces: Vec<Interface>,
    /// The addresses.
    pub ips: Vec<IpConfig>,
    /// The routes.
    pub routes: Vec<RouteEntry>,
}

fn decode(msg: String) -> CniError {
    CniError::new(ErrorCode::DECODING_FAILURE, format!("prevResult: {msg}"))
        .with_details("prevResult must be a CNI result: interfaces [{name, mac, sandbox}], ips [{address, gateway, interface}], routes [{dst, gw}]")
}

fn list<'a>(raw: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], CniError> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(decode(format!("{key} is not a list: {other}"))),
    }
}

fn string<'a>(item: &'a Value, key: &str, what: &str) -> Result<Option<&'a str>, CniError> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(decode(format!("{what} {key} is not a string: {other}"))),
    }
}

fn parsed<T: std::str::FromStr>(item: &Value, key: &str, what: &str) -> Result<Option<T>, CniError>
where
    T::Err: std::fmt::Display,
{
    string(item, key, what)?
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| decode(format!("{what} {key} {s:?}: {e}")))
        })
        .transpose()
}

/// A `key` that must be in CIDR notation (`10.0.0.1/24`, not a bare
/// address, which `IpNetwork` would read as a host prefix).
fn cidr(item: &Value, key: &str, what: &str) -> Result<Option<IpNetwork>, CniError> {
    if let Some(s) = string(item, key, what)?
        && !s.contains('/')
    {
        return Err(decode(format!(
            "{what} {key} {s:?} is not in CIDR notation"
        )));
    }
    parsed(item, key, what)
}

impl PrevResult {
    /// Decode a `prevResult` object; malformed well-known fields are code
    /// 6 (decoding failure), unknown fields are kept.
    pub fn parse(value: &Value) -> Result<Self, CniError> {
        let raw = value
            .as_object()
            .ok_or_else(|| decode(format!("not an object: {value}")))?
            .clone();
        let mut interfaces = Vec::new();
        for item in list(&raw, "interfaces")? {
            let name = string(item, "name", "interface")?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| decode(format!("interface without a name: {item}")))?;
            interfaces.push(Interface {
                name: name.to_owned(),
                mac: string(item, "mac", "interface")?
                    .unwrap_or_default()
                    .to_owned(),
                sandbox: string(item, "sandbox", "interface")?
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            });
        }
        let mut ips = Vec::new();
        for item in list(&raw, "ips")? {
            let address = cidr(item, "address", "ip")?
                .ok_or_else(|| decode(format!("ip without an address: {item}")))?;
            let interface = match item.get("interface") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|i| usize::try_from(i).ok())
                        .filter(|i| *i < interfaces.len())
                        .ok_or_else(|| {
                            decode(format!("ip {address} has an invalid interface index {v}"))
                        })?,
                ),
            };
            ips.push(IpConfig {
                address,
                gateway: parsed(item, "gateway", "ip")?,
                interface,
            });
        }
        let mut routes = Vec::new();
        for item in list(&raw, "routes")? {
            routes.push(RouteEntry {
                dst: cidr(item, "dst", "route")?
                    .ok_or_else(|| decode(format!("route without a dst: {item}")))?,
                gw: parsed(item, "gw", "route")?,
            });
        }
        Ok(Self {
            raw,
            interfaces,
            ips,
            routes,
        })
    }

    /// Refuse to create an interface the previous plugins already made:
    /// `pod_ifname` inside `netns`, or one of `host_names` on the node.
    pub fn refuse_conflicts(
        &self,
        pod_ifname: &str,
        netns: &Path,
        host_names: &[&str],
    ) -> Result<(), CniError> {
        for iface in &self.interfaces {
            let clash = match &iface.sandbox {
                Some(sandbox) => iface.name == pod_ifname && same_netns(sandbox, netns),
                None => host_names.contains(&iface.name.as_str()),
            };
            if clash {
                let place = iface
                    .sandbox
                    .as_deref()
                    .map_or_else(|| "on the node".to_owned(), |s| format!("in {s}"));
                return Err(CniError::new(
                    ErrorCode::INVALID_NETWORK_CONFIG,
                    format!(
                        "prevResult already has interface {} {place}: strait-cni cannot create it when chained after another interface plugin",
                        iface.name
                    ),
                )
                .with_details(
                    "strait-cni creates the pod's interface itself: make it the first plugin of the conflist (chained plugins such as portmap, bandwidth or tuning go after it), or remove the other interface plugin",
                ));
            }
        }
        Ok(())
    }

    /// The index of the interface named `ifname` inside `netns`, if the
    /// previous result lists it.
    pub fn sandbox_interface(&self, ifname: &str, netns: &Path) -> Option<usize> {
        self.interfaces.iter().position(|i| {
            i.name == ifname && i.sandbox.as_deref().is_some_and(|s| same_netns(s, netns))
        })
    }

    /// The node-side interface named `name`, if listed.
    pub fn host_interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces
            .iter()
            .find(|i| i.name == name && i.sandbox.is_none())
    }

    /// `ours` appended to this previous result, written in `version`: the
    /// previous interfaces, addresses and routes come first and unchanged
    /// (except each address's `version` key, which exists before 1.0.0
    /// only), ours follow with their interface indexes shifted. `dns` is
    /// ours when the configuration has one, else the previous one.
    pub fn merge(&self, ours: &CniResult, version: CniVersion) -> Value {
        let mut out = ours.to_json(version);
        let offset = self.interfaces.len();
        if let Some(ips) = out.get_mut("ips").and_then(Value::as_array_mut) {
            for ip in ips {
                if let Some(i) = ip.get("interface").and_then(Value::as_u64) {
                    let shifted = usize::try_from(i).unwrap_or(0) + offset;
                    ip["interface"] = shifted.into();
                }
            }
        }
        let legacy = version < CniVersion::V1_0_0;
        let prev_ips: Vec<Value> = self
            .raw
            .get("ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .zip(&self.ips)
            .map(|(raw, typed)| {
                let mut ip = raw.clone();
                if let Some(m) = ip.as_object_mut() {
                    if legacy {
                        let v = if typed.address.is_ipv4() { "4" } else { "6" };
                        m.insert("version".into(), v.into());
                    } else {
                        m.remove("version");
                    }
                }
                ip
            })
            .collect();
        let mut merged = self.raw.clone();
        for (key, prev) in [
            ("interfaces", self.raw.get("interfaces").cloned()),
            ("ips", Some(Value::Array(prev_ips))),
            ("routes", self.raw.get("routes").cloned()),
        ] {
            let mut all = prev.and_then(|p| p.as_array().cloned()).unwrap_or_default();
            all.extend(
                out.get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            merged.insert(key.into(), Value::Array(all));
        }
        merged.insert("cniVersion".into(), version.as_str().into());
        let dns = match &ours.dns {
            Some(dns) => dns.clone(),
            None => self
                .raw
                .get("dns")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
        };
        merged.insert("dns".into(), dns);
        Value::Object(merged)
    }

    /// The addresses the previous result puts on interface `index` (and
    /// addresses with no interface that are in `allocated`, as results
    /// before 0.3 did not index them).
    pub fn addresses_on(&self, index: usize, allocated: &[IpAddr]) -> Vec<IpNetwork> {
        self.ips
            .iter()
            .filter(|ip| match ip.interface {
                Some(i) => i == index,
                None => allocated.contains(&ip.address.ip()),
            })
            .map(|ip| ip.address)
            .collect()
    }
}

/// Whether the sandbox path of a result and `CNI_NETNS` name the same
/// namespace: the same path, or the same nsfs inode (a runtime may write
/// `/proc/<pid>/ns/net` once and a bind mount the next time).
pub fn same_netns(sandbox: &str, netns: &Path) -> bool {
    if Path::new(sandbox) == netns {
        return true;
    }
    match (std::fs::metadata(sandbox), std::fs::metadata(netns)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn loopback_prev() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}, {"address": "::1/128", "interface": 0}],
            "dns": {"nameservers": ["10.96.0.10"]},
            "someFutureKey": true,
        })
    }

    fn ours() -> CniResult {
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
    fn merge_passes_the_previous_result_through_and_shifts_our_indexes() {
        let prev = PrevResult::parse(&loopback_prev()).expect("parse");
        let merged = prev.merge(&ours(), CniVersion::V1_1_0);
        assert_eq!(merged["cniVersion"], "1.1.0");
        let names: Vec<_> = merged["interfaces"]
            .as_array()
            .expect("list")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, ["lo", "strait0123", "eth0"]);
        assert_eq!(
            merged["ips"][0],
            json!({"address": "127.0.0.1/8", "interface": 0})
        );
        assert_eq!(merged["ips"][2]["address"], "10.244.0.5/32");
        assert_eq!(merged["ips"][2]["interface"], 2, "{merged}");
        assert_eq!(merged["routes"].as_array().map(Vec::len), Some(1));
        assert_eq!(merged["dns"], json!({"nameservers": ["10.96.0.10"]}));
        assert_eq!(merged["someFutureKey"], true);
        // Our own dns wins; older versions get each address's "version".
        let mut with_dns = ours();
        with_dns.dns = Some(json!({"nameservers": ["1.1.1.1"]}));
        let old = prev.merge(&with_dns, CniVersion::V0_3_1);
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert_eq!(old["ips"][2]["version"], "4");
        assert_eq!(old["dns"], json!({"nameservers": ["1.1.1.1"]}));
        // An empty previous result is our result.
        let empty = PrevResult::parse(&json!({})).expect("empty");
        assert_eq!(
            empty.merge(&ours(), CniVersion::V1_0_0),
            ours().to_json(CniVersion::V1_0_0)
        );
    }

    #[test]
    fn conflicts_with_an_earlier_interface_plugin_are_code_7() {
        let prev = PrevResult::parse(&loopback_prev()).expect("parse");
        let netns = Path::new("/run/netns/p");
        assert!(
            prev.refuse_conflicts("eth0", netns, &["strait0123"])
                .is_ok()
        );
        let err = prev
            .refuse_conflicts("lo", netns, &["strait0123"])
            .expect_err("clash");
        assert_eq!(err.code, ErrorCode::INVALID_NETWORK_CONFIG);
        assert!(err.msg.contains("lo in /run/netns/p"), "{}", err.msg);
        assert!(err.details.is_some());
        // The same name in another sandbox is no clash.
        assert!(
            prev.refuse_conflicts("lo", Path::new("/run/netns/q"), &[])
                .is_ok()
        );
        let host =
            PrevResult::parse(&json!({"interfaces": [{"name": "strait0123"}]})).expect("parse");
        assert!(
            host.refuse_conflicts("eth0", netns, &["strait0123"])
                .is_err()
        );
    }

    #[test]
    fn malformed_previous_results_are_code_6() {
        for bad in [
            json!("x"),
            json!({"interfaces": {}}),
            json!({"interfaces": [{"mac": "x"}]}),
            json!({"interfaces": [{"name": 5}]}),
            json!({"ips": [{"address": "nope"}]}),
            json!({"ips": [{"address": "10.0.0.1"}]}),
            json!({"routes": [{"dst": "0.0.0.0"}]}),
            json!({"ips": [{}]}),
            json!({"ips": [{"address": "10.0.0.1/32", "interface": 3}]}),
            json!({"ips": [{"address": "10.0.0.1/32", "gateway": "x"}]}),
            json!({"routes": [{"gw": "10.0.0.1"}]}),
            json!({"routes": 7}),
        ] {
            let err = PrevResult::parse(&bad).expect_err("malformed");
            assert_eq!(err.code, ErrorCode::DECODING_FAILURE, "{bad}");
        }
    }

    #[test]
    fn finding_our_interface_and_its_addresses() {
        let prev = PrevResult::parse(&ours().to_json(CniVersion::V1_0_0)).expect("parse");
        let netns = Path::new("/run/netns/p");
        assert_eq!(prev.sandbox_interface("eth0", netns), Some(1));
        assert_eq!(
            prev.sandbox_interface("eth0", Path::new("/run/netns/q")),
            None
        );
        assert!(prev.host_interface("strait0123").is_some());
        assert!(prev.host_interface("eth0").is_none());
        let ip: IpAddr = "10.244.0.5".parse().expect("ip");
        assert_eq!(
            prev.addresses_on(1, &[]),
            vec!["10.244.0.5/32".parse::<IpNetwork>().expect("net")]
        );
        assert!(prev.addresses_on(0, &[ip]).is_empty());
        let unindexed =
            PrevResult::parse(&json!({"ips": [{"address": "10.244.0.5/32"}]})).expect("parse");
        assert_eq!(unindexed.addresses_on(0, &[ip]).len(), 1);
        assert!(unindexed.addresses_on(0, &[]).is_empty());
    }
}
