//! One plugin call from start to finish: validate the environment, read and
//! validate the configuration, run the command, and shape the answer.
//!
//! The protocol rules live here so that each command's handler (added by
//! later work) receives input that is already known to be valid.

use std::ffi::OsString;

use crate::config::{self, NetworkConfig};
use crate::env::{Command, Invocation};
use crate::error::{CniError, ErrorCode};
use crate::version::{CniVersion, VersionInfo};

/// What the binary must do: print `stdout` exactly, then exit with
/// `exit_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The result or error JSON (with a trailing newline), or nothing.
    pub stdout: String,
    /// 0 on success, non-zero on error.
    pub exit_code: u8,
}

/// Exit code for every error result: the spec only requires non-zero, the
/// code itself is in the JSON.
pub const ERROR_EXIT: u8 = 1;

/// A plugin's command handler: receives an invocation and a configuration
/// the protocol layer already validated, returns the result JSON to print
/// (`ADD`) or nothing. `strait-cni` and `strait-ipam` differ only here.
pub type Handler = fn(&Invocation, &NetworkConfig) -> Result<Option<String>, CniError>;

/// Run one `strait-cni` call.
///
/// `env` looks up variables; `read_stdin` is called at most once, after the
/// environment has been validated, so a call with a broken environment
/// never blocks on stdin.
pub fn run(
    env: impl Fn(&str) -> Option<OsString>,
    read_stdin: impl FnOnce() -> Result<Vec<u8>, CniError>,
) -> Outcome {
    run_with(crate::commands::execute, env, read_stdin)
}

/// Run one call of the plugin whose commands `handler` implements, with
/// the same protocol rules as [`run`].
pub fn run_with(
    handler: Handler,
    env: impl Fn(&str) -> Option<OsString>,
    read_stdin: impl FnOnce() -> Result<Vec<u8>, CniError>,
) -> Outcome {
    match handle(handler, env, read_stdin) {
        Ok(Some(json)) => Outcome {
            stdout: json + "\n",
            exit_code: 0,
        },
        Ok(None) => Outcome {
            stdout: String::new(),
            exit_code: 0,
        },
        Err(Failure { version, error }) => {
            tracing::warn!(code = error.code.get(), msg = %error.msg, details = ?error.details, "CNI call failed");
            Outcome {
                stdout: error.to_json(version) + "\n",
                exit_code: ERROR_EXIT,
            }
        }
    }
}

/// An error and the version to write it in: the configuration's when it
/// got that far, the latest otherwise.
struct Failure {
    version: CniVersion,
    error: CniError,
}

impl<E: Into<CniError>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            version: CniVersion::LATEST,
            error: error.into(),
        }
    }
}

fn handle(
    handler: Handler,
    env: impl Fn(&str) -> Option<OsString>,
    read_stdin: impl FnOnce() -> Result<Vec<u8>, CniError>,
) -> Result<Option<String>, Failure> {
    let invocation = Invocation::from_env(env)?;
    let command = invocation.command();
    tracing::debug!(command = %command, "CNI call");
    let stdin = read_stdin()?;

    if command == Command::Version {
        let requested = config::requested_version(&stdin);
        return Ok(Some(encode(&VersionInfo::answer(requested.as_deref()))?));
    }

    let config = NetworkConfig::parse(&stdin)?;
    let in_version = |error: CniError| Failure {
        version: config.cni_version,
        error,
    };
    match command {
        Command::Check => {
            config
                .require_version("CHECK", CniVersion::V0_4_0)
                .map_err(|e| in_version(e.into()))?;
            if config.prev_result.is_none() {
                return Err(in_version(config::ConfigError::MissingPrevResult.into()));
            }
        }
        Command::Status => config
            .require_version("STATUS", CniVersion::V1_1_0)
            .map_err(|e| in_version(e.into()))?,
        Command::Gc => {
            config
                .require_version("GC", CniVersion::V1_1_0)
                .map_err(|e| in_version(e.into()))?;
            config
                .valid_attachments()
                .map_err(|e| in_version(e.into()))?;
        }
        Command::Add | Command::Del | Command::Version => {}
    }
    tracing::debug!(command = %command, network = %config.name, version = %config.cni_version, "validated");
    handler(&invocation, &config).map_err(in_version)
}

fn encode(value: &impl serde::Serialize) -> Result<String, CniError> {
    serde_json::to_string(value)
        .map_err(|e| CniError::new(ErrorCode::IO_FAILURE, format!("encoding result: {e}")))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use serde_json::{Value, json};

    use super::*;

    /// Run with these variables and this stdin; return (JSON, exit code).
    fn call(vars: &[(&str, &str)], stdin: &str) -> (Value, u8) {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let stdin = stdin.as_bytes().to_vec();
        let out = run(|n| map.get(n).map(OsString::from), || Ok(stdin));
        assert!(out.stdout.ends_with('\n'), "{out:?}");
        assert_eq!(
            out.stdout.matches('\n').count(),
            1,
            "one JSON line: {out:?}"
        );
        let json = serde_json::from_str(&out.stdout).expect("stdout is JSON");
        (json, out.exit_code)
    }

    const ATTACH: [(&str, &str); 4] = [
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/var/run/netns/pod"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    fn vars(command: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("CNI_COMMAND", command)];
        v.extend(ATTACH);
        v
    }

    fn config(version: &str) -> String {
        json!({"cniVersion": version, "name": "strait", "type": "strait-cni"}).to_string()
    }

    fn assert_error(got: (Value, u8), code: u32, version: &str) {
        let (json, exit) = got;
        assert_eq!(exit, ERROR_EXIT, "{json}");
        assert_eq!(json["code"], code, "{json}");
        assert_eq!(json["cniVersion"], version, "{json}");
        assert!(
            json["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{json}"
        );
    }

    #[test]
    fn version_answers_in_the_requested_or_latest_version() {
        let supported = json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
        for (stdin, want) in [
            (r#"{"cniVersion":"0.4.0"}"#, "0.4.0"),
            (r#"{"cniVersion":"1.1.0"}"#, "1.1.0"),
            (r#"{"cniVersion":"9.9.9"}"#, "1.1.0"),
            ("", "1.1.0"),
            ("not json", "1.1.0"),
        ] {
            let (json, exit) = call(&[("CNI_COMMAND", "VERSION")], stdin);
            assert_eq!(exit, 0);
            assert_eq!(
                json,
                json!({"cniVersion": want, "supportedVersions": supported})
            );
        }
    }

    #[test]
    fn error_codes() {
        // Missing environment: 4, in the latest version (no config read yet).
        assert_error(call(&[], &config("1.0.0")), 4, "1.1.0");
        assert_error(
            call(&[("CNI_COMMAND", "ADD")], &config("1.0.0")),
            4,
            "1.1.0",
        );
        assert_error(call(&[("CNI_COMMAND", "GC")], &config("1.1.0")), 4, "1.1.0");
        assert_error(
            call(&[("CNI_COMMAND", "BOGUS")], &config("1.0.0")),
            4,
            "1.1.0",
        );
        // Bad JSON: 6.
        assert_error(call(&vars("ADD"), "{not json"), 6, "1.1.0");
        assert_error(call(&vars("DEL"), ""), 6, "1.1.0");
        // Unsupported cniVersion: 1.
        assert_error(call(&vars("ADD"), &config("0.2.0")), 1, "1.1.0");
        assert_error(call(&vars("ADD"), &config("2.0.0")), 1, "1.1.0");
        // Missing name or type: 7.
        let no_name = json!({"cniVersion": "1.0.0", "type": "strait-cni"}).to_string();
        let no_type = json!({"cniVersion": "1.0.0", "name": "strait"}).to_string();
        assert_error(call(&vars("ADD"), &no_name), 7, "1.1.0");
        assert_error(call(&vars("ADD"), &no_type), 7, "1.1.0");
    }

    #[test]
    fn per_command_version_rules_answer_in_the_config_version() {
        assert_error(call(&vars("CHECK"), &config("0.3.1")), 1, "0.3.1");
        assert_error(call(&vars("STATUS"), &config("1.0.0")), 1, "1.0.0");
        assert_error(call(&vars("GC"), &config("1.0.0")), 1, "1.0.0");
        // CHECK needs the result it checks.
        assert_error(call(&vars("CHECK"), &config("1.0.0")), 7, "1.0.0");
        let bad_gc = json!({
            "cniVersion": "1.1.0", "name": "strait", "type": "strait-cni",
            "cni.dev/valid-attachments": "nope",
        });
        assert_error(call(&vars("GC"), &bad_gc.to_string()), 6, "1.1.0");
    }

    #[test]
    fn valid_calls_reach_the_handlers_which_need_an_ipam_section() {
        // Without "ipam" every networking command stops at the plugin's
        // own options (code 7), before touching the store or the kernel,
        // and answers in the configuration's version.
        let with_prev = json!({
            "cniVersion": "1.0.0", "name": "strait", "type": "strait-cni",
            "prevResult": {"cniVersion": "1.0.0", "ips": []},
        })
        .to_string();
        for (command, stdin, version) in [
            ("ADD", config("0.3.0"), "0.3.0"),
            ("DEL", config("1.0.0"), "1.0.0"),
            ("CHECK", with_prev, "1.0.0"),
            ("STATUS", config("1.1.0"), "1.1.0"),
            ("GC", config("1.1.0"), "1.1.0"),
        ] {
            let got = call(&vars(command), &stdin);
            assert!(
                got.0["msg"].as_str().is_some_and(|m| m.contains("ipam")),
                "{command}: {}",
                got.0
            );
            assert_error(got, 7, version);
        }
        // DEL without a netns is valid input.
        let del = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_error(call(&del, &config("1.0.0")), 7, "1.0.0");
    }

    #[test]
    fn stdin_is_not_read_when_the_environment_is_bad() {
        let read = Cell::new(false);
        let out = run(
            |_| None,
            || {
                read.set(true);
                Ok(Vec::new())
            },
        );
        assert_eq!(out.exit_code, ERROR_EXIT);
        assert!(!read.get());
    }

    #[test]
    fn stdin_failures_are_code_5() {
        let out = run(
            |n| (n == "CNI_COMMAND").then(|| "VERSION".into()),
            || Err(CniError::new(ErrorCode::IO_FAILURE, "boom")),
        );
        let json: Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(json["code"], 5);
        assert_eq!(out.exit_code, ERROR_EXIT);

        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("broken pipe"))
            }
        }
        let err = crate::stdin::read_bounded(Broken).expect_err("fails");
        assert_eq!(err.code, ErrorCode::IO_FAILURE);
        let huge = vec![b' '; config::MAX_CONFIG_BYTES + 1];
        let err = crate::stdin::read_bounded(huge.as_slice()).expect_err("too big");
        assert_eq!(err.code, ErrorCode::IO_FAILURE);
        let fits = vec![b' '; config::MAX_CONFIG_BYTES];
        assert_eq!(
            crate::stdin::read_bounded(fits.as_slice()).map(|b| b.len()),
            Ok(fits.len())
        );
    }

    #[test]
    fn error_result_shape() {
        let e = CniError::new(ErrorCode::TRY_AGAIN_LATER, "busy");
        assert_eq!(
            e.to_json(CniVersion::V1_0_0),
            r#"{"cniVersion":"1.0.0","code":11,"msg":"busy"}"#
        );
        let e = e.with_details("lock held");
        assert_eq!(
            e.to_json(CniVersion::V0_4_0),
            r#"{"cniVersion":"0.4.0","code":11,"msg":"busy","details":"lock held"}"#
        );
        assert_eq!(ErrorCode::plugin(99), None);
        assert_eq!(ErrorCode::plugin(100), Some(ErrorCode::NOT_IMPLEMENTED));
        assert_eq!(ErrorCode::plugin(150).map(ErrorCode::get), Some(150));
        let well_known = [
            (ErrorCode::INCOMPATIBLE_CNI_VERSION, 1),
            (ErrorCode::UNSUPPORTED_FIELD, 2),
            (ErrorCode::UNKNOWN_CONTAINER, 3),
            (ErrorCode::INVALID_ENVIRONMENT_VARIABLES, 4),
            (ErrorCode::IO_FAILURE, 5),
            (ErrorCode::DECODING_FAILURE, 6),
            (ErrorCode::INVALID_NETWORK_CONFIG, 7),
            (ErrorCode::TRY_AGAIN_LATER, 11),
            (ErrorCode::PLUGIN_NOT_AVAILABLE, 50),
            (ErrorCode::PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY, 51),
        ];
        for (code, n) in well_known {
            assert_eq!(code.get(), n);
        }
    }
}
