//! The traffic-shaping annotations through the real server: regex paths
//! with `rewrite-target` capture groups (`use-regex`), cookie affinity, and
//! canaries by weight and by header.

mod common;

use std::collections::BTreeMap;

use common::*;
use hyper::StatusCode;
use hyper::header::SET_COOKIE;

const P: &str = "nginx.ingress.kubernetes.io/";

fn key(name: &str) -> String {
    format!("{P}{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_paths_rewrite_with_capture_groups_and_invalid_regexes_reject_their_ingress() {
    let m = Manifests::new();
    let _backends = echo_services(&m, &["web", "img"]).await;
    let (use_regex, rewrite) = (key("use-regex"), key("rewrite-target"));
    m.write(
        "ing.yaml",
        &[
            ingress_yaml(
                "something",
                &[(&use_regex, "true"), (&rewrite, "/$2")],
                &[(
                    "regex.test",
                    "/something(/|$)(.*)",
                    "ImplementationSpecific",
                    "web",
                )],
            ),
            ingress_yaml(
                "versions",
                &[(&use_regex, "true"), (&rewrite, "/api/$2/v$1")],
                &[("groups.test", "/v([0-9]+)/(.*)", "Prefix", "web")],
            ),
            ingress_yaml(
                "images",
                &[(&use_regex, "true")],
                &[
                    (
                        "images.test",
                        "/img/.*\\.png",
                        "ImplementationSpecific",
                        "img",
                    ),
                    ("images.test", "/", "Prefix", "web"),
                ],
            ),
            ingress_yaml(
                "broken",
                &[(&use_regex, "true")],
                &[("broken.test", "/broken(", "ImplementationSpecific", "web")],
            ),
            ingress_yaml(
                "no-regex",
                &[(&rewrite, "/$1")],
                &[("noregex.test", "/x", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    let path_seen = |host: &'static str, path: &'static str| async move {
        let reply = get(addr, host, path).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{host}{path}: {}",
            reply.text()
        );
        reply.echo().path
    };

    // The ingress-nginx documentation's example.
    assert_eq!(path_seen("regex.test", "/something").await, "/");
    assert_eq!(path_seen("regex.test", "/something/").await, "/");
    assert_eq!(path_seen("regex.test", "/something/new").await, "/new");
    assert_eq!(
        path_seen("regex.test", "/something/new/deep?q=1&r=2").await,
        "/new/deep?q=1&r=2"
    );
    // Case-insensitive, anchored at the start.
    assert_eq!(path_seen("regex.test", "/SOMETHING/x").await, "/x");
    assert_eq!(
        get(addr, "regex.test", "/other/something").await.status,
        StatusCode::NOT_FOUND
    );
    // Several groups, in any order.
    assert_eq!(
        path_seen("groups.test", "/v2/users/7").await,
        "/api/users/7/v2"
    );
    assert_eq!(
        get(addr, "groups.test", "/vx/users").await.status,
        StatusCode::NOT_FOUND
    );
    // Regex paths without rewrite: the longest pattern wins, the path is kept.
    let reply = get(addr, "images.test", "/img/cat.png").await;
    assert_eq!(reply.pod().as_deref(), Some("img"));
    assert_eq!(reply.echo().path, "/img/cat.png");
    assert_eq!(
        get(addr, "images.test", "/img/cat.gif")
            .await
            .pod()
            .as_deref(),
        Some("web")
    );
    // An invalid regex and a capture group without use-regex reject only
    // their own Ingress.
    for (host, path) in [("broken.test", "/broken"), ("noregex.test", "/x")] {
        let status = get(addr, host, path).await.status;
        assert_eq!(status, StatusCode::NOT_FOUND, "{host}{path}");
    }
    ingress.shutdown().await;
}

/// The affinity cookie in a reply, as `name=value`.
fn affinity_cookie(reply: &Reply) -> Option<String> {
    let value = reply.headers.get(SET_COOKIE)?.to_str().ok()?;
    let (pair, attributes) = value.split_once(';')?;
    assert_eq!(attributes, " Path=/; HttpOnly", "{value}");
    Some(pair.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_pins_a_client_to_its_endpoint_while_it_exists() {
    let m = Manifests::new();
    let backends = [
        echo("web-0", [127, 0, 0, 2]).await,
        echo("web-1", [127, 0, 0, 3]).await,
        echo("web-2", [127, 0, 0, 4]).await,
    ];
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    m.write("svc.yaml", &service("apps", "web", "http", 80, &addrs));
    m.write(
        "ing.yaml",
        &[
            ingress_yaml(
                "sticky",
                &[
                    (&key("affinity"), "cookie"),
                    (&key("session-cookie-name"), "route"),
                ],
                &[("sticky.test", "/", "Prefix", "web")],
            ),
            ingress_yaml(
                "default-name",
                &[(&key("affinity"), "cookie")],
                &[("default.test", "/", "Prefix", "web")],
            ),
            ingress_yaml("plain", &[], &[("plain.test", "/", "Prefix", "web")]),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");

    // Without a cookie: round-robin, and every reply pins the client.
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let reply = get(addr, "sticky.test", "/").await;
        let cookie = affinity_cookie(&reply).expect("affinity cookie");
        assert!(cookie.starts_with("route="), "{cookie}");
        pods.insert(reply.pod().expect("pod"));
    }
    assert!(pods.len() > 1, "without a cookie requests spread: {pods:?}");
    let first = get(addr, "default.test", "/").await;
    let default = affinity_cookie(&first).expect("cookie");
    assert!(default.starts_with("INGRESSCOOKIE="), "{default}");
    assert!(
        get(addr, "plain.test", "/")
            .await
            .headers
            .get(SET_COOKIE)
            .is_none(),
        "no affinity, no cookie"
    );

    // With the cookie: always the same endpoint, and no new cookie.
    let reply = get(addr, "sticky.test", "/").await;
    let pinned = reply.pod().expect("pod");
    let cookie = affinity_cookie(&reply).expect("cookie");
    let value = cookie.trim_start_matches("route=");
    assert_eq!(value.len(), 32, "{cookie}");
    assert!(!value.contains("127.0.0"), "opaque: {cookie}");
    for _ in 0..10 {
        let reply = send(
            addr,
            &Req::get("sticky.test", "/").header("cookie", &cookie),
        )
        .await;
        assert_eq!(reply.pod().as_deref(), Some(pinned.as_str()));
        assert!(reply.headers.get(SET_COOKIE).is_none());
        // Other cookies around it do not matter; the upstream still sees them.
        let reply = send(
            addr,
            &Req::get("sticky.test", "/").header("cookie", &format!("a=1; {cookie}; b=2")),
        )
        .await;
        assert_eq!(reply.pod().as_deref(), Some(pinned.as_str()));
        assert!(
            reply
                .echo()
                .headers
                .get("cookie")
                .is_some_and(|c| c.contains("a=1"))
        );
    }
    // A cookie of another upstream or garbage is re-pinned.
    let reply = send(
        addr,
        &Req::get("sticky.test", "/").header("cookie", "route=0123456789abcdef0123456789abcdef"),
    )
    .await;
    assert!(affinity_cookie(&reply).is_some());

    // The pinned endpoint leaves the Service: the client moves and is re-pinned.
    let remaining: Vec<_> = backends
        .iter()
        .filter(|b| b.name != pinned)
        .map(|b| b.addr)
        .collect();
    m.write("svc.yaml", &service("apps", "web", "http", 80, &remaining));
    eventually("the client leaves the removed endpoint", || {
        let cookie = cookie.clone();
        let pinned = pinned.clone();
        async move {
            let reply = send(
                addr,
                &Req::get("sticky.test", "/").header("cookie", &cookie),
            )
            .await;
            reply.pod().as_deref() != Some(pinned.as_str())
                && affinity_cookie(&reply).is_some_and(|c| c != cookie)
        }
    })
    .await;
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_split_by_weight_and_by_header() {
    let m = Manifests::new();
    let _backends = echo_services(&m, &["stable", "canary"]).await;
    let web = ingress_yaml("web", &[], &[("shop.test", "/", "Prefix", "stable")]);
    let canary_ingress = |weight: &str| {
        ingress_yaml(
            "web-canary",
            &[
                (&key("canary"), "true"),
                (&key("canary-weight"), weight),
                (&key("canary-by-header"), "X-Canary"),
            ],
            &[("shop.test", "/", "Prefix", "canary")],
        )
    };
    m.write(
        "ing.yaml",
        &[
            web.clone(),
            canary_ingress("30"),
            // A canary with no main Ingress for its host does not serve it.
            ingress_yaml(
                "orphan-canary",
                &[(&key("canary"), "true"), (&key("canary-weight"), "100")],
                &[("orphan.test", "/", "Prefix", "canary")],
            ),
            // An unsupported canary mode rejects the canary, not the main.
            ingress_yaml("api", &[], &[("api.test", "/", "Prefix", "stable")]),
            ingress_yaml(
                "api-canary",
                &[
                    (&key("canary"), "true"),
                    (&key("canary-weight"), "100"),
                    (&key("canary-by-cookie"), "beta"),
                ],
                &[("api.test", "/", "Prefix", "canary")],
            ),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    let shop = Req::get("shop.test", "/");
    let always = Req::get("shop.test", "/").header("x-canary", "always");
    let never = Req::get("shop.test", "/").header("x-canary", "never");

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..100 {
        let pod = send(addr, &shop).await.pod().expect("pod");
        *counts.entry(pod).or_default() += 1;
    }
    let to_canary = counts.get("canary").copied().unwrap_or(0);
    assert!(
        (20..=40).contains(&to_canary),
        "weight 30 sends about 30 of 100 requests to the canary: {counts:?}"
    );
    assert_answered_by(addr, &always, "canary", 10).await;
    assert_answered_by(addr, &never, "stable", 10).await;
    assert_eq!(
        get(addr, "orphan.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_answered_by(addr, &Req::get("api.test", "/"), "stable", 5).await;

    // Weight 100 takes everything except "never"; weight 0 only "always".
    for (weight, all, except, to) in [
        ("100", "canary", &never, "stable"),
        ("0", "stable", &always, "canary"),
    ] {
        m.write("ing.yaml", &[web.clone(), canary_ingress(weight)].concat());
        eventually_answered_by(addr, &shop, all, 10).await;
        assert_answered_by(addr, except, to, 1).await;
    }
    ingress.shutdown().await;
}
