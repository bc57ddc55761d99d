//! The simulated fleet's state and its one-second step.
//!
//! Everything a responder sees comes from causes (SIMULATION.md): 429 from per-route
//! quotas, 504 from requests the saturated worker pool cannot serve, 5xx from the share
//! of traffic served by pods of a bad revision, latency from queueing (Little's law:
//! in-flight = rate × latency, against `workers` per ready pod).

use super::histogram::{self, Buckets, NB};
use super::rng::SplitMix64;
pub use crate::fleet::{RateLimitPolicy, RolloutState};
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// Seconds of per-second history kept (the charts' 15 minutes).
pub const HISTORY_S: usize = 900;
/// When a scenario's incident begins, in simulated seconds after the history starts.
/// The simulation starts "now" at `HISTORY_S`, so charts show the onset 5 minutes ago.
pub const ONSET_S: i64 = 600;
/// How long a gateway waits on a request before answering 504.
pub const GATEWAY_TIMEOUT_MS: f64 = 10_000.0;
/// Log-normal shape of per-request latency.
const LATENCY_SIGMA: f64 = 0.5;

/// A named incident the fleet starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Nothing wrong.
    Healthy,
    /// The newest edge version fails many requests with 5xx.
    BadDeploy,
    /// Edge traffic quadruples: latency climbs and quotas answer 429.
    TrafficSurge,
}

impl Scenario {
    /// Every scenario, in the order the UI lists them.
    pub const ALL: [Scenario; 3] = [Scenario::Healthy, Scenario::BadDeploy, Scenario::TrafficSurge];

    /// Command-line and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::BadDeploy => "bad-deploy",
            Scenario::TrafficSurge => "traffic-surge",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Scenario::ALL.iter().map(|x| x.as_str()).collect();
            format!("unknown scenario '{s}' (expected one of: {})", names.join(", "))
        })
    }
}

/// Inputs that fully determine the simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Random seed.
    pub seed: u64,
    /// Starting incident.
    pub scenario: Scenario,
    /// Wall-clock time of simulated second 0, Unix milliseconds (only labels and the
    /// daily traffic shape depend on it).
    pub epoch_ms: i64,
}

/// A route of a gateway and the downstream service behind it.
#[derive(Clone, Debug)]
pub struct Route {
    /// Path prefix.
    pub path: &'static str,
    /// Downstream service name.
    pub service: &'static str,
    /// Mean offered requests per second at the daily average.
    pub baseline_rps: f64,
    /// Per-route quota: requests beyond it in a second get 429.
    pub quota_rps: f64,
    /// Downstream latency when nothing is wrong, milliseconds.
    pub latency_ms: f64,
}

/// A Deployment revision (ReplicaSet).
#[derive(Clone, Debug)]
pub struct Revision {
    /// `deployment.kubernetes.io/revision`.
    pub number: u32,
    /// Image tag.
    pub version: String,
    /// `pod-template-hash`.
    pub hash: String,
    /// Probability that a pod of this revision fails a request with 500.
    pub error_prob: f64,
}

/// A gateway pod.
#[derive(Clone, Debug)]
pub struct Pod {
    /// Pod name.
    pub name: String,
    /// Revision number it runs.
    pub revision: u32,
    /// Simulated second it started.
    pub started_at: i64,
    /// Simulated second its readiness probe first passes.
    pub ready_at: i64,
    /// Container restarts.
    pub restarts: u32,
}

/// Aggregated outcome of one simulated second at one gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct Second {
    /// Simulated second.
    pub t: i64,
    /// All requests, including throttled ones.
    pub total: u64,
    /// Successful answers.
    pub c2xx: u64,
    /// Client errors other than 429 (401, 404).
    pub c4xx: u64,
    /// Throttled by a quota or rate limit.
    pub c429: u64,
    /// Server errors (500 bad version, 502 upstream, 503 no instance, 504 timeout).
    pub c5xx: u64,
    /// Latency of admitted requests (throttled ones are answered before queueing).
    pub buckets: Buckets,
}

/// One simulated gateway: a Deployment, its pods, its routes and its history.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// Identifier in URLs.
    pub id: &'static str,
    /// Deployment name.
    pub name: &'static str,
    /// Namespace.
    pub namespace: &'static str,
    /// Routes to downstream services.
    pub routes: Vec<Route>,
    /// Concurrent requests one pod can hold.
    pub workers_per_pod: f64,
    /// `spec.replicas`.
    pub desired: u32,
    /// Every revision so far, oldest first.
    pub revisions: Vec<Revision>,
    /// The revision the Deployment's template is at.
    pub target_revision: u32,
    /// Current pods.
    pub pods: Vec<Pod>,
    /// Per-second outcomes, oldest first, at most `HISTORY_S`.
    pub history: VecDeque<Second>,
    /// Multiplier on offered load (traffic surge).
    pub surge: f64,
    /// Emergency rate limit, if one is set.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Tokens left in the rate limit's bucket.
    pub tokens: f64,
}

impl Gateway {
    /// The revision with `number`.
    pub fn revision(&self, number: u32) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == number)
    }

    /// Pods passing readiness at second `t`.
    pub fn ready_pods(&self, t: i64) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(move |p| p.ready_at <= t)
    }
}

/// The whole simulation. Deterministic: the same config and the same calls give the
/// same state, to the last request.
#[derive(Clone, Debug)]
pub struct Sim {
    /// Inputs.
    pub config: SimConfig,
    /// Seconds simulated so far (the current second).
    pub t: i64,
    rng: SplitMix64,
    /// The gateways.
    pub gateways: Vec<Gateway>,
}

const POD_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Sim {
    /// A fleet in `config.scenario`, with `HISTORY_S` seconds already simulated so the
    /// charts are full from the first page load.
    pub fn new(config: SimConfig) -> Self {
        let mut sim = Self::cold(config);
        for _ in 0..HISTORY_S {
            sim.step();
        }
        sim
    }

    /// The fleet at simulated second 0, with no history.
    pub fn cold(config: SimConfig) -> Self {
        let mut sim = Sim { rng: SplitMix64::new(config.seed), config, t: 0, gateways: Vec::new() };
        sim.edge();
        sim.partner();
        sim
    }

    fn edge(&mut self) {
        let routes = vec![
            route("/api/users", "users", 120.0, 25.0),
            route("/api/orders", "orders", 90.0, 45.0),
            route("/api/payments", "payments", 60.0, 80.0),
            route("/api/catalog", "catalog", 220.0, 20.0),
            route("/api/search", "search", 150.0, 60.0),
            route("/api/cart", "cart", 110.0, 30.0),
            route("/api/auth", "auth", 100.0, 15.0),
            route("/api/notifications", "notifications", 50.0, 35.0),
        ];
        self.gateway("edge", "public-edge", "edge-system", routes, 4, &["2.13.2", "2.14.1"]);
    }

    fn partner(&mut self) {
        let routes = vec![
            route("/v1/orders", "orders", 110.0, 45.0),
            route("/v1/inventory", "inventory", 90.0, 40.0),
            route("/v1/payments", "payments", 50.0, 80.0),
            route("/v1/shipping", "shipping", 50.0, 70.0),
        ];
        self.gateway("partner", "partner-api", "partner-system", routes, 3, &["1.8.0", "1.9.3"]);
    }

    fn gateway(
        &mut self,
        id: &'static str,
        name: &'static str,
        namespace: &'static str,
        routes: Vec<Route>,
        replicas: u32,
        versions: &[&str],
    ) {
        let revisions: Vec<Revision> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| Revision { number: i as u32 + 1, version: v.to_string(), hash: self.hash(), error_prob: 0.0 })
            .collect();
        let target_revision = revisions.len() as u32;
        let gw = Gateway {
            id,
            name,
            namespace,
            routes,
            workers_per_pod: 24.0,
            desired: replicas,
            revisions,
            target_revision,
            pods: Vec::new(),
            history: VecDeque::with_capacity(HISTORY_S + 1),
            surge: 1.0,
            rate_limit: None,
            tokens: 0.0,
        };
        self.gateways.push(gw);
        let index = self.gateways.len() - 1;
        for _ in 0..replicas {
            // Pods that have been running for days before the simulation starts.
            let started_at = -(3 * 86_400 + self.rng.below(86_400) as i64);
            let pod = self.pod(index, target_revision, started_at);
            self.gateways[index].pods.push(pod);
        }
    }

    fn hash(&mut self) -> String {
        (0..10).map(|_| POD_ALPHABET[self.rng.below(POD_ALPHABET.len() as u64) as usize] as char).collect()
    }

    fn pod(&mut self, gw: usize, revision: u32, started_at: i64) -> Pod {
        let gw = &self.gateways[gw];
        let (name, hash) = (gw.name, gw.revision(revision).map(|r| r.hash.clone()).unwrap_or_default());
        let suffix: String =
            (0..5).map(|_| POD_ALPHABET[self.rng.below(POD_ALPHABET.len() as u64) as usize] as char).collect();
        // Readiness takes 8–12 s: the probe's initial delay plus the first passes.
        let ready_at = started_at + 8 + self.rng.below(5) as i64;
        Pod { name: format!("{name}-{hash}-{suffix}"), revision, started_at, ready_at, restarts: 0 }
    }

    /// The gateway with `id`.
    pub fn gateway_index(&self, id: &str) -> Option<usize> {
        self.gateways.iter().position(|g| g.id == id)
    }

    /// `kubectl rollout restart`: a new template (same version), rolled out.
    pub fn restart(&mut self, i: usize) {
        let hash = self.hash();
        let gw = &mut self.gateways[i];
        let current = gw.revision(gw.target_revision).cloned().expect("target revision exists");
        let number = gw.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        gw.revisions.push(Revision { number, hash, ..current });
        gw.target_revision = number;
    }

    /// `kubectl scale --replicas`.
    pub fn scale(&mut self, i: usize, replicas: u32) {
        self.gateways[i].desired = replicas;
    }

    /// `kubectl rollout undo [--to-revision]`: the old ReplicaSet becomes the newest
    /// revision again (its number changes, its pods and template stay).
    pub fn rollback(&mut self, i: usize, to: u32) {
        let gw = &mut self.gateways[i];
        let number = gw.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        if let Some(r) = gw.revisions.iter_mut().find(|r| r.number == to) {
            r.number = number;
        }
        for p in gw.pods.iter_mut().filter(|p| p.revision == to) {
            p.revision = number;
        }
        gw.revisions.sort_by_key(|r| r.number);
        gw.target_revision = number;
    }

    /// Sets or clears the emergency rate limit; a new bucket starts full.
    pub fn set_rate_limit(&mut self, i: usize, policy: Option<RateLimitPolicy>) {
        let gw = &mut self.gateways[i];
        gw.tokens = policy.as_ref().map_or(0.0, |p| f64::from(p.burst.max(p.requests_per_second)));
        gw.rate_limit = policy;
    }

    /// Rollout progress of gateway `i`.
    pub fn rollout(&self, i: usize) -> RolloutState {
        let gw = &self.gateways[i];
        let updated = gw.pods.iter().filter(|p| p.revision == gw.target_revision).count() as u32;
        let ready = gw.pods.iter().filter(|p| p.revision == gw.target_revision && p.ready_at <= self.t).count() as u32;
        let total = gw.pods.len() as u32;
        RolloutState {
            desired: gw.desired,
            updated,
            ready,
            total,
            done: updated == gw.desired && ready == gw.desired && total == gw.desired,
        }
    }

    /// Wall-clock time of the end of simulated second `t`, Unix milliseconds.
    pub fn ts_ms(&self, t: i64) -> i64 {
        self.config.epoch_ms + (t + 1) * 1000
    }

    /// Simulates one more second.
    pub fn step(&mut self) {
        let t = self.t;
        self.apply_scenario(t);
        for i in 0..self.gateways.len() {
            self.reconcile(i, t);
            let second = self.traffic(i, t);
            let history = &mut self.gateways[i].history;
            if history.len() == HISTORY_S {
                history.pop_front();
            }
            history.push_back(second);
        }
        self.t += 1;
    }

    /// Scenario events, at the onset second (or as a ramp from it).
    fn apply_scenario(&mut self, t: i64) {
        match self.config.scenario {
            Scenario::Healthy => {}
            Scenario::BadDeploy => {
                if t == ONSET_S {
                    // A new edge version rolls out and fails 45% of what it serves.
                    let hash = self.hash();
                    let edge = &mut self.gateways[0];
                    let number = edge.revisions.len() as u32 + 1;
                    edge.revisions.push(Revision { number, version: "2.15.0".into(), hash, error_prob: 0.45 });
                    edge.target_revision = number;
                }
            }
            Scenario::TrafficSurge => {
                // Edge load climbs to 4x over a minute and stays there.
                let ramp = ((t - ONSET_S) as f64 / 60.0).clamp(0.0, 1.0);
                self.gateways[0].surge = 1.0 + 3.0 * ramp;
            }
        }
    }

    /// The Deployment controller: a rolling update within maxSurge 25% (rounded up)
    /// and maxUnavailable 25% (rounded down), and scaling to `desired`.
    fn reconcile(&mut self, i: usize, t: i64) {
        let (desired, target) = (self.gateways[i].desired, self.gateways[i].target_revision);
        let max_surge = desired.div_ceil(4).max(1);
        let max_unavailable = desired / 4;
        let min_available = desired.saturating_sub(max_unavailable);
        loop {
            let gw = &self.gateways[i];
            let total = gw.pods.len() as u32;
            let new = gw.pods.iter().filter(|p| p.revision == target).count() as u32;
            if new < desired && total < desired + max_surge {
                let pod = self.pod(i, target, t);
                self.gateways[i].pods.push(pod);
                continue;
            }
            let gw = &mut self.gateways[i];
            let ready = gw.ready_pods(t).count() as u32;
            let old_unready = gw.pods.iter().position(|p| p.revision != target && p.ready_at > t);
            let old_ready = gw.pods.iter().position(|p| p.revision != target && p.ready_at <= t);
            if let Some(k) = old_unready {
                gw.pods.remove(k);
            } else if let (Some(k), true) = (old_ready, ready > min_available) {
                gw.pods.remove(k);
            } else if old_ready.is_none() && total > desired {
                // Scale down: not-ready pods go first, then the youngest.
                let k = gw
                    .pods
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, p)| (p.ready_at > t, p.started_at))
                    .map(|(k, _)| k)
                    .unwrap_or(0);
                gw.pods.remove(k);
            } else {
                break;
            }
        }
    }

    /// Daily traffic shape: a peak in the afternoon, a trough at night (±20%).
    fn daily(&self, t: i64) -> f64 {
        let secs = (self.config.epoch_ms / 1000 + t).rem_euclid(86_400) as f64;
        1.0 + 0.2 * (std::f64::consts::TAU * (secs / 3600.0 - 9.0) / 24.0).sin()
    }

    fn traffic(&mut self, i: usize, t: i64) -> Second {
        let daily = self.daily(t);
        let gw = &self.gateways[i];
        let ready: Vec<&Pod> = gw.ready_pods(t).collect();
        let ready_n = ready.len() as f64;
        // Traffic is spread evenly over ready pods, so the bad-version share of failures
        // is the mean failure probability over them.
        let bad_share = if ready.is_empty() {
            0.0
        } else {
            ready.iter().map(|p| gw.revision(p.revision).map_or(0.0, |r| r.error_prob)).sum::<f64>() / ready_n
        };
        let capacity = ready_n * gw.workers_per_pod;
        let routes = gw.routes.clone();
        let surge = gw.surge;
        let limit = gw.rate_limit.clone();
        if let Some(l) = &limit {
            let size = f64::from(l.burst.max(l.requests_per_second));
            self.gateways[i].tokens = (self.gateways[i].tokens + f64::from(l.requests_per_second)).min(size);
        }

        let mut s = Second { t, total: 0, c2xx: 0, c4xx: 0, c429: 0, c5xx: 0, buckets: [0; NB] };
        // First pass: offered and admitted load per route, and the pool demand it makes.
        let mut admitted = Vec::with_capacity(routes.len());
        let mut demand = 0.0;
        for r in &routes {
            let noise = 1.0 + 0.06 * (self.rng.f64() + self.rng.f64() - 1.0);
            let offered = self.rng.round(r.baseline_rps * daily * surge * noise);
            let over_quota = offered.saturating_sub(r.quota_rps as u64);
            // A few clients always exceed their own limits.
            let noisy = self.rng.round((offered - over_quota) as f64 * 0.002);
            let mut throttled = over_quota + noisy;
            // The emergency limit's bucket admits what it holds, route by route.
            if let Some(l) = &limit
                && l.route.as_deref().is_none_or(|p| p == r.path)
            {
                let passing = offered - throttled;
                let allowed = (self.gateways[i].tokens.floor() as u64).min(passing);
                self.gateways[i].tokens -= allowed as f64;
                throttled += passing - allowed;
            }
            s.total += offered;
            s.c429 += throttled;
            let a = offered - throttled;
            admitted.push(a);
            demand += a as f64 * r.latency_ms / 1000.0;
        }
        let rho = if capacity > 0.0 { demand / capacity } else { f64::INFINITY };
        // M/M/c-like waiting: negligible at moderate load, exploding as rho -> 1.
        let rc = rho.min(0.985);
        let wait = 1.0 + rc.powi(8) / (1.0 - rc);
        let served_frac = if rho <= 1.0 { 1.0 } else { 1.0 / rho };
        for (r, &a) in routes.iter().zip(&admitted) {
            if ready_n == 0.0 {
                // No ready instance behind the load balancer: immediate 503.
                s.c5xx += a;
                s.buckets[0] += a;
                continue;
            }
            let served = self.rng.round(a as f64 * served_frac).min(a);
            let timed_out = a - served;
            let bad = self.rng.round(served as f64 * bad_share).min(served);
            let upstream = self.rng.round(served as f64 * 0.0005).min(served - bad);
            let client = self.rng.round(served as f64 * 0.012).min(served - bad - upstream);
            s.c5xx += timed_out + bad + upstream;
            s.c4xx += client;
            s.c2xx += served - bad - upstream - client;
            histogram::spread_lognormal(served, r.latency_ms * wait, LATENCY_SIGMA, &mut s.buckets);
            s.buckets[histogram::bucket_of(GATEWAY_TIMEOUT_MS)] += timed_out;
        }
        s
    }
}

fn route(path: &'static str, service: &'static str, baseline_rps: f64, latency_ms: f64) -> Route {
    // Per-client quotas add up to about 3x a route's average: far above the daily peak
    // (1.2x), so only a surge meets them, and what they admit then fills the pool.
    Route { path, service, baseline_rps, quota_rps: baseline_rps * 3.0, latency_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scenario: Scenario, seed: u64) -> SimConfig {
        SimConfig { seed, scenario, epoch_ms: 1_767_261_600_000 }
    }

    fn sim(scenario: Scenario, seed: u64) -> Sim {
        Sim::new(config(scenario, seed))
    }

    #[test]
    fn rolling_update_replaces_every_pod_within_surge_bounds() {
        let mut s = sim(Scenario::BadDeploy, 1);
        // History ends at 900 s; onset was at 600 s, so the rollout is long done.
        let edge = &s.gateways[0];
        assert_eq!(edge.target_revision, 3);
        assert!(edge.pods.iter().all(|p| p.revision == 3));
        assert_eq!(edge.pods.len(), 4);
        // Replay the rollout and check the bounds every second.
        s = Sim::cold(config(Scenario::BadDeploy, 1));
        for _ in 0..(ONSET_S + 120) {
            s.step();
            let e = &s.gateways[0];
            assert!(e.pods.len() <= 5, "maxSurge 1 exceeded at t={}", s.t);
            assert!(e.ready_pods(s.t).count() >= 3 || s.t < 20, "maxUnavailable 1 exceeded at t={}", s.t);
        }
        assert!(s.gateways[0].pods.iter().all(|p| p.revision == 3));
    }

    #[test]
    fn every_request_is_counted_once() {
        let s = sim(Scenario::TrafficSurge, 3);
        for gw in &s.gateways {
            for sec in &gw.history {
                assert_eq!(sec.total, sec.c2xx + sec.c4xx + sec.c429 + sec.c5xx);
                assert_eq!(sec.buckets.iter().sum::<u64>(), sec.total - sec.c429);
            }
        }
    }
}
