//! The simulated fleet's parts: scenarios, gateways with their pods, revisions and
//! routes, downstream services, and one second of outcomes. Plain data; `model` steps
//! it and `logs` writes lines about it.

use super::histogram::{Buckets, NB};
pub use crate::fleet::{BreakerPolicy, RateLimitPolicy, RolloutState, TimeoutPolicy};
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// Seconds of per-second history kept (the charts' 15 minutes).
pub const HISTORY_S: usize = 900;
/// Seconds of per-route outcomes kept for the dependency map.
pub const RECENT_S: usize = 5;
/// When a scenario's incident begins, in simulated seconds after the history starts.
/// The simulation starts "now" at `HISTORY_S`, so charts show the onset 5 minutes ago.
pub const ONSET_S: i64 = 600;
/// How long a gateway waits on a request before answering 504.
pub const GATEWAY_TIMEOUT_MS: f64 = 10_000.0;

/// A named incident the fleet starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Nothing wrong.
    Healthy,
    /// The newest edge version fails many requests with 5xx.
    BadDeploy,
    /// Edge traffic quadruples: latency climbs and quotas answer 429.
    TrafficSurge,
    /// Two edge instances leak and stop answering the requests they get.
    StuckInstances,
    /// The payments service turns slow and flaky; held workers slow every route.
    DownstreamOutage,
    /// A blip at inventory turns into a storm: partner retries keep it overloaded.
    RetryStorm,
    /// The edge's auth layer fails: every route answers 500.
    AuthFailure,
}

impl Scenario {
    /// Every scenario, in the order the UI lists them.
    pub const ALL: [Scenario; 7] = [
        Scenario::Healthy,
        Scenario::BadDeploy,
        Scenario::TrafficSurge,
        Scenario::StuckInstances,
        Scenario::DownstreamOutage,
        Scenario::RetryStorm,
        Scenario::AuthFailure,
    ];

    /// Command-line and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::BadDeploy => "bad-deploy",
            Scenario::TrafficSurge => "traffic-surge",
            Scenario::StuckInstances => "stuck-instances",
            Scenario::DownstreamOutage => "downstream-outage",
            Scenario::RetryStorm => "retry-storm",
            Scenario::AuthFailure => "auth-failure",
        }
    }
}

impl Scenario {
    /// What a responder sees, for the training card (symptoms, not the cure).
    pub fn briefing(self) -> &'static str {
        match self {
            Scenario::Healthy => "Nothing is wrong. Explore, or restart with --scenario NAME to train on an incident.",
            Scenario::BadDeploy => "Five minutes ago public-edge rolled out a new version, and 5xx jumped with it.",
            Scenario::TrafficSurge => "public-edge's traffic quadrupled five minutes ago: latency and 429s climb.",
            Scenario::StuckInstances => {
                "Some public-edge instances stopped answering, though they still pass readiness."
            }
            Scenario::DownstreamOutage => {
                "A downstream service turned slow and flaky; every public-edge route slows down."
            }
            Scenario::RetryStorm => "inventory had a short blip; partner-api errors have not gone away since.",
            Scenario::AuthFailure => "public-edge answers 500 on every route; checkout is down.",
        }
    }
}

impl Scenario {
    /// The scenario's known cure, for the training summary: the actions that cure it and
    /// what they do here (`None`: nothing to cure).
    pub fn cure(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            Scenario::Healthy => None,
            Scenario::BadDeploy => Some((&["rollback"], "roll public-edge back to the revision before 2.15.0")),
            Scenario::TrafficSurge => {
                Some((&["scale", "rate-limit"], "scale public-edge up, with an emergency rate limit until it lands"))
            }
            Scenario::StuckInstances => Some((&["restart"], "restart public-edge so the stuck instances are replaced")),
            Scenario::DownstreamOutage => Some((
                &["circuit-breaker", "timeouts"],
                "a circuit breaker (or a shorter timeout) on payments, so held workers stop slowing every route",
            )),
            Scenario::RetryStorm => Some((
                &["timeouts", "circuit-breaker"],
                "cut partner-api's retries (or break the circuit to inventory)",
            )),
            Scenario::AuthFailure => {
                Some((&["bypass"], "bypass public-edge for the critical services, by route or by DNS"))
            }
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
    /// Simulated second its ReplicaSet was created (negative: before the simulation).
    pub created_t: i64,
}

impl Revision {
    /// What this revision's pod template runs, as a Deployment's would read (a restart
    /// copies the template, so only the version differs between revisions).
    pub fn template_fields(&self) -> crate::fleet::TemplateFields {
        [
            ("gateway: image".to_string(), format!("registry.example.com/api-gateway:{}", self.version)),
            ("gateway: env".to_string(), "GATEWAY_CONFIG, LOG_FORMAT, UPSTREAM_TIMEOUT_MS".to_string()),
            (
                "gateway: resources".to_string(),
                r#"{"limits":{"memory":"512Mi"},"requests":{"cpu":"250m","memory":"256Mi"}}"#.to_string(),
            ),
        ]
        .into_iter()
        .collect()
    }
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
    /// Leaked and hung: accepts requests and never answers them.
    pub stuck: bool,
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

impl Second {
    /// Nothing happened in second `t`.
    pub fn zero(t: i64) -> Self {
        Second { t, total: 0, c2xx: 0, c4xx: 0, c429: 0, c5xx: 0, buckets: [0; NB] }
    }

    /// Adds `other`'s counts to these (for running totals).
    pub fn add(&mut self, other: &Second) {
        self.t = other.t;
        self.total += other.total;
        self.c2xx += other.c2xx;
        self.c4xx += other.c4xx;
        self.c429 += other.c429;
        self.c5xx += other.c5xx;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }
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
    /// Every outcome since the simulation began (Prometheus counters; `t` is the last second).
    pub totals: Second,
    /// The same per route, in route order.
    pub route_totals: Vec<Second>,
    /// The last `RECENT_S` seconds per route, oldest first (the dependency map's rates).
    pub route_recent: VecDeque<Vec<Second>>,
    /// Multiplier on offered load (traffic surge).
    pub surge: f64,
    /// Emergency rate limit, if one is set.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Tokens left in the rate limit's bucket.
    pub tokens: f64,
    /// Upstream timeouts and retries.
    pub timeouts: TimeoutPolicy,
    /// Circuit breaker, if configured.
    pub breaker: Option<BreakerPolicy>,
    /// Services whose hosts are ejected, until which second.
    pub ejected_until: Vec<(&'static str, i64)>,
    /// Services whose clients go around this gateway.
    pub bypassed: Vec<String>,
    /// Services whose public DNS record was pointed elsewhere: their clients move as
    /// their resolvers' caches expire.
    pub dns_moves: Vec<DnsMove>,
    /// The auth layer fails every request.
    pub auth_broken: bool,
    /// Last second, per downstream service: its clients' requests through this gateway
    /// and around it (a bypass), and how they fared.
    pub service_flows: Vec<ServiceFlow>,
}

/// One second of a service's clients that would come through one gateway.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceFlow {
    /// The service.
    pub service: &'static str,
    /// Requests that came through the gateway, and how many of them succeeded.
    pub via: (f64, f64),
    /// Requests that went straight to the service (bypass), and how many succeeded.
    pub direct: (f64, f64),
    /// Mean latency of a request straight to the service, ms.
    pub direct_mean_ms: f64,
}

/// A service's DNS record changed at second `at`: clients that cached the old answer
/// follow within `over_s` (the old record's TTL), evenly spread, as caches expire.
#[derive(Clone, Debug)]
pub struct DnsMove {
    /// The downstream service.
    pub service: String,
    /// When the record changed (simulated second).
    pub at: i64,
    /// The old record's TTL.
    pub over_s: i64,
    /// Towards the service itself (`true`) or back through the gateway.
    pub direct: bool,
}

impl DnsMove {
    /// The share of the service's clients going straight to it at second `t`.
    pub fn direct_share(&self, t: i64) -> f64 {
        let moved = ((t - self.at) as f64 / self.over_s.max(1) as f64).clamp(0.0, 1.0);
        if self.direct { moved } else { 1.0 - moved }
    }
}

/// A downstream service, shared by every gateway that routes to it.
#[derive(Clone, Debug)]
pub struct Service {
    /// Name.
    pub name: &'static str,
    /// Attempts per second it serves before it starts failing.
    pub capacity_rps: f64,
    /// Failure probability per attempt when not overloaded.
    pub base_fail: f64,
    /// Latency multiplier (an outage makes it slow).
    pub latency_mult: f64,
    /// Failure probability per attempt now (from last second's load).
    pub fail: f64,
    /// A forced failure probability until this second (a blip).
    pub blip: Option<(f64, i64)>,
    /// Attempts it received in the last second, through every gateway.
    pub load: f64,
    /// Share of its clients' requests that succeeded last second (through or around).
    pub client_success: f64,
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
