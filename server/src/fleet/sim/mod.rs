//! The embedded simulated fleet (see SIMULATION.md): a deterministic model advanced by
//! a clock task, served through the `Fleet` and `Metrics` traits.

pub mod histogram;
pub mod listener;
pub mod logs;
pub mod model;
pub mod parts;

use super::{
    Change, Fleet, FleetError, FleetResult, GatewayInventory, GatewayState, HealthWindow, Metrics, RolloutState,
};
use app::dto::{Instance, Latency, SeriesPoint};
use futures::future::BoxFuture;
use histogram::{Buckets, NB};
use model::Sim;
use parts::Second;
pub use parts::{Scenario, SimConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Seconds aggregated into the "now" numbers.
pub const WINDOW_S: usize = 5;
/// Seconds per chart point.
pub const STEP_S: usize = 5;

/// Raw counts over a window, for tests that check the API against the simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct RawWindow {
    /// All requests.
    pub total: u64,
    /// 5xx answers.
    pub c5xx: u64,
    /// 429 answers.
    pub c429: u64,
    /// Latency histogram of admitted requests.
    pub buckets: Buckets,
}

/// The simulated fleet, shared by the clock task and the request handlers.
pub struct SimFleet {
    sim: Mutex<Sim>,
    version: watch::Sender<u64>,
    /// Where the simulated gateways' log lines go.
    logs: std::sync::OnceLock<Arc<crate::logs::LogStore>>,
    /// Where each simulated gateway answers HTTP (see `listener`), once started.
    listeners: std::sync::RwLock<HashMap<&'static str, String>>,
    /// Changes still to fail as an unreachable API server would (training and tests).
    failing_applies: std::sync::atomic::AtomicU32,
}

/// Lines kept while no log store is attached (the history a store gets when it is).
const UNATTACHED_LOG_LINES: usize = 200_000;

impl SimFleet {
    /// The next `n` changes fail as if the API server were down (a fault to practise, and
    /// to test what the console does then).
    pub fn fail_next_changes(&self, n: u32) {
        self.failing_applies.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// A fleet with 15 minutes of history already simulated.
    pub fn new(config: SimConfig) -> Arc<Self> {
        let (version, _) = watch::channel(0);
        Arc::new(Self {
            sim: Mutex::new(Sim::new(config)),
            version,
            logs: std::sync::OnceLock::new(),
            listeners: Default::default(),
            failing_applies: Default::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        // A panic inside a step would be a bug in the model; the state is still the last
        // complete second, so keep serving it rather than poisoning every request.
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `service`'s public record now points at the service itself (`direct`) or back at
    /// `gateway`, replacing one whose TTL was `old_ttl_s`: its clients follow over that
    /// long, as their caches expire.
    pub fn dns_moved(&self, gateway: &str, service: &str, direct: bool, old_ttl_s: u32) {
        let mut sim = self.lock();
        let t = sim.t;
        if let Some(i) = sim.gateway_index(gateway) {
            let moves = &mut sim.gateways[i].dns_moves;
            // A move back before the first finished starts from where clients are.
            let from = moves.iter().find(|m| m.service == service).map_or(0.0, |m| m.direct_share(t));
            moves.retain(|m| m.service != service);
            let over_s = i64::from(old_ttl_s.max(1));
            // Shift the start so that the share continues from `from` instead of jumping.
            let done = if direct { from } else { 1.0 - from };
            let at = t - (done * over_s as f64).round() as i64;
            moves.push(parts::DnsMove { service: service.to_string(), at, over_s, direct });
        }
        drop(sim);
        self.version.send_modify(|v| *v += 1);
    }

    /// Makes `service` itself fail a share `p` of its requests, at once and for the next
    /// `seconds` (an outage of the service, not of any gateway).
    pub fn fail_service(&self, service: &str, p: f64, seconds: i64) {
        let mut sim = self.lock();
        let t = sim.t;
        if let Some(svc) = sim.services.iter_mut().find(|s| s.name == service) {
            svc.blip = Some((p, t + seconds));
            svc.fail = svc.fail.max(p);
        }
        drop(sim);
        self.version.send_modify(|v| *v += 1);
    }

    /// How `service`'s clients that would come through `gateway` fared last second,
    /// through it and around it (p99 through it over its recent seconds).
    pub fn service_impact(&self, gateway: &str, service: &str) -> Option<app::dto::ServiceImpact> {
        let sim = self.lock();
        let gw = sim.gateways.iter().find(|g| g.id == gateway)?;
        let flow = gw.service_flows.iter().find(|f| f.service == service)?;
        let total = flow.via.0 + flow.direct.0;
        if total <= 0.0 {
            return None;
        }
        let mut buckets = [0u64; histogram::NB];
        for second in &gw.route_recent {
            for (route, s) in gw.routes.iter().zip(second) {
                if route.service == service {
                    for (b, n) in buckets.iter_mut().zip(s.buckets.iter()) {
                        *b += n;
                    }
                }
            }
        }
        let share = |(n, ok): (f64, f64)| (n > 0.0).then(|| ok / n);
        // A log-normal's 99th percentile: exp(mu + 2.326 sigma), mean = exp(mu + sigma^2 / 2).
        let sigma = model::LATENCY_SIGMA;
        let direct_p99 = flow.direct_mean_ms.max(0.01).ln() - sigma * sigma / 2.0 + 2.326 * sigma;
        Some(app::dto::ServiceImpact {
            direct_share: flow.direct.0 / total,
            success: (flow.via.1 + flow.direct.1) / total,
            via_gateway_success: share(flow.via),
            via_gateway_p99_ms: (flow.via.0 > 0.0 && buckets.iter().any(|n| *n > 0))
                .then(|| histogram::quantile(0.99, &buckets)),
            direct_success: share(flow.direct),
            direct_p99_ms: (flow.direct.0 > 0.0).then(|| direct_p99.exp()),
        })
    }

    /// The services bypassing `gateway` now: inside it (`route`), or by their public
    /// record (`dns`, while any of their clients go around it).
    pub fn bypasses(&self, gateway: &str) -> Vec<(String, &'static str)> {
        let sim = self.lock();
        let Some(gw) = sim.gateways.iter().find(|g| g.id == gateway) else { return vec![] };
        let mut out: Vec<(String, &'static str)> = gw.bypassed.iter().map(|s| (s.clone(), "route")).collect();
        out.extend(
            gw.dns_moves.iter().filter(|m| m.direct || m.direct_share(sim.t) > 0.0).map(|m| (m.service.clone(), "dns")),
        );
        out
    }

    /// Every downstream service's name.
    pub fn service_names(&self) -> Vec<String> {
        self.lock().services.iter().map(|s| s.name.to_string()).collect()
    }

    /// Sends the simulated gateways' log lines (the history so far, then each new
    /// second's) to `store`.
    pub fn attach_logs(&self, store: Arc<crate::logs::LogStore>) {
        let _ = self.logs.set(store);
        self.flush_logs(&mut self.lock());
    }

    fn flush_logs(&self, sim: &mut Sim) {
        match self.logs.get() {
            Some(store) => store.extend(sim.logs.drain(..)),
            None if sim.logs.len() > UNATTACHED_LOG_LINES => {
                let excess = sim.logs.len() - UNATTACHED_LOG_LINES;
                sim.logs.drain(..excess);
            }
            None => {}
        }
    }

    /// Simulates `seconds` more seconds and notifies subscribers.
    pub fn advance(&self, seconds: u32) {
        {
            let mut sim = self.lock();
            for _ in 0..seconds {
                sim.step();
            }
            self.flush_logs(&mut sim);
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Share of a service's requests that succeed for its clients in the last second,
    /// whether they came through a gateway or around it (ground truth for tests).
    pub fn client_success(&self, service: &str) -> Option<f64> {
        let sim = self.lock();
        sim.services.iter().find(|s| s.name == service).map(|s| s.client_success)
    }

    /// Raw counts of `gateway` over the last `seconds` (ground truth for tests).
    pub fn raw_window(&self, gateway: &str, seconds: usize) -> Option<RawWindow> {
        let sim = self.lock();
        let gw = sim.gateways.iter().find(|g| g.id == gateway)?;
        let (total, c5xx, c429, buckets) = sum(gw.history.iter().rev().take(seconds));
        Some(RawWindow { total, c5xx, c429, buckets })
    }

    /// The fleet in the Prometheus text format (0.0.4), for a real Prometheus to scrape:
    /// per gateway and route, request counters by status code (200, 404, 429, 503 stand
    /// for the 2xx, other 4xx, 429 and 5xx answers the model counts) and the latency
    /// histogram of admitted requests in seconds, with the bucket bounds the console uses.
    /// `_sum` is estimated from bucket midpoints (the model keeps no exact sum).
    pub fn exposition(&self) -> String {
        use std::fmt::Write;
        let sim = self.lock();
        let mut out = String::with_capacity(8192 * sim.gateways.len().max(1));
        out.push_str("# HELP gatewarden_requests_total Requests answered by the gateway, by route and status code.\n");
        out.push_str("# TYPE gatewarden_requests_total counter\n");
        for gw in &sim.gateways {
            for (route, t) in gw.routes.iter().zip(&gw.route_totals) {
                for (code, n) in [("200", t.c2xx), ("404", t.c4xx), ("429", t.c429), ("503", t.c5xx)] {
                    let _ = writeln!(
                        out,
                        "gatewarden_requests_total{{namespace=\"{}\",deployment=\"{}\",route=\"{}\",code=\"{code}\"}} {n}",
                        gw.namespace, gw.name, route.path
                    );
                }
            }
        }
        out.push_str(
            "# HELP gatewarden_request_duration_seconds Latency of requests admitted by the gateway.\n\
             # TYPE gatewarden_request_duration_seconds histogram\n",
        );
        for gw in &sim.gateways {
            for (route, t) in gw.routes.iter().zip(&gw.route_totals) {
                let labels =
                    format!("namespace=\"{}\",deployment=\"{}\",route=\"{}\"", gw.namespace, gw.name, route.path);
                let (mut cumulative, mut sum_s) = (0u64, 0.0f64);
                for (i, n) in t.buckets.iter().enumerate() {
                    cumulative += n;
                    let lower = if i == 0 { 0.0 } else { histogram::BOUNDS_MS[i - 1] };
                    let upper = histogram::BOUNDS_MS.get(i).copied().unwrap_or(lower);
                    sum_s += *n as f64 * (lower + upper) / 2.0 / 1000.0;
                    let le = histogram::BOUNDS_MS.get(i).map_or("+Inf".to_string(), |b| format!("{}", b / 1000.0));
                    let _ = writeln!(
                        out,
                        "gatewarden_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(out, "gatewarden_request_duration_seconds_sum{{{labels}}} {sum_s}");
                let _ = writeln!(out, "gatewarden_request_duration_seconds_count{{{labels}}} {cumulative}");
            }
        }
        out
    }

    /// Advances the simulation in real time: `speed` simulated seconds per real second
    /// (fractions slow it down). Returns when the fleet is dropped elsewhere.
    pub fn spawn_clock(self: &Arc<Self>, speed: f64) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        // Whole simulated seconds per tick; below 1x, ticks are spaced out instead.
        let (period, per_tick) = if speed >= 1.0 {
            (Duration::from_secs(1), speed.round() as u32)
        } else {
            (Duration::from_secs_f64(1.0 / speed), 1)
        };
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                let Some(fleet) = weak.upgrade() else { return };
                // A step of a few gateways is microseconds; no need for spawn_blocking.
                fleet.advance(per_tick);
            }
        })
    }
}

fn sum<'a>(seconds: impl Iterator<Item = &'a Second>) -> (u64, u64, u64, Buckets) {
    let mut buckets = [0u64; NB];
    let (mut total, mut c5xx, mut c429) = (0, 0, 0);
    for s in seconds {
        total += s.total;
        c5xx += s.c5xx;
        c429 += s.c429;
        for (b, n) in buckets.iter_mut().zip(s.buckets.iter()) {
            *b += n;
        }
    }
    (total, c5xx, c429, buckets)
}

fn window(seconds: &[&Second], ts_ms: i64) -> HealthWindow {
    let (total, c5xx, c429, buckets) = sum(seconds.iter().copied());
    let n = seconds.len().max(1) as f64;
    let frac = |x: u64| if total == 0 { 0.0 } else { x as f64 / total as f64 };
    HealthWindow {
        ts_ms,
        rps: total as f64 / n,
        error_rate_5xx: frac(c5xx),
        throttle_rate_429: frac(c429),
        latency_ms: Latency {
            p50: histogram::quantile(0.50, &buckets),
            p95: histogram::quantile(0.95, &buckets),
            p99: histogram::quantile(0.99, &buckets),
        },
        baseline_rps: None,
    }
}

impl Fleet for SimFleet {
    fn service_impact(&self, gateway: &str, service: &str) -> Option<app::dto::ServiceImpact> {
        SimFleet::service_impact(self, gateway, service)
    }
    fn bypasses(&self, gateway: &str) -> Vec<(String, &'static str)> {
        SimFleet::bypasses(self, gateway)
    }
    fn inventory(&self) -> BoxFuture<'_, FleetResult<Arc<Vec<GatewayInventory>>>> {
        let sim = self.lock();
        let t = sim.t;
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<GatewayInventory> = sim
            .gateways
            .iter()
            .map(|gw| {
                let mut instances: Vec<Instance> = gw
                    .pods
                    .iter()
                    .map(|p| Instance {
                        name: p.name.clone(),
                        ready: p.ready_at <= t,
                        restarts: p.restarts,
                        age_s: (t - p.started_at).max(0) as u64,
                        version: gw.revision(p.revision).map(|r| r.version.clone()).unwrap_or_default(),
                        node: node_of(&p.name),
                    })
                    .collect();
                instances.sort_by(|a, b| a.name.cmp(&b.name));
                GatewayInventory {
                    id: gw.id.to_string(),
                    name: gw.name.to_string(),
                    namespace: gw.namespace.to_string(),
                    desired: gw.desired,
                    version: gw.revision(gw.target_revision).map(|r| r.version.clone()).unwrap_or_default(),
                    instances,
                    probe: listeners.get(gw.id).map(|url| (url.clone(), listener::key_paths(gw))),
                }
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Box::pin(async move { Ok(Arc::new(list)) })
    }

    fn updates(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn clock_s(&self) -> i64 {
        self.lock().t
    }

    fn ts_ms_of(&self, clock_s: i64) -> i64 {
        self.lock().ts_ms(clock_s)
    }

    fn revision_times(&self, gateway: &str) -> Vec<(i64, u32, String)> {
        let sim = self.lock();
        let Some(gw) = sim.gateways.iter().find(|g| g.id == gateway) else { return Vec::new() };
        let mut list: Vec<(i64, u32, String)> =
            gw.revisions.iter().map(|r| (sim.ts_ms(r.created_t), r.number, r.version.clone())).collect();
        list.sort();
        list
    }

    fn state(&self, gateway: &str) -> BoxFuture<'_, FleetResult<GatewayState>> {
        let result = state_of(&self.lock(), gateway);
        Box::pin(async move { result })
    }

    fn dependencies(&self) -> BoxFuture<'_, FleetResult<app::dto::DependencyGraph>> {
        let graph = dependencies_of(&self.lock());
        Box::pin(async move { Ok(graph) })
    }

    fn apply<'a>(
        &'a self,
        gateway: &'a str,
        change: &'a Change,
        _before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<GatewayState>> {
        let failing = self.failing_applies.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if failing.is_ok() {
            return Box::pin(async {
                Err(FleetError::Unavailable("the API server did not answer (simulated)".into()))
            });
        }
        let result = {
            let mut sim = self.lock();
            match sim.gateway_index(gateway) {
                None => Err(FleetError::NotFound(gateway.to_string())),
                Some(_) if matches!(change, Change::Autoscale { .. }) => {
                    Err(FleetError::Unsupported("the simulated fleet has no autoscalers".into()))
                }
                Some(_) if matches!(change, Change::DnsRecord { .. }) => {
                    Err(FleetError::Unsupported("DNS records are changed only with --dns-server and --dns-zone".into()))
                }
                Some(i) => {
                    match change {
                        Change::Restart => sim.restart(i),
                        Change::Scale { replicas } => sim.scale(i, *replicas),
                        Change::Rollback { revision } => sim.rollback(i, *revision),
                        Change::RateLimit { policy } => sim.set_rate_limit(i, policy.clone()),
                        Change::Timeouts { policy } => sim.gateways[i].timeouts = policy.clone(),
                        Change::CircuitBreaker { policy } => {
                            sim.gateways[i].breaker = policy.clone();
                            sim.gateways[i].ejected_until.clear();
                        }
                        Change::Bypass { service, enabled } => {
                            let b = &mut sim.gateways[i].bypassed;
                            b.retain(|s| s != service);
                            if *enabled {
                                b.push(service.clone());
                                b.sort();
                            }
                        }
                        Change::Autoscale { .. } | Change::DnsRecord { .. } => {}
                    }
                    state_of(&sim, gateway)
                }
            }
        };
        // Subscribers see the new desired state at once, before the next tick.
        self.version.send_modify(|v| *v += 1);
        Box::pin(async move { result })
    }

    fn rollout(&self, gateway: &str) -> BoxFuture<'_, FleetResult<RolloutState>> {
        let sim = self.lock();
        let result =
            sim.gateway_index(gateway).map(|i| sim.rollout(i)).ok_or_else(|| FleetError::NotFound(gateway.to_string()));
        Box::pin(async move { result })
    }
}

/// A stable node for a simulated pod: three nodes, chosen by the pod's name.
fn node_of(pod: &str) -> String {
    let h = pod.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("sim-node-{}", h % 3 + 1)
}

fn state_of(sim: &Sim, gateway: &str) -> FleetResult<GatewayState> {
    let gw = sim.gateways.iter().find(|g| g.id == gateway).ok_or_else(|| FleetError::NotFound(gateway.to_string()))?;
    let current =
        gw.revision(gw.target_revision).ok_or_else(|| FleetError::Unavailable("no current revision".into()))?;
    Ok(GatewayState {
        replicas: gw.desired,
        revision: current.number,
        version: current.version.clone(),
        template: current.hash.clone(),
        revisions: gw.revisions.iter().map(|r| (r.number, r.version.clone())).collect(),
        templates: gw.revisions.iter().map(|r| (r.number, r.template_fields())).collect(),
        routes: gw.routes.iter().map(|r| r.path.to_string()).collect(),
        rate_limit: gw.rate_limit.clone(),
        rate_limit_scope: "all clients of the gateway together".into(),
        timeouts: gw.timeouts.clone(),
        circuit_breaker: gw.breaker.clone(),
        services: {
            let mut s: Vec<String> = gw.routes.iter().map(|r| r.service.to_string()).collect();
            s.sort();
            s.dedup();
            s
        },
        bypassed: gw.bypassed.clone(),
        autoscaler: None,
        paused: false,
        dns: Vec::new(),
    })
}

impl Metrics for SimFleet {
    fn current(&self) -> BoxFuture<'_, FleetResult<HashMap<String, HealthWindow>>> {
        let sim = self.lock();
        let ts = sim.ts_ms(sim.t - 1);
        let map = sim
            .gateways
            .iter()
            .map(|gw| {
                let last: Vec<&Second> = gw.history.iter().rev().take(WINDOW_S).collect();
                let mut w = window(&last, ts);
                // The whole history kept (15 minutes) is the gateway's own level.
                let all: u64 = gw.history.iter().map(|s| s.total).sum();
                w.baseline_rps = (!gw.history.is_empty()).then(|| all as f64 / gw.history.len() as f64);
                (gw.id.to_string(), w)
            })
            .collect();
        Box::pin(async move { Ok(map) })
    }

    fn series(&self, gateway: &str) -> BoxFuture<'_, FleetResult<(u32, Vec<SeriesPoint>)>> {
        let sim = self.lock();
        let result = match sim.gateways.iter().find(|g| g.id == gateway) {
            None => Err(FleetError::NotFound(gateway.to_string())),
            Some(gw) => {
                let seconds: Vec<&Second> = gw.history.iter().collect();
                // Align steps to the newest second so the last point is "now".
                let skip = seconds.len() % STEP_S;
                let points = seconds[skip..]
                    .chunks(STEP_S)
                    .map(|chunk| window(chunk, sim.ts_ms(chunk[chunk.len() - 1].t)).point())
                    .collect();
                Ok((STEP_S as u32, points))
            }
        };
        Box::pin(async move { result })
    }
}

/// The simulator's routing table as a dependency graph, with the last `RECENT_S` seconds'
/// traffic: gateways (ready pods), their routes (rates, 5xx share, p99) and the services
/// behind them (their own failure probability and load; the model has no endpoints).
pub fn dependencies_of(sim: &model::Sim) -> app::dto::DependencyGraph {
    use app::dto::{DepEdge, DepNode, DependencyGraph};
    use app::health::node_health;
    let mut g = DependencyGraph::default();
    let window = parts::RECENT_S.max(1) as f64;
    for gw in &sim.gateways {
        let ready = gw.ready_pods(sim.t).count() as u32;
        let mut all = parts::Second::zero(sim.t);
        for second in &gw.route_recent {
            for r in second {
                all.add(r);
            }
        }
        let share = |s: &parts::Second| if s.total > 0 { s.c5xx as f64 / s.total as f64 } else { 0.0 };
        let gateway_id = format!("gateway:{}", gw.id);
        g.nodes.push(DepNode {
            id: gateway_id.clone(),
            kind: "gateway".into(),
            name: gw.name.into(),
            gateway: Some(gw.id.into()),
            health: node_health(Some(share(&all)), Some(ready)),
            rps: Some(all.total as f64 / window),
            error_rate: Some(share(&all)),
            latency_ms: Some(histogram::quantile(0.99, &all.buckets)),
            ready_endpoints: Some(ready),
            endpoints: Some(gw.pods.len() as u32),
        });
        for (k, route) in gw.routes.iter().enumerate() {
            let mut s = parts::Second::zero(sim.t);
            for second in &gw.route_recent {
                if let Some(r) = second.get(k) {
                    s.add(r);
                }
            }
            let route_id = format!("route:{}:{}", gw.id, route.path);
            let bypassed = gw.bypassed.iter().any(|b| b == route.service);
            g.nodes.push(DepNode {
                id: route_id.clone(),
                kind: "route".into(),
                name: route.path.into(),
                gateway: Some(gw.id.into()),
                health: node_health(Some(share(&s)), None),
                rps: Some(s.total as f64 / window),
                error_rate: Some(share(&s)),
                latency_ms: Some(histogram::quantile(0.99, &s.buckets)),
                ready_endpoints: None,
                endpoints: None,
            });
            g.edges.push(DepEdge {
                from: gateway_id.clone(),
                to: route_id.clone(),
                rps: Some(s.total as f64 / window),
                error_rate: Some(share(&s)),
            });
            // What the route sends on: everything it admitted (not throttled, not
            // rejected by its own auth layer), none while the service is bypassed.
            let sent = if bypassed { 0 } else { s.total.saturating_sub(s.c429 + s.c4xx) };
            g.edges.push(DepEdge {
                from: route_id,
                to: format!("service:{}", route.service),
                rps: Some(sent as f64 / window),
                error_rate: Some(if sent > 0 { (s.c5xx as f64 / sent as f64).min(1.0) } else { 0.0 }),
            });
        }
    }
    for svc in &sim.services {
        let used = sim.gateways.iter().flat_map(|gw| &gw.routes).filter(|r| r.service == svc.name);
        let latencies: Vec<f64> = used.map(|r| r.latency_ms * svc.latency_mult).collect();
        if latencies.is_empty() {
            continue;
        }
        g.nodes.push(DepNode {
            id: format!("service:{}", svc.name),
            kind: "service".into(),
            name: svc.name.into(),
            gateway: None,
            health: node_health(Some(svc.fail), None),
            rps: Some(svc.load),
            error_rate: Some(svc.fail),
            latency_ms: Some(latencies.iter().sum::<f64>() / latencies.len() as f64),
            ready_endpoints: None,
            endpoints: None,
        });
    }
    g
}
