//! The Kubernetes backend (`--fleet kube`): gateways are the Deployments matching a
//! label selector, kept current by watches (kube-runtime reflectors), and changed the
//! way kubectl changes them (see `ops` and KUBERNETES.md).
//!
//! Reads never call the API server: they come from the reflectors' caches, so a cluster
//! that stops answering leaves the console serving the last known state with the reason
//! shown as a degraded backend, while the watches retry with backoff.

pub mod adapter;
mod deps;
pub mod dnsendpoint;
#[doc(hidden)]
pub mod fake;
pub mod logs;
pub mod ops;
pub mod view;
mod watches;

use super::{Change, Fleet, FleetError, FleetResult, GatewayInventory, GatewayState, RolloutState};
use app::dto::PodLogLine;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use ops::Target;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use view::Objects;
use watches::{drive, spawn_watch};

/// Default gateway selector, as in the runbook (`kubectl get pods -l app=api-gateway`).
pub const DEFAULT_SELECTOR: &str = "app=api-gateway";

/// How often watch events are coalesced into one "something changed" notification, so a
/// busy cluster does not rebuild the live snapshot for every pod event.
const COALESCE: Duration = Duration::from_millis(500);
/// Events shown per gateway.
const RECENT_EVENTS: usize = 20;
/// How often the inventory is rebuilt with nothing changed, so pod ages stay current.
const AGE_REFRESH: Duration = Duration::from_secs(5);

/// Where the cluster is and which gateways to watch.
#[derive(Clone, Debug, Default)]
pub struct KubeSettings {
    /// kubeconfig context; the current context (or in-cluster config) when absent.
    pub context: Option<String>,
    /// Namespaces to watch; the context's namespace when empty.
    pub namespaces: Vec<String>,
    /// Label selector of the gateway Deployments and their pods.
    pub selector: String,
}

/// A client for the configured cluster and the namespaces to watch.
pub async fn connect(settings: &KubeSettings) -> Result<(Client, Vec<String>), String> {
    let config = match &settings.context {
        Some(context) => {
            let options = kube::config::KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
            kube::Config::from_kubeconfig(&options).await.map_err(|e| format!("kubeconfig context '{context}': {e}"))?
        }
        None => kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    let namespaces = if settings.namespaces.is_empty() {
        vec![config.default_namespace.clone()]
    } else {
        settings.namespaces.clone()
    };
    let client = Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
    Ok((client, namespaces))
}

/// One namespace's caches.
struct Space {
    namespace: String,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Arc<RwLock<Index<Pod, view::PodRow>>>,
    hpas: Store<HorizontalPodAutoscaler>,
    events: Arc<RwLock<Index<k8s_openapi::api::core::v1::Event, EventEntry>>>,
}

impl Space {
    fn read<T>(&self, f: impl FnOnce(&Objects<'_>) -> T) -> T {
        let (deployments, replicasets, hpas) = (self.deployments.state(), self.replicasets.state(), self.hpas.state());
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        f(&Objects { deployments: &deployments, replicasets: &replicasets, pods: &pods.rows, hpas: &hpas })
    }
}

/// At most this many events are kept per namespace; the oldest go first.
const MAX_EVENTS: usize = 5_000;

/// An event row with the kind and name of the object it is about.
type EventEntry = (String, String, app::dto::EventRow);

/// Watched objects of one kind kept as compact rows by UID instead of API objects; a
/// relist builds `pending` and swaps it in when complete, as a reflector store does.
struct Index<K, R> {
    rows: HashMap<String, R>,
    pending: Option<HashMap<String, R>>,
    row: fn(&K) -> R,
    /// Bounds `rows` after each change.
    trim: fn(&mut HashMap<String, R>),
}

impl<K: Resource, R> Index<K, R> {
    fn new(row: fn(&K) -> R, trim: fn(&mut HashMap<String, R>)) -> Self {
        Index { rows: HashMap::new(), pending: None, row, trim }
    }

    fn apply(&mut self, event: watcher::Event<K>) {
        let uid = |k: &K| k.meta().uid.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => self.pending = Some(HashMap::new()),
            watcher::Event::InitApply(k) => {
                if let Some(pending) = self.pending.as_mut() {
                    pending.insert(uid(&k), (self.row)(&k));
                }
            }
            watcher::Event::InitDone => {
                if let Some(pending) = self.pending.take() {
                    self.rows = pending;
                    (self.trim)(&mut self.rows);
                }
            }
            watcher::Event::Apply(k) => {
                self.rows.insert(uid(&k), (self.row)(&k));
                (self.trim)(&mut self.rows);
            }
            watcher::Event::Delete(k) => {
                self.rows.remove(&uid(&k));
            }
        }
    }
}

/// Past [`MAX_EVENTS`], drops the oldest tenth at once (so trimming is rare).
fn trim_events(rows: &mut HashMap<String, EventEntry>) {
    if rows.len() <= MAX_EVENTS {
        return;
    }
    let mut times: Vec<i64> = rows.values().map(|(_, _, r)| r.ts_ms).collect();
    times.sort_unstable();
    let cutoff = times[rows.len() - MAX_EVENTS * 9 / 10];
    rows.retain(|_, (_, _, r)| r.ts_ms >= cutoff);
}

/// What the watches report: which have failed (and why) and which have not yet listed.
#[derive(Default)]
struct Signal {
    errors: Mutex<BTreeMap<String, String>>,
    syncing: Mutex<BTreeSet<String>>,
    dirty: AtomicBool,
}

impl Signal {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The Kubernetes fleet.
pub struct KubeFleet {
    client: Client,
    spaces: Vec<Space>,
    signal: Arc<Signal>,
    version: watch::Sender<u64>,
    /// The inventory, rebuilt in the background after changes (and every few seconds,
    /// for pod ages): requests never wait for a rebuild.
    cache: RwLock<Option<Arc<Vec<GatewayInventory>>>>,
    /// The last dependency map and when it was read.
    deps: tokio::sync::Mutex<Option<(std::time::Instant, app::dto::DependencyGraph)>>,
    /// Bytes a pod-log request may read.
    log_budget: RwLock<logs::Budget>,
}

impl KubeFleet {
    /// Starts watching `namespaces` for Deployments, ReplicaSets and pods matching
    /// `selector` and for every HPA; returns the fleet and its background tasks.
    /// Bounds what one pod-log request reads (`--pod-log-kb`, `--pod-log-total-kb`).
    pub fn set_log_budget(&self, budget: logs::Budget) {
        *self.log_budget.write().unwrap_or_else(|e| e.into_inner()) = budget;
    }

    pub fn start(client: Client, namespaces: &[String], selector: &str) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let signal = Arc::new(Signal::default());
        let (version, _) = watch::channel(0);
        let mut tasks = Vec::new();
        let labelled = watcher::Config::default().labels(selector);
        let spaces = namespaces
            .iter()
            .map(|ns| {
                let watch_kind = |kind: &str| format!("{ns}/{kind}");
                let deployments = spawn_watch(
                    Api::namespaced(client.clone(), ns),
                    labelled.clone(),
                    |d: &mut Deployment| view::slim_meta(&mut d.metadata),
                    watch_kind("deployments"),
                    &signal,
                    &mut tasks,
                );
                let replicasets = spawn_watch(
                    Api::namespaced(client.clone(), ns),
                    labelled.clone(),
                    view::slim_replicaset,
                    watch_kind("replicasets"),
                    &signal,
                    &mut tasks,
                );
                let pods = Arc::new(RwLock::new(Index::new(view::pod_row, |_| {})));
                let index = pods.clone();
                let key = watch_kind("pods");
                Signal::lock(&signal.syncing).insert(key.clone());
                let stream = watcher(Api::<Pod>::namespaced(client.clone(), ns), labelled.clone()).default_backoff();
                tasks.push(tokio::spawn(drive(stream, key, signal.clone(), move |event| {
                    index.write().unwrap_or_else(|e| e.into_inner()).apply(event)
                })));
                let hpas = spawn_watch(
                    Api::namespaced(client.clone(), ns),
                    watcher::Config::default(),
                    |h: &mut HorizontalPodAutoscaler| view::slim_meta(&mut h.metadata),
                    watch_kind("horizontalpodautoscalers"),
                    &signal,
                    &mut tasks,
                );
                let events = Arc::new(RwLock::new(Index::new(view::event_row, trim_events)));
                let index = events.clone();
                let key = watch_kind("events");
                Signal::lock(&signal.syncing).insert(key.clone());
                let stream = watcher(
                    Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), ns),
                    watcher::Config::default(),
                )
                .default_backoff();
                tasks.push(tokio::spawn(drive(stream, key, signal.clone(), move |event| {
                    index.write().unwrap_or_else(|e| e.into_inner()).apply(event)
                })));
                Space { namespace: ns.clone(), deployments, replicasets, pods, hpas, events }
            })
            .collect();
        let fleet = Arc::new(Self {
            client,
            spaces,
            signal: signal.clone(),
            version,
            cache: Default::default(),
            deps: Default::default(),
            log_budget: Default::default(),
        });
        let weak = Arc::downgrade(&fleet);
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(COALESCE);
            let mut rebuilt = tokio::time::Instant::now();
            loop {
                every.tick().await;
                let Some(fleet) = weak.upgrade() else { return };
                let changed = fleet.signal.dirty.swap(false, Ordering::AcqRel);
                if changed || rebuilt.elapsed() >= AGE_REFRESH {
                    fleet.rebuild();
                    rebuilt = tokio::time::Instant::now();
                    fleet.version.send_modify(|v| *v += 1);
                }
            }
        }));
        (fleet, tasks)
    }

    /// Builds the inventory from the caches (about 30 ms at 50,000 pods) and publishes it.
    fn rebuild(&self) -> Arc<Vec<GatewayInventory>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let started = std::time::Instant::now();
        let mut list: Vec<GatewayInventory> =
            self.spaces.iter().flat_map(|space| space.read(|objects| objects.inventory(now))).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        let list = Arc::new(list);
        tracing::debug!(
            gateways = list.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "inventory rebuilt"
        );
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some(list.clone());
        list
    }

    /// The pods whose logs to follow: every gateway's, by gateway then pod, at most `max`.
    fn log_sources(&self, max: usize) -> Vec<(Arc<str>, String, logs::Source)> {
        let mut out = Vec::new();
        for space in &self.spaces {
            let gateways: Vec<(String, Vec<String>)> = space.read(|o| {
                o.deployments
                    .iter()
                    .map(|d| {
                        let id = view::gateway_id(&space.namespace, d.metadata.name.as_deref().unwrap_or_default());
                        let owners = o.history(d).iter().filter_map(|(_, rs)| rs.metadata.uid.clone()).collect();
                        (id, owners)
                    })
                    .collect()
            });
            let index = space.pods.read().unwrap_or_else(|e| e.into_inner());
            for (id, owners) in gateways {
                let gateway: Arc<str> = id.into();
                let mut pods: Vec<logs::Source> = index
                    .rows
                    .values()
                    .filter(|p| p.owner.as_ref().is_some_and(|o| owners.contains(o)))
                    .map(|p| logs::Source { pod: p.instance.name.clone(), container: p.container.clone() })
                    .collect();
                pods.sort_by(|a, b| a.pod.cmp(&b.pod));
                out.extend(pods.into_iter().map(|s| (gateway.clone(), space.namespace.clone(), s)));
            }
        }
        share_out(out, max)
    }

    fn space(&self, namespace: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.namespace == namespace)
    }

    /// The namespace's caches and the Deployment behind `gateway`.
    fn find(&self, gateway: &str) -> FleetResult<(&Space, Arc<Deployment>)> {
        let not_found = || FleetError::NotFound(gateway.to_string());
        let (ns, name) = view::split_id(gateway).ok_or_else(not_found)?;
        let space = self.space(ns).ok_or_else(not_found)?;
        let deployment = space.deployments.find(|d| d.metadata.name.as_deref() == Some(name)).ok_or_else(not_found)?;
        Ok((space, deployment))
    }

    /// The gateway's policy adapter, from its Deployment's annotations.
    fn binding(&self, gateway: &str) -> FleetResult<Option<adapter::Binding>> {
        let (_, deployment) = self.find(gateway)?;
        adapter::binding(&deployment).map_err(FleetError::Refused)
    }

    /// The gateway's state: the cached Deployment, ReplicaSets and HPA, and the policy
    /// its adapter reads from the cluster (a GET per bound object).
    async fn read_state(&self, gateway: &str, deployment: Option<&Deployment>) -> FleetResult<GatewayState> {
        let (space, cached) = self.find(gateway)?;
        let mut state = space.read(|o| o.state(deployment.unwrap_or(&cached)));
        match adapter::binding(&cached) {
            Ok(Some(binding)) => {
                let objects = adapter::fetch(&self.client, &space.namespace, &binding).await?;
                adapter::read(&binding, &objects).fill(&mut state);
                state.rate_limit_scope = adapter::limit_counts(binding.kind).into();
            }
            Ok(None) => {}
            // Reads go on without policy; a policy change says what is wrong.
            Err(e) => tracing::warn!(gateway, error = %e, "ignoring a bad adapter annotation"),
        }
        Ok(state)
    }

    fn target(&self, gateway: &str) -> FleetResult<Target> {
        let (ns, name) = view::split_id(gateway).ok_or_else(|| FleetError::NotFound(gateway.to_string()))?;
        Ok(Target {
            deployments: Api::namespaced(self.client.clone(), ns),
            replicasets: Api::namespaced(self.client.clone(), ns),
            hpas: Api::namespaced(self.client.clone(), ns),
            name: name.to_string(),
        })
    }

    /// Sends `change` to the API server (or, with `dry_run`, has it validated) and
    /// returns the Deployment (or HPA) as the server answered.
    async fn send(&self, gateway: &str, change: &Change, before: &GatewayState, dry_run: bool) -> FleetResult<Sent> {
        let t = self.target(gateway)?;
        match change {
            Change::Restart => {
                let now =
                    time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let now = now
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| FleetError::Unavailable(e.to_string()))?;
                Ok(Sent::Deployment(Box::new(ops::restart(&t, &now, dry_run).await?)))
            }
            Change::Scale { replicas } => {
                let scale = ops::scale(&t, *replicas, before.replicas, dry_run).await?;
                Ok(Sent::Replicas(scale.spec.and_then(|s| s.replicas).unwrap_or(*replicas as i32).max(0) as u32))
            }
            Change::Rollback { revision } => match ops::rollback(&t, *revision, dry_run).await? {
                ops::Rollback::Patched { .. } | ops::Rollback::Skipped { .. } => Ok(Sent::Nothing),
            },
            Change::Autoscale { min_replicas, max_replicas } => {
                let hpa = before
                    .autoscaler
                    .as_ref()
                    .ok_or_else(|| FleetError::Refused(format!("no autoscaler manages {gateway}")))?;
                let sent = ops::autoscale(
                    &t,
                    &hpa.name,
                    (hpa.min_replicas, hpa.max_replicas),
                    (*min_replicas, *max_replicas),
                    dry_run,
                )
                .await?;
                Ok(Sent::Autoscaler(Box::new(sent)))
            }
            Change::DnsRecord { .. } => {
                Err(FleetError::Unsupported("DNS records are changed only with --dns-server and --dns-zone".into()))
            }
            Change::RateLimit { .. }
            | Change::Timeouts { .. }
            | Change::CircuitBreaker { .. }
            | Change::Bypass { .. } => {
                let (ns, _) = view::split_id(gateway).ok_or_else(|| FleetError::NotFound(gateway.to_string()))?;
                let binding = self.binding(gateway)?.ok_or_else(|| {
                    FleetError::Unsupported(format!(
                        "{gateway} has no policy adapter: annotate its Deployment with {}=ingress-nginx|httproute and \
                         {}=<objects>",
                        adapter::ADAPTER,
                        adapter::ROUTES
                    ))
                })?;
                adapter::apply(&self.client, ns, &binding, change, before, dry_run).await?;
                Ok(Sent::Nothing)
            }
        }
    }
}

/// What the API server answered to a change, to compute the state right after it
/// without waiting for the watch.
enum Sent {
    Deployment(Box<Deployment>),
    Replicas(u32),
    Autoscaler(Box<HorizontalPodAutoscaler>),
    Nothing,
}

impl Fleet for KubeFleet {
    fn inventory(&self) -> BoxFuture<'_, FleetResult<Arc<Vec<GatewayInventory>>>> {
        let cached = self.cache.read().unwrap_or_else(|e| e.into_inner()).clone();
        let list = cached.unwrap_or_else(|| self.rebuild());
        Box::pin(async move { Ok(list) })
    }

    fn updates(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn clock_s(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn dependencies(&self) -> BoxFuture<'_, FleetResult<app::dto::DependencyGraph>> {
        Box::pin(self.dependency_graph())
    }

    fn maps_traffic(&self) -> bool {
        false
    }

    fn state(&self, gateway: &str) -> BoxFuture<'_, FleetResult<GatewayState>> {
        let gateway = gateway.to_string();
        Box::pin(async move { self.read_state(&gateway, None).await })
    }

    fn apply<'a>(
        &'a self,
        gateway: &'a str,
        change: &'a Change,
        before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<GatewayState>> {
        Box::pin(async move {
            let sent = self.send(gateway, change, before, false).await?;
            let (_, cached) = self.find(gateway)?;
            let mut deployment = (*cached).clone();
            if let Sent::Replicas(n) = sent {
                deployment.spec.replicas = Some(n as i32);
            }
            let mut state = match &sent {
                Sent::Deployment(d) => self.read_state(gateway, Some(d)).await?,
                _ => self.read_state(gateway, Some(&deployment)).await?,
            };
            if let (Sent::Autoscaler(h), Some(a)) = (&sent, state.autoscaler.as_mut()) {
                a.min_replicas = h.spec.min_replicas.unwrap_or(1).max(0) as u32;
                a.max_replicas = h.spec.max_replicas.max(0) as u32;
            }
            // Live views see it with the next rebuild (within COALESCE); the watch confirms it.
            self.signal.dirty.store(true, Ordering::Release);
            Ok(state)
        })
    }

    fn check<'a>(
        &'a self,
        gateway: &'a str,
        change: &'a Change,
        before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<()>> {
        Box::pin(async move { self.send(gateway, change, before, true).await.map(|_| ()) })
    }

    fn rollout(&self, gateway: &str) -> BoxFuture<'_, FleetResult<RolloutState>> {
        let result = self.find(gateway).map(|(_, d)| view::rollout(&d));
        Box::pin(async move { result })
    }

    fn logs(
        &self,
        gateway: &str,
        tail: i64,
        since_seconds: Option<i64>,
    ) -> BoxFuture<'_, FleetResult<Vec<PodLogLine>>> {
        let gateway = gateway.to_string();
        Box::pin(async move {
            let (space, deployment) = self.find(&gateway)?;
            let owners: Vec<String> =
                space.read(|o| o.history(&deployment).iter().filter_map(|(_, rs)| rs.metadata.uid.clone()).collect());
            let mut sources: Vec<logs::Source> = {
                let index = space.pods.read().unwrap_or_else(|e| e.into_inner());
                index
                    .rows
                    .values()
                    .filter(|p| p.owner.as_ref().is_some_and(|o| owners.contains(o)))
                    .map(|p| logs::Source { pod: p.instance.name.clone(), container: p.container.clone() })
                    .collect()
            };
            sources.sort_by(|a, b| a.pod.cmp(&b.pod));
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &space.namespace);
            let budget = *self.log_budget.read().unwrap_or_else(|e| e.into_inner());
            // Past the pods whose 1 KiB floor fits the total, the rest are not read.
            sources.truncate(budget.max_pods());
            logs::recent(&api, &sources, tail, since_seconds, Some(budget.per_pod_of(sources.len()))).await
        })
    }

    fn revision_times(&self, gateway: &str) -> Vec<(i64, u32, String)> {
        let Ok((space, deployment)) = self.find(gateway) else { return Vec::new() };
        let mut list: Vec<(i64, u32, String)> = space.read(|o| {
            o.history(&deployment)
                .iter()
                .filter_map(|(n, rs)| {
                    let created = rs.metadata.creation_timestamp.as_ref()?.0.as_millisecond();
                    Some((created, *n, rs.spec.template.as_ref().map(view::template_version).unwrap_or_default()))
                })
                .collect()
        });
        list.sort();
        list
    }

    fn events(&self, gateway: &str) -> Vec<app::dto::EventRow> {
        let Ok((space, deployment)) = self.find(gateway) else { return Vec::new() };
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let replicasets: Vec<(String, String)> = space.read(|o| {
            o.history(&deployment)
                .iter()
                .filter_map(|(_, rs)| Some((rs.metadata.uid.clone()?, rs.metadata.name.clone()?)))
                .collect()
        });
        let pods: BTreeSet<String> = {
            let index = space.pods.read().unwrap_or_else(|e| e.into_inner());
            index
                .rows
                .values()
                .filter(|p| p.owner.as_ref().is_some_and(|o| replicasets.iter().any(|(uid, _)| uid == o)))
                .map(|p| p.instance.name.clone())
                .collect()
        };
        let events = space.events.read().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<app::dto::EventRow> = events
            .rows
            .values()
            .filter(|(kind, object, _)| match kind.as_str() {
                "Deployment" => *object == name,
                "ReplicaSet" => replicasets.iter().any(|(_, rs)| rs == object),
                "Pod" => pods.contains(object),
                _ => false,
            })
            .map(|(_, _, row)| row.clone())
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.ts_ms));
        rows.truncate(RECENT_EVENTS);
        rows
    }

    fn synced(&self, limit: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + limit;
            while !Signal::lock(&self.signal.syncing).is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    fn listed(&self) -> bool {
        Signal::lock(&self.signal.syncing).is_empty()
    }

    fn problem(&self) -> Option<String> {
        let errors = Signal::lock(&self.signal.errors);
        if let Some((watch, reason)) = errors.iter().next() {
            let more = errors.len() - 1;
            let tail = if more > 0 { format!(" (and {more} more watches)") } else { String::new() };
            return Some(format!("Kubernetes watch {watch} failing: {reason}{tail}; showing the last known state"));
        }
        let syncing = Signal::lock(&self.signal.syncing);
        (!syncing.is_empty()).then(|| format!("still listing {} from the cluster", syncing.len()))
    }
}

/// At most `max` log sources, shared out across gateways (each gateway's first pod, then
/// each one's second, ...), so a ceiling below the pod count still follows every gateway.
fn share_out<T: HasPod>(mut sources: Vec<Sourced<T>>, max: usize) -> Vec<Sourced<T>> {
    sources.sort_by(|a, b| (&a.0, a.2.pod()).cmp(&(&b.0, b.2.pod())));
    let mut rank = 0usize;
    let mut ranked: Vec<(usize, Sourced<T>)> = Vec::with_capacity(sources.len());
    for (i, s) in sources.into_iter().enumerate() {
        rank = if i > 0 && ranked[i - 1].1.0 == s.0 { rank + 1 } else { 0 };
        ranked.push((rank, s));
    }
    ranked.sort_by(|a, b| (a.0, &a.1.0, a.1.2.pod()).cmp(&(b.0, &b.1.0, b.1.2.pod())));
    ranked.into_iter().take(max).map(|(_, s)| s).collect()
}

/// (gateway id, namespace, source) of a followed pod.
type Sourced<T> = (Arc<str>, String, T);

/// A log source's pod name (for [`share_out`]).
trait HasPod {
    fn pod(&self) -> &str;
}

impl HasPod for logs::Source {
    fn pod(&self) -> &str {
        &self.pod
    }
}

#[cfg(test)]
impl HasPod for &'static str {
    fn pod(&self) -> &str {
        self
    }
}

#[cfg(test)]
mod share_tests {
    #[test]
    fn a_ceiling_below_the_pod_count_still_follows_every_gateway() {
        let sources = ["a-1", "a-2", "a-3", "b-1", "c-1", "c-2"]
            .into_iter()
            .map(|p| (std::sync::Arc::<str>::from(&p[..1]), "prod".to_string(), p))
            .collect();
        let picked: Vec<&str> = super::share_out(sources, 4).into_iter().map(|(_, _, p)| p).collect();
        assert_eq!(picked, ["a-1", "b-1", "c-1", "a-2"]);
    }
}

#[cfg(test)]
mod tests;
