//! Path rules: `HTTPIngressPath.path` with its `pathType`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

/// Largest compiled size of one path regex, so a hostile pattern cannot
/// take much memory or build time (matching is linear-time anyway).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a rule's path is compared with the request path
/// (`HTTPIngressPath.pathType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathType {
    /// The whole path, case-sensitively.
    Exact,
    /// `/`-separated elements, case-sensitively; the rule's trailing slash is
    /// ignored.
    Prefix,
    /// Left to the controller by the API; Strait matches it as [`Prefix`].
    ///
    /// [`Prefix`]: PathType::Prefix
    ImplementationSpecific,
}

impl PathType {
    /// The API spelling, as it appears in Ingress manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "Exact",
            Self::Prefix => "Prefix",
            Self::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

impl fmt::Display for PathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PathType {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Exact" => Ok(Self::Exact),
            "Prefix" => Ok(Self::Prefix),
            "ImplementationSpecific" => Ok(Self::ImplementationSpecific),
            other => Err(PathError::UnknownPathType(other.to_owned())),
        }
    }
}

/// Why a rule path was refused. The checks are the API server's own, so an
/// Ingress read from a manifest directory (which no API server validated) is
/// held to the same rules as one read from a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `pathType` is not one of the three API values.
    #[error("unknown pathType {0:?}: must be Exact, Prefix or ImplementationSpecific")]
    UnknownPathType(String),
    /// `Exact` and `Prefix` require a path.
    #[error("a path is required for pathType {0}")]
    Missing(PathType),
    /// Paths must begin with `/`.
    #[error("path {0:?} must be absolute (begin with '/')")]
    NotAbsolute(String),
    /// `Exact` and `Prefix` paths must not contain `//`, `/./`, `/../` or an
    /// encoded slash, nor end in `/.` or `/..`.
    #[error("path {path:?} must not contain {sequence:?} with pathType {path_type}")]
    InvalidSequence {
        /// The path as given.
        path: String,
        /// The offending sequence.
        sequence: &'static str,
        /// The declared path type.
        path_type: PathType,
    },
    /// With `use-regex`, a path that is not a valid regular expression.
    #[error("path {path:?} is not a valid regular expression (use-regex is set): {reason}")]
    Regex {
        /// The path as given.
        path: String,
        /// What the regex compiler said.
        reason: String,
    },
}

/// Sequences the API server refuses in `Exact` and `Prefix` paths.
const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
/// Suffixes the API server refuses in `Exact` and `Prefix` paths.
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

/// One validated path rule, ready to match request paths without
/// allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The path as written in the Ingress (empty only for
    /// ImplementationSpecific).
    path: Box<str>,
    /// The declared type, kept for status and logs.
    path_type: PathType,
    /// How the rule actually matches.
    mode: Mode,
}

/// The matching behaviour after `ImplementationSpecific` is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Exact,
    /// Element-wise prefix of `path[..len]` (the path without trailing
    /// slashes; `len == 0` is the root and matches everything).
    Prefix {
        len: usize,
    },
    /// `use-regex`: the compiled path, anchored at the start.
    Regex(PathRegex),
}

/// A compiled path regex, compared by its source text.
#[derive(Debug, Clone)]
struct PathRegex(Arc<Regex>);

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

impl PathRule {
    /// Validate `path` for `path_type`.
    ///
    /// `ImplementationSpecific` accepts an empty path (the API allows it)
    /// and then matches every request, like `/`.
    pub fn new(path: &str, path_type: PathType) -> Result<Self, PathError> {
        if path.is_empty() {
            return match path_type {
                PathType::ImplementationSpecific => Ok(Self {
                    path: Box::from(""),
                    path_type,
                    mode: Mode::Prefix { len: 0 },
                }),
                PathType::Exact | PathType::Prefix => Err(PathError::Missing(path_type)),
            };
        }
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute(path.to_owned()));
        }
        if path_type != PathType::ImplementationSpecific {
            let bad = INVALID_SEQUENCES
                .iter()
                .find(|seq| path.contains(*seq))
                .or_else(|| INVALID_SUFFIXES.iter().find(|suf| path.ends_with(*suf)));
            if let Some(sequence) = bad {
                return Err(PathError::InvalidSequence {
                    path: path.to_owned(),
                    sequence,
                    path_type,
                });
            }
        }
        let mode = match path_type {
            PathType::Exact => Mode::Exact,
            PathType::Prefix | PathType::ImplementationSpecific => Mode::Prefix {
                len: path.trim_end_matches('/').len(),
            },
        };
        Ok(Self {
            path: Box::from(path),
            path_type,
            mode,
        })
    }

    /// A `use-regex` rule: `path` is a regular expression matched, as
    /// ingress-nginx's `location ~* "^path"` does, case-insensitively from
    /// the start of the request path (not necessarily to its end). It is
    /// compiled here, off the request path.
    pub fn regex(path: &str, path_type: PathType) -> Result<Self, PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute(path.to_owned()));
        }
        let regex = RegexBuilder::new(&format!("^(?:{path})"))
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| PathError::Regex {
                path: path.to_owned(),
                reason: one_line(&e.to_string()),
            })?;
        Ok(Self {
            path: Box::from(path),
            path_type,
            mode: Mode::Regex(PathRegex(Arc::new(regex))),
        })
    }

    /// The compiled regex of a `use-regex` rule.
    pub fn compiled_regex(&self) -> Option<&Arc<Regex>> {
        match &self.mode {
            Mode::Regex(r) => Some(&r.0),
            Mode::Exact | Mode::Prefix { .. } => None,
        }
    }

    /// Shorthand for an `Exact` rule.
    pub fn exact(path: &str) -> Result<Self, PathError> {
        Self::new(path, PathType::Exact)
    }

    /// Shorthand for a `Prefix` rule.
    pub fn prefix(path: &str) -> Result<Self, PathError> {
        Self::new(path, PathType::Prefix)
    }

    /// The path as written in the Ingress.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The declared path type.
    pub fn path_type(&self) -> PathType {
        self.path_type
    }

    /// Whether the rule matches `request_path`: the path component of the
    /// request target, without query (see [`request_path`]). An empty
    /// request path is read as `/`. Bytes are compared as they are: nothing
    /// is percent-decoded or case-folded.
    pub fn matches(&self, request_path: &str) -> bool {
        let request = if request_path.is_empty() {
            "/"
        } else {
            request_path
        };
        match &self.mode {
            Mode::Exact => request == &*self.path,
            Mode::Regex(r) => r.0.is_match(request),
            &Mode::Prefix { len } => {
                let Some(prefix) = self.path.as_bytes().get(..len) else {
                    return false;
                };
                let request = request.as_bytes();
                prefix.is_empty()
                    || (request.starts_with(prefix)
                        && matches!(request.get(len), None | Some(b'/')))
            }
        }
    }

    /// The precedence key: longer matching paths win, then `Exact` beats
    /// `Prefix`. Prefix length ignores the trailing slash, so `/foo/`
    /// (Prefix) and `/foo` (Exact) tie on length and Exact wins.
    pub(super) fn precedence(&self) -> (usize, bool) {
        match &self.mode {
            Mode::Exact => (self.path.len(), true),
            Mode::Prefix { len } => (*len, false),
            // ingress-nginx orders regex locations longest first.
            Mode::Regex(_) => (self.path.len(), false),
        }
    }
}

/// The regex crate's multi-line error (pattern, caret, message) as the one
/// line a log field needs: the message itself.
fn one_line(error: &str) -> String {
    let lines: Vec<&str> = error
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.last() {
        Some(last) if last.starts_with("error:") => {
            last.trim_start_matches("error:").trim().to_owned()
        }
        _ => lines.join(" "),
    }
}

/// The path to match from a request target: everything before `?` (a
/// literal `?` cannot be part of a path) or `#`, with an empty path read as
/// `/`.
pub fn request_path(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() { "/" } else { path }
}
