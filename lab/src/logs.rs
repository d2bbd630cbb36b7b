//! `strait lab logs COMPONENT`: a component's log file (an agent, the
//! controller, or any pod by name).
use std::path::PathBuf;

use crate::error::{LabError, Result};
use crate::paths::LabPaths;
use crate::state::LabState;

/// The log file of `component`: `controller`, `agent-<node>`, a pod name,
/// `NAMESPACE/POD`, or `dns` / `ingress`.
pub fn log_file(paths: &LabPaths, component: &str) -> Result<PathBuf> {
    let state = LabState::load(paths)?.ok_or_else(|| {
        LabError::State("no lab is running; start one with `strait lab up`".into())
    })?;
    if let Some(p) = state.processes.get(component) {
        return Ok(p.log.clone());
    }
    match state.find_pod(component) {
        Ok(pod) => Ok(paths.log_file(&format!("pod-{}-{}", pod.namespace, pod.name))),
        Err(_) => Err(LabError::State(format!(
            "no component {component:?}; try one of: {}, or a pod name",
            state
                .processes
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
