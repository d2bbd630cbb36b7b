//! The network configuration the runtime writes to stdin.
//!
//! Only the keys every command needs are typed (`cniVersion`, `name`,
//! `type`, `prevResult`); everything else (`ipam`, `dns`, `runtimeConfig`,
//! `args`, plugin options) is kept verbatim in [`NetworkConfig::extra`] so
//! later commands can read their own keys and nothing the runtime sent is
//! lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CniError, ErrorCode};
use crate::version::CniVersion;

/// Longest configuration accepted on stdin. Real configurations are a few
/// KiB; the cap keeps a broken runtime from making the plugin buffer
/// without bound.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;

/// The GC key listing the attachments that are still valid.
pub const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The same list under the name of an early 1.1 draft, which libcni still
/// sets alongside the final one.
pub const VALID_ATTACHMENTS_DRAFT: &str = "cni.dev/attachments";

/// A validated plugin configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The spec version the runtime speaks for this call.
    pub cni_version: CniVersion,
    /// The network name.
    pub name: String,
    /// The plugin type (the executable's name).
    pub plugin_type: String,
    /// The previous plugin's result, passed through untouched.
    pub prev_result: Option<Value>,
    /// Every other top-level key, verbatim.
    pub extra: Map<String, Value>,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ValidAttachment {
    /// The `CNI_CONTAINERID` of the attachment's `ADD`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The `CNI_IFNAME` of the attachment's `ADD`.
    pub ifname: String,
}

/// Why the configuration was refused; each variant carries its spec code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, not an object, or a well-known key of the wrong type
    /// (code 6).
    #[error("error decoding network config: {0}")]
    Decode(String),
    /// A required key is absent or empty (code 7).
    #[error("network config is missing {0:?}")]
    Missing(&'static str),
    /// The network name breaks the spec's character rules (code 7).
    #[error(
        "invalid network name {0:?}: must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
    )]
    Name(String),
    /// `cniVersion` is absent (libcni reads that as 0.1.0) or unsupported
    /// (code 1).
    #[error("incompatible CNI version {0:?}")]
    Version(String),
    /// The command needs a newer spec version than the configuration's
    /// (code 1).
    #[error("cniVersion {version} does not allow {command}; it needs {minimum} or later")]
    TooOldFor {
        /// The command.
        command: &'static str,
        /// The configuration's version.
        version: CniVersion,
        /// The first version that has the command.
        minimum: CniVersion,
    },
    /// `CHECK` needs the result of the `ADD` it checks (code 7).
    #[error("CHECK requires prevResult in the network config")]
    MissingPrevResult,
}

impl ConfigError {
    /// The spec error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Decode(_) => ErrorCode::DECODING_FAILURE,
            Self::Missing(_) | Self::Name(_) | Self::MissingPrevResult => {
                ErrorCode::INVALID_NETWORK_CONFIG
            }
            Self::Version(_) | Self::TooOldFor { .. } => ErrorCode::INCOMPATIBLE_CNI_VERSION,
        }
    }
}

impl From<ConfigError> for CniError {
    fn from(err: ConfigError) -> Self {
        let cni = CniError::new(err.code(), err.to_string());
        match err {
            ConfigError::Version(_) | ConfigError::TooOldFor { .. } => cni.with_details(format!(
                "supported versions: {}",
                CniVersion::supported_list()
            )),
            _ => cni,
        }
    }
}

/// The raw shape, before validation: well-known keys must have the right
/// JSON type, everything else is kept.
#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    plugin_type: Option<String>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Map<String, Value>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl NetworkConfig {
    /// Decode and validate the configuration bytes from stdin.
    ///
    /// Order matters for the reported code: undecodable input is 6, a
    /// missing or bad name or type is 7, and only a well-formed
    /// configuration is checked for its version (1).
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Decode(e.to_string()))?;
        let name = raw
            .name
            .filter(|n| !n.is_empty())
            .ok_or(ConfigError::Missing("name"))?;
        validate_network_name(&name)?;
        let plugin_type = raw
            .plugin_type
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::Missing("type"))?;
        let version = raw.cni_version.unwrap_or_default();
        let cni_version = CniVersion::parse(&version).ok_or(ConfigError::Version(version))?;
        Ok(Self {
            cni_version,
            name,
            plugin_type,
            prev_result: raw.prev_result.map(Value::Object),
            extra: raw.extra,
        })
    }

    /// Require at least `minimum` for `command` (CHECK needs 0.4.0; STATUS
    /// and GC need 1.1.0).
    pub fn require_version(
        &self,
        command: &'static str,
        minimum: CniVersion,
    ) -> Result<(), ConfigError> {
        if self.cni_version >= minimum {
            Ok(())
        } else {
            Err(ConfigError::TooOldFor {
                command,
                version: self.cni_version,
                minimum,
            })
        }
    }

    /// The GC list of still-valid attachments (`None` when the runtime sent
    /// none, which means no attachment is valid).
    pub fn valid_attachments(&self) -> Result<Option<Vec<ValidAttachment>>, ConfigError> {
        let Some(list) = self
            .extra
            .get(VALID_ATTACHMENTS)
            .or_else(|| self.extra.get(VALID_ATTACHMENTS_DRAFT))
        else {
            return Ok(None);
        };
        Vec::<ValidAttachment>::deserialize(list)
            .map(Some)
            .map_err(|e| ConfigError::Decode(format!("{VALID_ATTACHMENTS}: {e}")))
    }

    /// The configuration as JSON again, with every key the runtime sent.
    pub fn to_value(&self) -> Value {
        let mut map = self.extra.clone();
        map.insert("cniVersion".into(), self.cni_version.as_str().into());
        map.insert("name".into(), self.name.clone().into());
        map.insert("type".into(), self.plugin_type.clone().into());
        if let Some(prev) = &self.prev_result {
            map.insert("prevResult".into(), prev.clone());
        }
        Value::Object(map)
    }
}

/// The spec's network name rule: starts with a letter or digit, then
/// letters, digits, `_`, `.` or `-` (it names files in runtime caches).
fn validate_network_name(name: &str) -> Result<(), ConfigError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        Ok(())
    } else {
        Err(ConfigError::Name(name.to_owned()))
    }
}

/// Best effort `cniVersion` of a `VERSION` probe's stdin: `None` when the
/// input is empty, not JSON or has no string `cniVersion`.
pub fn requested_version(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "cniVersion")]
        cni_version: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes).ok()?.cni_version
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<NetworkConfig, ConfigError> {
        NetworkConfig::parse(value.to_string().as_bytes())
    }

    fn code(value: Value) -> u32 {
        parse(value).expect_err("must fail").code().get()
    }

    #[test]
    fn valid_config_keeps_unknown_fields_and_prev_result() {
        let input = json!({
            "cniVersion": "1.1.0",
            "name": "strait",
            "type": "strait-cni",
            "ipam": {"subnet": "10.244.1.0/24"},
            "runtimeConfig": {"portMappings": []},
            "someFutureKey": [1, 2, 3],
            "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}]},
        });
        let config = parse(input.clone()).expect("valid");
        assert_eq!(config.cni_version, CniVersion::V1_1_0);
        assert_eq!(config.name, "strait");
        assert_eq!(config.plugin_type, "strait-cni");
        assert_eq!(config.extra.get("someFutureKey"), Some(&json!([1, 2, 3])));
        assert_eq!(
            config.extra.get("ipam"),
            Some(&json!({"subnet": "10.244.1.0/24"}))
        );
        assert_eq!(
            config.prev_result,
            Some(json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}]}))
        );
        assert_eq!(config.to_value(), input);
        let null_prev =
            parse(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": null}));
        assert_eq!(null_prev.expect("valid").prev_result, None);
    }

    #[test]
    fn decoding_failures_are_code_6() {
        for bad in [&b"not json"[..], b"", b"{", b"[]", b"\"x\"", b"\xff"] {
            let err = NetworkConfig::parse(bad).expect_err("must fail");
            assert_eq!(err.code(), ErrorCode::DECODING_FAILURE, "{bad:?}");
        }
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": 5, "type": "t"})),
            6
        );
        assert_eq!(code(json!({"cniVersion": 1, "name": "n", "type": "t"})), 6);
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": "n", "type": ["t"]})),
            6
        );
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": "x"})),
            6
        );
    }

    #[test]
    fn missing_or_bad_name_and_type_are_code_7() {
        assert_eq!(
            parse(json!({"cniVersion": "1.0.0", "type": "t"})),
            Err(ConfigError::Missing("name"))
        );
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": "", "type": "t"})),
            7
        );
        assert_eq!(
            parse(json!({"cniVersion": "1.0.0", "name": "n"})),
            Err(ConfigError::Missing("type"))
        );
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": "n", "type": ""})),
            7
        );
        for bad in ["-net", "_net", "net/x", "net work", "né"] {
            assert_eq!(
                parse(json!({"cniVersion": "1.0.0", "name": bad, "type": "t"})),
                Err(ConfigError::Name(bad.into())),
                "{bad}"
            );
        }
        for ok in ["net", "k8s-pod-network", "a.b_c-1", "0"] {
            assert!(
                parse(json!({"cniVersion": "1.0.0", "name": ok, "type": "t"})).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn unsupported_versions_are_code_1() {
        for bad in ["0.1.0", "0.2.0", "1.0", "1.2.0", "2.0.0", "v1.0.0", ""] {
            let err = parse(json!({"cniVersion": bad, "name": "n", "type": "t"})).expect_err(bad);
            assert_eq!(err, ConfigError::Version(bad.into()));
            assert_eq!(err.code(), ErrorCode::INCOMPATIBLE_CNI_VERSION);
            let cni: CniError = err.into();
            assert!(cni.details.is_some_and(|d| d.contains("1.1.0")));
        }
        // An absent cniVersion means 0.1.0 to libcni, which we do not speak.
        assert_eq!(code(json!({"name": "n", "type": "t"})), 1);
        for ok in CniVersion::SUPPORTED {
            let config = parse(json!({"cniVersion": ok.as_str(), "name": "n", "type": "t"}));
            assert_eq!(config.map(|c| c.cni_version), Ok(ok));
        }
    }

    #[test]
    fn command_minimum_versions() {
        let config =
            parse(json!({"cniVersion": "0.3.1", "name": "n", "type": "t"})).expect("valid");
        assert!(config.require_version("CHECK", CniVersion::V0_4_0).is_err());
        assert!(config.require_version("ADD", CniVersion::V0_3_0).is_ok());
        let err = config
            .require_version("GC", CniVersion::V1_1_0)
            .expect_err("too old");
        assert_eq!(err.code(), ErrorCode::INCOMPATIBLE_CNI_VERSION);
        assert!(err.to_string().contains("GC"));
    }

    #[test]
    fn valid_attachments() {
        let base = |key: &str, list: Value| {
            let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "t"});
            v[key] = list;
            parse(v).expect("valid")
        };
        let list = json!([{"containerID": "c1", "ifname": "eth0"}]);
        let want = vec![ValidAttachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        for key in [VALID_ATTACHMENTS, VALID_ATTACHMENTS_DRAFT] {
            assert_eq!(
                base(key, list.clone()).valid_attachments(),
                Ok(Some(want.clone()))
            );
        }
        let none = parse(json!({"cniVersion": "1.1.0", "name": "n", "type": "t"})).expect("valid");
        assert_eq!(none.valid_attachments(), Ok(None));
        let bad = base(VALID_ATTACHMENTS, json!([{"containerID": 1}])).valid_attachments();
        assert_eq!(bad.map_err(|e| e.code()), Err(ErrorCode::DECODING_FAILURE));
    }

    #[test]
    fn version_probe_input() {
        assert_eq!(
            requested_version(br#"{"cniVersion":"0.4.0"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(requested_version(b""), None);
        assert_eq!(requested_version(b"garbage"), None);
        assert_eq!(requested_version(br#"{"cniVersion":4}"#), None);
        assert_eq!(requested_version(br#"{}"#), None);
    }
}
