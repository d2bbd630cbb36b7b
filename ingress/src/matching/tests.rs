//! The Kubernetes Ingress documentation's example tables, the precedence
//! rules, and no-panic properties.

use proptest::prelude::*;

use super::PathType::{Exact, ImplementationSpecific, Prefix};
use super::*;

/// Build a host-less table whose values are the rule indexes.
fn table(rules: &[(&str, PathType)]) -> RouteTable<usize> {
    let mut table = RouteTable::new();
    for (i, (path, path_type)) in rules.iter().enumerate() {
        let rule = PathRule::new(path, *path_type).expect("valid test rule");
        table.insert(HostRule::Any, rule, i);
    }
    table
}

/// Every row of the "Examples" table of the Ingress concept page
/// (kubernetes.io/docs/concepts/services-networking/ingress/#examples).
/// Each row: rules, request paths, and the index of the rule that must
/// serve them (`None`: no match, the default backend answers).
#[test]
fn upstream_examples_table() {
    type Row<'a> = (&'a [(&'a str, PathType)], &'a [&'a str], Option<usize>);
    let rows: &[Row<'_>] = &[
        // Prefix  /  (all paths)  Yes
        (
            &[("/", Prefix)],
            &[
                "/",
                "/foo",
                "/foo/bar/",
                "/aaa/bbb/ccc",
                "",
                "//x",
                "/%2F",
                "*",
            ],
            Some(0),
        ),
        // Exact  /foo  /foo  Yes
        (&[("/foo", Exact)], &["/foo"], Some(0)),
        // Exact  /foo  /bar  No
        (&[("/foo", Exact)], &["/bar"], None),
        // Exact  /foo  /foo/  No
        (&[("/foo", Exact)], &["/foo/"], None),
        // Exact  /foo/  /foo  No
        (&[("/foo/", Exact)], &["/foo"], None),
        // Prefix  /foo  /foo, /foo/  Yes
        (&[("/foo", Prefix)], &["/foo", "/foo/"], Some(0)),
        // Prefix  /foo/  /foo, /foo/  Yes
        (&[("/foo/", Prefix)], &["/foo", "/foo/"], Some(0)),
        // Prefix  /aaa/bb  /aaa/bbb  No
        (&[("/aaa/bb", Prefix)], &["/aaa/bbb"], None),
        // Prefix  /aaa/bbb  /aaa/bbb  Yes
        (&[("/aaa/bbb", Prefix)], &["/aaa/bbb"], Some(0)),
        // Prefix  /aaa/bbb/  /aaa/bbb  Yes, ignores trailing slash
        (&[("/aaa/bbb/", Prefix)], &["/aaa/bbb"], Some(0)),
        // Prefix  /aaa/bbb  /aaa/bbb/  Yes, matches trailing slash
        (&[("/aaa/bbb", Prefix)], &["/aaa/bbb/"], Some(0)),
        // Prefix  /aaa/bbb  /aaa/bbb/ccc  Yes, matches subpath
        (&[("/aaa/bbb", Prefix)], &["/aaa/bbb/ccc"], Some(0)),
        // Prefix  /aaa/bbb  /aaa/bbbxyz  No, does not match string prefix
        (&[("/aaa/bbb", Prefix)], &["/aaa/bbbxyz"], None),
        // Prefix  /, /aaa  /aaa/ccc  Yes, matches /aaa prefix
        (&[("/", Prefix), ("/aaa", Prefix)], &["/aaa/ccc"], Some(1)),
        // Prefix  /, /aaa, /aaa/bbb  /aaa/bbb  Yes, matches /aaa/bbb prefix
        (
            &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
            &["/aaa/bbb"],
            Some(2),
        ),
        // Prefix  /, /aaa, /aaa/bbb  /ccc  Yes, matches / prefix
        (
            &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
            &["/ccc"],
            Some(0),
        ),
        // Prefix  /aaa  /ccc  No, uses default backend
        (&[("/aaa", Prefix)], &["/ccc"], None),
        // Mixed  /foo (Prefix), /foo (Exact)  /foo  Yes, prefers Exact
        (&[("/foo", Prefix), ("/foo", Exact)], &["/foo"], Some(1)),
        (&[("/foo", Exact), ("/foo", Prefix)], &["/foo"], Some(0)),
    ];
    for (rules, requests, want) in rows {
        let table = table(rules);
        for request in *requests {
            assert_eq!(
                table.pick("example.com", request).copied(),
                *want,
                "rules {rules:?}, request {request:?}"
            );
        }
    }
}

/// The "Hostname wildcards" table of the same page, plus exact hosts.
#[test]
fn upstream_hostname_table() {
    let rows = [
        // *.foo.com  bar.foo.com  Matches based on shared suffix
        ("*.foo.com", "bar.foo.com", true),
        // *.foo.com  baz.bar.foo.com  No match, wildcard only covers a single DNS label
        ("*.foo.com", "baz.bar.foo.com", false),
        // *.foo.com  foo.com  No match, wildcard only covers a single DNS label
        ("*.foo.com", "foo.com", false),
        ("*.foo.com", ".foo.com", false),
        ("*.foo.com", "BAR.Foo.COM:8443", true),
        ("*.foo.com", "bar.foo.com.", true),
        ("*.foo.com", "barfoo.com", false),
        ("foo.bar.com", "foo.bar.com", true),
        ("foo.bar.com", "FOO.Bar.Com", true),
        ("foo.bar.com", "foo.bar.com:80", true),
        ("foo.bar.com", "foo.bar.com.:80", true),
        ("foo.bar.com", "x.foo.bar.com", false),
        ("foo.bar.com", "bar.com", false),
        ("foo.bar.com", "foo.bar.co", false),
        ("foo.bar.com", "", false),
        ("foo.bar.com", "[::1]:80", false),
        ("", "anything.example", true),
        ("", "[::1]:80", true),
        ("", "", true),
    ];
    for (rule, request, want) in rows {
        let host = HostRule::new(rule).expect("valid test host");
        assert_eq!(
            host.matches(request),
            want,
            "rule {rule:?}, host {request:?}"
        );
        let mut table = RouteTable::new();
        table.insert(host, PathRule::prefix("/").expect("valid"), ());
        assert_eq!(
            table.pick(request, "/").is_some(),
            want,
            "table: {rule:?} vs {request:?}"
        );
    }
}

#[test]
fn request_host_strips_port_brackets_and_dot() {
    let rows = [
        ("foo.com", "foo.com"),
        ("Foo.com:8080", "Foo.com"),
        ("foo.com:", "foo.com"),
        ("foo.com.", "foo.com"),
        ("foo.com.:443", "foo.com"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[fe80::1%25eth0]:80", "fe80::1%25eth0"),
        ("::1", "::1"),
        ("[::1", "[::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("", ""),
    ];
    for (authority, want) in rows {
        assert_eq!(request_host(authority), want, "{authority:?}");
    }
}

#[test]
fn request_path_drops_query_and_fragment() {
    let rows = [
        ("/foo?x=1", "/foo"),
        ("/foo#frag", "/foo"),
        ("/foo/?", "/foo/"),
        ("?x", "/"),
        ("", "/"),
        ("/", "/"),
    ];
    for (target, want) in rows {
        assert_eq!(request_path(target), want, "{target:?}");
    }
    let table = table(&[("/foo", Exact)]);
    assert_eq!(table.pick("h", "/foo?bar=baz"), Some(&0));
}

#[test]
fn longest_path_wins_whatever_the_insertion_order() {
    let orders: [&[(&str, PathType)]; 2] = [
        &[
            ("/", Prefix),
            ("/api", Prefix),
            ("/api/v1", Prefix),
            ("/api/v1/users", Exact),
        ],
        &[
            ("/api/v1/users", Exact),
            ("/api/v1", Prefix),
            ("/api", Prefix),
            ("/", Prefix),
        ],
    ];
    for rules in orders {
        let table = table(rules);
        let name = |req: &str| table.pick("h", req).map(|i| rules[*i].0);
        assert_eq!(name("/api/v1/users"), Some("/api/v1/users"));
        assert_eq!(name("/api/v1/users/7"), Some("/api/v1"));
        assert_eq!(name("/api/v1"), Some("/api/v1"));
        assert_eq!(name("/api/v2"), Some("/api"));
        assert_eq!(name("/apiv1"), Some("/"));
        assert_eq!(name("/"), Some("/"));
    }
}

#[test]
fn exact_beats_prefix_at_equal_length() {
    // The Prefix rule's trailing slash does not make it longer.
    for rules in [
        [("/foo/", Prefix), ("/foo", Exact)],
        [("/foo", Exact), ("/foo/", Prefix)],
    ] {
        let table = table(&rules);
        let name = |req: &str| table.pick("h", req).map(|i| rules[*i]);
        assert_eq!(name("/foo"), Some(("/foo", Exact)));
        assert_eq!(name("/foo/"), Some(("/foo/", Prefix)));
        assert_eq!(name("/foo/x"), Some(("/foo/", Prefix)));
    }
    // A longer Prefix beats a shorter Exact.
    let rules = [("/a", Exact), ("/a/b", Prefix)];
    let table = table(&rules);
    assert_eq!(table.pick("h", "/a/b"), Some(&1));
    assert_eq!(table.pick("h", "/a"), Some(&0));
}

#[test]
fn ties_keep_insertion_order() {
    let table = table(&[
        ("/foo", Prefix),
        ("/foo/", Prefix),
        ("/foo", ImplementationSpecific),
    ]);
    assert_eq!(table.pick("h", "/foo/bar"), Some(&0));
    assert_eq!(table.len(), 3);
}

#[test]
fn implementation_specific_is_prefix() {
    let rules = [("/static", ImplementationSpecific)];
    let table = table(&rules);
    assert_eq!(table.pick("h", "/static"), Some(&0));
    assert_eq!(table.pick("h", "/static/app.js"), Some(&0));
    assert_eq!(table.pick("h", "/staticx"), None);
    // An empty ImplementationSpecific path matches everything.
    let any = PathRule::new("", ImplementationSpecific).expect("valid");
    assert!(any.matches("/whatever"));
    assert_eq!(any.path(), "");
    assert_eq!(any.path_type(), ImplementationSpecific);
}

#[test]
fn matching_is_case_sensitive_for_paths() {
    let table = table(&[("/Foo", Prefix), ("/bar", Exact)]);
    assert_eq!(table.pick("h", "/Foo/x"), Some(&0));
    assert_eq!(table.pick("h", "/foo/x"), None);
    assert_eq!(table.pick("h", "/BAR"), None);
}

#[test]
fn exact_host_beats_wildcard_beats_any() {
    let mut table = RouteTable::new();
    let root = || PathRule::prefix("/").expect("valid");
    table.insert(HostRule::Any, root(), "any");
    table.insert(
        HostRule::new("*.foo.com").expect("valid"),
        root(),
        "wildcard",
    );
    table.insert(
        HostRule::new("bar.foo.com").expect("valid"),
        root(),
        "exact",
    );
    assert_eq!(table.pick("bar.foo.com", "/"), Some(&"exact"));
    assert_eq!(table.pick("Bar.Foo.Com:443", "/x"), Some(&"exact"));
    assert_eq!(table.pick("baz.foo.com", "/"), Some(&"wildcard"));
    assert_eq!(table.pick("a.baz.foo.com", "/"), Some(&"any"));
    assert_eq!(table.pick("foo.com", "/"), Some(&"any"));
    assert_eq!(table.pick("[::1]:8080", "/"), Some(&"any"));
    assert_eq!(table.pick(&"x".repeat(300), "/"), Some(&"any"));
}

#[test]
fn host_selection_does_not_fall_back() {
    let mut table = RouteTable::new();
    table.insert(HostRule::Any, PathRule::prefix("/").expect("valid"), "any");
    table.insert(
        HostRule::new("*.foo.com").expect("valid"),
        PathRule::prefix("/web").expect("valid"),
        "wildcard",
    );
    table.insert(
        HostRule::new("api.foo.com").expect("valid"),
        PathRule::exact("/v1").expect("valid"),
        "exact",
    );
    assert_eq!(table.pick("api.foo.com", "/v1"), Some(&"exact"));
    assert_eq!(table.pick("api.foo.com", "/web"), None);
    assert_eq!(table.pick("www.foo.com", "/web/x"), Some(&"wildcard"));
    assert_eq!(table.pick("www.foo.com", "/"), None);
    assert_eq!(table.pick("other.org", "/anything"), Some(&"any"));
}

#[test]
fn empty_table_picks_nothing() {
    let table: RouteTable<()> = RouteTable::default();
    assert!(table.is_empty());
    assert_eq!(table.pick("foo.com", "/"), None);
}

#[test]
fn path_validation_follows_the_api_server() {
    use PathError::*;
    assert_eq!(PathRule::exact(""), Err(Missing(Exact)));
    assert_eq!(PathRule::prefix(""), Err(Missing(Prefix)));
    assert_eq!(PathRule::prefix("foo"), Err(NotAbsolute("foo".into())));
    assert_eq!(
        PathRule::new("foo", ImplementationSpecific),
        Err(NotAbsolute("foo".into()))
    );
    for bad in [
        "/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a/..", "/a/.",
    ] {
        assert!(
            matches!(PathRule::prefix(bad), Err(InvalidSequence { .. })),
            "{bad}"
        );
        assert!(
            matches!(PathRule::exact(bad), Err(InvalidSequence { .. })),
            "{bad}"
        );
        assert!(PathRule::new(bad, ImplementationSpecific).is_ok(), "{bad}");
    }
    assert!(PathRule::prefix("/a.b/c..d/.e").is_ok());
}

#[test]
fn path_type_spellings() {
    for t in [Exact, Prefix, ImplementationSpecific] {
        assert_eq!(t.as_str().parse::<PathType>(), Ok(t));
        assert_eq!(t.to_string(), t.as_str());
    }
    assert_eq!(
        "prefix".parse::<PathType>(),
        Err(PathError::UnknownPathType("prefix".into()))
    );
}

#[test]
fn host_validation_follows_the_api_server() {
    use HostError::*;
    assert_eq!(HostRule::new(""), Ok(HostRule::Any));
    assert_eq!(
        HostRule::new("Foo.Bar.com"),
        Ok(HostRule::Exact("foo.bar.com".into()))
    );
    assert_eq!(
        HostRule::new("*.Foo.com"),
        Ok(HostRule::Wildcard("foo.com".into()))
    );
    assert_eq!(
        HostRule::new("localhost"),
        Ok(HostRule::Exact("localhost".into()))
    );
    assert!(matches!(HostRule::new("10.0.0.1"), Err(IpAddress(_))));
    assert!(matches!(HostRule::new("::1"), Err(IpAddress(_))));
    assert!(matches!(HostRule::new("*"), Err(BadWildcard(_))));
    assert!(matches!(HostRule::new("foo.*.com"), Err(BadWildcard(_))));
    assert!(matches!(HostRule::new("*foo.com"), Err(BadWildcard(_))));
    assert!(matches!(HostRule::new("*.*.com"), Err(BadWildcard(_))));
    assert!(matches!(HostRule::new("foo..com"), Err(Invalid(_))));
    assert!(matches!(HostRule::new("foo.com."), Err(Invalid(_))));
    assert!(matches!(HostRule::new("foo.com:80"), Err(Invalid(_))));
    assert!(matches!(HostRule::new("-foo.com"), Err(Invalid(_))));
    assert!(matches!(HostRule::new("foo_bar.com"), Err(Invalid(_))));
    assert!(matches!(HostRule::new(&"a".repeat(64)), Err(Invalid(_))));
    assert!(matches!(
        HostRule::new(&vec!["abcdefg"; 40].join(".")),
        Err(TooLong(_))
    ));
}

proptest! {
    #[test]
    fn arbitrary_requests_never_panic(host in ".{0,300}", path in ".{0,300}") {
        let mut table = RouteTable::new();
        for (h, p, t) in [
            ("", "/", Prefix),
            ("foo.com", "/a/b", Prefix),
            ("*.foo.com", "/a", Exact),
            ("ünï.com", "/", Prefix),
        ] {
            if let (Ok(h), Ok(p)) = (HostRule::new(h), PathRule::new(p, t)) {
                table.insert(h, p, ());
            }
        }
        let _ = table.pick(&host, &path);
        let _ = request_host(&host);
        let _ = request_path(&path);
    }

    #[test]
    fn arbitrary_rules_never_panic(host in ".{0,300}", path in ".{0,100}", req in ".{0,100}") {
        for t in [Exact, Prefix, ImplementationSpecific] {
            if let Ok(rule) = PathRule::new(&path, t) {
                let _ = rule.matches(&req);
                let _ = rule.matches(&path);
            }
        }
        if let Ok(rule) = HostRule::new(&host) {
            let _ = rule.matches(&req);
            let _ = rule.matches(&host);
        }
    }

    #[test]
    fn prefix_matches_its_subpaths_only(
        segs in proptest::collection::vec("[a-zA-Z0-9._~-]{1,8}", 1..5),
        tail in "[a-zA-Z0-9/._~-]{0,12}",
        junk in "[a-zA-Z0-9._~-]{1,4}",
    ) {
        let rule_path = format!("/{}", segs.join("/"));
        let rule = PathRule::prefix(&rule_path);
        prop_assume!(rule.is_ok());
        let rule = rule.expect("checked");
        let exact = PathRule::exact(&rule_path).expect("same checks as prefix");
        let with_slash = format!("{rule_path}/");
        let subpath = format!("{rule_path}/{tail}");
        let longer_element = format!("{rule_path}{junk}");
        prop_assert!(rule.matches(&rule_path));
        prop_assert!(rule.matches(&with_slash));
        prop_assert!(rule.matches(&subpath));
        // Extending the last element makes a different element.
        prop_assert!(!rule.matches(&longer_element));
        prop_assert!(exact.matches(&rule_path));
        prop_assert!(!exact.matches(&with_slash));
    }
}

#[test]
fn regex_paths_match_case_insensitively_from_the_start() {
    let rule = PathRule::regex("/api/v[0-9]+(/|$)(.*)", Prefix).expect("valid");
    assert!(rule.matches("/api/v1"));
    assert!(rule.matches("/API/V22/users"));
    assert!(!rule.matches("/api/vx"));
    assert!(!rule.matches("/x/api/v1"));
    assert!(rule.compiled_regex().is_some());
    let err = PathRule::regex("/broken(", ImplementationSpecific).expect_err("invalid");
    assert!(
        err.to_string()
            .ends_with("not a valid regular expression (use-regex is set): unclosed group"),
        "{err}"
    );
    assert_eq!(
        PathRule::regex("api", Prefix),
        Err(PathError::NotAbsolute("api".into()))
    );
    // Longer patterns are preferred, as ingress-nginx orders locations.
    let mut table = RouteTable::new();
    table.insert(
        HostRule::Any,
        PathRule::regex("/a.*", Prefix).expect("ok"),
        1,
    );
    table.insert(
        HostRule::Any,
        PathRule::regex("/a/b.*", Prefix).expect("ok"),
        2,
    );
    assert_eq!(table.pick("h", "/a/bc"), Some(&2));
    assert_eq!(table.pick("h", "/ax"), Some(&1));
}
