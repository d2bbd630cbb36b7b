//! The external datapath over IPv6, in the dual-stack two-node lab of
//! `nodeport/`: client fd00:250::1, node-1 fd00:250::2, node-2
//! fd00:250::3, pods fd00:244:1::10 and fd00:244:2::10. The same checks as
//! the IPv4 tests: NodePorts through either node reach pods on both (SNAT
//! to the node's IPv6 address for a remote pod), a LoadBalancer IP picks
//! the same backend through either node, `externalTrafficPolicy: Local`
//! keeps the client address and drops without a local endpoint, no
//! endpoints is refused at once, a UDP flow moves off a removed backend,
//! and `loadBalancerSourceRanges` hold for IPv6 clients. A dual-stack
//! Service answers on one NodePort in both families.
mod nodeport;

use std::net::{IpAddr, SocketAddr};

use nodeport::scenarios::{self, API_NODE_PORT, Family};
use nodeport::{
    BOTH, BOTH6, CLIENT6, HTTP_8080, LB_IP6, NODE1, NODE1_6, NODE2_6, endpoint, lab, service, slice,
};

/// The `loadBalancerSourceRanges` of `ranged`: the client is outside.
const RANGE6: &str = "2001:db8::/32";

/// The IPv6 services (ports as in [`scenarios`]); `api` is dual-stack,
/// with `api_endpoints` as its IPv6 endpoints.
fn manifest(api_endpoints: &[(&str, &str)]) -> String {
    let api_ports = "[{name: http, port: 8080}, {name: dns, port: 8080, protocol: UDP}]";
    let api = service(
        "api",
        &[
            "type: LoadBalancer",
            "ipFamilyPolicy: RequireDualStack",
            "ipFamilies: [IPv4, IPv6]",
            "clusterIPs: [10.96.0.111, 'fd00:96::111']",
            "ports:",
            "  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}",
            "  - {name: dns, port: 53, targetPort: 8080, nodePort: 30053, protocol: UDP}",
        ],
        Some(IpAddr::V6(LB_IP6)),
        api_ports,
        &BOTH.iter().map(endpoint).collect::<Vec<_>>(),
    );
    let api_v6_slice = slice(
        "api",
        "b",
        "IPv6",
        api_ports,
        &api_endpoints.iter().map(endpoint).collect::<Vec<_>>(),
    );
    let single = |name: &str, ip: &str, extra: &[&str], lb: bool, eps: &[(&str, &str)]| {
        let mut spec = vec![
            "ipFamilies: [IPv6]".to_string(),
            format!("clusterIP: '{ip}'"),
        ];
        spec.extend(extra.iter().map(|s| s.to_string()));
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        service(
            name,
            &spec,
            lb.then_some(IpAddr::V6(LB_IP6)),
            HTTP_8080,
            &eps.iter().map(endpoint).collect::<Vec<_>>(),
        )
    };
    [
        api,
        api_v6_slice,
        single(
            "edge",
            "fd00:96::112",
            &[
                "type: NodePort",
                "externalTrafficPolicy: Local",
                "ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]",
            ],
            false,
            &BOTH6[..1],
        ),
        single(
            "ranged",
            "fd00:96::113",
            &[
                "type: LoadBalancer",
                &format!("loadBalancerSourceRanges: ['{RANGE6}']"),
                "ports: [{name: http, port: 8080, targetPort: 8080, nodePort: 30082}]",
            ],
            true,
            &BOTH6[..1],
        ),
        single(
            "sticky",
            "fd00:96::115",
            &[
                "type: NodePort",
                "sessionAffinity: ClientIP",
                "sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}",
                "ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30083}]",
            ],
            false,
            BOTH6,
        ),
        single(
            "empty",
            "fd00:96::114",
            &[
                "type: NodePort",
                "ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30099}]",
            ],
            false,
            &[],
        ),
    ]
    .join("---\n")
}

const V6: Family = Family {
    client: IpAddr::V6(CLIENT6),
    nodes: [IpAddr::V6(NODE1_6), IpAddr::V6(NODE2_6)],
    lb: IpAddr::V6(LB_IP6),
    pods: [BOTH6[0], BOTH6[1]],
    manifest,
    range: RANGE6,
    client_range: "fd00:250::/64",
};

#[test]
fn ebpf_v6_nodeport_via_either_node_reaches_pods_on_both_nodes() {
    if strait_tests::require_root() {
        scenarios::nodeport_reaches_pods_on_both_nodes(&V6);
    }
}

#[test]
fn ebpf_v6_loadbalancer_ip_picks_the_same_backend_through_either_node() {
    if strait_tests::require_root() {
        scenarios::lb_ip_picks_the_same_backend_through_either_node(&V6);
    }
}

#[test]
fn ebpf_v6_local_policy_keeps_the_client_address_and_drops_without_local_endpoints() {
    if strait_tests::require_root() {
        scenarios::local_policy_keeps_the_client_and_drops_without_local_endpoints(&V6);
    }
}

#[test]
fn ebpf_v6_nodeport_without_endpoints_is_refused_at_once() {
    if strait_tests::require_root() {
        scenarios::nodeport_without_endpoints_is_refused_at_once(&V6);
    }
}

#[test]
fn ebpf_v6_udp_flow_moves_when_its_backend_is_removed() {
    if strait_tests::require_root() {
        scenarios::udp_flow_moves_when_its_backend_is_removed(&V6);
    }
}

#[test]
fn ebpf_v6_load_balancer_source_ranges_drop_other_clients() {
    if strait_tests::require_root() {
        scenarios::source_ranges_drop_other_clients(&V6);
    }
}

#[test]
fn ebpf_v6_client_ip_affinity_pins_an_external_client_across_connections() {
    if strait_tests::require_root() {
        scenarios::client_ip_affinity_pins_an_external_client(&V6);
    }
}

#[test]
fn ebpf_dual_stack_service_answers_on_one_node_port_in_both_families() {
    if !strait_tests::require_root() {
        return;
    }
    let lab = lab(&manifest(BOTH6));
    for node in [IpAddr::V4(NODE1), IpAddr::V6(NODE1_6)] {
        let reply = nodeport::ask(&lab, SocketAddr::new(node, API_NODE_PORT), 0)
            .unwrap_or_else(|e| panic!("NodePort via {node}: {e}"));
        assert_eq!(
            reply.peer.is_ipv4(),
            node.is_ipv4(),
            "the backend of the client's family answered: {reply:?}"
        );
    }
}
