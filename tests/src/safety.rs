//! The network-safety check that runs before any code or process executes inside a test
//! namespace ([`NetNs::run`], [`NetNs::command`]), and on demand via
//! [`NetNs::assert_isolated`].
//!
//! A namespace passes when:
//! 1. every link is `lo`, a link the harness created in it, an idle kernel fallback tunnel
//!    (`tunl0`, `sit0`, ...: down, and they cannot carry traffic while down), or, after
//!    [`NetNs::trust_links_created_by_product`], a veth/bridge/vxlan/dummy;
//! 2. every link that reaches into another namespace (`link_netnsid`: a veth's peer, the
//!    socket of a vxlan created elsewhere) reaches into a harness namespace
//!    (`strait-t-...`), except a veth the test explicitly created with
//!    [`VethPair::with_root_end_unsafe_for_tests`](crate::VethPair::with_root_end_unsafe_for_tests);
//! 3. no route uses a link that leads to the root netns, other than the kernel's own
//!    connected and local routes of that link.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cmd;
use crate::error::{Error, Result};
use crate::names::OBJECT_PREFIX;
use crate::netns::{LinkOrigin, NetNs};

/// The rule, quoted in every failure so the reader knows why the harness refused.
pub const SAFETY_RULE: &str = "\
STRAIT TEST NETWORK-SAFETY RULE: tests send traffic only to loopback or to hosts they \
created inside test network namespaces. A test namespace may contain only `lo` and links \
the harness created (veths whose peers are in other test namespaces, bridges), so no \
packet can leave the machine. A veth into the root netns needs the explicit opt-in \
`VethPair::with_root_end_unsafe_for_tests`, and even then only its connected routes are \
allowed. If product code creates links in a test namespace (the CNI plugin, the lab), \
call `ns.trust_links_created_by_product()`; its links must then still be veths whose \
peers are in test namespaces, bridges, vxlans or dummies.";

/// Kernel fallback devices a new namespace gets when tunnel modules are loaded.
const FALLBACK_TUNNELS: &[&str] = &[
    "tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6gre0",
];

/// Kinds product code may create in a trusted namespace.
const TRUSTED_KINDS: &[&str] = &["veth", "bridge", "vxlan", "dummy"];

impl NetNs {
    /// Checks the namespace against [`SAFETY_RULE`], returning the violation as
    /// [`Error::NotIsolated`].
    pub fn check_isolated(&self) -> Result<()> {
        let fail = |reason: String| Error::NotIsolated {
            netns: self.name().to_string(),
            reason,
        };
        let registered = self.registered_links();
        let trust = self.trusts_product_links();
        let links = cmd::ip_json_in(self.name(), &["-d", "link", "show"])?;
        let mut nsid_names: Option<BTreeMap<i64, Option<String>>> = None;
        let mut to_root: Vec<String> = Vec::new();
        let mut allowed: Vec<String> = Vec::new();

        for link in &links {
            let name = link["ifname"].as_str().unwrap_or_default().to_string();
            let kind = link["linkinfo"]["info_kind"].as_str().unwrap_or("");
            if name == "lo" {
                allowed.push(name);
                continue;
            }
            let record = registered.get(&name).copied();
            if let Some(r) = record
                && r.kind != kind
            {
                return Err(fail(format!(
                    "link `{name}` was created by the harness as a {} but is now a `{kind}`",
                    r.kind
                )));
            }
            if record.is_none() {
                let is_idle_fallback =
                    FALLBACK_TUNNELS.contains(&name.as_str()) && !flags(link).contains(&"UP");
                if is_idle_fallback {
                    allowed.push(name);
                    continue;
                }
                if !trust {
                    return Err(fail(format!(
                        "link `{name}` (kind `{kind}`) was not created by the harness"
                    )));
                }
                if !TRUSTED_KINDS.contains(&kind) {
                    return Err(fail(format!(
                        "link `{name}` has kind `{}`; product-created links may only be {}",
                        if kind.is_empty() { "<none>" } else { kind },
                        TRUSTED_KINDS.join("/")
                    )));
                }
            }
            // A veth's peer, or a vxlan's socket, may live in another namespace
            // (`link_netnsid`); that namespace must be a harness one.
            if record.map(|r| r.origin) == Some(LinkOrigin::LeadsToRoot) {
                to_root.push(name.clone());
            } else if let Some(nsid) = link["link_netnsid"].as_i64() {
                let map = match &nsid_names {
                    Some(m) => m,
                    None => nsid_names.insert(self.nsid_names()?),
                };
                match map.get(&nsid).cloned().flatten() {
                    Some(peer_ns) if peer_ns.starts_with(OBJECT_PREFIX) => {}
                    other => {
                        return Err(fail(format!(
                            "link `{name}` (kind `{kind}`) leads into netns {} (nsid {nsid}), \
                             which is not a harness namespace",
                            other.unwrap_or_else(|| "<unnamed, e.g. the root netns>".into())
                        )));
                    }
                }
            }
            allowed.push(name);
        }

        for family in ["-4", "-6"] {
            let routes = cmd::ip_json_in(self.name(), &[family, "route", "show", "table", "all"])?;
            for route in &routes {
                for dev in route_devs(route) {
                    if to_root.iter().any(|r| r == dev) {
                        let kernel_made = route["protocol"].as_str() == Some("kernel");
                        if !kernel_made {
                            return Err(fail(format!(
                                "route {} uses `{dev}`, a link into the root netns; \
                                 only its connected routes are allowed",
                                route_desc(route)
                            )));
                        }
                    } else if !allowed.iter().any(|a| a == dev) {
                        return Err(fail(format!(
                            "route {} uses unknown link `{dev}`",
                            route_desc(route)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Panics with [`SAFETY_RULE`] when [`check_isolated`](Self::check_isolated) fails.
    pub fn assert_isolated(&self) {
        if let Err(e) = self.check_isolated() {
            panic!("{e}");
        }
    }

    /// nsid -> netns name (if iproute2 can name it) as seen from inside this namespace.
    fn nsid_names(&self) -> Result<BTreeMap<i64, Option<String>>> {
        Ok(cmd::ip_json_in(self.name(), &["netns", "list-id"])?
            .iter()
            .filter_map(|e| {
                let id = e["nsid"].as_i64()?;
                Some((id, e["name"].as_str().map(str::to_string)))
            })
            .collect())
    }
}

fn flags(link: &Value) -> Vec<&str> {
    link["flags"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn route_devs(route: &Value) -> Vec<&str> {
    let mut devs: Vec<&str> = route["dev"].as_str().into_iter().collect();
    if let Some(hops) = route["nexthops"].as_array() {
        devs.extend(hops.iter().filter_map(|h| h["dev"].as_str()));
    }
    devs
}

fn route_desc(route: &Value) -> String {
    let dst = route["dst"].as_str().unwrap_or("?");
    match route["gateway"].as_str() {
        Some(gw) => format!("`{dst} via {gw}`"),
        None => format!("`{dst}`"),
    }
}
