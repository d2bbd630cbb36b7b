//! The network configuration list (`/etc/cni/net.d/10-strait.conflist`) for
//! one node, rendered in one place: the agent writes it on a real node
//! (`strait agent --write-cni-config`) and the lab passes the same document
//! to the plugin, so both always agree on its shape.

use std::path::Path;

use serde_json::{Value, json};

/// What varies between nodes and deployments in the conflist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflistSpec {
    /// The network name (`strait` on a cluster, `strait-lab` in the lab).
    pub name: String,
    /// The CNI version the runtime is given. 1.0.0 is what containerd 1.7
    /// (libcni 1.1) accepts; strait-cni also speaks 1.1.0 (GC, STATUS).
    pub cni_version: String,
    /// The wiring mode (`routed`, `bridge` or `vxlan`).
    pub mode: String,
    /// The pod interface MTU.
    pub mtu: u32,
    /// The node's pod CIDRs, one IPAM range set each (dual stack: two).
    pub pod_cidrs: Vec<String>,
    /// Where the IPAM keeps its allocations.
    pub data_dir: String,
}

impl ConflistSpec {
    /// The deployment's defaults for a node with `pod_cidrs`: network
    /// `strait`, CNI 1.0.0, routed mode, MTU 1500, `/var/lib/cni/strait`.
    pub fn node(pod_cidrs: Vec<String>) -> ConflistSpec {
        ConflistSpec {
            name: "strait".into(),
            cni_version: "1.0.0".into(),
            mode: "routed".into(),
            mtu: 1500,
            pod_cidrs,
            data_dir: "/var/lib/cni/strait".into(),
        }
    }

    /// The conflist as JSON: one `strait-cni` plugin with `strait-ipam`
    /// ranges (host-local's format) from the pod CIDRs.
    pub fn render(&self) -> Value {
        let ranges: Vec<Value> = self
            .pod_cidrs
            .iter()
            .map(|cidr| json!([{ "subnet": cidr }]))
            .collect();
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": [{
                "type": "strait-cni",
                "mode": self.mode,
                "mtu": self.mtu,
                "ipam": {
                    "type": "strait-ipam",
                    "ranges": ranges,
                    "dataDir": self.data_dir,
                }
            }]
        })
    }

    /// [`render`](Self::render) as the text written to disk (pretty, with a
    /// trailing newline).
    pub fn render_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.render()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Writes `content` to `path` atomically (a temporary file beside it, then
/// a rename), so a runtime never reads a half-written config; does nothing
/// when the file already holds exactly `content`. Returns whether it wrote.
pub fn write_if_changed(path: &Path, content: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.new"));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_ranges_one_set_per_cidr() {
        let spec = ConflistSpec::node(vec!["10.244.1.0/24".into(), "fd00:1::/64".into()]);
        let v = spec.render();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], "strait");
        let plugin = &v["plugins"][0];
        assert_eq!(plugin["type"], "strait-cni");
        assert_eq!(plugin["mode"], "routed");
        assert_eq!(
            plugin["ipam"]["ranges"],
            json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:1::/64"}]])
        );
        assert_eq!(plugin["ipam"]["dataDir"], "/var/lib/cni/strait");
        assert!(spec.render_text().ends_with("}\n"));
    }

    #[test]
    fn the_rendered_plugin_config_parses() {
        let list = ConflistSpec::node(vec!["10.244.1.0/24".into()]).render();
        let mut config = list["plugins"][0].clone();
        config["cniVersion"] = list["cniVersion"].clone();
        config["name"] = list["name"].clone();
        let bytes = serde_json::to_vec(&config).unwrap();
        crate::NetworkConfig::parse(&bytes).unwrap();
    }

    #[test]
    fn writes_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("10-strait.conflist");
        assert!(write_if_changed(&path, "a").unwrap());
        assert!(!write_if_changed(&path, "a").unwrap());
        assert!(write_if_changed(&path, "b").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
