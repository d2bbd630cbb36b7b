//! Links between and inside test namespaces: [`VethPair`] and [`Bridge`].
//!
//! Every link is registered with its namespace when created (so the isolation check knows
//! it is the harness's) and deleted when its guard drops.

use crate::cmd;
use crate::error::{Result, warn_cleanup};
use crate::names::{self, UniqueId};
use crate::netns::{LinkOrigin, NetNs};

/// One end of a veth pair: its name and the namespace it is in (`None` = the root netns,
/// only possible through [`VethPair::with_root_end_unsafe_for_tests`]).
#[derive(Debug, Clone)]
pub struct VethEnd {
    name: String,
    ns: Option<NetNs>,
}

impl VethEnd {
    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace holding this end, `None` for the root netns.
    pub fn netns(&self) -> Option<&NetNs> {
        self.ns.as_ref()
    }

    fn ip(&self, args: &[&str]) -> Result<String> {
        match &self.ns {
            Some(ns) => ns.ip(args),
            None => cmd::ip_root(args),
        }
    }
}

/// A veth pair, by default with both ends in test namespaces. Both ends are up. Deleting
/// either end deletes the pair, which happens on drop.
#[derive(Debug)]
pub struct VethPair {
    a: VethEnd,
    b: VethEnd,
}

/// Options for a [`VethPair`]: addresses per end and MTU.
#[derive(Debug)]
#[must_use = "call .create()"]
pub struct VethBuilder {
    a: NetNs,
    b: Option<NetNs>,
    addrs_a: Vec<String>,
    addrs_b: Vec<String>,
    mtu: Option<u32>,
}

impl VethPair {
    /// A veth between `a` and `b` (which may be the same namespace), both ends up, no
    /// addresses.
    pub fn new(a: &NetNs, b: &NetNs) -> Result<VethPair> {
        Self::builder(a, b).create()
    }

    /// A builder for a veth between `a` and `b` with addresses and MTU.
    pub fn builder(a: &NetNs, b: &NetNs) -> VethBuilder {
        VethBuilder {
            a: a.clone(),
            b: Some(b.clone()),
            addrs_a: Vec::new(),
            addrs_b: Vec::new(),
            mtu: None,
        }
    }

    /// A builder for a veth whose `a` end is in `ns` and whose `b` end is in the ROOT
    /// netns. This breaks the default isolation rule, so it is a separate, loudly named
    /// opt-in: use it only when a test really needs the host side (for example to attach
    /// a tc program to a "node" interface). The isolation check still refuses any route
    /// in `ns` over this link other than the kernel's connected ones, so nothing in `ns`
    /// can reach beyond the root end's own subnet. The root end gets a unique name and
    /// an alias marking it as the harness's, and is deleted on drop (or by the sweep).
    /// Addresses given to the root end must be unique to the test: pick them from
    /// 192.0.2.0/24-style ranges nobody else uses.
    pub fn with_root_end_unsafe_for_tests(ns: &NetNs) -> VethBuilder {
        VethBuilder {
            a: ns.clone(),
            b: None,
            addrs_a: Vec::new(),
            addrs_b: Vec::new(),
            mtu: None,
        }
    }

    /// The end in the first namespace.
    pub fn a(&self) -> &VethEnd {
        &self.a
    }

    /// The end in the second namespace (or the root end).
    pub fn b(&self) -> &VethEnd {
        &self.b
    }

    /// Shorthand for `self.a().name()`.
    pub fn a_name(&self) -> &str {
        &self.a.name
    }

    /// Shorthand for `self.b().name()`.
    pub fn b_name(&self) -> &str {
        &self.b.name
    }
}

impl VethBuilder {
    /// Adds an address (`10.250.0.1/24`) to the `a` end.
    pub fn addr_a(mut self, cidr: &str) -> Self {
        self.addrs_a.push(cidr.to_string());
        self
    }

    /// Adds an address to the `b` end.
    pub fn addr_b(mut self, cidr: &str) -> Self {
        self.addrs_b.push(cidr.to_string());
        self
    }

    /// Sets the MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Creates the pair, configures and brings up both ends.
    pub fn create(self) -> Result<VethPair> {
        crate::sweep::ensure_swept();
        let id = UniqueId::next();
        let (name_a, name_b) = (id.ifname('a'), id.ifname('b'));
        let pair = match &self.b {
            Some(b) => {
                self.a.register_link(&name_a, LinkOrigin::Contained, "veth");
                b.register_link(&name_b, LinkOrigin::Contained, "veth");
                let pair = VethPair {
                    a: VethEnd {
                        name: name_a.clone(),
                        ns: Some(self.a.clone()),
                    },
                    b: VethEnd {
                        name: name_b.clone(),
                        ns: Some(b.clone()),
                    },
                };
                // Both ends are created directly in their namespaces: the pair never
                // appears in the root netns.
                cmd::run(std::process::Command::new("ip").args([
                    "link",
                    "add",
                    "name",
                    &name_a,
                    "netns",
                    self.a.name(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &name_b,
                    "netns",
                    b.name(),
                ]))?;
                pair
            }
            None => {
                self.a
                    .register_link(&name_a, LinkOrigin::LeadsToRoot, "veth");
                let pair = VethPair {
                    a: VethEnd {
                        name: name_a.clone(),
                        ns: Some(self.a.clone()),
                    },
                    b: VethEnd {
                        name: name_b.clone(),
                        ns: None,
                    },
                };
                // Create both ends inside the test namespace, stamp the future root end
                // with our alias, and only then move it out, so the root netns never
                // holds an unmarked harness link.
                self.a.ip(&[
                    "link", "add", "name", &name_a, "type", "veth", "peer", "name", &name_b,
                ])?;
                let alias = names::root_link_alias(id.pid());
                self.a
                    .ip(&["link", "set", "dev", &name_b, "alias", &alias])?;
                let root = format!("/proc/{}/ns/net", std::process::id());
                self.a
                    .ip(&["link", "set", "dev", &name_b, "netns", &root])?;
                pair
            }
        };
        for (end, addrs) in [(&pair.a, &self.addrs_a), (&pair.b, &self.addrs_b)] {
            if let Some(mtu) = self.mtu {
                end.ip(&["link", "set", "dev", &end.name, "mtu", &mtu.to_string()])?;
            }
            for cidr in addrs {
                end.ip(&["addr", "add", cidr, "dev", &end.name])?;
            }
            end.ip(&["link", "set", "dev", &end.name, "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; try the other end if the first is already gone
        // (moved or deleted by the code under test).
        let first = self.a.ip(&["link", "del", "dev", &self.a.name]);
        if let Err(e) = first {
            let second = self.b.ip(&["link", "del", "dev", &self.b.name]);
            if second.is_err() && link_exists(&self.a) {
                warn_cleanup(&format!("veth {}", self.a.name), &e);
            }
        }
        for end in [&self.a, &self.b] {
            if let Some(ns) = &end.ns {
                ns.unregister_link(&end.name);
            }
        }
    }
}

fn link_exists(end: &VethEnd) -> bool {
    end.ip(&["link", "show", "dev", &end.name]).is_ok()
}

/// A Linux bridge inside a test namespace, up, with ports attached on request. Deleted on
/// drop (its ports are released, not deleted).
#[derive(Debug)]
pub struct Bridge {
    ns: NetNs,
    name: String,
}

impl Bridge {
    /// Creates a bridge (STP off, the kernel default) in `ns` and brings it up.
    pub fn new(ns: &NetNs) -> Result<Bridge> {
        crate::sweep::ensure_swept();
        let name = names::ifname('r');
        ns.register_link(&name, LinkOrigin::Contained, "bridge");
        let br = Bridge {
            ns: ns.clone(),
            name,
        };
        ns.ip(&["link", "add", "name", &br.name, "type", "bridge"])?;
        ns.set_up(&br.name)?;
        Ok(br)
    }

    /// The bridge's interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace the bridge is in.
    pub fn netns(&self) -> &NetNs {
        &self.ns
    }

    /// Enslaves `port` (a link in the bridge's namespace, e.g. a veth end) and brings it up.
    pub fn attach(&self, port: &str) -> Result<()> {
        self.ns
            .ip(&["link", "set", "dev", port, "master", &self.name])?;
        self.ns.set_up(port)
    }

    /// Gives the bridge itself an address, making the namespace a host on that segment.
    pub fn add_addr(&self, cidr: &str) -> Result<()> {
        self.ns.add_addr(&self.name, cidr)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Err(e) = self.ns.ip(&["link", "del", "dev", &self.name]) {
            warn_cleanup(&format!("bridge {}", self.name), &e);
        }
        self.ns.unregister_link(&self.name);
    }
}
