//! Incidents (issue 18): the place where a team's response happens.

use serde::{Deserialize, Serialize};

/// One status change of an incident: when, and by whom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Milestone {
    /// `investigating`, `identified`, `mitigated`, `resolved` or `closed`.
    pub status: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who.
    pub by: String,
    /// When, on the charts' clock (the backend's: simulated time in the simulator), so
    /// the postmortem can cut the gateways' numbers at it.
    #[serde(default)]
    pub chart_ms: Option<i64>,
}

/// An incident, as `GET /api/v1/incidents/{id}` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// Number.
    pub id: i64,
    /// `INC-<id>`: what actions, probes and notes carry in their `incident` field.
    pub key: String,
    /// One line.
    pub title: String,
    /// `sev1` (worst) to `sev4`.
    pub severity: String,
    /// What is known, in a few sentences.
    pub summary: String,
    /// `investigating`, `identified`, `mitigated`, `resolved` or `closed`.
    pub status: String,
    /// The gateways it is about.
    pub gateways: Vec<String>,
    /// Incident commander (the declarer unless handed over).
    pub commander: String,
    /// Scribe ("" when nobody is).
    pub scribe: String,
    /// Who declared it.
    pub declared_by: String,
    /// When, Unix ms.
    pub declared_at_ms: i64,
    /// When a responder first acted on it (a note, an action, a change), Unix ms.
    pub acknowledged_at_ms: Option<i64>,
    /// Every status change, oldest first (the declaration is the first).
    pub milestones: Vec<Milestone>,
    /// Seconds from the declaration to the first acknowledgement.
    pub time_to_acknowledge_s: Option<i64>,
    /// Seconds from the declaration to the first `mitigated`.
    pub time_to_mitigate_s: Option<i64>,
    /// Seconds from the declaration to the first `resolved`.
    pub time_to_resolve_s: Option<i64>,
    /// What must not be forgotten (a break-glass action to review); only on
    /// `GET /api/v1/incidents/{id}`.
    #[serde(default)]
    pub followups: Vec<Followup>,
    /// In the simulator, once resolved: how the response compares with the scenario's
    /// known cure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
}

/// The end of a training incident in the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Training {
    /// The scenario that was running.
    pub scenario: String,
    /// Its known cure, in words.
    pub cure: String,
    /// The actions that cure it.
    pub cure_actions: Vec<String>,
    /// The actions that succeeded for the incident, in order (undos left out).
    pub used_actions: Vec<String>,
    /// Whether one of them was a cure.
    pub cured_by_a_known_cure: bool,
    /// Seconds from the declaration to the first `mitigated` (or `resolved`).
    pub mitigated_after_s: Option<i64>,
    /// The runbook steps ticked (by an action or by hand), in the runbook's order.
    pub steps_used: Vec<String>,
}

/// Something an incident must not forget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Followup {
    /// Its id.
    pub id: i64,
    /// What to do.
    pub text: String,
    /// Not done yet.
    pub open: bool,
    /// When it was opened, Unix ms.
    pub created_at_ms: i64,
    /// Who closed it ("" while open).
    pub closed_by: String,
    /// When, Unix ms.
    pub closed_at_ms: Option<i64>,
}

/// `GET /api/v1/incidents`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentList {
    /// The incidents.
    pub incidents: Vec<Incident>,
}

/// One entry of an incident's timeline: a ledger entry that names the incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    /// The ledger entry.
    pub entry: super::AuditEntry,
    /// What happened, in one sentence.
    pub text: String,
    /// Starred for the postmortem.
    pub starred: bool,
}

/// A gateway's numbers over an incident's window (from its declaration to its
/// resolution, or now).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowImpact {
    /// Gateway id.
    pub gateway: String,
    /// Series points inside the window.
    pub points: usize,
    /// Mean and highest requests per second.
    pub rps: (f64, f64),
    /// Mean and highest share of 5xx.
    pub error_rate_5xx: (f64, f64),
    /// Mean and highest p99 latency, ms.
    pub p99_ms: (f64, f64),
}

/// `GET /api/v1/incidents/{id}/postmortem.json` (and `.md`, the same as Markdown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Postmortem {
    /// The incident.
    pub incident: Incident,
    /// Each gateway's numbers over the window.
    pub impact: Vec<WindowImpact>,
    /// The actions taken for it, oldest first, with their readings and undos.
    pub actions: Vec<super::ActionRecord>,
    /// Starred timeline entries, or every entry when none is starred.
    pub timeline: Vec<TimelineEntry>,
    /// Whether `timeline` is the starred entries only.
    pub starred_only: bool,
    /// Actions run by break-glass for it, and whether someone reviewed them.
    pub break_glass: Vec<super::Approval>,
}

/// `GET /api/v1/incidents/{id}/timeline`: oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    /// The entries.
    pub entries: Vec<TimelineEntry>,
}

/// Who ticked a runbook step, when and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepMark {
    /// `done` or `not_applicable`.
    pub state: String,
    /// Who.
    pub by: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The note (done by hand) or the reason (not applicable); for a step an action
    /// performed, which action.
    pub note: String,
    /// The action that performed it, if one did.
    pub action_id: Option<i64>,
}

/// One step of the runbook, for one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChecklistStep {
    /// Stable id (`diagnosis-3`, `immediate-1`, ...).
    pub id: String,
    /// `Diagnosis`, `Immediate actions` or `Short-term fixes`.
    pub section: String,
    /// The runbook's words.
    pub title: String,
    /// The runbook's command, for reference.
    pub command: String,
    /// Where the console does it, prefilled for the incident's first gateway.
    pub opens: String,
    /// The mitigation that performs it (ticked when one succeeds for the incident).
    pub action: Option<String>,
    /// Ticked (done or not applicable), if it is.
    pub mark: Option<StepMark>,
}

/// `GET /api/v1/incidents/{id}/checklist`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checklist {
    /// The runbook's steps, in its order.
    pub steps: Vec<ChecklistStep>,
}
