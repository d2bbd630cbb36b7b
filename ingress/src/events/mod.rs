//! Kubernetes Events for Ingress problems: an operator running `kubectl
//! describe ingress` sees why a rule, a TLS section or an annotation is not
//! served (as with ingress-nginx), not only the controller's log. Only new
//! problems are recorded; kube's recorder folds repeats into a series.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use strait_cluster::k8s_openapi::api::core::v1::ObjectReference;
use strait_cluster::k8s_openapi::api::networking::v1::Ingress;
use strait_cluster::{ClusterSnapshot, ObjectKey};
use tokio::sync::{mpsc, watch};

use crate::build::Problem;

/// How many unrecorded events may wait; beyond that new ones are dropped
/// (and still logged), so a flood of problems never blocks reloads.
const QUEUE: usize = 256;

/// The reporting controller's name in the Events.
pub const CONTROLLER: &str = "strait-ingress";

/// Where the reload loop hands new problems; `None` when events are off.
#[derive(Clone)]
pub(crate) struct EventSink(mpsc::Sender<(ObjectReference, String)>);

/// A sink and the receiving end for [`run`].
pub(crate) fn channel() -> (EventSink, mpsc::Receiver<(ObjectReference, String)>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (EventSink(tx), rx)
}

impl EventSink {
    /// Queues a Warning event for each problem whose Ingress is in
    /// `snapshot` (a problem for an Ingress already gone has no object to
    /// attach to).
    pub(crate) fn problems(&self, snapshot: &ClusterSnapshot, problems: &[Problem]) {
        for p in problems {
            let Some(reference) = reference(snapshot, &p.ingress) else {
                continue;
            };
            if self.0.try_send((reference, p.message.clone())).is_err() {
                tracing::debug!(ingress = %p.ingress, "event queue full; problem only logged");
            }
        }
    }
}

/// The object reference of Ingress `namespace/name` (uid included, so the
/// event attaches to this incarnation of it).
fn reference(snapshot: &ClusterSnapshot, ingress: &str) -> Option<ObjectReference> {
    let (namespace, name) = ingress.split_once('/')?;
    let object = snapshot.get::<Ingress>(&ObjectKey::namespaced(namespace, name))?;
    Some(object.object_ref(&()))
}

/// Records queued problems as Warning events until `shutdown`. Failures
/// (RBAC, API down) are logged and the next problem is tried.
pub(crate) async fn run(
    client: kube::Client,
    instance: Option<String>,
    mut queue: mpsc::Receiver<(ObjectReference, String)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: CONTROLLER.into(),
            instance,
        },
    );
    loop {
        let (reference, message) = tokio::select! {
            next = queue.recv() => match next {
                Some(next) => next,
                None => return,
            },
            () = crate::reload::stopped(&mut shutdown) => return,
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "InvalidConfiguration".into(),
            note: Some(truncate(&message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        let name = reference.name.clone().unwrap_or_default();
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(
                ingress = %name,
                %error,
                "cannot record an event (does the role grant create and patch on events.k8s.io events?)"
            );
        }
    }
}

/// At most `max` bytes, cut at a character boundary (the API's note limit
/// is 1 kB).
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests;
