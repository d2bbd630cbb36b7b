//! The Kubernetes API source: one kube-rs watcher per kind.

use std::fmt::Debug;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use crate::error::ClusterError;
use crate::kind::{Kind, KindSet, Object};
use crate::trim::Trim;
use crate::view::Publisher;

/// The field selector for Secrets: the view only needs TLS secrets (ingress
/// certificates), so it asks for nothing else (least privilege, less memory).
pub const TLS_SECRET_FIELD_SELECTOR: &str = "type=kubernetes.io/tls";

/// What a [`KubeSource`] watches.
///
/// It exists because components need different kinds: the proxy needs
/// Services, EndpointSlices and Nodes; DNS needs Services, EndpointSlices and
/// maybe Pods; ingress needs Ingresses, IngressClasses, Secrets and Services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeConfig {
    /// The kinds to watch; the view is synced once all of them listed.
    pub kinds: KindSet,
    /// When set, Pods are watched with `spec.nodeName=<node>` (an agent only
    /// needs its own node's pods).
    pub node_name: Option<String>,
    /// When set, every object is cut down with it as it arrives, before it is
    /// buffered or stored; otherwise only `metadata.managedFields` is dropped.
    pub trim: Option<Trim>,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            kinds: KindSet::ALL,
            node_name: None,
            trim: None,
        }
    }
}

impl KubeConfig {
    /// A config watching `kinds` on all nodes.
    pub fn new(kinds: KindSet) -> KubeConfig {
        KubeConfig {
            kinds,
            ..KubeConfig::default()
        }
    }

    /// Cuts every object down with `trim` (builder style).
    #[must_use]
    pub fn with_trim(mut self, trim: Trim) -> KubeConfig {
        self.trim = Some(trim);
        self
    }

    /// Restricts the Pod watch to `node` (builder style).
    #[must_use]
    pub fn with_node_name(mut self, node: impl Into<String>) -> KubeConfig {
        self.node_name = Some(node.into());
        self
    }

    /// The watcher configuration (selectors) for `kind`.
    pub fn watcher_config(&self, kind: Kind) -> watcher::Config {
        let config = watcher::Config::default();
        match kind {
            Kind::Secret => config.fields(TLS_SECRET_FIELD_SELECTOR),
            Kind::Pod => match &self.node_name {
                Some(node) => config.fields(&format!("spec.nodeName={node}")),
                None => config,
            },
            _ => config,
        }
    }
}

/// A [`ClusterSource`](crate::ClusterSource) that watches a Kubernetes API server.
///
/// It exists to feed the view from a real cluster. Each kind has a kube-rs
/// `watcher` with the default backoff. The initial list (and every relist,
/// e.g. after `410 Gone`) is buffered and replaces the kind atomically, so
/// consumers never see a half-listed kind; later events apply one by one
/// (batched when they arrive together). A watch error is logged and the
/// last-known state keeps being served while the watcher retries.
pub struct KubeSource {
    client: Client,
    config: KubeConfig,
}

impl KubeSource {
    /// A source using `client` (tests pass a client over a mock service).
    pub fn new(client: Client, config: KubeConfig) -> KubeSource {
        KubeSource { client, config }
    }

    /// A source with a client from the in-cluster service account or
    /// `KUBECONFIG`.
    pub async fn try_default(config: KubeConfig) -> Result<KubeSource, ClusterError> {
        let client = Client::try_default()
            .await
            .map_err(ClusterError::KubeClient)?;
        Ok(KubeSource::new(client, config))
    }

    fn streams(&self) -> SelectAll<BoxStream<'static, (Kind, WatchResult)>> {
        let mut all = SelectAll::new();
        for kind in self.config.kinds.iter() {
            let config = self.config.watcher_config(kind);
            let client = self.client.clone();
            let trim = self.config.trim;
            let stream = match kind {
                Kind::Service => watch_kind::<Service>(client, config, trim),
                Kind::EndpointSlice => watch_kind::<EndpointSlice>(client, config, trim),
                Kind::Ingress => watch_kind::<Ingress>(client, config, trim),
                Kind::IngressClass => watch_kind::<IngressClass>(client, config, trim),
                Kind::Secret => watch_kind::<Secret>(client, config, trim),
                Kind::Node => watch_kind::<Node>(client, config, trim),
                Kind::Pod => watch_kind::<Pod>(client, config, trim),
            };
            all.push(stream.map(move |r| (kind, r)).boxed());
        }
        all
    }

    async fn run_inner(self, mut publisher: Publisher) -> Result<(), ClusterError> {
        let mut events = self.streams().ready_chunks(1024);
        let mut init_buffers: [Option<Vec<Object>>; 7] = Default::default();
        loop {
            let batch = tokio::select! {
                batch = events.next() => match batch {
                    Some(b) => b,
                    None => return Ok(()),
                },
                _ = publisher.closed() => return Ok(()),
            };
            publisher.update(|b| {
                for (kind, result) in batch {
                    let buffer = &mut init_buffers[kind as usize];
                    match result {
                        Ok(watcher::Event::Init) => *buffer = Some(Vec::new()),
                        Ok(watcher::Event::InitApply(o)) => buffer.get_or_insert_default().push(o),
                        Ok(watcher::Event::InitDone) => {
                            let objects = buffer.take().unwrap_or_default();
                            tracing::info!(kind = %kind, count = objects.len(), "listed");
                            b.replace(KindSet::only(kind), objects);
                            b.mark_synced(kind);
                        }
                        Ok(watcher::Event::Apply(o)) => {
                            b.apply(o);
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            if let Some(key) = o.key() {
                                b.delete(kind, &key);
                            }
                        }
                        Err(error) => tracing::warn!(
                            kind = %kind,
                            %error,
                            "watch failed; serving the last-known state and retrying with backoff"
                        ),
                    }
                }
            });
        }
    }
}

type WatchResult = Result<watcher::Event<Object>, watcher::Error>;

fn watch_kind<K>(
    client: Client,
    config: watcher::Config,
    trim: Option<Trim>,
) -> BoxStream<'static, WatchResult>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K: Into<Object>,
{
    watcher(Api::<K>::all(client), config)
        .default_backoff()
        .map_ok(move |event| {
            let event = match event {
                watcher::Event::Apply(o) => watcher::Event::Apply(o.into()),
                watcher::Event::Delete(o) => watcher::Event::Delete(o.into()),
                watcher::Event::InitApply(o) => watcher::Event::InitApply(o.into()),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitDone => watcher::Event::InitDone,
            };
            event.modify(|o: &mut Object| match trim {
                Some(trim) => trim.apply(o),
                // managed fields are large and no consumer reads them
                None => o.meta_mut().managed_fields = None,
            })
        })
        .boxed()
}

impl crate::source::ClusterSource for KubeSource {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn kinds(&self) -> KindSet {
        self.config.kinds
    }

    fn run(self: Box<Self>, publisher: Publisher) -> BoxFuture<'static, Result<(), ClusterError>> {
        Box::pin((*self).run_inner(publisher))
    }
}
