//! CNI specification versions: which ones the plugin speaks, and the
//! `VERSION` command's answer.

use std::fmt;

use serde::Serialize;

/// A CNI specification version this plugin supports.
///
/// A closed enum rather than a string, so a version check is a comparison
/// and an unsupported version cannot travel past parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.3.0: rich results and plugin chaining.
    V0_3_0,
    /// 0.3.1: same protocol as 0.3.0.
    V0_3_1,
    /// 0.4.0: adds `CHECK` and `prevResult` on `DEL`.
    V0_4_0,
    /// 1.0.0: the current configuration and result format.
    V1_0_0,
    /// 1.1.0: adds `STATUS`, `GC` and version negotiation.
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first, as `VERSION` reports them.
    pub const SUPPORTED: [Self; 5] = [
        Self::V0_3_0,
        Self::V0_3_1,
        Self::V0_4_0,
        Self::V1_0_0,
        Self::V1_1_0,
    ];

    /// The newest supported version: used in answers when the runtime did
    /// not ask for one we support.
    pub const LATEST: Self = Self::V1_1_0;

    /// Parse the exact version string the spec uses (`"1.0.0"`).
    pub fn parse(version: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == version)
    }

    /// The version as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// The supported versions as a comma-separated list, for error details.
    pub fn supported_list() -> String {
        Self::SUPPORTED.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CniVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The `VERSION` result: `{"cniVersion": ..., "supportedVersions": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// The version this answer is written in.
    #[serde(rename = "cniVersion")]
    pub cni_version: CniVersion,
    /// Every version the plugin accepts.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: [CniVersion; 5],
}

impl VersionInfo {
    /// Answer a `VERSION` probe.
    ///
    /// The answer is written in the version the runtime asked for when we
    /// support it, and in [`CniVersion::LATEST`] otherwise: a probe must
    /// never fail, because the runtime uses the list to pick a version it
    /// shares with us (libcni probes with its own newest version).
    pub fn answer(requested: Option<&str>) -> Self {
        Self {
            cni_version: requested
                .and_then(CniVersion::parse)
                .unwrap_or(CniVersion::LATEST),
            supported_versions: CniVersion::SUPPORTED,
        }
    }
}
