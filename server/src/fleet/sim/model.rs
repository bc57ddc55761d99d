//! The simulated fleet's state and its one-second step.
//!
//! Everything a responder sees comes from causes (SIMULATION.md): 429 from per-route
//! quotas, 504 from requests the saturated worker pool cannot serve, 5xx from the share
//! of traffic served by pods of a bad revision, latency from queueing (Little's law:
//! in-flight = rate × latency, against `workers` per ready pod).

use super::histogram;
use super::parts::*;
use crate::rng::SplitMix64;
use std::collections::VecDeque;

/// Log-normal shape of per-request latency.
pub(super) const LATENCY_SIGMA: f64 = 0.5;

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
    /// Downstream services.
    pub services: Vec<Service>,
    /// The log lines' own random stream (logging must not change the numbers).
    log_rng: SplitMix64,
    /// Log lines not yet collected, in time order.
    pub logs: Vec<crate::logs::LogRecord>,
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
        let mut sim = Sim {
            rng: SplitMix64::new(config.seed),
            log_rng: SplitMix64::new(config.seed ^ 0x6c6f_6773),
            logs: Vec::new(),
            config,
            t: 0,
            gateways: Vec::new(),
            services: services(),
        };
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
            .map(|(i, v)| Revision {
                number: i as u32 + 1,
                version: v.to_string(),
                hash: self.hash(),
                error_prob: 0.0,
                // A week apart, the newest a few days before the simulation starts.
                created_t: -((versions.len() - i) as i64 + 2) * 7 * 86_400,
            })
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
            totals: Second::zero(0),
            route_totals: Vec::new(),
            route_recent: VecDeque::with_capacity(RECENT_S + 1),
            surge: 1.0,
            rate_limit: None,
            tokens: 0.0,
            timeouts: TimeoutPolicy {
                request_timeout_ms: GATEWAY_TIMEOUT_MS as u32,
                connect_timeout_ms: 2000,
                retries: 2,
            },
            breaker: None,
            ejected_until: Vec::new(),
            bypassed: Vec::new(),
            dns_moves: Vec::new(),
            service_flows: Vec::new(),
            auth_broken: false,
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
        Pod { name: format!("{name}-{hash}-{suffix}"), revision, started_at, ready_at, restarts: 0, stuck: false }
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
        gw.revisions.push(Revision { number, hash, created_t: self.t, ..current });
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
            failed: None,
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
        let mut load = vec![0.0; self.services.len()];
        let mut ok = vec![0.0; self.services.len()];
        let mut asked = vec![0.0; self.services.len()];
        let logged = self.logs.len();
        for i in 0..self.gateways.len() {
            self.reconcile(i, t);
            let per_route = self.traffic(i, t, &mut load, &mut ok, &mut asked);
            let ts_ms = self.ts_ms(t);
            super::logs::emit(
                &self.gateways[i],
                &self.services,
                &per_route,
                t,
                ts_ms,
                &mut self.log_rng,
                &mut self.logs,
            );
            let mut second = Second::zero(t);
            let gw = &mut self.gateways[i];
            gw.route_totals.resize(per_route.len(), Second::zero(t));
            for (total, route) in gw.route_totals.iter_mut().zip(&per_route) {
                second.add(route);
                total.add(route);
            }
            gw.totals.add(&second);
            if gw.route_recent.len() == RECENT_S {
                gw.route_recent.pop_front();
            }
            gw.route_recent.push_back(per_route);
            let history = &mut self.gateways[i].history;
            if history.len() == HISTORY_S {
                history.pop_front();
            }
            history.push_back(second);
        }
        // This second's lines, every gateway's, in time order.
        self.logs[logged..].sort_by_key(|r| r.ts_ms);
        // Services fail more as their load passes 80% of capacity: the feedback that
        // turns retries into a storm. Next second's traffic sees the new value.
        for (k, svc) in self.services.iter_mut().enumerate() {
            svc.load = load[k];
            let over = (load[k] / svc.capacity_rps - 0.8).max(0.0);
            svc.fail = (svc.base_fail + 2.0 * over).min(0.95);
            if let Some((p, until)) = svc.blip {
                if t < until {
                    svc.fail = svc.fail.max(p);
                } else {
                    svc.blip = None;
                }
            }
            svc.client_success = if asked[k] > 0.0 { ok[k] / asked[k] } else { 1.0 };
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
                    edge.revisions.push(Revision {
                        number,
                        version: "2.15.0".into(),
                        hash,
                        error_prob: 0.45,
                        created_t: t,
                    });
                    edge.target_revision = number;
                }
            }
            Scenario::TrafficSurge => {
                // Edge load climbs to 4x over a minute and stays there.
                let ramp = ((t - ONSET_S) as f64 / 60.0).clamp(0.0, 1.0);
                self.gateways[0].surge = 1.0 + 3.0 * ramp;
            }
            Scenario::StuckInstances => {
                // Two edge pods leak until they hang (they still pass readiness).
                if t == ONSET_S {
                    for p in self.gateways[0].pods.iter_mut().take(2) {
                        p.stuck = true;
                    }
                }
            }
            Scenario::DownstreamOutage => {
                if t == ONSET_S
                    && let Some(svc) = self.services.iter_mut().find(|s| s.name == "payments")
                {
                    // Slow (30x) and flaky: the worst kind, it holds workers while failing.
                    svc.latency_mult = 30.0;
                    svc.base_fail = 0.25;
                }
            }
            Scenario::RetryStorm => {
                if t == ONSET_S
                    && let Some(svc) = self.services.iter_mut().find(|s| s.name == "inventory")
                {
                    // A 20-second blip; partner's retries do the rest.
                    svc.blip = Some((0.7, t + 20));
                }
            }
            Scenario::AuthFailure => {
                if t == ONSET_S {
                    self.gateways[0].auth_broken = true;
                }
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

    fn traffic(&mut self, i: usize, t: i64, load: &mut [f64], ok: &mut [f64], asked: &mut [f64]) -> Vec<Second> {
        let daily = self.daily(t);
        let gw = &self.gateways[i];
        let ready: Vec<&Pod> = gw.ready_pods(t).collect();
        let ready_n = ready.len() as f64;
        // Traffic is spread evenly over ready pods: the bad-version share of failures is
        // the mean failure probability over them, and stuck pods swallow their share.
        let (bad_share, stuck_share) = if ready.is_empty() {
            (0.0, 0.0)
        } else {
            let bad = ready.iter().map(|p| gw.revision(p.revision).map_or(0.0, |r| r.error_prob)).sum::<f64>();
            (bad / ready_n, ready.iter().filter(|p| p.stuck).count() as f64 / ready_n)
        };
        // Stuck pods hold their workers forever: only the others' capacity serves.
        let capacity = ready.iter().filter(|p| !p.stuck).count() as f64 * gw.workers_per_pod;
        let routes = gw.routes.clone();
        let (surge, auth_broken) = (gw.surge, gw.auth_broken);
        let limit = gw.rate_limit.clone();
        let timeouts = gw.timeouts.clone();
        let breaker = gw.breaker.clone();
        let bypassed = gw.bypassed.clone();
        let dns_moves = gw.dns_moves.clone();
        let ejected: Vec<(&'static str, i64)> =
            gw.ejected_until.iter().filter(|(_, until)| *until > t).copied().collect();
        if let Some(l) = &limit {
            let size = f64::from(l.burst.max(l.requests_per_second));
            self.gateways[i].tokens = (self.gateways[i].tokens + f64::from(l.requests_per_second)).min(size);
        }
        let request_timeout = f64::from(timeouts.request_timeout_ms);
        let connect_timeout = f64::from(timeouts.connect_timeout_ms.min(timeouts.request_timeout_ms));
        let mut service_flows: Vec<ServiceFlow> = Vec::new();
        fn flow_of(flows: &mut Vec<ServiceFlow>, service: &'static str, mean_ms: f64) -> usize {
            match flows.iter().position(|f| f.service == service) {
                Some(k) => k,
                None => {
                    flows.push(ServiceFlow { service, direct_mean_ms: mean_ms, ..Default::default() });
                    flows.len() - 1
                }
            }
        }

        /// What one route's admitted requests do upstream.
        struct Flow {
            admitted: u64,
            /// Fail fast at the gateway (auth layer down, ejected hosts).
            fast_fail: u64,
            /// Swallowed by stuck pods.
            hung: u64,
            /// Go upstream.
            go: u64,
            /// Probability that a request fails after all its attempts.
            fail: f64,
            /// Mean worker-holding time of a request, ms.
            hold_ms: f64,
            /// Mean latency of a successful request, ms.
            ok_ms: f64,
        }

        // Outcomes per route, in route order.
        let mut per = vec![Second::zero(t); routes.len()];
        let mut flows = Vec::with_capacity(routes.len());
        let mut demand = 0.0;
        let mut trips = Vec::new();
        for (ri, r) in routes.iter().enumerate() {
            let k = self.services.iter().position(|x| x.name == r.service).expect("routes name known services");
            let noise = 1.0 + 0.06 * (self.rng.f64() + self.rng.f64() - 1.0);
            let mut offered = self.rng.round(r.baseline_rps * daily * surge * noise);
            let svc = &self.services[k];
            let attempt_fail = svc.fail;
            let mean = r.latency_ms * svc.latency_mult;
            let f = flow_of(&mut service_flows, r.service, mean);
            if bypassed.iter().any(|b| b == r.service) {
                // Clients go straight to the service: no gateway, no auth, no limits.
                load[k] += offered as f64;
                asked[k] += offered as f64;
                ok[k] += offered as f64 * (1.0 - attempt_fail);
                service_flows[f].direct.0 += offered as f64;
                service_flows[f].direct.1 += offered as f64 * (1.0 - attempt_fail);
                flows.push(None);
                continue;
            }
            // Clients whose resolvers already hold a DNS bypass's answer go straight to
            // the service; the others still come through the gateway.
            let share = dns_moves.iter().find(|m| m.service == r.service).map_or(0.0, |m| m.direct_share(t));
            if share > 0.0 {
                let direct = self.rng.round(offered as f64 * share).min(offered);
                load[k] += direct as f64;
                asked[k] += direct as f64;
                ok[k] += direct as f64 * (1.0 - attempt_fail);
                service_flows[f].direct.0 += direct as f64;
                service_flows[f].direct.1 += direct as f64 * (1.0 - attempt_fail);
                offered -= direct;
            }
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
            per[ri].total += offered;
            per[ri].c429 += throttled;
            let admitted = offered - throttled;
            let hung = self.rng.round(admitted as f64 * stuck_share).min(admitted);
            let live = admitted - hung;
            let breaker_applies = breaker.as_ref().is_some_and(|b| b.service.as_deref().is_none_or(|x| x == r.service));
            let ejected_share = match (&breaker, ejected.iter().any(|(x, _)| *x == r.service)) {
                (Some(b), true) if breaker_applies => f64::from(b.max_ejection_percent.min(100)) / 100.0,
                _ => 0.0,
            };
            let fast_fail = if auth_broken { live } else { self.rng.round(live as f64 * ejected_share).min(live) };
            let go = live - fast_fail;
            // One attempt fails if the upstream fails or runs past the timeout; retries
            // repeat failed attempts: 1 + p + p^2 + ... + p^r attempts per request.
            let late = 1.0 - histogram::lognormal_cdf(request_timeout, mean, LATENCY_SIGMA);
            let p = 1.0 - (1.0 - attempt_fail) * (1.0 - late);
            let attempts: f64 = (0..=timeouts.retries).map(|n| p.powi(n as i32)).sum();
            let fail = p.powi(timeouts.retries as i32 + 1);
            // A failed attempt holds a worker until the upstream gives up or the
            // (connect or request) timeout fires; a good one for its latency.
            let failed_hold =
                (mean * (1.0 - late) + request_timeout * late).min(connect_timeout.max(mean.min(request_timeout)));
            let hold_ms = (attempts - 1.0) * failed_hold + mean.min(request_timeout);
            let ok_ms = (attempts - 1.0) * failed_hold + mean.min(request_timeout);
            load[k] += go as f64 * attempts;
            asked[k] += admitted as f64;
            ok[k] += go as f64 * (1.0 - fail);
            demand += go as f64 * hold_ms / 1000.0;
            // The breaker trips when a host fails `consecutive_errors` times in a row,
            // which at this volume happens once p^n is not negligible.
            if let Some(b) = &breaker
                && breaker_applies
                && go > 0
                && p.powi(b.consecutive_errors.max(1) as i32) * go as f64 >= 1.0
            {
                trips.push((r.service, t + i64::from(b.ejection_seconds)));
            }
            flows.push(Some((r.clone(), Flow { admitted, fast_fail, hung, go, fail, hold_ms, ok_ms })));
        }
        for (service, until) in trips {
            let e = &mut self.gateways[i].ejected_until;
            e.retain(|(x, _)| *x != service);
            e.push((service, until));
        }
        let rho = if capacity > 0.0 { demand / capacity } else { f64::INFINITY };
        // M/M/c-like waiting: negligible at moderate load, exploding as rho -> 1.
        let rc = rho.min(0.985);
        let wait = 1.0 + rc.powi(8) / (1.0 - rc);
        let served_frac = if rho <= 1.0 { 1.0 } else { 1.0 / rho };
        for (ri, flow) in flows.into_iter().enumerate() {
            let Some((r, f)) = flow else { continue };
            let s = &mut per[ri];
            if ready_n == 0.0 {
                // No ready instance behind the load balancer: immediate 503.
                s.c5xx += f.admitted;
                s.buckets[0] += f.admitted;
                continue;
            }
            // Hung requests wait for the load balancer's timeout; fast failures cost ~1 ms.
            s.c5xx += f.hung + f.fast_fail;
            s.buckets[histogram::bucket_of(GATEWAY_TIMEOUT_MS)] += f.hung;
            s.buckets[0] += f.fast_fail;
            let served = self.rng.round(f.go as f64 * served_frac).min(f.go);
            let queued_out = f.go - served;
            let upstream_failed = self.rng.round(served as f64 * f.fail).min(served);
            let answered = served - upstream_failed;
            let bad = self.rng.round(answered as f64 * bad_share).min(answered);
            let stray = self.rng.round(answered as f64 * 0.0005).min(answered - bad);
            let client = self.rng.round(answered as f64 * 0.012).min(answered - bad - stray);
            s.c5xx += queued_out + upstream_failed + bad + stray;
            s.c4xx += client;
            s.c2xx += answered - bad - stray - client;
            histogram::spread_lognormal(answered, f.ok_ms.max(r.latency_ms) * wait, LATENCY_SIGMA, &mut s.buckets);
            histogram::spread_lognormal(upstream_failed, f.hold_ms * wait, LATENCY_SIGMA, &mut s.buckets);
            s.buckets[histogram::bucket_of(GATEWAY_TIMEOUT_MS)] += queued_out;
        }
        // Through the gateway, a request served (2xx, or the client's own 4xx) succeeded.
        for (ri, r) in routes.iter().enumerate() {
            if let Some(f) = service_flows.iter_mut().find(|f| f.service == r.service) {
                f.via.0 += per[ri].total as f64;
                f.via.1 += (per[ri].c2xx + per[ri].c4xx) as f64;
            }
        }
        self.gateways[i].service_flows = service_flows;
        per
    }
}

/// The downstream services: capacity in attempts per second, failure when healthy.
fn services() -> Vec<Service> {
    [
        ("users", 800.0),
        ("orders", 700.0),
        ("payments", 500.0),
        ("catalog", 1500.0),
        ("search", 900.0),
        ("cart", 700.0),
        ("auth", 700.0),
        ("notifications", 400.0),
        ("inventory", 150.0),
        ("shipping", 300.0),
    ]
    .into_iter()
    .map(|(name, capacity_rps)| Service {
        name,
        capacity_rps,
        base_fail: 0.0005,
        latency_mult: 1.0,
        fail: 0.0005,
        blip: None,
        load: 0.0,
        client_success: 1.0,
    })
    .collect()
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
