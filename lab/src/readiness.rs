//! Whether a lab pod counts as ready. A real cluster learns this from probes;
//! the lab reads an annotation so a manifest can show a not-ready pod.
use strait_cluster::k8s_openapi::api::core::v1::Pod;

/// `lab.strait.dev/ready: "false"` marks a pod not ready in the lab. A real
/// cluster ignores the annotation, so the same manifest applies unchanged.
pub const READY_ANNOTATION: &str = "lab.strait.dev/ready";

/// The pod's readiness: the lab annotation if present, else the pod's Ready
/// condition if it has a status, else ready.
pub fn pod_ready(pod: &Pod) -> bool {
    if let Some(v) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(READY_ANNOTATION))
    {
        return !v.trim().eq_ignore_ascii_case("false");
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_none_or(|c| c.status == "True")
}
