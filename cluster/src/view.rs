//! The handle consumers hold ([`ClusterView`]) and the handle sources write
//! through ([`Publisher`]).

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::ClusterError;
use crate::kind::{Kind, KindSet, Object, ObjectKey};
use crate::snapshot::{ClusterSnapshot, SnapshotBuilder};
use crate::source::ClusterSource;

/// The write side of a [`ClusterView`]: sources apply, delete and replace
/// objects and mark kinds synced through it.
///
/// It exists so every source produces snapshots the same way. Each call that
/// changes something publishes one new snapshot with a higher generation; a
/// call that changes nothing (an identical object re-applied, a relist with
/// the same contents) publishes nothing and wakes no consumer. Use
/// [`update`](Self::update) to publish many changes as one snapshot.
pub struct Publisher {
    builder: SnapshotBuilder,
    tx: watch::Sender<ClusterSnapshot>,
}

impl Publisher {
    /// Adds or replaces one object and publishes. Returns whether anything changed.
    pub fn apply(&mut self, object: impl Into<Object>) -> bool {
        self.update(|b| b.apply(object))
    }

    /// Removes one object and publishes. Returns whether it existed.
    pub fn delete(&mut self, kind: Kind, key: &ObjectKey) -> bool {
        self.update(|b| b.delete(kind, key))
    }

    /// Replaces all objects of `kinds` atomically and publishes (see
    /// [`SnapshotBuilder::replace`]). Returns whether anything changed.
    pub fn replace(&mut self, kinds: KindSet, objects: impl IntoIterator<Item = Object>) -> bool {
        self.update(|b| b.replace(kinds, objects))
    }

    /// Records that `kind` completed its initial list and publishes.
    pub fn mark_synced(&mut self, kind: Kind) -> bool {
        self.update(|b| b.mark_synced(kind))
    }

    /// Runs `f` against the working state and publishes the result as a single
    /// snapshot if anything changed. Consumers never see a state in the middle
    /// of `f`.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut SnapshotBuilder) -> R) -> R {
        let result = f(&mut self.builder);
        if self.builder.is_dirty() {
            let snapshot = self.builder.build();
            self.tx.send_replace(snapshot);
        }
        result
    }

    /// The last published snapshot.
    pub fn snapshot(&self) -> ClusterSnapshot {
        self.tx.borrow().clone()
    }

    /// Whether every view handle was dropped (a source may stop then).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when every view handle was dropped.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// Keeps a view's producer alive: aborts the source task when the last view
/// handle goes, or holds the sender of a static view.
enum Keepalive {
    Task(tokio::task::AbortHandle),
    Static(#[allow(dead_code)] watch::Sender<ClusterSnapshot>),
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        if let Keepalive::Task(handle) = self {
            handle.abort();
        }
    }
}

/// The consumers' handle on the cluster: the current [`ClusterSnapshot`] plus
/// notification of new ones.
///
/// It exists so the proxy, DNS, ingress and lab all read one typed view,
/// whatever the source. It is cheap to clone; every clone tracks "seen"
/// snapshots independently.
///
/// Lifetime: a view made by [`spawn`](Self::spawn) owns the source task and
/// aborts it when the last clone of the view is dropped. If the source task
/// ends on its own (a fatal error, logged), [`changed`](Self::changed) returns
/// [`ClusterError::SourceStopped`] while [`snapshot`](Self::snapshot) keeps
/// returning the last state.
#[derive(Clone)]
pub struct ClusterView {
    rx: watch::Receiver<ClusterSnapshot>,
    _keepalive: Option<Arc<Keepalive>>,
}

impl ClusterView {
    /// Runs `source` on the current tokio runtime and returns its view.
    ///
    /// # Panics
    /// Panics when called outside a tokio runtime (as `tokio::spawn` does).
    pub fn spawn<S: ClusterSource>(source: S) -> ClusterView {
        ClusterView::spawn_boxed(Box::new(source))
    }

    /// [`spawn`](Self::spawn) for an already boxed source (binaries choose the
    /// source at run time).
    ///
    /// # Panics
    /// Panics when called outside a tokio runtime.
    pub fn spawn_boxed(source: Box<dyn ClusterSource>) -> ClusterView {
        let (publisher, mut view) = ClusterView::channel(source.kinds());
        let name = source.name().to_owned();
        let task = tokio::spawn(async move {
            tracing::info!(source = %name, "cluster source started");
            match source.run(publisher).await {
                Ok(()) => tracing::info!(source = %name, "cluster source finished"),
                Err(error) => tracing::error!(source = %name, %error, "cluster source failed"),
            }
        });
        view._keepalive = Some(Arc::new(Keepalive::Task(task.abort_handle())));
        view
    }

    /// A publisher and its view, for sources driven by hand (tests, the lab).
    /// The view's snapshot is synced once every kind in `watched` was marked
    /// synced. [`changed`](Self::changed) fails once the publisher is dropped.
    pub fn channel(watched: KindSet) -> (Publisher, ClusterView) {
        let (tx, rx) = watch::channel(ClusterSnapshot::empty(watched));
        let publisher = Publisher {
            builder: SnapshotBuilder::new(watched),
            tx,
        };
        (
            publisher,
            ClusterView {
                rx,
                _keepalive: None,
            },
        )
    }

    /// A view that always shows `snapshot` (tests and benchmarks);
    /// [`changed`](Self::changed) never resolves.
    pub fn from_snapshot(snapshot: ClusterSnapshot) -> ClusterView {
        let (tx, rx) = watch::channel(snapshot);
        ClusterView {
            rx,
            _keepalive: Some(Arc::new(Keepalive::Static(tx))),
        }
    }

    /// The current snapshot (cheap: one reference count increment). Does not
    /// mark it seen for [`changed`](Self::changed).
    pub fn snapshot(&self) -> ClusterSnapshot {
        self.rx.borrow().clone()
    }

    /// Waits for a snapshot newer than the last one this handle returned from
    /// `changed`/`wait_synced`, and returns it. Intermediate snapshots may be
    /// skipped; use [`ClusterSnapshot::changes_since`] to learn what changed.
    pub async fn changed(&mut self) -> Result<ClusterSnapshot, ClusterError> {
        self.rx
            .changed()
            .await
            .map_err(|_| ClusterError::SourceStopped)?;
        Ok(self.rx.borrow_and_update().clone())
    }

    /// Waits until the snapshot is synced (every watched kind completed its
    /// initial list) and returns it.
    pub async fn wait_synced(&mut self) -> Result<ClusterSnapshot, ClusterError> {
        let snapshot = self
            .rx
            .wait_for(|s| s.synced())
            .await
            .map_err(|_| ClusterError::SourceStopped)?;
        Ok(snapshot.clone())
    }
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("snapshot", &*self.rx.borrow())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::time::Duration;

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn publisher_changes_reach_view() {
        let (mut publisher, mut view) = ClusterView::channel(KindSet::only(Kind::Node));
        assert_eq!(view.snapshot().generation(), 0);
        assert!(publisher.apply(node("a")));
        let s1 = view.changed().await.unwrap();
        assert_eq!(s1.nodes().len(), 1);
        assert!(!s1.synced());
        // identical object: no new snapshot
        assert!(!publisher.apply(node("a")));
        assert_eq!(publisher.snapshot().generation(), s1.generation());
        publisher.update(|b| {
            b.apply(node("b"));
            b.mark_synced(Kind::Node);
        });
        let s2 = view.wait_synced().await.unwrap();
        assert_eq!(s2.generation(), s1.generation() + 1);
        assert_eq!(s2.nodes().len(), 2);
        drop(publisher);
        assert!(matches!(
            view.changed().await,
            Err(ClusterError::SourceStopped)
        ));
        // the last state stays readable
        assert_eq!(view.snapshot().nodes().len(), 2);
    }

    #[tokio::test]
    async fn static_view_never_changes() {
        let view =
            ClusterView::from_snapshot(ClusterSnapshot::from_objects(vec![node("a").into()]));
        let mut v2 = view.clone();
        assert!(view.snapshot().synced());
        let r = tokio::time::timeout(Duration::from_millis(50), v2.changed()).await;
        assert!(r.is_err(), "a static view must not report changes");
    }

    struct Forever(tokio::sync::oneshot::Sender<()>);
    struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    impl ClusterSource for Forever {
        fn name(&self) -> &str {
            "forever"
        }
        fn run(
            self: Box<Self>,
            mut publisher: Publisher,
        ) -> BoxFuture<'static, Result<(), ClusterError>> {
            Box::pin(async move {
                let _signal = DropSignal(Some(self.0));
                publisher.apply(node("x"));
                for kind in Kind::ALL {
                    publisher.mark_synced(kind);
                }
                futures::future::pending::<()>().await;
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn dropping_last_view_aborts_source() {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let mut view = ClusterView::spawn(Forever(tx));
        let snap = view.wait_synced().await.unwrap();
        assert_eq!(snap.nodes().len(), 1);
        let clone = view.clone();
        drop(view);
        // still one handle: the source keeps running
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(
            rx.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ));
        drop(clone);
        tokio::time::timeout(Duration::from_secs(2), rx)
            .await
            .expect("source task was not aborted")
            .unwrap();
    }

    struct Failing;
    impl ClusterSource for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn run(
            self: Box<Self>,
            _publisher: Publisher,
        ) -> BoxFuture<'static, Result<(), ClusterError>> {
            Box::pin(async { Err(ClusterError::SourceStopped) })
        }
    }

    #[tokio::test]
    async fn failed_source_is_reported() {
        let mut view = ClusterView::spawn(Failing);
        assert!(view.wait_synced().await.is_err());
    }
}
