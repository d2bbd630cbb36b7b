//! The configured cluster zone (`--zone`, default `cluster.local`).
//!
//! It is parsed once at start-up into lowercase labels so that matching a
//! query against it is a label-by-label, case-insensitive comparison from the
//! root, with no allocation per query.

use std::fmt;

use super::labels;

/// The default cluster domain, as kubelet's `clusterDomain` defaults it.
pub const DEFAULT_ZONE: &str = "cluster.local";

/// The cluster zone every forward record lives under.
///
/// Owning the zone in one validated type means a bad `--zone` fails at
/// start-up with a clear message, never as wrong answers later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase labels, root-most first (`["local", "cluster"]`).
    labels_rev: Vec<Box<[u8]>>,
    /// Lowercase dotted form without the trailing dot, for display.
    name: String,
}

/// Why a configured zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// The zone has no labels (empty or `.`); the cluster cannot own the root.
    #[error("the cluster zone must not be empty or the root")]
    Empty,
    /// The zone is over 253 characters, so no name below it could fit.
    #[error("the cluster zone {0:?} is longer than 253 characters")]
    TooLong(String),
    /// A label is empty, over 63 characters or not letters, digits and
    /// inner hyphens.
    #[error("the cluster zone {zone:?} has an invalid label {label:?}")]
    BadLabel {
        /// The zone as given.
        zone: String,
        /// The offending label.
        label: String,
    },
}

impl Zone {
    /// Parse a zone such as `cluster.local` or `Cluster.Local.`.
    pub fn new(zone: &str) -> Result<Self, ZoneError> {
        let trimmed = zone.strip_suffix('.').unwrap_or(zone);
        if trimmed.is_empty() {
            return Err(ZoneError::Empty);
        }
        if trimmed.len() > labels::MAX_NAME_TEXT {
            return Err(ZoneError::TooLong(zone.to_owned()));
        }
        let mut labels_rev = Vec::new();
        for label in trimmed.split('.').rev() {
            if !labels::is_dns1123_label(label.as_bytes()) {
                return Err(ZoneError::BadLabel {
                    zone: zone.to_owned(),
                    label: label.to_owned(),
                });
            }
            labels_rev.push(label.to_ascii_lowercase().into_bytes().into_boxed_slice());
        }
        Ok(Self {
            labels_rev,
            name: trimmed.to_ascii_lowercase(),
        })
    }

    /// The zone in lowercase dotted form, without the trailing dot.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Consume the zone's labels from `rev` (root-most first). Returns
    /// whether the name ends in the zone; `rev` is then left at the first
    /// label below it.
    pub(super) fn strip<'a, I>(&self, rev: &mut I) -> bool
    where
        I: Iterator<Item = &'a [u8]>,
    {
        self.labels_rev
            .iter()
            .all(|want| rev.next().is_some_and(|got| got.eq_ignore_ascii_case(want)))
    }
}

impl Default for Zone {
    fn default() -> Self {
        // The default name is a compile-time constant known to be valid.
        Self {
            labels_rev: vec![
                b"local".to_vec().into_boxed_slice(),
                b"cluster".to_vec().into_boxed_slice(),
            ],
            name: DEFAULT_ZONE.to_owned(),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl std::str::FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}
