//! Synthetic but realistic cluster workloads, generated as the YAML an
//! operator would apply, so benchmarks exercise the real parsing path.
use std::fmt::Write as _;

/// Endpoints per service in the standard workload (as in the proxy issue).
pub const ENDPOINTS_PER_SERVICE: usize = 5;

/// `services` ClusterIP Services in namespace `bench`, each with one
/// EndpointSlice of [`ENDPOINTS_PER_SERVICE`] ready endpoints.
pub fn services_yaml(services: usize) -> String {
    let mut out = String::with_capacity(services * 1200);
    for i in 0..services {
        let vip = [10, 96 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
        // Infallible: writing to a String.
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: bench\n\
             spec:\n  clusterIP: {}.{}.{}.{}\n  selector:\n    app: svc-{i}\n  ports:\n\
             \x20   - name: http\n      port: 80\n      targetPort: http\n      protocol: TCP\n",
            vip[0], vip[1], vip[2], vip[3]
        );
        let _ = write!(
            out,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{i}-abcde\n\
             \x20 namespace: bench\n  labels:\n    kubernetes.io/service-name: svc-{i}\naddressType: IPv4\n\
             ports:\n  - name: http\n    port: 8080\n    protocol: TCP\nendpoints:\n"
        );
        for e in 0..ENDPOINTS_PER_SERVICE {
            let n = i * ENDPOINTS_PER_SERVICE + e;
            let _ = write!(
                out,
                "  - addresses: [\"10.244.{}.{}\"]\n    conditions: {{ready: true}}\n    nodeName: node-{}\n",
                (n >> 8) & 0xff,
                n & 0xff,
                e % 2
            );
        }
    }
    out
}
