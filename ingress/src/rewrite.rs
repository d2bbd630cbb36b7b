//! `nginx.ingress.kubernetes.io/rewrite-target`: the path sent upstream
//! instead of the one the client asked for.
//!
//! Two forms, as in ingress-nginx:
//! * without `use-regex`, the target replaces the matched path prefix
//!   (`/api` + target `/v2`: `/api/users` → `/v2/users`);
//! * with `use-regex: "true"`, the rule path is a regular expression and the
//!   target is a template: `$1` … `$9` are its capture groups and the result
//!   replaces the whole path (`/app(/|$)(.*)` + `/$2`: `/app/x` → `/x`),
//!   like nginx's `rewrite ... break`.
//!
//! The query string is kept in both forms. Templates are parsed once, when
//! the annotation is read; requests only expand them.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

/// One piece of a `rewrite-target` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Text copied as it is.
    Literal(Box<str>),
    /// `$n`: the text of capture group `n` (empty when it did not match).
    Group(usize),
}

/// A parsed `rewrite-target` value: literal text and `$n` references.
///
/// It exists so the annotation is validated once and requests never
/// re-parse it.
#[derive(Clone, PartialEq, Eq)]
pub struct RewriteTemplate {
    text: Arc<str>,
    segments: Arc<[Segment]>,
}

impl fmt::Debug for RewriteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RewriteTemplate({:?})", self.text)
    }
}

impl RewriteTemplate {
    /// Parses `text`: `$` followed by a digit is a group reference; any other
    /// `$` is kept as written.
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let digit = chars.peek().and_then(|d| d.to_digit(10));
            match (c, digit) {
                ('$', Some(n)) => {
                    chars.next();
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal).into()));
                    }
                    // A single decimal digit always fits.
                    segments.push(Segment::Group(usize::try_from(n).unwrap_or(0)));
                }
                _ => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal.into()));
        }
        Self {
            text: Arc::from(text),
            segments: segments.into(),
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template refers to capture groups.
    pub fn has_groups(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Group(_)))
    }

    /// The highest group referenced (0 when none).
    pub fn max_group(&self) -> usize {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Group(n) => Some(*n),
                Segment::Literal(_) => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// A `rewrite-target` bound to the rule it applies to.
#[derive(Debug, Clone)]
pub enum Rewrite {
    /// Replace the matched path prefix.
    Prefix {
        /// Bytes of the request path the rule matched (the rule path without
        /// trailing slashes for Prefix rules).
        matched: usize,
        /// What replaces them.
        target: Arc<str>,
    },
    /// Replace the whole path with the template expanded from the rule's
    /// regex captures.
    Regex {
        /// The rule's compiled path regex (anchored, case-insensitive).
        regex: Arc<Regex>,
        /// The target template.
        template: RewriteTemplate,
    },
}

impl Rewrite {
    /// The request target (path and query) to send upstream.
    pub fn apply(&self, request_target: &str) -> String {
        let (path, query) = match request_target.find('?') {
            Some(i) => request_target.split_at(i),
            None => (request_target, ""),
        };
        let mut out = match self {
            Self::Prefix { matched, target } => {
                let rest = path.get(*matched..).unwrap_or("");
                let mut out = target.trim_end_matches('/').to_owned();
                out.push_str(rest);
                out
            }
            Self::Regex { regex, template } => expand(regex, template, path),
        };
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        out.push_str(query);
        out
    }
}

/// `template` with the captures of `regex` on `path`. When the regex does
/// not match (it always does for the route it belongs to), groups are
/// empty.
fn expand(regex: &Regex, template: &RewriteTemplate, path: &str) -> String {
    let captures = regex.captures(path);
    let mut out = String::with_capacity(template.text.len() + path.len());
    for segment in template.segments.iter() {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Group(n) => {
                if let Some(m) = captures.as_ref().and_then(|c| c.get(*n)) {
                    out.push_str(m.as_str());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(matched: usize, target: &str) -> Rewrite {
        Rewrite::Prefix {
            matched,
            target: Arc::from(target),
        }
    }

    fn regex(path: &str, target: &str) -> Rewrite {
        Rewrite::Regex {
            regex: Arc::new(Regex::new(&format!("(?i)^(?:{path})")).expect("regex")),
            template: RewriteTemplate::parse(target),
        }
    }

    #[test]
    fn prefix_rewrites_replace_the_matched_prefix() {
        // Prefix /api (4 bytes).
        assert_eq!(prefix(4, "/").apply("/api"), "/");
        assert_eq!(prefix(4, "/").apply("/api/"), "/");
        assert_eq!(prefix(4, "/").apply("/api/users?x=1"), "/users?x=1");
        assert_eq!(prefix(4, "/v2").apply("/api/users"), "/v2/users");
        assert_eq!(prefix(4, "/v2/").apply("/api"), "/v2");
        // Prefix / (0 bytes).
        assert_eq!(prefix(0, "/base").apply("/x/y"), "/base/x/y");
        assert_eq!(prefix(0, "/").apply("/"), "/");
    }

    #[test]
    fn regex_rewrites_expand_capture_groups() {
        let rw = regex("/something(/|$)(.*)", "/$2");
        assert_eq!(rw.apply("/something"), "/");
        assert_eq!(rw.apply("/something/"), "/");
        assert_eq!(rw.apply("/something/new?q=1"), "/new?q=1");
        assert_eq!(rw.apply("/SOMETHING/a/b"), "/a/b");
        let rw = regex("/api/(v[0-9]+)/(.*)", "/$2/version/$1");
        assert_eq!(rw.apply("/api/v3/users/7"), "/users/7/version/v3");
        // Unknown groups are empty; the result is always absolute.
        assert_eq!(regex("/x(.*)", "$1$7").apply("/xyz"), "/yz");
        // No groups: the whole path is replaced.
        assert_eq!(regex("/old/.*", "/new").apply("/old/a?b"), "/new?b");
    }

    #[test]
    fn templates_parse_dollar_digits_only() {
        let t = RewriteTemplate::parse("/a$1b$$c$");
        assert!(t.has_groups());
        assert_eq!(t.max_group(), 1);
        assert_eq!(
            expand(&Regex::new("^/(x)").expect("regex"), &t, "/x"),
            "/axb$$c$"
        );
        assert!(!RewriteTemplate::parse("/plain").has_groups());
    }
}
