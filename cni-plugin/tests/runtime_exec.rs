//! Exec the built `strait-cni` binary the way a container runtime does: a
//! clean environment with `CNI_*` variables, the configuration on stdin, and
//! the answer read from stdout and the exit status.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_strait-cni");

/// Run the plugin with exactly these variables and this stdin.
fn exec(vars: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strait-cni");
    let mut pipe = child.stdin.take().expect("stdin piped");
    // The plugin may exit before reading stdin (bad environment): a broken
    // pipe here is expected, not a failure.
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    child.wait_with_output().expect("wait for strait-cni")
}

/// stdout must be exactly one JSON document on one line.
fn answer(out: &Output) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    assert!(
        stdout.ends_with('\n') && stdout.matches('\n').count() == 1,
        "stdout: {stdout:?}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?}"))
}

fn assert_error(out: &Output, code: u32, version: &str) -> Value {
    let json = answer(out);
    assert!(!out.status.success(), "must exit non-zero: {json}");
    assert_eq!(json["code"], code, "{json}");
    assert_eq!(json["cniVersion"], version, "{json}");
    assert!(
        json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    json
}

fn attach(command: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "4b3ef2a1c0d9"),
        ("CNI_NETNS", "/var/run/netns/cni-4b3ef2a1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        ),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn config(version: &str) -> String {
    json!({
        "cniVersion": version,
        "name": "strait",
        "type": "strait-cni",
        "ipam": {"type": "strait", "subnet": "10.244.1.0/24"},
    })
    .to_string()
}

#[test]
fn version_reports_supported_versions() {
    let supported = json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    for (stdin, want) in [
        (r#"{"cniVersion":"1.0.0"}"#, "1.0.0"),
        (r#"{"cniVersion":"0.3.1"}"#, "0.3.1"),
        (r#"{"cniVersion":"42.0.0"}"#, "1.1.0"),
        ("", "1.1.0"),
    ] {
        let out = exec(&[("CNI_COMMAND", "VERSION")], stdin);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            answer(&out),
            json!({"cniVersion": want, "supportedVersions": supported})
        );
    }
}

#[test]
fn missing_or_bad_environment_is_code_4() {
    let json = assert_error(&exec(&[], &config("1.0.0")), 4, "1.1.0");
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("CNI_COMMAND"))
    );

    let mut no_netns = attach("ADD");
    no_netns.retain(|(k, _)| *k != "CNI_NETNS");
    let json = assert_error(&exec(&no_netns, &config("1.0.0")), 4, "1.1.0");
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("CNI_NETNS")),
        "{json}"
    );

    let json = assert_error(
        &exec(&[("CNI_COMMAND", "GC")], &config("1.1.0")),
        4,
        "1.1.0",
    );
    assert!(
        json["msg"].as_str().is_some_and(|m| m.contains("CNI_PATH")),
        "{json}"
    );

    assert_error(&exec(&[("CNI_COMMAND", "UP")], ""), 4, "1.1.0");

    let mut bad_ifname = attach("CHECK");
    bad_ifname.retain(|(k, _)| *k != "CNI_IFNAME");
    bad_ifname.push(("CNI_IFNAME", "this-is-too-long0"));
    assert_error(&exec(&bad_ifname, &config("1.0.0")), 4, "1.1.0");
}

#[test]
fn undecodable_config_is_code_6() {
    assert_error(&exec(&attach("ADD"), "{\"cniVersion\": "), 6, "1.1.0");
    assert_error(&exec(&attach("DEL"), ""), 6, "1.1.0");
}

#[test]
fn unsupported_version_is_code_1() {
    let json = assert_error(&exec(&attach("ADD"), &config("0.2.0")), 1, "1.1.0");
    assert!(
        json["details"]
            .as_str()
            .is_some_and(|d| d.contains("1.1.0")),
        "{json}"
    );
    assert_error(&exec(&attach("CHECK"), &config("0.3.1")), 1, "0.3.1");
    assert_error(&exec(&attach("STATUS"), &config("1.0.0")), 1, "1.0.0");
}

#[test]
fn missing_name_or_type_is_code_7() {
    let no_name = json!({"cniVersion": "1.0.0", "type": "strait-cni"}).to_string();
    let no_type = json!({"cniVersion": "1.0.0", "name": "strait"}).to_string();
    assert_error(&exec(&attach("ADD"), &no_name), 7, "1.1.0");
    assert_error(&exec(&attach("ADD"), &no_type), 7, "1.1.0");
}

/// A valid configuration without the plugin's "ipam" section: every
/// networking command refuses it with code 7 before touching the store or
/// the kernel (so these tests need no root and write nothing).
fn config_without_ipam(version: &str) -> String {
    json!({"cniVersion": version, "name": "strait", "type": "strait-cni"}).to_string()
}

#[test]
fn validated_calls_without_ipam_are_code_7() {
    let check = json!({
        "cniVersion": "1.1.0", "name": "strait", "type": "strait-cni",
        "prevResult": {"cniVersion": "1.1.0", "interfaces": [], "ips": []},
    })
    .to_string();
    let gc = json!({
        "cniVersion": "1.1.0", "name": "strait", "type": "strait-cni",
        "cni.dev/valid-attachments": [{"containerID": "4b3ef2a1c0d9", "ifname": "eth0"}],
    })
    .to_string();
    for (command, stdin) in [
        ("ADD", config_without_ipam("1.1.0")),
        ("DEL", config_without_ipam("1.1.0")),
        ("CHECK", check),
        ("STATUS", config_without_ipam("1.1.0")),
        ("GC", gc),
    ] {
        let json = assert_error(&exec(&attach(command), &stdin), 7, "1.1.0");
        assert!(
            json["msg"].as_str().is_some_and(|m| m.contains("ipam")),
            "{command}: {json}"
        );
        assert!(json["details"].as_str().is_some(), "{command}: {json}");
    }
}

#[test]
fn unsupported_options_are_code_2() {
    for extra in [
        json!({"mode": "overlay"}),
        json!({"ipam": {"type": "host-local", "subnet": "10.244.1.0/24"}}),
        json!({"ipam": {"subnet": "10.244.1.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}),
    ] {
        let mut config = json!({"cniVersion": "1.0.0", "name": "strait", "type": "strait-cni",
                                "ipam": {"subnet": "10.244.1.0/24", "dataDir": "/nonexistent"}});
        for (k, v) in extra.as_object().expect("object") {
            config[k] = v.clone();
        }
        assert_error(&exec(&attach("ADD"), &config.to_string()), 2, "1.0.0");
    }
    // vxlan mode exists but needs its section: invalid config.
    let config = json!({"cniVersion": "1.0.0", "name": "strait", "type": "strait-cni",
                        "mode": "vxlan", "ipam": {"subnet": "10.244.1.0/24"}});
    let json = assert_error(&exec(&attach("ADD"), &config.to_string()), 7, "1.0.0");
    assert!(
        json["msg"].as_str().is_some_and(|m| m.contains("vxlan")),
        "{json}"
    );
}

#[test]
fn logs_never_reach_stdout() {
    let mut vars = attach("ADD");
    vars.push(("STRAIT_CNI_LOG", "trace"));
    let out = exec(&vars, &config_without_ipam("1.0.0"));
    assert_error(&out, 7, "1.0.0");
    assert!(!out.stderr.is_empty(), "debug logs go to stderr");
}
