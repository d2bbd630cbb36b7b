//! Behaviour of the socket load balancer beyond a single lookup: what the
//! client and backend see, distribution, session affinity, hairpin, live
//! endpoint changes under traffic, agent restarts and layout upgrades.
mod support;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use strait_proxy::SockLb;
use support::{ProxyFixture, Seen, probe_in};

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP, targetPort: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: dns, port: 8081, protocol: UDP}]
endpoints:
  - addresses: [10.250.0.11]
  - addresses: [10.250.0.12]
  - addresses: [10.250.0.13]
  - addresses: [10.250.0.14]
"#;

fn sticky(timeout: u32, affinity: bool) -> String {
    let affinity = if affinity {
        format!(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {timeout}}}}}\n"
        )
    } else {
        String::new()
    };
    WEB.replacen(
        "  clusterIP: 10.96.0.100\n",
        &format!("  clusterIP: 10.96.0.100\n{affinity}"),
        1,
    )
}

fn web_with(endpoints: &[&str]) -> String {
    let mut yaml = WEB.split("endpoints:").next().unwrap().to_string();
    yaml.push_str("endpoints:\n");
    for e in endpoints {
        yaml.push_str(&format!("  - addresses: [{e}]\n"));
    }
    yaml
}

#[test]
fn ebpf_peers_see_the_vip_and_backends_see_the_client() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(WEB, "node-1");
    let vip_tcp: SocketAddr = "10.96.0.100:80".parse().unwrap();
    let vip_udp: SocketAddr = "10.96.0.100:53".parse().unwrap();
    let client_ip: IpAddr = "10.250.0.1".parse().unwrap();
    for (mode, vip) in [
        ("tcp", vip_tcp),
        ("udp", vip_udp),
        ("udp-connected", vip_udp),
    ] {
        for seen in fx.probe(mode, &vip.to_string(), 8) {
            let Seen::Ok { client, peer, .. } = seen else {
                panic!("{mode}: {seen:?}");
            };
            assert_eq!(peer, vip, "{mode}: the client must see the VIP as its peer");
            assert_eq!(
                client.ip(),
                client_ip,
                "{mode}: the backend must see the real client"
            );
        }
    }
}

#[test]
fn ebpf_1000_connections_spread_over_all_ready_backends() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(WEB, "node-1");
    let spread = fx.spread("10.96.0.100:80", 1000);
    assert_eq!(spread.len(), 4, "{spread:?}");
    // Uniform expectation is 250 each; a chi-square with 3 degrees of freedom
    // above 16.3 has p < 0.001, so this fails only for a biased picker.
    let chi2: f64 = spread
        .values()
        .map(|&n| (n as f64 - 250.0).powi(2) / 250.0)
        .sum();
    assert!(
        chi2 < 16.3,
        "distribution too skewed: {spread:?} chi2={chi2:.1}"
    );
}

#[test]
fn ebpf_session_affinity_pins_then_expires_and_can_be_switched_off() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(&sticky(1, true), "node-1");
    let pinned = fx.spread("10.96.0.100:80", 30);
    assert_eq!(
        pinned.len(),
        1,
        "ClientIP affinity must pin the client: {pinned:?}"
    );
    let first = pinned.keys().next().unwrap().clone();
    // After the 1 s timeout the next connect picks afresh; with 4 backends it
    // differs within 10 rounds unless affinity never expires (p ≈ 1e-6).
    let mut moved = false;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1100));
        if fx.probe("tcp", "10.96.0.100:80", 1)[0].backend() != first {
            moved = true;
            break;
        }
    }
    assert!(moved, "affinity did not expire after its timeout");
    // GC removes the expired entry (the last connect's entry is < 1 s old).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        fx.maps.gc_affinity(),
        1,
        "one expired entry for the one client"
    );
    assert_eq!(fx.maps.gc_affinity(), 0);
    // Turning affinity off applies to new connections at once.
    fx.apply(&sticky(1, false), "node-1");
    assert!(
        fx.spread("10.96.0.100:80", 40).len() >= 2,
        "affinity still applied"
    );
    // And on again with a long timeout: pinned again.
    fx.apply(&sticky(3600, true), "node-1");
    assert_eq!(fx.spread("10.96.0.100:80", 30).len(), 1);
}

#[test]
fn ebpf_affinity_moves_when_the_pinned_backend_leaves() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(&sticky(3600, true), "node-1");
    let first = fx.probe("tcp", "10.96.0.100:80", 1)[0]
        .backend()
        .to_string();
    let first_ip = first.split(':').next().unwrap().to_string();
    let rest: Vec<&str> = support::POOL_V4
        .iter()
        .copied()
        .filter(|ip| *ip != first_ip)
        .collect();
    let yaml = web_with(&rest).replacen(
        "  clusterIP: 10.96.0.100\n",
        "  clusterIP: 10.96.0.100\n  sessionAffinity: ClientIP\n",
        1,
    );
    fx.apply(&yaml, "node-1");
    let after = fx.spread("10.96.0.100:80", 10);
    assert_eq!(after.len(), 1, "re-pinned to one backend: {after:?}");
    assert!(
        !after.contains_key(&first),
        "still sent to the removed backend {first}"
    );
}

#[test]
fn ebpf_a_pod_reaches_its_own_service_hairpin() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(&web_with(&["10.250.0.11"]), "node-1");
    // The client runs in the backend's own namespace and cgroup.
    let seen = probe_in(&fx.backends, Some(&fx.cgroup), "tcp", "10.96.0.100:80", 5);
    for s in seen {
        assert_eq!(s.backend(), "10.250.0.11:8080");
    }
}

#[test]
fn ebpf_endpoint_changes_apply_while_traffic_flows() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply_incremental(&web_with(&["10.250.0.11", "10.250.0.12"]), "node-1");
    // A client keeps connecting in the background while endpoints change.
    let mut cmd = fx.client.command(env!("CARGO_BIN_EXE_strait-probe"));
    cmd.args(["tcp", "10.96.0.100:80", "3000"])
        .stdout(std::process::Stdio::piped());
    cmd.in_cgroup(&fx.cgroup).unwrap();
    let mut child = cmd.spawn().expect("background probe");
    // Drain stdout while the probe runs so a full pipe never stalls it.
    let mut stdout = child.child_mut().stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    let steps: [&[&str]; 4] = [
        &["10.250.0.11", "10.250.0.12", "10.250.0.13"],
        &["10.250.0.13", "10.250.0.14"],
        &["10.250.0.14"],
        &["10.250.0.11", "10.250.0.14"],
    ];
    for step in steps {
        std::thread::sleep(Duration::from_millis(40));
        // The agent's change path: only the changed service is written.
        let stats = fx.apply_incremental(&web_with(step), "node-1");
        assert_eq!(stats.upserted, 2, "the TCP and UDP frontends of web");
    }
    let status = child.wait_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "background probe failed"
    );
    let out = reader.join().unwrap().unwrap();
    let errors: Vec<&str> = out.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        errors.is_empty(),
        "connections failed during updates: {errors:?}"
    );
    assert_eq!(out.lines().count(), 3000);
    // After the last step only its endpoints answer.
    let last = fx.spread("10.96.0.100:80", 30);
    assert!(
        last.keys()
            .all(|k| k == "10.250.0.11:8080" || k == "10.250.0.14:8080"),
        "{last:?}"
    );
}

#[test]
fn ebpf_datapath_survives_an_agent_restart() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(&web_with(&["10.250.0.11"]), "node-1");
    let pin_dir = fx.lb.pin_dir().to_path_buf();
    // "Kill" the agent: drop every handle it held.
    let ProxyFixture { lb, maps, .. } = &mut fx;
    drop(std::mem::replace(
        maps,
        SockLb::load(&pin_dir).unwrap().service_maps().unwrap(),
    ));
    drop(std::mem::replace(lb, SockLb::load(&pin_dir).unwrap()));
    // No agent attached anything new, yet connects are still translated.
    assert_eq!(
        fx.probe("tcp", "10.96.0.100:80", 3)[0].backend(),
        "10.250.0.11:8080"
    );
    // The new agent attaches; the old generation of links is replaced.
    fx.lb.attach(fx.cgroup.path()).unwrap();
    let cgroups: Vec<_> = std::fs::read_dir(pin_dir.join("links"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(cgroups.len(), 1, "links of one cgroup");
    let generations = std::fs::read_dir(cgroups[0].path()).unwrap().count();
    assert_eq!(generations, 1, "the old generation of links is retired");
    let started = Instant::now();
    for s in fx.probe("tcp", "10.96.0.100:80", 20) {
        assert_eq!(s.backend(), "10.250.0.11:8080");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // The recovered maps continue from the pinned state.
    fx.apply(&web_with(&["10.250.0.12"]), "node-1");
    assert_eq!(
        fx.probe("tcp", "10.96.0.100:80", 1)[0].backend(),
        "10.250.0.12:8080"
    );
    // Detaching removes the translation (and nothing else is left attached).
    fx.lb.detach(fx.cgroup.path());
    assert_eq!(
        fx.probe("tcp", "10.96.0.100:80", 1)[0],
        Seen::Err(support::ENETUNREACH)
    );
}

#[test]
fn ebpf_pins_of_another_layout_version_are_rebuilt() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(&web_with(&["10.250.0.11"]), "node-1");
    let pin_dir = fx.lb.pin_dir().to_path_buf();
    // Pretend an older agent wrote these pins with layout version 0.
    let layout =
        aya::maps::MapData::from_pin(pin_dir.join(strait_ebpf_common::maps::LAYOUT)).unwrap();
    let mut arr = aya::maps::Array::<_, u32>::try_from(aya::maps::Map::Array(layout)).unwrap();
    arr.set(0, 0, 0).unwrap();
    let mut reloaded = SockLb::load(&pin_dir).expect("reload rebuilds the maps");
    let maps = reloaded.service_maps().unwrap();
    assert_eq!(
        maps.frontends().count(),
        0,
        "old entries must not be reused"
    );
}

#[test]
fn ebpf_connected_udp_moves_off_a_removed_backend() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    fx.apply(&web_with(&["10.250.0.11"]), "node-1");
    // A long-lived connected UDP client (think: a DNS client) on the VIP.
    let mut cmd = fx.client.command(env!("CARGO_BIN_EXE_strait-probe"));
    cmd.args(["udp-hold", "10.96.0.100:53", "60"])
        .stdout(std::process::Stdio::piped());
    cmd.in_cgroup(&fx.cgroup).unwrap();
    let mut child = cmd.spawn().expect("udp client");
    let mut stdout = child.child_mut().stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    std::thread::sleep(Duration::from_millis(600));
    // The backend leaves the service; its server keeps running, so only the
    // socket destruction can move the client.
    let stats = fx.apply(&web_with(&["10.250.0.12"]), "node-1");
    assert_eq!(
        stats.removed_udp_backends,
        vec!["10.250.0.11:8081".parse::<SocketAddr>().unwrap()]
    );
    let namespaces = strait_proxy::sock_destroy::netns_under_cgroup(fx.cgroup.path());
    let destroyed =
        strait_proxy::sock_destroy::destroy_udp_to(&namespaces, &stats.removed_udp_backends)
            .expect("destroy");
    assert_eq!(destroyed, 1, "exactly the client's socket");
    assert!(
        child
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .is_some()
    );
    let out = reader.join().unwrap().unwrap();
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names.first(), Some(&"10.250.0.11:8081"), "{out}");
    let tail = &names[names.len().saturating_sub(20)..];
    assert!(
        tail.iter().all(|n| *n == "10.250.0.12:8081"),
        "the client must end on the live backend: {out}"
    );
}

#[test]
fn ebpf_a_full_map_is_a_clear_error_naming_the_flag() {
    if !strait_tests::require_root() {
        return;
    }
    let bpffs = strait_tests::Bpffs::new().unwrap();
    let capacity = strait_proxy::Capacity {
        services: 8,
        ..Default::default()
    };
    let mut lb = SockLb::load_with(bpffs.path(), capacity).unwrap();
    let mut maps = lb.service_maps().unwrap();
    let desired: strait_proxy::DesiredState = (0..10u8)
        .map(|i| {
            (
                strait_proxy::Frontend {
                    vip: IpAddr::from([10, 96, 1, i]),
                    port: 80,
                    proto: strait_ebpf_common::PROTO_TCP,
                },
                strait_proxy::FrontendSpec {
                    backends: vec![SocketAddr::from(([10, 250, 0, 11], 8080))],
                    affinity_timeout: None,
                    ..Default::default()
                },
            )
        })
        .collect();
    let err = maps
        .sync(&desired)
        .expect_err("8 entries cannot hold 10 services");
    let msg = err.to_string();
    assert!(
        msg.contains("is full") && msg.contains("--max-services"),
        "{msg}"
    );
}
