//! The watches: each kind of object the fleet reads is a reflector kept current by a
//! watch, restarted with backoff; what they report (listed, failing and why, changed) is
//! gathered in one [`Signal`].

use super::Signal;
use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::task::JoinHandle;

/// Starts a reflector over `api`: its store, and the task that drives it (pushed on
/// `tasks`), reporting through `signal` under `key`.
pub(super) fn spawn_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    key: String,
    signal: &Arc<Signal>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    Signal::lock(&signal.syncing).insert(key.clone());
    let stream = watcher(api, config).default_backoff().modify(slim).reflect(writer);
    tasks.push(tokio::spawn(drive(stream, key, signal.clone(), |_| {})));
    store
}

/// Consumes a watch stream: hands each event to `on_event` and keeps `signal` current
/// (which watches have listed, which are failing and why, whether anything changed).
pub(super) async fn drive<K>(
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    key: String,
    signal: Arc<Signal>,
    mut on_event: impl FnMut(watcher::Event<K>),
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                // `Init` starts a (re)list, which may still fail: only what follows it
                // shows the watch is healthy again.
                if !matches!(event, watcher::Event::Init) && Signal::lock(&signal.errors).remove(&key).is_some() {
                    tracing::info!(watch = %key, "watch recovered");
                }
                if matches!(event, watcher::Event::InitDone) {
                    Signal::lock(&signal.syncing).remove(&key);
                }
                on_event(event);
                signal.dirty.store(true, Ordering::Release);
            }
            Err(e) => {
                let reason = describe_watch_error(&e);
                let previous = Signal::lock(&signal.errors).insert(key.clone(), reason.clone());
                if previous.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(watch = %key, error = %e, "watch failed; retrying with backoff");
                }
                signal.dirty.store(true, Ordering::Release);
            }
        }
    }
}

/// A watch failure as the page says it: forbidden, unreachable, or what kube said.
fn describe_watch_error(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            if s.code == 403 =>
        {
            format!("forbidden: {}", s.message)
        }
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            format!("cluster unreachable: {e}")
        }
        other => other.to_string(),
    }
}
