//! Wire types of `/api/v1`: the one description of what the console shows and accepts.
//!
//! Rates are fractions in [0, 1], latencies milliseconds, request rates per second,
//! timestamps Unix milliseconds. No `usize` crosses the wire (it differs on wasm32).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a person may do. Ordered: each role can do everything the ones below it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees health, logs, the dependency map and the audit trail.
    Viewer,
    /// A viewer who may also restart, scale and tune gateway policy.
    Responder,
    /// A responder who may also roll back, bypass the gateway and manage users.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Responder, Role::Admin];

    /// The name used on the wire, in the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}' (expected viewer, responder or admin)"))
    }
}

/// `POST /api/v1/session` body.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Account name.
    pub username: String,
    /// Plain-text password; never logged, never stored.
    pub password: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Who is signed in, and the token every state-changing request must echo in `X-CSRF-Token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Account name.
    pub username: String,
    /// The account's role.
    pub role: Role,
    /// Per-session anti-CSRF token (empty in a server-rendered page, which carries no
    /// secret: the browser asks `GET /api/v1/session` for it).
    pub csrf_token: String,
}

pub use crate::health::{HealthStatus, NodeHealth, Numbers};

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One gateway's health now (over the last few seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewaySummary {
    /// Stable identifier used in URLs.
    pub id: String,
    /// Display name (the Deployment's name).
    pub name: String,
    /// Namespace the gateway runs in.
    pub namespace: String,
    /// Overall judgement (`unknown` when the numbers could not be read).
    pub status: HealthStatus,
    /// Requests per second; `null` when it could not be read (never a zero).
    pub rps: Option<f64>,
    /// Fraction of requests answered 5xx; `null` when unknown.
    pub error_rate_5xx: Option<f64>,
    /// Fraction of requests answered 429; `null` when unknown.
    pub throttle_rate_429: Option<f64>,
    /// Latency percentiles of admitted requests; `null` when unknown.
    pub latency_ms: Option<Latency>,
    /// Requests per second over the last 15 minutes (the gateway's own level), when known.
    #[serde(default)]
    pub baseline_rps: Option<f64>,
    /// Why the numbers are unknown, when they are.
    #[serde(default)]
    pub blind: Option<String>,
    /// Instances passing readiness.
    pub instances_ready: u32,
    /// Instances the Deployment asks for.
    pub instances_desired: u32,
    /// Version of the current revision.
    pub version: String,
    /// The latest synthetic check of each key path: [passing, checked]; none before
    /// the first round.
    #[serde(default)]
    pub checks: Option<[u32; 2]>,
}

impl GatewaySummary {
    /// The numbers its status was judged from.
    pub fn numbers(&self) -> Numbers {
        Numbers {
            error_rate_5xx: self.error_rate_5xx,
            throttle_rate_429: self.throttle_rate_429,
            p99_ms: self.latency_ms.map(|l| l.p99),
            rps: self.rps,
            baseline_rps: self.baseline_rps,
        }
    }
}

/// One gateway instance (a pod).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instance {
    /// Pod name.
    pub name: String,
    /// Passing its readiness probe.
    pub ready: bool,
    /// Container restarts.
    pub restarts: u32,
    /// Seconds since the pod started.
    pub age_s: u64,
    /// Version the pod runs.
    pub version: String,
    /// Node the pod runs on.
    #[serde(default)]
    pub node: String,
}

/// One point of a gateway's recent history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeriesPoint {
    /// End of the interval, Unix milliseconds.
    pub ts_ms: i64,
    /// Requests per second over the interval.
    pub rps: f64,
    /// Fraction 5xx.
    pub error_rate_5xx: f64,
    /// Fraction 429.
    pub throttle_rate_429: f64,
    /// Latency percentiles over the interval.
    pub latency_ms: Latency,
}

/// `GET /api/v1/gateways/{id}`: the summary's fields plus instances and the last 15
/// minutes. The fields are spelled out rather than `#[serde(flatten)]`ed: flattening
/// drags serde's buffering deserializer into the wasm bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayDetail {
    /// Stable identifier used in URLs.
    pub id: String,
    /// Display name (the Deployment's name).
    pub name: String,
    /// Namespace the gateway runs in.
    pub namespace: String,
    /// Overall judgement (`unknown` when the numbers could not be read).
    pub status: HealthStatus,
    /// Requests per second; `null` when it could not be read (never a zero).
    pub rps: Option<f64>,
    /// Fraction of requests answered 5xx; `null` when unknown.
    pub error_rate_5xx: Option<f64>,
    /// Fraction of requests answered 429; `null` when unknown.
    pub throttle_rate_429: Option<f64>,
    /// Latency percentiles of admitted requests; `null` when unknown.
    pub latency_ms: Option<Latency>,
    /// Requests per second over the last 15 minutes (the gateway's own level), when known.
    #[serde(default)]
    pub baseline_rps: Option<f64>,
    /// Why the numbers are unknown, when they are.
    #[serde(default)]
    pub blind: Option<String>,
    /// Instances passing readiness.
    pub instances_ready: u32,
    /// Instances the Deployment asks for.
    pub instances_desired: u32,
    /// Version of the current revision.
    pub version: String,
    /// The gateway's pods.
    pub instances: Vec<Instance>,
    /// Seconds between series points.
    pub series_step_s: u32,
    /// Oldest first.
    pub series: Vec<SeriesPoint>,
    /// Recent orchestrator events about the gateway, its ReplicaSets and pods, newest
    /// first (Kubernetes only).
    #[serde(default)]
    pub events: Vec<EventRow>,
    /// What happened to the gateway during the charts' span, oldest first: revisions
    /// rolled out and actions taken, marked on the charts.
    #[serde(default)]
    pub marks: Vec<ChartMark>,
    /// Services that bypass the gateway now (route or DNS), with their own clients'
    /// success and latency both ways.
    #[serde(default)]
    pub bypasses: Vec<BypassedService>,
}

/// A moment marked on a gateway's charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChartMark {
    /// When, Unix milliseconds, on the charts' clock.
    pub ts_ms: i64,
    /// Short text: `rev 4 (2.15.0)` or `rollback`.
    pub label: String,
    /// The action's id, for an action; `None` for a revision.
    pub action: Option<i64>,
}

/// One line found by log search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogHit {
    /// When, Unix milliseconds.
    pub ts: i64,
    /// Gateway id.
    pub gateway: String,
    /// Instance (pod) name.
    pub instance: String,
    /// error, warn, info or debug.
    pub level: String,
    /// The line's text.
    pub message: String,
    /// Byte ranges of `message` the query matched: `[start, end)`.
    pub highlights: Vec<(usize, usize)>,
}

/// `GET /api/v1/logs`: a page of matching lines, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogSearch {
    /// The lines.
    pub hits: Vec<LogHit>,
    /// All matching lines.
    pub total: u64,
    /// Search time on the server.
    pub took_ms: f64,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
    /// Matching lines over time, oldest first.
    #[serde(default)]
    pub histogram: Vec<HistogramBar>,
    /// Time of the oldest line still kept (Unix ms): nothing older can be found.
    #[serde(default)]
    pub oldest_kept: Option<i64>,
    /// Lines retention has dropped since the console started (oldest first).
    #[serde(default)]
    pub dropped: u64,
}

/// One bar of a histogram over time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistogramBar {
    /// Start, Unix milliseconds.
    pub start: i64,
    /// Width in milliseconds.
    pub width: i64,
    /// Lines in it.
    pub count: u64,
}

/// One line of a gateway pod's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodLogLine {
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// The line, without its newline.
    pub line: String,
}

/// `GET /api/v1/gateways/{id}/logs`: the last lines of each pod, pod by pod.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodLogs {
    /// The lines.
    pub lines: Vec<PodLogLine>,
}

/// One Kubernetes event, as `kubectl get events` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRow {
    /// Last seen, Unix milliseconds.
    pub ts_ms: i64,
    /// `Normal` or `Warning`.
    pub kind: String,
    /// Short machine reason (`BackOff`, `ScalingReplicaSet`, ...).
    pub reason: String,
    /// `Kind/name` of the object.
    pub object: String,
    /// The message.
    pub message: String,
    /// How many times it happened.
    pub count: u32,
}

impl GatewayDetail {
    /// Combines a summary with instances and history.
    pub fn new(s: GatewaySummary, instances: Vec<Instance>, series_step_s: u32, series: Vec<SeriesPoint>) -> Self {
        GatewayDetail {
            id: s.id,
            name: s.name,
            namespace: s.namespace,
            status: s.status,
            rps: s.rps,
            error_rate_5xx: s.error_rate_5xx,
            throttle_rate_429: s.throttle_rate_429,
            latency_ms: s.latency_ms,
            baseline_rps: s.baseline_rps,
            blind: s.blind,
            instances_ready: s.instances_ready,
            instances_desired: s.instances_desired,
            version: s.version,
            instances,
            series_step_s,
            series,
            events: Vec::new(),
            marks: Vec::new(),
            bypasses: Vec::new(),
        }
    }

    /// The list entry for this gateway.
    pub fn summary(&self) -> GatewaySummary {
        GatewaySummary {
            id: self.id.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            status: self.status,
            rps: self.rps,
            error_rate_5xx: self.error_rate_5xx,
            throttle_rate_429: self.throttle_rate_429,
            latency_ms: self.latency_ms,
            baseline_rps: self.baseline_rps,
            blind: self.blind.clone(),
            instances_ready: self.instances_ready,
            instances_desired: self.instances_desired,
            version: self.version.clone(),
            checks: None,
        }
    }
}

/// One gateway in a live update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayLive {
    /// Current numbers.
    pub summary: GatewaySummary,
    /// Current pods; left out (`None`) for fleets too large to resend every pod on every
    /// change: the gateway page then keeps the list it loaded.
    pub instances: Option<Vec<Instance>>,
    /// The newest series point; none while the numbers cannot be read.
    pub point: Option<SeriesPoint>,
    /// Services bypassing the gateway now, as on [`GatewayDetail`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypasses: Vec<BypassedService>,
}

/// Payload of the `snapshot` event on `GET /api/v1/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiveSnapshot {
    /// When the numbers were taken, Unix milliseconds.
    pub ts_ms: i64,
    /// Every gateway.
    pub gateways: Vec<GatewayLive>,
    /// Why the backend is degraded (cluster watch failing, Prometheus down), if it is.
    #[serde(default)]
    pub backend_problem: Option<String>,
}

/// A console account as listed to admins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSummary {
    /// Account name.
    pub username: String,
    /// The account's role.
    pub role: Role,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Where the account signs in: `local` (a password here) or `oidc` (the identity
    /// provider).
    #[serde(default)]
    pub source: UserSource,
    /// When it was disabled, Unix milliseconds; none while it may sign in.
    #[serde(default)]
    pub disabled_at_ms: Option<i64>,
    /// Its last successful sign-in, Unix milliseconds.
    #[serde(default)]
    pub last_sign_in_ms: Option<i64>,
    /// Sessions signed in now (not ended, not expired).
    #[serde(default)]
    pub active_sessions: i64,
}

/// Where an account signs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum UserSource {
    /// With a password kept (hashed) by the console.
    #[default]
    Local,
    /// Through the OpenID Connect provider; the console keeps no password.
    Oidc,
}

impl UserSource {
    /// Its name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Local => "local",
            UserSource::Oidc => "oidc",
        }
    }
}

/// `POST /api/v1/users` body.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    /// Account name: 1–64 of `a-z A-Z 0-9 . _ -`.
    pub username: String,
    /// At least 10 characters.
    pub password: String,
    /// The account's role.
    pub role: Role,
    /// Why the account is made (for the audit trail): 1–1000 characters.
    #[serde(default)]
    pub reason: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("reason", &self.reason)
            .finish()
    }
}

/// `PATCH /api/v1/users/{username}` body: a new role, disabling or enabling, or both.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// The new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// `true` disables the account (its sessions end at once), `false` enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Why (for the audit trail): 1–1000 characters.
    pub reason: String,
}

/// The body of the user changes that take only a reason: a password reset, revoking
/// sessions.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (for the audit trail): 1–1000 characters.
    pub reason: String,
}

/// `POST /api/v1/users/{username}/password`: the new password, shown this once.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordReset {
    /// Whose.
    pub username: String,
    /// The generated password; the console keeps only its hash.
    pub password: String,
    /// How many of the account's sessions were ended.
    pub sessions_ended: i64,
}

impl fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordReset").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// `POST /api/v1/users/{username}/revoke-sessions`: how many sessions ended.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionsRevoked {
    /// Whose.
    pub username: String,
    /// How many of the account's sessions were ended.
    pub sessions_ended: i64,
}

/// `PUT /api/v1/session/password` body: a signed-in person changes their own password.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new one: 10–1024 characters.
    pub new_password: String,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordChange { <redacted> }")
    }
}

/// Every error response: `{"error": CODE, "message": TEXT}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{message}")]
pub struct ApiError {
    /// Machine-readable code, e.g. `unauthorized`, `forbidden`, `validation`.
    pub error: String,
    /// Human-readable explanation, safe to show.
    pub message: String,
}

impl ApiError {
    /// Builds an error from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error: code.into(), message: message.into() }
    }

    /// True when the caller is not signed in (the UI then goes to the login page).
    pub fn is_unauthorized(&self) -> bool {
        self.error == "unauthorized"
    }
}

/// Result of a console operation.
pub type ApiResult<T> = Result<T, ApiError>;

/// `GET /api/v1/fleet`: which backend serves the console (and, in training mode, the
/// incident the simulated fleet is in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetInfo {
    /// `sim` or `kube`.
    pub kind: String,
    /// The scenario name, for the simulator.
    pub scenario: Option<String>,
    /// What is going on and what a responder could try, for the simulator.
    pub briefing: Option<String>,
    /// Why the backend is degraded right now, if it is.
    #[serde(default)]
    pub problem: Option<String>,
    /// The console replica that answered.
    #[serde(default)]
    pub replica: String,
    /// Console replicas running now.
    #[serde(default)]
    pub replicas: u32,
}

mod catalogue;
mod changes;
mod incidents;
mod map;
mod vocab;
pub use catalogue::*;
pub use changes::*;
pub use incidents::*;
pub use map::*;
pub use vocab::*;
