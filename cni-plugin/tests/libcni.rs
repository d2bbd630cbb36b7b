//! The plugin driven by a real CNI client: libcni (Debian's
//! golang-github-appc-cni-dev), the library containerd, CRI-O and podman
//! use, through a small Go driver built at test time. It runs ADD, CHECK
//! and DEL (twice) on a conflist, with libcni's own result cache and
//! prevResult handling.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Node, stderr};
use serde_json::{Value, json};
use strait_cni::names::host_veth;
use strait_tests::{in_ci, require_root};

/// Where Debian's golang-github-appc-cni-dev puts libcni.
const GOPATH: &str = "/usr/share/gocode";

/// Build the driver into `dir`; `Err` says why it cannot be built here.
fn build_driver(dir: &Path) -> Result<PathBuf, String> {
    let libcni = Path::new(GOPATH).join("src/github.com/containernetworking/cni/libcni");
    if !libcni.is_dir() {
        return Err(format!(
            "{} is missing: install golang-github-appc-cni-dev (scripts/setup does)",
            libcni.display()
        ));
    }
    let src = dir.join("driver.go");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libcni/driver.go"),
        &src,
    )
    .map_err(|e| format!("copying driver.go: {e}"))?;
    let out_bin = dir.join("driver");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build-cache");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&out_bin)
        .arg(&src)
        .current_dir(dir)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "")
        .output()
        .map_err(|e| format!("running `go` (install golang-go; scripts/setup does): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "go build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out_bin)
}

#[test]
fn libcni_runs_add_check_del_on_a_conflist() {
    if !require_root() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let driver = match build_driver(work.path()) {
        Ok(d) => d,
        Err(why) if !in_ci() => {
            eprintln!("\n!!!!! SKIPPED: libcni driver cannot be built here: {why} !!!!!\n");
            return;
        }
        Err(why) => panic!("libcni driver cannot be built: {why}"),
    };
    // The runtime finds the plugin by its type in CNI_PATH: install the
    // binary as `strait`, the type the shipped conflist uses.
    let bin_dir = work.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("bin dir");
    std::os::unix::fs::symlink(common::BIN, bin_dir.join("strait")).expect("symlink");
    let node = Node::new("cni-libcni");
    let pod = node.pod("cni-libcni-pod");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": common::NETWORK,
        "plugins": [{
            "type": "strait",
            "mtu": 1400,
            "ipam": {"type": "strait-ipam", "subnet": "10.244.7.0/24",
                     "dataDir": node.store.path().display().to_string()},
        }],
    });
    let conf_path = work.path().join("10-strait.conflist");
    std::fs::write(&conf_path, conflist.to_string()).expect("conflist");
    let cache = work.path().join("cache");
    let out = node
        .ns
        .command(&driver)
        .arg(&conf_path)
        .arg(pod.path())
        .arg("libcni-pod")
        .arg(&bin_dir)
        .arg(&cache)
        .output()
        .expect("run driver");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "driver: {text} {}", stderr(&out));
    let mut lines = text.lines();
    let result: Value = serde_json::from_str(lines.next().expect("result line")).expect("json");
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    assert_eq!(result["ips"][0]["address"], "10.244.7.1/32", "{result}");
    assert_eq!(
        result["interfaces"][0]["name"],
        host_veth("libcni-pod", "eth0")
    );
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["CHECK ok", "DEL ok", "DEL again ok"]
    );
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}

/// strait as the second plugin of a conflist, after the reference
/// `loopback`, driven by libcni: libcni hands strait loopback's result as
/// `prevResult` on ADD, and the cached chain result on CHECK and DEL.
#[test]
fn libcni_runs_strait_chained_after_loopback() {
    if !require_root() {
        return;
    }
    let Some(loopback) = common::reference_plugin("loopback") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let driver = match build_driver(work.path()) {
        Ok(d) => d,
        Err(why) if !in_ci() => {
            eprintln!("\n!!!!! SKIPPED: libcni driver cannot be built here: {why} !!!!!\n");
            return;
        }
        Err(why) => panic!("libcni driver cannot be built: {why}"),
    };
    let bin_dir = work.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("bin dir");
    std::os::unix::fs::symlink(common::BIN, bin_dir.join("strait")).expect("symlink");
    std::os::unix::fs::symlink(&loopback, bin_dir.join("loopback")).expect("symlink");
    let node = Node::new("cni-libcni-chain");
    let pod = node.pod("cni-libcni-chain-pod");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": common::NETWORK,
        "plugins": [
            {"type": "loopback"},
            {"type": "strait",
             "ipam": {"type": "strait-ipam", "subnet": "10.244.45.0/24",
                      "dataDir": node.store.path().display().to_string()}},
        ],
    });
    let conf_path = work.path().join("10-strait.conflist");
    std::fs::write(&conf_path, conflist.to_string()).expect("conflist");
    let out = node
        .ns
        .command(&driver)
        .arg(&conf_path)
        .arg(pod.path())
        .arg("libcni-chain")
        .arg(&bin_dir)
        .arg(work.path().join("cache"))
        .output()
        .expect("run driver");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "driver: {text} {}", stderr(&out));
    let mut lines = text.lines();
    let result: Value = serde_json::from_str(lines.next().expect("result line")).expect("json");
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["lo", host_veth("libcni-chain", "eth0").as_str(), "eth0"],
        "{result}"
    );
    let ours = result["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .find(|ip| ip["address"] == "10.244.45.1/32")
        .unwrap_or_else(|| panic!("our address in {result}"));
    assert_eq!(ours["interface"], 2, "{result}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["CHECK ok", "DEL ok", "DEL again ok"]
    );
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}
