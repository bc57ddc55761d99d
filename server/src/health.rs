//! Gateway health: joins the fleet's inventory with metrics; the status comes from
//! `app::health`, the one judgement the health page's legend and colours share.

use crate::error::{AppError, Result};
use crate::fleet::{Fleet, GatewayInventory, HealthWindow, Metrics};
use app::dto::{GatewayDetail, GatewayLive, GatewaySummary, HealthStatus, LiveSnapshot};
use std::sync::Arc;
use tokio::sync::watch;

/// Above this many pods in the fleet, live snapshots leave the pod lists out: resending
/// 50,000 pods (5 MB) to every open browser on every change costs more than it shows.
pub const LIVE_INSTANCES_MAX: usize = 2_000;

/// The longest the live hub goes without publishing, whatever the backend.
pub const HUB_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// A gateway's numbers, or why they could not be read.
pub type Reading = std::result::Result<HealthWindow, String>;

/// The judge's view of a window.
fn numbers(w: &HealthWindow) -> app::health::Numbers {
    app::health::Numbers {
        error_rate_5xx: Some(w.error_rate_5xx),
        throttle_rate_429: Some(w.throttle_rate_429),
        p99_ms: Some(w.latency_ms.p99),
        rps: Some(w.rps),
        baseline_rps: w.baseline_rps,
    }
}

/// Judges a gateway from its numbers (unknown without them) and instance counts.
pub fn status(w: &Reading, ready: u32, desired: u32, checks: Option<[u32; 2]>) -> HealthStatus {
    let n = w.as_ref().map(numbers).unwrap_or_default();
    app::health::gateway_status(&n, ready, desired, checks)
}

/// Health views over a fleet and its metrics.
pub struct HealthService {
    fleet: Arc<dyn Fleet>,
    metrics: Arc<dyn Metrics>,
    /// The last metrics failure, cleared by the next success.
    metrics_problem: std::sync::Mutex<Option<String>>,
    /// The synthetic checks, once started.
    probes: std::sync::OnceLock<Arc<crate::probe::Probes>>,
}

fn summarize(inv: &GatewayInventory, w: &Reading, checks: Option<[u32; 2]>) -> GatewaySummary {
    let ready = inv.instances.iter().filter(|i| i.ready).count() as u32;
    let known = w.as_ref().ok();
    GatewaySummary {
        id: inv.id.clone(),
        name: inv.name.clone(),
        namespace: inv.namespace.clone(),
        status: status(w, ready, inv.desired, checks),
        rps: known.map(|w| w.rps),
        error_rate_5xx: known.map(|w| w.error_rate_5xx),
        throttle_rate_429: known.map(|w| w.throttle_rate_429),
        latency_ms: known.map(|w| w.latency_ms),
        baseline_rps: known.and_then(|w| w.baseline_rps),
        blind: w.as_ref().err().cloned(),
        instances_ready: ready,
        instances_desired: inv.desired,
        version: inv.version.clone(),
        checks,
    }
}

impl HealthService {
    /// Health over `fleet` with numbers from `metrics`.
    pub fn new(fleet: Arc<dyn Fleet>, metrics: Arc<dyn Metrics>) -> Self {
        Self { fleet, metrics, metrics_problem: Default::default(), probes: Default::default() }
    }

    /// Where the synthetic checks' results come from (summaries carry their tally).
    pub fn attach_probes(&self, probes: Arc<crate::probe::Probes>) {
        let _ = self.probes.set(probes);
    }

    /// Every gateway's latest synthetic check tally, read once per list or snapshot.
    fn checks(&self) -> std::collections::HashMap<String, [u32; 2]> {
        self.probes.get().map(|p| p.tallies()).unwrap_or_default()
    }

    /// The fleet backend has read its initial state (for `/readyz`).
    pub fn fleet_listed(&self) -> bool {
        self.fleet.listed()
    }

    /// Whether the fleet's watches work (listed, none failing) and whether the metrics
    /// backend answered its last query.
    pub fn backends_healthy(&self) -> (bool, bool) {
        let metrics = self.metrics_problem.lock().unwrap_or_else(|e| e.into_inner()).is_none();
        (self.fleet.listed() && self.fleet.problem().is_none(), metrics)
    }

    /// Why the numbers or the inventory may be stale or missing, if they may.
    pub fn problem(&self) -> Option<String> {
        let metrics = self.metrics_problem.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match (self.fleet.problem(), metrics) {
            (Some(f), Some(m)) => Some(format!("{f}; metrics: {m}")),
            (Some(f), None) => Some(f),
            (None, Some(m)) => Some(format!("metrics: {m}")),
            (None, None) => None,
        }
    }

    /// Every gateway's numbers now, or why there are none at all.
    async fn current(&self) -> std::result::Result<std::collections::HashMap<String, HealthWindow>, String> {
        let result = self.metrics.current().await;
        let mut problem = self.metrics_problem.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(map) => {
                *problem = None;
                Ok(map)
            }
            Err(e) => {
                // Keep serving the inventory; the numbers are unknown, with the reason.
                if problem.is_none() {
                    tracing::warn!(error = %e, "metrics unavailable");
                }
                *problem = Some(e.to_string());
                Err(format!("metrics could not be read: {e}"))
            }
        }
    }

    /// Notified whenever the fleet may have changed.
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.fleet.updates()
    }

    async fn joined(&self) -> Result<(Arc<Vec<GatewayInventory>>, Vec<Reading>)> {
        let inventory = self.fleet.inventory().await?;
        let mut current = self.current().await;
        let windows = inventory
            .iter()
            .map(|inv| match &mut current {
                Err(why) => Err(why.clone()),
                // The metrics answered but not for this gateway: its labels do not match
                // the flavor's queries, or it has never served a request. Unknown either
                // way: a zero would read as "healthy and idle".
                Ok(map) => map.remove(&inv.id).ok_or_else(|| {
                    format!(
                        "the metrics have no series for {} (namespace {}, deployment {}): check the metrics \
                         flavor's labels",
                        inv.id, inv.namespace, inv.name
                    )
                }),
            })
            .collect();
        Ok((inventory, windows))
    }

    /// Every gateway's summary.
    pub async fn gateways(&self) -> Result<Vec<GatewaySummary>> {
        let (inventory, windows) = self.joined().await?;
        let checks = self.checks();
        Ok(inventory.iter().zip(&windows).map(|(inv, w)| summarize(inv, w, checks.get(&inv.id).copied())).collect())
    }

    /// One gateway with instances and its last 15 minutes.
    pub async fn gateway(&self, id: &str) -> Result<GatewayDetail> {
        let (inventory, windows) = self.joined().await?;
        let (inv, w) = inventory
            .iter()
            .zip(windows)
            .find(|(inv, _)| inv.id == id)
            .ok_or_else(|| AppError::NotFound(format!("no gateway '{id}'")))?;
        // Without metrics the instances are still worth showing; the problem says why
        // the chart is empty.
        let (series_step_s, series) = match self.metrics.series(id).await {
            Ok(series) => series,
            Err(e) => {
                *self.metrics_problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                (0, Vec::new())
            }
        };
        let mut detail = GatewayDetail::new(
            summarize(inv, &w, self.checks().get(id).copied()),
            inv.instances.clone(),
            series_step_s,
            series,
        );
        detail.events = self.fleet.events(id);
        detail.bypasses = self.bypasses(id);
        Ok(detail)
    }

    /// The services bypassing gateway `id` now, with their clients' numbers both ways.
    fn bypasses(&self, id: &str) -> Vec<app::dto::BypassedService> {
        self.fleet
            .bypasses(id)
            .into_iter()
            .filter_map(|(service, how)| {
                let impact = self.fleet.service_impact(id, &service)?;
                Some(app::dto::BypassedService { service, how: how.into(), impact })
            })
            .collect()
    }

    /// The charts' clock now (Unix ms of the backend's current second: simulated time
    /// for the simulator).
    pub fn chart_now_ms(&self) -> i64 {
        self.fleet.ts_ms_of(self.fleet.clock_s())
    }

    /// Gateway `id`'s recent series (as on its page), oldest first.
    pub async fn series(&self, id: &str) -> Result<Vec<app::dto::SeriesPoint>> {
        Ok(self.metrics.series(id).await?.1)
    }

    /// The gateway's recent pod log lines.
    pub async fn logs(&self, id: &str, tail: i64, since_seconds: Option<i64>) -> Result<Vec<app::dto::PodLogLine>> {
        Ok(self.fleet.logs(id, tail, since_seconds).await?)
    }

    /// Who depends on what, from the fleet backend.
    pub async fn dependencies(&self) -> Result<app::dto::DependencyGraph> {
        let mut graph = self.fleet.dependencies().await?;
        if !self.fleet.maps_traffic() {
            // Gateways' numbers from the metrics backend; routes and services have none.
            if let Ok((inventory, windows)) = self.joined().await {
                for (inv, w) in inventory.iter().zip(&windows) {
                    if let Some(n) = graph
                        .nodes
                        .iter_mut()
                        .find(|n| n.kind == "gateway" && n.gateway.as_deref() == Some(inv.id.as_str()))
                    {
                        let w = w.as_ref().ok();
                        n.rps = w.map(|w| w.rps);
                        n.error_rate = w.map(|w| w.error_rate_5xx);
                        n.latency_ms = w.map(|w| w.latency_ms.p99);
                        n.health = app::health::node_health(n.error_rate, n.ready_endpoints);
                    }
                }
            }
        }
        Ok(graph)
    }

    /// Everything the live views need, in one message.
    pub async fn snapshot(&self) -> Result<LiveSnapshot> {
        let (inventory, windows) = self.joined().await?;
        let ts_ms = windows.iter().filter_map(|w| w.as_ref().ok()).map(|w| w.ts_ms).max().unwrap_or(0);
        let pods: usize = inventory.iter().map(|g| g.instances.len()).sum();
        let with_instances = pods <= LIVE_INSTANCES_MAX;
        let checks = self.checks();
        let gateways = inventory
            .iter()
            .zip(&windows)
            .map(|(inv, w)| GatewayLive {
                summary: summarize(inv, w, checks.get(&inv.id).copied()),
                point: w.as_ref().ok().map(HealthWindow::point),
                instances: with_instances.then(|| inv.instances.clone()),
                bypasses: self.bypasses(&inv.id),
            })
            .collect();
        Ok(LiveSnapshot { ts_ms, gateways, backend_problem: self.problem() })
    }

    /// Publishes the snapshot after every fleet change, as data (for the leader's incident
    /// watch) and serialized once (for all SSE clients: each more viewer is nearly free).
    pub fn spawn_live_hub(self: &Arc<Self>) -> (watch::Receiver<Option<Live>>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let service = Arc::clone(self);
        let mut updates = self.updates();
        let task = tokio::spawn(async move {
            loop {
                let started = std::time::Instant::now();
                match service.snapshot().await.and_then(|s| {
                    let json =
                        serde_json::to_string(&s).map_err(|e| AppError::Internal(format!("snapshot encode: {e}")))?;
                    Ok(Live { snapshot: Arc::new(s), json: Arc::from(json) })
                }) {
                    Ok(live) => {
                        crate::metrics::get().snapshot_built(started.elapsed().as_secs_f64());
                        tracing::debug!(
                            bytes = live.json.len(),
                            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                            "live snapshot"
                        );
                        tx.send_replace(Some(live));
                    }
                    Err(e) => {
                        e.to_api();
                    }
                }
                // Again on the next fleet change, and at least every second with none: the
                // numbers move between changes (a quiet cluster has none for minutes), and
                // a page calls a feed silent for 4 s lost.
                if let Ok(Err(_)) = tokio::time::timeout(HUB_TICK, updates.changed()).await {
                    return;
                }
            }
        });
        (rx, task)
    }
}

/// One published live snapshot: the data, and the same serialized for the event streams.
#[derive(Clone, Debug)]
pub struct Live {
    /// Every gateway's numbers at one moment.
    pub snapshot: Arc<LiveSnapshot>,
    /// `snapshot` as JSON, made once for every stream.
    pub json: Arc<str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::dto::Latency;

    fn window(e5: f64, e429: f64, p99: f64) -> Reading {
        Ok(HealthWindow {
            ts_ms: 0,
            rps: 100.0,
            error_rate_5xx: e5,
            throttle_rate_429: e429,
            latency_ms: Latency { p50: p99 / 3.0, p95: p99 / 1.5, p99 },
            baseline_rps: None,
        })
    }

    #[test]
    fn status_follows_the_documented_thresholds() {
        assert_eq!(status(&window(0.001, 0.002, 120.0), 4, 4, None), HealthStatus::Healthy);
        assert_eq!(status(&window(0.02, 0.0, 120.0), 4, 4, None), HealthStatus::Degraded);
        assert_eq!(status(&window(0.0, 0.30, 120.0), 4, 4, None), HealthStatus::Degraded);
        assert_eq!(status(&window(0.0, 0.0, 800.0), 4, 4, None), HealthStatus::Degraded);
        assert_eq!(status(&window(0.0, 0.0, 120.0), 3, 4, None), HealthStatus::Degraded);
        assert_eq!(status(&window(0.30, 0.0, 120.0), 4, 4, None), HealthStatus::Critical);
        assert_eq!(status(&window(0.0, 0.0, 2500.0), 4, 4, None), HealthStatus::Critical);
        // A failing synthetic check: at least degraded, never hiding something worse.
        assert_eq!(status(&window(0.001, 0.002, 120.0), 4, 4, Some([3, 3])), HealthStatus::Healthy);
        assert_eq!(status(&window(0.001, 0.002, 120.0), 4, 4, Some([2, 3])), HealthStatus::Degraded);
        assert_eq!(status(&window(0.30, 0.0, 120.0), 4, 4, Some([2, 3])), HealthStatus::Critical);
        assert_eq!(status(&window(0.0, 0.0, 120.0), 1, 4, None), HealthStatus::Critical);
        // No numbers: unknown, whatever the instances say.
        assert_eq!(status(&Err("prometheus down".into()), 4, 4, None), HealthStatus::Unknown);
    }
}
