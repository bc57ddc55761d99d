//! Wire types of `/api/v1`: the one description of what the console shows and accepts.
//!
//! Rates are fractions in [0, 1], latencies milliseconds, request rates per second,
//! timestamps Unix milliseconds. No `usize` crosses the wire (it differs on wasm32).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a person may do. Ordered: each role can do everything the ones below it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
pub struct SessionInfo {
    /// Account name.
    pub username: String,
    /// The account's role.
    pub role: Role,
    /// Per-session anti-CSRF token.
    pub csrf_token: String,
}

/// Colour-coded judgement of a gateway; computed on the server from the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Within normal bounds.
    Healthy,
    /// Something a responder should look at.
    Degraded,
    /// Users are failing now.
    Critical,
}

impl HealthStatus {
    /// Lowercase name, also the CSS class suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Critical => "critical",
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
pub struct GatewaySummary {
    /// Stable identifier used in URLs.
    pub id: String,
    /// Display name (the Deployment's name).
    pub name: String,
    /// Namespace the gateway runs in.
    pub namespace: String,
    /// Overall judgement.
    pub status: HealthStatus,
    /// Requests per second.
    pub rps: f64,
    /// Fraction of requests answered 5xx.
    pub error_rate_5xx: f64,
    /// Fraction of requests answered 429.
    pub throttle_rate_429: f64,
    /// Latency percentiles of admitted requests.
    pub latency_ms: Latency,
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

/// One gateway instance (a pod).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub struct GatewayDetail {
    /// Stable identifier used in URLs.
    pub id: String,
    /// Display name (the Deployment's name).
    pub name: String,
    /// Namespace the gateway runs in.
    pub namespace: String,
    /// Overall judgement.
    pub status: HealthStatus,
    /// Requests per second.
    pub rps: f64,
    /// Fraction of requests answered 5xx.
    pub error_rate_5xx: f64,
    /// Fraction of requests answered 429.
    pub throttle_rate_429: f64,
    /// Latency percentiles of admitted requests.
    pub latency_ms: Latency,
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
}

/// One line found by log search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub struct PodLogs {
    /// The lines.
    pub lines: Vec<PodLogLine>,
}

/// One Kubernetes event, as `kubectl get events` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
            instances_ready: s.instances_ready,
            instances_desired: s.instances_desired,
            version: s.version,
            instances,
            series_step_s,
            series,
            events: Vec::new(),
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
            instances_ready: self.instances_ready,
            instances_desired: self.instances_desired,
            version: self.version.clone(),
            checks: None,
        }
    }
}

/// One gateway in a live update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayLive {
    /// Current numbers.
    pub summary: GatewaySummary,
    /// Current pods; left out (`None`) for fleets too large to resend every pod on every
    /// change: the gateway page then keeps the list it loaded.
    pub instances: Option<Vec<Instance>>,
    /// The newest series point.
    pub point: SeriesPoint,
}

/// Payload of the `snapshot` event on `GET /api/v1/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub struct UserSummary {
    /// Account name.
    pub username: String,
    /// The account's role.
    pub role: Role,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
}

/// `POST /api/v1/users` body.
#[derive(Clone, Deserialize, Serialize)]
pub struct NewUser {
    /// Account name: 1–64 of `a-z A-Z 0-9 . _ -`.
    pub username: String,
    /// At least 10 characters.
    pub password: String,
    /// The account's role.
    pub role: Role,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Every error response: `{"error": CODE, "message": TEXT}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
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

/// One audit ledger entry, as stored and hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When, Unix milliseconds.
    pub ts_ms: i64,
    /// Username, or `system` for automatic work.
    pub actor: String,
    /// The actor's role at the time.
    pub actor_role: String,
    /// Client IP address ("" for the system).
    pub client_addr: String,
    /// Client user agent.
    pub user_agent: String,
    /// Request id (also sent as `x-request-id`).
    pub request_id: String,
    /// `action_intent`, `action_outcome`, `undo`, `ttl_revert`, `reconciliation`, `login`,
    /// `login_failure`, `logout` or `user_change`.
    pub kind: String,
    /// Action name (`restart`, `scale`, ...) or "".
    pub action: String,
    /// Gateway id, username, ... or "".
    pub target: String,
    /// Parameters as JSON text.
    pub params: String,
    /// Why, in the actor's words.
    pub reason: String,
    /// Incident id, or "".
    pub incident: String,
    /// `pending`, `succeeded`, `failed` or `denied`.
    pub outcome: String,
    /// For outcomes: the intent they complete.
    pub intent_id: Option<i64>,
    /// State before, as JSON text ("" when not applicable).
    pub before_state: String,
    /// State after, as JSON text ("" when not applicable).
    pub after_state: String,
    /// Hash of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry's canonical encoding, hex.
    pub hash: String,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Matching entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// `GET /api/v1/audit/{id}`: an entry and the entries linked to it (its intent, or its
/// outcomes and reconciliation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntryDetail {
    /// The entry.
    pub entry: AuditEntry,
    /// Linked entries, oldest first.
    pub linked: Vec<AuditEntry>,
}

/// `GET /api/v1/audit/verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// The whole chain is intact.
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// Hash of the newest entry.
    pub head_hash: String,
    /// The first entry whose hash or link does not match, if any.
    pub first_bad_id: Option<i64>,
}

/// One field a mitigation changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// What changes, e.g. `spec.replicas`.
    pub field: String,
    /// Its value now.
    pub before: String,
    /// Its value after the change.
    pub after: String,
}

/// The exact change a mitigation will make, shown before it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// One sentence, e.g. "Scale public-edge from 4 to 8 replicas".
    pub summary: String,
    /// Field by field.
    pub changes: Vec<FieldChange>,
    /// The gateway's name must be typed to confirm (rollback, bypass, big scale-downs).
    pub confirm_required: bool,
    /// What undoing it would do, if it can be undone.
    pub undo: Option<String>,
    /// Caveats a responder must read (e.g. what a bypass skips).
    pub warnings: Vec<String>,
}

/// The numbers a responder watches, at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImpactReading {
    /// Backend clock (simulated seconds for the simulator).
    pub clock_s: i64,
    /// Requests per second.
    pub rps: f64,
    /// Fraction 5xx.
    pub error_rate_5xx: f64,
    /// Fraction 429.
    pub throttle_rate_429: f64,
    /// p99 latency, ms.
    pub p99_ms: f64,
}

/// Rollout progress of an action that replaces pods.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Pods wanted.
    pub desired: u32,
    /// Pods on the new template.
    pub updated: u32,
    /// New pods passing readiness.
    pub ready: u32,
    /// All pods, old and new.
    pub total: u32,
}

/// A mitigation as recorded: `GET /api/v1/actions/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Action id.
    pub id: i64,
    /// Gateway id.
    pub gateway: String,
    /// `restart`, `scale`, `rollback`, `rate-limit`, ...
    pub action: String,
    /// Parameters as given (JSON text).
    pub params: String,
    /// Who ran it (`system` for automatic reverts).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Incident id or "".
    pub incident: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Failure or reconciliation detail.
    pub detail: String,
    /// What it changes.
    pub preview: Preview,
    /// Rollout progress, for actions that replace pods.
    pub progress: Option<Progress>,
    /// Numbers when it ran.
    pub impact_before: Option<ImpactReading>,
    /// The same numbers 60 (backend) seconds later.
    pub impact_after: Option<ImpactReading>,
    /// It can be undone now.
    pub undo_available: bool,
    /// The action that undid it.
    pub undone_by: Option<i64>,
    /// The action this one undid.
    pub undo_of: Option<i64>,
    /// Backend clock second at which it reverts by itself.
    pub expires_at_s: Option<i64>,
    /// The ledger entry written before it ran.
    pub intent_id: i64,
    /// When, Unix ms.
    pub created_at_ms: i64,
}

/// Answer to `POST /api/v1/gateways/{id}/actions/{action}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionResponse {
    /// The action's id (absent for a dry run).
    pub id: Option<i64>,
    /// `preview` for a dry run, else the action's status.
    pub status: String,
    /// What it changes (always present).
    pub preview: Preview,
}

/// `GET /api/v1/fleet`: which backend serves the console (and, in training mode, the
/// incident the simulated fleet is in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// `GET /api/v1/dependencies`: who depends on what (gateways → routes → services).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DependencyGraph {
    /// Gateways, routes and downstream services.
    pub nodes: Vec<DepNode>,
    /// `from` depends on `to`, with the traffic between them.
    pub edges: Vec<DepEdge>,
}

/// One node of the dependency map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepNode {
    /// `gateway:<id>`, `route:<gateway>:<path>` or `service:<name>`.
    pub id: String,
    /// `gateway`, `route` or `service`.
    pub kind: String,
    /// What a person calls it.
    pub name: String,
    /// The gateway a gateway or route node belongs to.
    #[serde(default)]
    pub gateway: Option<String>,
    /// `ok`, `degraded` or `down`.
    pub health: String,
    /// Requests per second through it.
    pub rps: f64,
    /// Fraction of its requests that fail (5xx).
    pub error_rate: f64,
    /// p99 latency, ms (mean for services).
    pub latency_ms: f64,
    /// Ready endpoints (pods for a gateway), when known.
    #[serde(default)]
    pub ready_endpoints: Option<u32>,
    /// All endpoints, when known.
    #[serde(default)]
    pub endpoints: Option<u32>,
}

/// `from` depends on `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepEdge {
    /// Node id.
    pub from: String,
    /// Node id.
    pub to: String,
    /// Requests per second along it.
    pub rps: f64,
    /// Fraction of them that fail.
    pub error_rate: f64,
}

/// `POST /api/v1/probe`: one request to a gateway path (or an allowed URL), as `curl -v`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// A gateway id, with `path`.
    #[serde(default)]
    pub gateway: Option<String>,
    /// A path on that gateway, starting with `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// A full URL whose host is on the console's allow-list.
    #[serde(default)]
    pub url: Option<String>,
}

/// Where the time of a probe went, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeTimings {
    /// Name resolution (0 for an address).
    pub dns_ms: f64,
    /// TCP handshake.
    pub connect_ms: f64,
    /// TLS handshake (0 for http).
    pub tls_ms: f64,
    /// From the start until the response headers.
    pub ttfb_ms: f64,
    /// From the start until the body (or its first 64 KiB) was read.
    pub total_ms: f64,
}

/// What a probe found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The URL requested last (after redirects).
    pub url: String,
    /// The address connected to.
    pub address: Option<String>,
    /// HTTP status; none when no response came.
    pub status: Option<u16>,
    /// Why no response came (refused, timed out, TLS).
    pub error: Option<String>,
    /// Timings of the last request.
    pub timings: ProbeTimings,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The first 2 KiB of the body, as text.
    pub body_excerpt: String,
    /// Redirects followed, in order (each checked like the first URL).
    #[serde(default)]
    pub redirects: Vec<String>,
}

/// One scheduled synthetic check's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// When, Unix ms.
    pub ts: i64,
    /// HTTP status, none when no response came.
    pub status: Option<u16>,
    /// Whole request, ms.
    pub total_ms: f64,
    /// 2xx or 3xx within the timeout.
    pub ok: bool,
    /// Why it failed without a status.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /api/v1/synthetics`: the recent checks of one key path of one gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticHistory {
    /// Gateway id.
    pub gateway: String,
    /// Path checked.
    pub path: String,
    /// Oldest first.
    pub results: Vec<CheckResult>,
}
