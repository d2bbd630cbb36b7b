//! The CNI error result: the codes the spec reserves and the JSON written to
//! stdout on failure.

use std::fmt;

use serde::Serialize;

use crate::version::CniVersion;

/// A CNI error code. Codes 0-99 are reserved by the spec; 100 and above are
/// the plugin's own.
///
/// A newtype with named constants rather than an enum, so plugin-specific
/// codes can be added by later commands without touching the well-known
/// set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ErrorCode(u32);

impl ErrorCode {
    /// 1: the configuration's `cniVersion` is not supported.
    pub const INCOMPATIBLE_CNI_VERSION: Self = Self(1);
    /// 2: an unsupported field in the network configuration; the message
    /// must name the key and value.
    pub const UNSUPPORTED_FIELD: Self = Self(2);
    /// 3: the container is unknown or gone; the runtime need not clean up.
    pub const UNKNOWN_CONTAINER: Self = Self(3);
    /// 4: a required environment variable is missing or invalid; the
    /// message must name the variables.
    pub const INVALID_ENVIRONMENT_VARIABLES: Self = Self(4);
    /// 5: an I/O failure, such as failing to read stdin.
    pub const IO_FAILURE: Self = Self(5);
    /// 6: content could not be decoded, such as malformed JSON.
    pub const DECODING_FAILURE: Self = Self(6);
    /// 7: the network configuration failed validation.
    pub const INVALID_NETWORK_CONFIG: Self = Self(7);
    /// 11: a transient condition; the runtime should retry later.
    pub const TRY_AGAIN_LATER: Self = Self(11);
    /// 50 (`STATUS`): the plugin cannot service `ADD` requests.
    pub const PLUGIN_NOT_AVAILABLE: Self = Self(50);
    /// 51 (`STATUS`): the plugin cannot service `ADD` requests and existing
    /// containers may have limited connectivity.
    pub const PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY: Self = Self(51);
    /// 100 (Strait): the command is part of the protocol but not built yet.
    pub const NOT_IMPLEMENTED: Self = Self(100);
    /// 101 (Strait): `CNI_NETNS` cannot be opened or entered.
    pub const NETNS_UNUSABLE: Self = Self(101);
    /// 102 (Strait): the kernel refused a netlink request.
    pub const NETLINK_FAILED: Self = Self(102);
    /// 103 (Strait): the IPAM store could not be read or written.
    pub const IPAM_STORE_FAILED: Self = Self(103);
    /// 104 (Strait): `CHECK` found the attachment differs from its result.
    pub const CHECK_DRIFT: Self = Self(104);
    /// 105 (Strait): an interface the plugin must create already exists.
    pub const INTERFACE_EXISTS: Self = Self(105);
    /// 106 (Strait): an address requested through `runtimeConfig.ips` is
    /// held by another container.
    pub const REQUESTED_IP_TAKEN: Self = Self(106);

    /// A plugin-specific code; `None` below 100, where the spec reserves
    /// the range.
    pub fn plugin(code: u32) -> Option<Self> {
        (code >= 100).then_some(Self(code))
    }

    /// The numeric code.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A failure to report to the runtime: code, short message and optional
/// details, exactly the fields of the spec's error result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}")]
pub struct CniError {
    /// The error code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// A longer explanation, if any.
    pub details: Option<String>,
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// Attach details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// The error result JSON for stdout, written in `version`.
    pub fn to_json(&self, version: CniVersion) -> String {
        let result = ErrorResult {
            cni_version: version,
            code: self.code,
            msg: &self.msg,
            details: self.details.as_deref(),
        };
        // A struct of strings and integers always serializes; the fallback
        // keeps the output well-formed rather than panicking regardless.
        serde_json::to_string(&result).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{version}","code":{},"msg":"error result could not be encoded"}}"#,
                self.code
            )
        })
    }
}

/// The wire shape of an error result.
#[derive(Serialize)]
struct ErrorResult<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: CniVersion,
    code: ErrorCode,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
}
