//! The lab controller (`strait lab controller`, started by `up`): follows the
//! manifest directory and reconciles the lab on every change, so scaling a
//! Deployment's pods or flipping a pod's readiness in the YAML reaches the
//! proxy, DNS and ingress within about a second.
use std::time::Duration;

use strait_cluster::{ManifestLoader, Object};

use crate::error::Result;
use crate::paths::LabPaths;
use crate::process;
use crate::reconcile::reconcile;
use crate::state::{LabLock, LabState};

/// How often the manifest directory is re-read (only changed files are parsed).
pub const POLL: Duration = Duration::from_millis(250);

/// Runs until killed (`strait lab down` stops it).
pub fn run(paths: &LabPaths) -> Result<()> {
    let Some(state) = LabState::load(paths)? else {
        return Err(crate::LabError::State(
            "no lab state file: the controller only runs under `strait lab up`".into(),
        ));
    };
    let mut loader = ManifestLoader::new(&state.manifests);
    let mut last: Option<Vec<Object>> = None;
    let mut reported_errors = 0usize;
    tracing::info!(manifests = %state.manifests.display(), "lab controller following manifests");
    loop {
        process::reap();
        let report = loader.reload();
        if report.errors.len() != reported_errors {
            for e in &report.errors {
                tracing::warn!(error = %e, "manifest error; that file keeps its last good contents");
            }
            reported_errors = report.errors.len();
        }
        if last.as_ref() != Some(&report.objects) {
            let _lock = LabLock::acquire(paths)?;
            let Some(mut state) = LabState::load(paths)? else {
                tracing::info!("lab state removed; controller exiting");
                return Ok(());
            };
            let outcome = reconcile(&mut state, paths, report.objects.clone(), &mut |_, _, _| {})?;
            tracing::info!(
                added = ?outcome.added,
                removed = ?outcome.removed,
                problems = ?outcome.problems,
                "reconciled the lab with its manifests"
            );
            last = Some(report.objects);
        }
        std::thread::sleep(POLL);
    }
}
