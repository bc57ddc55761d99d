//! What the console can see of a gateway fleet and its metrics, as two small traits.
//!
//! `Fleet` is shaped by what kubectl sees (Deployments matching a selector, their pods
//! and revisions) so that a Kubernetes backend can implement it; `Metrics` by what a
//! PromQL backend can answer. The simulator implements both.

pub mod cluster;
pub mod dns;
pub mod prometheus;
pub mod sim;

use app::dto::{Instance, Latency, SeriesPoint};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// A gateway as the orchestrator knows it: a Deployment and its pods.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayInventory {
    /// Identifier used in URLs.
    pub id: String,
    /// Deployment name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `spec.replicas`.
    pub desired: u32,
    /// Version of the template's revision.
    pub version: String,
    /// The pods, sorted by name.
    pub instances: Vec<Instance>,
    /// Where the gateway answers HTTP for endpoint probes and its key paths (Kubernetes:
    /// the Deployment's `gatewarden.io/probe-url` and `gatewarden.io/probe-paths`).
    pub probe: Option<(String, Vec<String>)>,
}

/// A gateway's traffic over the most recent window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthWindow {
    /// End of the window, Unix milliseconds.
    pub ts_ms: i64,
    /// Requests per second.
    pub rps: f64,
    /// Fraction 5xx.
    pub error_rate_5xx: f64,
    /// Fraction 429.
    pub throttle_rate_429: f64,
    /// Percentiles of admitted requests.
    pub latency_ms: Latency,
    /// Requests per second over the last 15 minutes, when the backend can say.
    pub baseline_rps: Option<f64>,
}

impl HealthWindow {
    /// The window as a chart point.
    pub fn point(&self) -> SeriesPoint {
        SeriesPoint {
            ts_ms: self.ts_ms,
            rps: self.rps,
            error_rate_5xx: self.error_rate_5xx,
            throttle_rate_429: self.throttle_rate_429,
            latency_ms: self.latency_ms,
        }
    }
}

/// A token bucket in front of the gateway (or one route): what exceeds it gets 429
/// at once and costs the worker pool nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimitPolicy {
    /// Refill rate.
    pub requests_per_second: u32,
    /// Bucket size.
    pub burst: u32,
    /// Only this route's path, or every route.
    pub route: Option<String>,
}

/// How far the Deployment's rollout has come (kubectl rollout status).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// `spec.replicas`.
    pub desired: u32,
    /// Pods of the current revision.
    pub updated: u32,
    /// Pods of the current revision passing readiness.
    pub ready: u32,
    /// All pods, old and new.
    pub total: u32,
    /// The rollout is complete.
    pub done: bool,
    /// Why the rollout will not complete (kubectl: "exceeded its progress deadline").
    #[serde(default)]
    pub failed: Option<String>,
}

/// A HorizontalPodAutoscaler that owns a gateway's replica count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Autoscaler {
    /// The HPA's name.
    pub name: String,
    /// `spec.minReplicas`.
    pub min_replicas: u32,
    /// `spec.maxReplicas`.
    pub max_replicas: u32,
}

/// How long the gateway waits on upstreams and how often it retries a failed attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeoutPolicy {
    /// Whole-request timeout per attempt, ms.
    pub request_timeout_ms: u32,
    /// Connection timeout, ms (a failing upstream holds a worker this long at most).
    pub connect_timeout_ms: u32,
    /// Retries after a failed attempt.
    pub retries: u32,
}

/// Outlier ejection: after `consecutive_errors` failures an upstream host is ejected for
/// `ejection_seconds`, at most `max_ejection_percent` of hosts at once; requests to
/// ejected hosts fail fast instead of holding a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// Failures in a row that eject a host.
    pub consecutive_errors: u32,
    /// How long an ejection lasts.
    pub ejection_seconds: u32,
    /// Largest share of a service's hosts ejected at once.
    pub max_ejection_percent: u32,
    /// Only this downstream service, or every one.
    pub service: Option<String>,
}

/// A pod template's fields that decide what runs, by name: `<container>: image`,
/// `: command`, `: args`, `: env` (names only: values may be secrets), `: resources`,
/// `: readinessProbe` ..., `label <k>`, `annotation <k>`, `pod spec` (the rest). A
/// restart's annotation and `pod-template-hash` are not among them, so two revisions that
/// differ only by a restart have equal fields.
pub type TemplateFields = std::collections::BTreeMap<String, String>;

/// What a mitigation needs to know about a gateway to plan a change and to tell later
/// whether the change took effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayState {
    /// `spec.replicas`.
    pub replicas: u32,
    /// Revision number of the current template.
    pub revision: u32,
    /// Version of the current template.
    pub version: String,
    /// `pod-template-hash` of the current template.
    pub template: String,
    /// Every revision still in history: (number, version), oldest first.
    pub revisions: Vec<(u32, String)>,
    /// What each revision's pod template runs, field by field (see [`TemplateFields`]),
    /// for rollback previews. Not serialized: the audit keeps versions, not templates.
    #[serde(skip)]
    pub templates: std::collections::BTreeMap<u32, TemplateFields>,
    /// Route paths.
    pub routes: Vec<String>,
    /// The emergency rate limit in force.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Whom a rate limit counts, as the backend enforces it ("" when it has none): the
    /// preview says it, since "N req/s" means different things to different gateways.
    #[serde(default)]
    pub rate_limit_scope: String,
    /// Timeouts and retries in force.
    pub timeouts: TimeoutPolicy,
    /// The circuit breaker in force.
    pub circuit_breaker: Option<BreakerPolicy>,
    /// Downstream services behind the gateway's routes.
    pub services: Vec<String>,
    /// Services whose clients are routed around the gateway.
    pub bypassed: Vec<String>,
    /// The autoscaler that manages `replicas`, if any: a manual scale would be undone.
    #[serde(default)]
    pub autoscaler: Option<Autoscaler>,
    /// `spec.paused`: restart and rollback are refused, as kubectl refuses them.
    #[serde(default)]
    pub paused: bool,
    /// Each service's public DNS record and where a DNS bypass points it, when the console
    /// manages DNS (`--dns-server`); empty otherwise. Not serialized: a DNS change carries
    /// its records itself, and the audit's snapshots stay the gateway's.
    #[serde(skip)]
    pub dns: Vec<ServiceRecord>,
}

/// A service's public record (`<service>.<zone>`) and its direct target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The downstream service.
    pub service: String,
    /// Its record as the zone's primary serves it now (`None`: no A, AAAA or CNAME there,
    /// or the server could not be asked: see `problem`).
    pub current: Option<crate::dns::RecordSet>,
    /// Its own address, where clients go while it bypasses the gateway.
    pub direct: crate::dns::RecordSet,
    /// The URL that must answer at `direct` before clients are sent there (a DNS
    /// bypass's preflight): the service's health path on its public name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Why `current` is unknown, when the server could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What the preview must add about how the change is published (external-dns' sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A change to a gateway, in backend-neutral terms; each backend knows how to make it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// Roll every pod onto a fresh copy of the current template.
    Restart,
    /// Set `spec.replicas`.
    Scale {
        /// New replica count.
        replicas: u32,
    },
    /// Set the bounds of the autoscaler that manages the gateway's replicas.
    Autoscale {
        /// New `minReplicas`.
        min_replicas: u32,
        /// New `maxReplicas`.
        max_replicas: u32,
    },
    /// Make an earlier revision's template current again.
    Rollback {
        /// The revision to return to.
        revision: u32,
    },
    /// Set (or, with `None`, remove) the emergency rate limit.
    RateLimit {
        /// The limit.
        policy: Option<RateLimitPolicy>,
    },
    /// Set timeouts and retries.
    Timeouts {
        /// The new values.
        policy: TimeoutPolicy,
    },
    /// Set (or remove) the circuit breaker.
    CircuitBreaker {
        /// The breaker.
        policy: Option<BreakerPolicy>,
    },
    /// Point a service's public DNS record somewhere else (a DNS bypass, or its undo):
    /// `from` must still be what the zone serves.
    DnsRecord {
        /// The downstream service.
        service: String,
        /// The RRset the change was planned against.
        from: crate::dns::RecordSet,
        /// The RRset it becomes.
        to: crate::dns::RecordSet,
    },
    /// Route a service's clients around the gateway (or back through it).
    Bypass {
        /// The downstream service.
        service: String,
        /// Around the gateway (true) or through it again (false).
        enabled: bool,
    },
}

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No gateway with that id.
    #[error("no gateway '{0}'")]
    NotFound(String),
    /// The backend (cluster, Prometheus) is unreachable or refused; the text is for logs
    /// and for the health view's "degraded backend" banner, never raw to clients.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend's state rules the change out (a paused Deployment, no rollout history,
    /// an autoscaler in charge); the text says why and is shown to the user.
    #[error("{0}")]
    Refused(String),
    /// Someone else changed the object between the preview and the change.
    #[error("{0}")]
    Conflict(String),
    /// The cluster refused the console's credentials (RBAC).
    #[error("{0}")]
    Forbidden(String),
    /// The cluster rejected the request as invalid (schema, admission webhook).
    #[error("{0}")]
    Rejected(String),
    /// The backend cannot make this kind of change (no adapter for the gateway kind).
    #[error("{0}")]
    Unsupported(String),
}

/// Result of a backend call.
pub type FleetResult<T> = Result<T, FleetError>;

/// One round of following a change that others still have to pick up after the backend
/// made it (a DNS record the zone's other servers serve after a transfer).
#[derive(Clone, Debug, PartialEq)]
pub struct Propagation {
    /// Who was asked and already serves the change (`127.0.0.2:53`).
    pub serving: Vec<String>,
    /// Who was asked and does not yet (or did not answer).
    pub pending: Vec<String>,
    /// On the last round: how long it took everyone (`Ok`), or that the deadline passed
    /// with `pending` still not serving it (`Err(deadline)`). A problem before any
    /// round (no server to ask) is `Err` with nothing serving or pending.
    pub finished: Option<Result<std::time::Duration, std::time::Duration>>,
    /// Why following it could not start, when it could not.
    pub problem: Option<String>,
    /// Who publishes the change, when that is not a set of DNS servers asked one by one
    /// (`external-dns`): the detail then says "waiting for" / "published by" it.
    pub by: Option<String>,
}

/// The gateways and their instances.
pub trait Fleet: Send + Sync {
    /// Every gateway, sorted by id (shared: a large fleet's inventory is built once per
    /// change, not once per request).
    fn inventory(&self) -> BoxFuture<'_, FleetResult<Arc<Vec<GatewayInventory>>>>;
    /// Bumps whenever anything observable may have changed (a tick, a watch event).
    fn updates(&self) -> watch::Receiver<u64>;
    /// The backend's clock in seconds (simulated seconds for the simulator); TTLs and
    /// "60 seconds later" impact readings are measured on it.
    fn clock_s(&self) -> i64;
    /// What a mitigation needs to know about `gateway`.
    fn state(&self, gateway: &str) -> BoxFuture<'_, FleetResult<GatewayState>>;
    /// Makes `change`, planned against `before`; returns the state right after. A
    /// backend that can tell refuses when the gateway no longer matches `before`.
    fn apply<'a>(
        &'a self,
        gateway: &'a str,
        change: &'a Change,
        before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<GatewayState>>;
    /// Asks the backend to validate `change` without making it (server-side dry run);
    /// backends with nothing to ask accept every planned change.
    fn check<'a>(
        &'a self,
        _gateway: &'a str,
        _change: &'a Change,
        _before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Who depends on what: gateways → routes → downstream services, with health and
    /// traffic (`GET /api/v1/dependencies`).
    fn dependencies(&self) -> BoxFuture<'_, FleetResult<app::dto::DependencyGraph>> {
        Box::pin(async { Err(FleetError::Unsupported("this backend does not map dependencies".into())) })
    }
    /// Whether the dependency map carries traffic numbers; if not, the gateways' come from
    /// the metrics backend (Kubernetes: Prometheus knows traffic, the cluster does not).
    fn maps_traffic(&self) -> bool {
        true
    }
    /// Resolves once the backend has read its initial state (Kubernetes: every watch has
    /// listed once), or after `limit`, whichever comes first.
    fn synced(&self, _limit: std::time::Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// The backend has read its initial state (Kubernetes: every watch has listed).
    fn listed(&self) -> bool {
        true
    }
    /// Why the backend is degraded right now (watch errors, unreachable cluster), if it is.
    fn problem(&self) -> Option<String> {
        None
    }
    /// The last `tail` lines of each of the gateway's pods (`kubectl logs -l ... --tail`),
    /// optionally only from the last `since_seconds`.
    fn logs(
        &self,
        _gateway: &str,
        _tail: i64,
        _since_seconds: Option<i64>,
    ) -> BoxFuture<'_, FleetResult<Vec<app::dto::PodLogLine>>> {
        Box::pin(async {
            Err(FleetError::Unsupported(
                "this backend has no pod logs to read: search the log view (/logs) instead".into(),
            ))
        })
    }
    /// Recent orchestrator events about `gateway`, newest first (none by default).
    fn events(&self, _gateway: &str) -> Vec<app::dto::EventRow> {
        Vec::new()
    }
    /// When each revision of `gateway` still in history was created: (Unix ms on the
    /// charts' clock, revision number, version), oldest first. A rollback reuses an old
    /// revision's template, so it adds no entry here (the action marks it).
    fn revision_times(&self, _gateway: &str) -> Vec<(i64, u32, String)> {
        Vec::new()
    }
    /// The charts' time (Unix ms) of the backend clock's second `clock_s`.
    fn ts_ms_of(&self, clock_s: i64) -> i64 {
        clock_s * 1000
    }
    /// Rollout progress, judged as `kubectl rollout status` does.
    fn rollout(&self, gateway: &str) -> BoxFuture<'_, FleetResult<RolloutState>>;
    /// For a change made that others still have to pick up: follows it, one report per
    /// round that differs from the last, the final one `finished`. `None`: nothing to
    /// follow (the change is in effect once `apply` returns).
    fn propagation(
        &self,
        _gateway: &str,
        _change: &Change,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Propagation>> {
        None
    }
    /// How `service`'s clients fare through `gateway` and around it. `None`: the backend
    /// cannot tell (a cluster's metrics see the gateway's side only).
    fn service_impact(&self, _gateway: &str, _service: &str) -> Option<app::dto::ServiceImpact> {
        None
    }
    /// The services bypassing `gateway` now, and how (`route` or `dns`).
    fn bypasses(&self, _gateway: &str) -> Vec<(String, &'static str)> {
        Vec::new()
    }
}

/// Gateway traffic numbers.
pub trait Metrics: Send + Sync {
    /// Every gateway's most recent window, by gateway id.
    fn current(&self) -> BoxFuture<'_, FleetResult<HashMap<String, HealthWindow>>>;
    /// The last 15 minutes of one gateway: (step in seconds, points oldest first).
    fn series(&self, gateway: &str) -> BoxFuture<'_, FleetResult<(u32, Vec<SeriesPoint>)>>;
}
