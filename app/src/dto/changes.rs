//! The audit trail and mitigations on the wire: ledger entries, pages, verification,
//! previews, action records.

use serde::{Deserialize, Serialize};

/// One audit ledger entry, as stored and hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// `action_intent`, `action_outcome`, `undo`, `ttl_revert`, `reconciliation`,
    /// `propagation`, `incident`, `gateway_status`, `approval`, `login`, `login_failure`,
    /// `logout`, `user_change` or `audit_key`.
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
    /// HMAC-SHA-256 of `hash` with the console's audit key, hex ("" for entries written
    /// before the ledger was signed).
    #[serde(default)]
    pub mac: String,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Matching entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
    /// How each pending intent on this page ended, by the intent's id (its newest outcome
    /// or reconciliation entry; absent while it has none).
    #[serde(default)]
    pub settled: std::collections::BTreeMap<i64, String>,
}

/// `GET /api/v1/audit/{id}`: an entry and the entries linked to it (its intent, or its
/// outcomes and reconciliation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryDetail {
    /// The entry.
    pub entry: AuditEntry,
    /// Linked entries, oldest first.
    pub linked: Vec<AuditEntry>,
}

/// `GET /api/v1/audit/verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerification {
    /// The whole chain is intact.
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// Hash of the newest entry.
    pub head_hash: String,
    /// The lowest entry a problem names, if any.
    pub first_bad_id: Option<i64>,
    /// Every check that failed, with where and a sentence.
    #[serde(default)]
    pub problems: Vec<AuditProblem>,
    /// The newest key marker that carries the audit key: it vouches for every entry
    /// before it, and every entry after it is signed.
    #[serde(default)]
    pub signed_from: Option<i64>,
    /// The newest entry the checkpoint outside the database recorded.
    #[serde(default)]
    pub checkpoint_head_id: Option<i64>,
}

/// One failed check of `GET /api/v1/audit/verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditProblem {
    /// `link`, `hash`, `key`, `truncation` or `checkpoint`.
    pub check: String,
    /// The entry concerned (for a truncation, the last one left).
    pub id: i64,
    /// What is wrong, as a sentence.
    pub message: String,
}

/// One field a mitigation changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A service as its own clients see it, through one gateway and around it (a bypass):
/// what tells a responder whether bypassing the gateway helped that service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceImpact {
    /// Share of its clients' requests that went straight to it, not through the gateway.
    pub direct_share: f64,
    /// Share of all its clients' requests that succeeded, both ways.
    pub success: f64,
    /// Success of the requests through the gateway (`None`: none came that way).
    pub via_gateway_success: Option<f64>,
    /// p99 latency through the gateway, ms.
    pub via_gateway_p99_ms: Option<f64>,
    /// Success of the requests straight to it (`None`: none went that way).
    pub direct_success: Option<f64>,
    /// p99 latency straight to it, ms.
    pub direct_p99_ms: Option<f64>,
}

/// A service that bypasses a gateway now, and how its clients fare.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BypassedService {
    /// The service.
    pub service: String,
    /// `route` (inside the gateway) or `dns` (its public record).
    pub how: String,
    /// Its clients, both ways.
    pub impact: ServiceImpact,
}

/// The numbers a responder watches, at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// For a bypass: the bypassed service as its own clients see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceImpact>,
}

/// Rollout progress of an action that replaces pods.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionResponse {
    /// The action's id (absent for a dry run).
    pub id: Option<i64>,
    /// `preview` for a dry run, else the action's status.
    pub status: String,
    /// What it changes (always present).
    pub preview: Preview,
    /// When it needs a second person: the request waiting for them (`status` is then
    /// `awaiting_approval` and nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A request that waits for a second person (two-person approval), or a break-glass
/// action that waits for review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// Its id.
    pub id: i64,
    /// Gateway id.
    pub gateway: String,
    /// The action (`rollback`, `bypass`, ...).
    pub action: String,
    /// What needs approval: the action, or `scale-down`.
    pub kind: String,
    /// The requester's reason.
    pub reason: String,
    /// Incident key or "".
    pub incident: String,
    /// Who asked.
    pub requester: String,
    /// `awaiting_approval`, `approved`, `denied`, `expired`, `refused` (the gateway changed
    /// since the preview), `break_glass` (ran without approval, awaiting review) or
    /// `reviewed`.
    pub status: String,
    /// The exact change it is bound to.
    pub preview: Preview,
    /// When asked, Unix ms.
    pub created_at_ms: i64,
    /// When the request lapses, Unix ms.
    pub expires_at_ms: i64,
    /// Who approved, denied or reviewed it ("" until someone did).
    pub decided_by: String,
    /// When, Unix ms.
    pub decided_at_ms: Option<i64>,
    /// Why.
    pub decision_reason: String,
    /// The action it ran as, once it ran.
    pub action_id: Option<i64>,
}

/// `GET /api/v1/approvals`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalList {
    /// The approvals.
    pub approvals: Vec<Approval>,
}
