//! Mitigations, their catalogue, and the approvals between a request and its run.

use super::ServerConsole;
use crate::error::{AppError, Result};
use crate::params::Params;
use app::dto::*;

impl ServerConsole {
    /// Runs or previews a mitigation (role checks inside the engine, audited).
    pub async fn act(&self, gateway: &str, action: &str, body: serde_json::Value) -> Result<ActionResponse> {
        let incident = body.get("incident").and_then(serde_json::Value::as_str).map(str::to_string);
        let response = self.state.engine.run(self.acting()?, gateway, action, body).await?;
        // An action (or a request for one) for an incident is someone acting on it.
        if let Some(incident) = incident.filter(|_| response.id.is_some() || response.approval.is_some()) {
            self.state.incidents.acknowledge(&incident, crate::db::now_ms()).await?;
        }
        Ok(response)
    }

    /// `GET /api/v1/approvals` (viewer): `status`, and `for=me` for what waits for the
    /// caller.
    pub async fn approvals(&self, q: &Params) -> Result<app::dto::ApprovalList> {
        self.caller(Role::Viewer)?;
        let status = q.text("status");
        if let Some(s) = status.filter(|s| app::dto::ApprovalStatus::parse(s).is_none()) {
            return Err(AppError::invalid("status", format!("no status '{}'", s.chars().take(32).collect::<String>())));
        }
        let for_me = match q.text("for") {
            None => false,
            Some("me") => true,
            Some(_) => return Err(AppError::invalid("for", "must be 'me'")),
        };
        self.state.engine.approvals(&self.acting()?, status, for_me).await
    }

    /// `GET /api/v1/approvals/{id}` (viewer).
    pub async fn approval(&self, id: i64) -> Result<app::dto::Approval> {
        self.caller(Role::Viewer)?;
        self.state.engine.approval(id).await
    }

    /// `POST /api/v1/approvals/{id}/approve | deny | review` (responder; the engine checks
    /// the action's role and that the caller is not the requester).
    pub async fn decide(&self, id: i64, how: &str, body: serde_json::Value) -> Result<app::dto::Approval> {
        self.caller(Role::Responder)?;
        let caller = self.acting()?;
        let decided = match how {
            "approve" => self.state.engine.approve(caller, id, body).await?,
            "deny" => self.state.engine.deny(caller, id, body).await?,
            _ => self.state.engine.review(caller, id, body).await?,
        };
        self.state.incidents.acknowledge(&decided.incident, crate::db::now_ms()).await?;
        Ok(decided)
    }

    /// The mitigations offered, with their fields and bounds (viewer).
    pub fn catalogue(&self) -> Result<app::dto::Catalogue> {
        self.caller(Role::Viewer)?;
        Ok(self.state.engine.catalogue())
    }

    /// Recent actions on `gateway` (viewer).
    pub async fn actions(&self, gateway: Option<&str>) -> Result<Vec<ActionRecord>> {
        self.caller(Role::Viewer)?;
        self.state.engine.list(gateway, 100).await
    }

    /// One action (viewer).
    pub async fn action(&self, id: i64) -> Result<ActionRecord> {
        self.caller(Role::Viewer)?;
        self.state.engine.get(id).await
    }

    /// Undoes action `id` (the original action's role, audited).
    pub async fn undo(&self, id: i64, body: serde_json::Value) -> Result<ActionResponse> {
        self.state.engine.undo(self.acting()?, id, body).await
    }
}
