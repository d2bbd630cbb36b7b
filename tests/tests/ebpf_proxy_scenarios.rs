//! Table-driven service proxy scenarios in the style of kube-proxy's packet
//! flow tests: each case is Services + EndpointSlices, and probes of
//! (protocol, VIP:port) with the backends expected to answer, or the errno
//! expected instead. Real eBPF programs, real sockets, echo backends that
//! report which endpoint answered.
mod support;

use support::{ECONNREFUSED, ENETUNREACH, ProxyFixture, outcome};

struct Probe {
    mode: &'static str,
    target: &'static str,
    /// Backend names (`ip:port`) or `errno N`, sorted.
    expect: &'static [&'static str],
}

struct Case {
    name: &'static str,
    node: &'static str,
    manifest: &'static str,
    probes: &'static [Probe],
}

const fn tcp(target: &'static str, expect: &'static [&'static str]) -> Probe {
    Probe {
        mode: "tcp",
        target,
        expect,
    }
}

const fn udp(target: &'static str, expect: &'static [&'static str]) -> Probe {
    Probe {
        mode: "udp",
        target,
        expect,
    }
}

const REFUSED: &[&str] = &["errno 111"];
const UNREACHABLE: &[&str] = &["errno 101"];

const CASES: &[Case] = &[
    Case {
        name: "multi-port ClusterIP with a named targetPort",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports: [{name: http, port: 80, targetPort: http}, {name: alt, port: 81, targetPort: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: alt, port: 8081}]
endpoints:
  - addresses: [10.250.0.11]
  - addresses: [10.250.0.12]
"#,
        probes: &[
            tcp("10.96.0.100:80", &["10.250.0.11:8080", "10.250.0.12:8080"]),
            tcp("10.96.0.100:81", &["10.250.0.11:8081", "10.250.0.12:8081"]),
            // An IPv6 socket reaching the IPv4 VIP through a v4-mapped address.
            tcp(
                "[::ffff:10.96.0.100]:80",
                &["10.250.0.11:8080", "10.250.0.12:8080"],
            ),
        ],
    },
    Case {
        name: "a named port resolves to a different number per endpoint",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.250.0.11]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-b, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8081}]
endpoints: [{addresses: [10.250.0.12]}]
"#,
        probes: &[tcp(
            "10.96.0.100:80",
            &["10.250.0.11:8080", "10.250.0.12:8081"],
        )],
    },
    Case {
        name: "the same port number on TCP and UDP",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  clusterIP: 10.96.0.53
  ports: [{name: tcp, port: 53, protocol: TCP, targetPort: 8080}, {name: udp, port: 53, protocol: UDP, targetPort: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: dns-a, namespace: default, labels: {kubernetes.io/service-name: dns}}
addressType: IPv4
ports: [{name: tcp, port: 8080, protocol: TCP}, {name: udp, port: 8081, protocol: UDP}]
endpoints: [{addresses: [10.250.0.13]}]
"#,
        probes: &[
            tcp("10.96.0.53:53", &["10.250.0.13:8080"]),
            udp("10.96.0.53:53", &["10.250.0.13:8081"]),
        ],
    },
    Case {
        name: "not-ready endpoints are left out",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.250.0.11]
    conditions: {ready: true}
  - addresses: [10.250.0.12]
    conditions: {ready: false}
"#,
        probes: &[tcp("10.96.0.100:80", &["10.250.0.11:8080"])],
    },
    Case {
        name: "serving and terminating endpoints are the fallback when none is ready",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.250.0.11]
    conditions: {ready: false, serving: true, terminating: true}
  - addresses: [10.250.0.12]
    conditions: {ready: false, serving: false, terminating: true}
"#,
        probes: &[tcp("10.96.0.100:80", &["10.250.0.11:8080"])],
    },
    Case {
        name: "publishNotReadyAddresses uses not-ready endpoints",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  publishNotReadyAddresses: true
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.250.0.12]
    conditions: {ready: false}
"#,
        probes: &[tcp("10.96.0.100:80", &["10.250.0.12:8080"])],
    },
    Case {
        name: "internalTrafficPolicy Local uses this node's endpoints",
        node: "node-1",
        manifest: LOCAL_POLICY,
        probes: &[tcp("10.96.0.100:80", &["10.250.0.11:8080"])],
    },
    Case {
        name: "internalTrafficPolicy Local without a local endpoint refuses",
        node: "node-3",
        manifest: LOCAL_POLICY,
        probes: &[
            tcp("10.96.0.100:80", REFUSED),
            udp("10.96.0.100:80", REFUSED),
        ],
    },
    Case {
        name: "no endpoints refuses at once; an undefined port is refused too",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.101
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.250.0.11]}]
"#,
        probes: &[
            tcp("10.96.0.100:80", REFUSED),
            tcp("10.96.0.101:80", &["10.250.0.11:8080"]),
            tcp("10.96.0.101:9999", REFUSED),
            udp("10.96.0.101:80", REFUSED),
        ],
    },
    Case {
        name: "headless, ExternalName and services of another proxy get no VIP",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: example.com
  clusterIP: 10.96.0.102
---
apiVersion: v1
kind: Service
metadata:
  name: other
  namespace: default
  labels: {service.kubernetes.io/service-proxy-name: someone-else}
spec:
  clusterIP: 10.96.0.103
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-a, namespace: default, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.250.0.11]}]
"#,
        probes: &[
            tcp("10.96.0.102:80", UNREACHABLE),
            tcp("10.96.0.103:80", UNREACHABLE),
        ],
    },
    Case {
        name: "dual-stack service: IPv4 and IPv6 VIPs reach backends of their family",
        node: "node-1",
        manifest: r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  clusterIPs: [10.96.0.100, "fd00:96::100"]
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP, targetPort: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-4, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.250.0.11]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-6, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
ports: [{name: http, port: 8080}, {name: dns, port: 8081, protocol: UDP}]
endpoints: [{addresses: ["fd00:250::11"]}, {addresses: ["fd00:250::12"]}]
"#,
        probes: &[
            tcp("10.96.0.100:80", &["10.250.0.11:8080"]),
            tcp(
                "[fd00:96::100]:80",
                &["[fd00:250::11]:8080", "[fd00:250::12]:8080"],
            ),
            udp(
                "[fd00:96::100]:53",
                &["[fd00:250::11]:8081", "[fd00:250::12]:8081"],
            ),
            udp("[fd00:96::100]:80", REFUSED),
        ],
    },
];

const LOCAL_POLICY: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  internalTrafficPolicy: Local
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - {addresses: [10.250.0.11], nodeName: node-1}
  - {addresses: [10.250.0.12], nodeName: node-2}
"#;

#[test]
fn ebpf_proxy_scenarios() {
    if !strait_tests::require_root() {
        return;
    }
    let mut fx = ProxyFixture::new();
    let mut failures = Vec::new();
    for case in CASES {
        fx.apply(case.manifest, case.node);
        for probe in case.probes {
            // Enough attempts that every expected backend shows up.
            let seen = fx.probe(probe.mode, probe.target, 24);
            let got = outcome(&seen);
            if got != probe.expect {
                failures.push(format!(
                    "{}: {} {} expected {:?}, got {:?}",
                    case.name, probe.mode, probe.target, probe.expect, got
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
    // Sanity on the error constants the table uses.
    assert_eq!((ECONNREFUSED, ENETUNREACH), (111, 101));
}
