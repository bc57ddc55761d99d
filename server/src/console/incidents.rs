//! Incidents: declared, worked, closed, with their timeline, checklist and postmortem.

use super::ServerConsole;
use crate::error::{AppError, Result};
use crate::params::Params;
use app::dto::*;

impl ServerConsole {
    /// `POST /api/v1/incidents/{id}/pins` (responder): a log line on the timeline.
    pub async fn pin_line(&self, id: i64, body: serde_json::Value) -> Result<app::dto::AuditEntry> {
        let actor = self.acting_at_least(Role::Responder, "pin", &crate::incidents::key(id)).await?;
        self.state.incidents.pin(actor, id, body).await
    }

    /// `POST /api/v1/incidents` (responder).
    pub async fn declare_incident(&self, body: serde_json::Value) -> Result<app::dto::Incident> {
        let actor = self.acting_at_least(Role::Responder, "declare", "incident").await?;
        self.state.incidents.declare(actor, body).await
    }

    /// `GET /api/v1/incidents` (viewer).
    pub async fn incidents(&self, q: &Params) -> Result<app::dto::IncidentList> {
        self.caller(Role::Viewer)?;
        let filter = crate::incidents::ListFilter {
            status: q.text("status").map(str::to_string),
            severity: q.text("severity").map(str::to_string),
            gateway: q.text("gateway").map(str::to_string),
            open: match q.text("open") {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(AppError::invalid("open", "must be true or false")),
            },
        };
        if let Some(s) = filter.status.as_deref().filter(|s| !crate::incidents::STATUSES.contains(s)) {
            return Err(AppError::invalid("status", format!("no status '{}'", s.chars().take(32).collect::<String>())));
        }
        if let Some(s) = filter.severity.as_deref().filter(|s| !crate::incidents::SEVERITIES.contains(s)) {
            return Err(AppError::invalid(
                "severity",
                format!("no severity '{}'", s.chars().take(32).collect::<String>()),
            ));
        }
        Ok(app::dto::IncidentList { incidents: self.state.incidents.list(&filter).await? })
    }

    /// `GET /api/v1/incidents/{id}` (viewer).
    pub async fn incident(&self, id: i64) -> Result<app::dto::Incident> {
        self.caller(Role::Viewer)?;
        self.state.incidents.get(id).await
    }

    /// `PATCH /api/v1/incidents/{id}` (responder).
    pub async fn update_incident(&self, id: i64, body: serde_json::Value) -> Result<app::dto::Incident> {
        let actor = self.acting_at_least(Role::Responder, "update", &crate::incidents::key(id)).await?;
        self.state.incidents.update(actor, id, body).await
    }

    /// `POST /api/v1/incidents/{id}/notes` (responder).
    pub async fn note_incident(&self, id: i64, body: serde_json::Value) -> Result<app::dto::AuditEntry> {
        let actor = self.acting_at_least(Role::Responder, "note", &crate::incidents::key(id)).await?;
        self.state.incidents.note(actor, id, body).await
    }

    /// `PUT` / `DELETE /api/v1/incidents/{id}/timeline/{entry}/star` (responder).
    pub async fn star_incident_entry(&self, id: i64, entry: i64, starred: bool) -> Result<()> {
        let actor = self.acting_at_least(Role::Responder, "star", &crate::incidents::key(id)).await?;
        self.state.incidents.star(&actor, id, entry, starred).await
    }

    /// `GET /api/v1/incidents/{id}/checklist` (viewer).
    pub async fn checklist(&self, id: i64) -> Result<app::dto::Checklist> {
        self.caller(Role::Viewer)?;
        self.state.incidents.checklist(id).await
    }

    /// `POST /api/v1/incidents/{id}/checklist/{step}` (responder).
    pub async fn mark_step(&self, id: i64, step: &str, body: serde_json::Value) -> Result<app::dto::Checklist> {
        let actor = self.acting_at_least(Role::Responder, "step", &crate::incidents::key(id)).await?;
        self.state.incidents.mark_step(actor, id, step, body).await
    }

    /// `GET /api/v1/incidents/{id}/postmortem.json` and `.md` (viewer).
    pub async fn postmortem(&self, id: i64) -> Result<app::dto::Postmortem> {
        self.caller(Role::Viewer)?;
        self.state.incidents.postmortem(id).await
    }

    /// `GET /api/v1/incidents/{id}/timeline` (viewer).
    pub async fn incident_timeline(&self, id: i64) -> Result<app::dto::Timeline> {
        self.caller(Role::Viewer)?;
        self.state.incidents.timeline(id).await
    }

    /// The caller as an audit actor, if they hold `role` and have not made
    /// `--max-incident-writes-per-minute` incident writes this minute (every caller of
    /// this is one); a refusal is on the record.
    async fn acting_at_least(&self, role: Role, action: &str, target: &str) -> Result<crate::audit::Actor> {
        let caller = self.acting()?;
        let refusal = match crate::auth::require_role(caller.role, role) {
            Err(refused) => Some((refused, format!("role {} below {role}", caller.role))),
            Ok(()) => self.state.caps.incident_write(self.user_id(), crate::db::now_ms()).err().map(|throttled| {
                let why = throttled.to_api().message;
                (throttled, why)
            }),
        };
        if let Some((error, why)) = refusal {
            let mut entry = crate::audit::NewEntry::new(
                caller.actor.clone(),
                crate::audit::Kind::Incident,
                crate::audit::Outcome::Denied,
            );
            entry.action = action.into();
            entry.target = target.into();
            entry.params = serde_json::json!({ "refused": why });
            self.state.ledger.refuse(entry).await?;
            return Err(error);
        }
        Ok(caller.actor)
    }
}
