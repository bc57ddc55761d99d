//! The pages' `Console` and `Operations` as the server provides them while rendering:
//! the same `ServerConsole` the API handlers call.

use super::ServerConsole;
use crate::error::{AppError, Result};
use crate::params::Params;
use app::console::{ApiFuture, Console, Operations};
use app::dto::*;

/// Runs `f` on a clone of the console and converts its error to the wire type.
fn run<T, F, Fut>(console: &ServerConsole, f: F) -> ApiFuture<T>
where
    T: Send + 'static,
    F: FnOnce(ServerConsole) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let console = console.clone();
    Box::pin(async move { f(console).await.map_err(|e| e.to_api()) })
}

impl Console for ServerConsole {
    /// The session as a rendered page sees it: without its CSRF token. Pages go out
    /// compressed, so they carry no secret (BREACH); the browser asks `GET /session`
    /// for the token at its first write.
    fn session(&self) -> ApiFuture<SessionInfo> {
        run(self, |c| async move { Ok(SessionInfo { csrf_token: String::new(), ..c.session().await? }) })
    }
    fn gateways(&self) -> ApiFuture<Vec<GatewaySummary>> {
        run(self, |c| async move { c.gateways().await })
    }
    fn fleet(&self) -> ApiFuture<FleetInfo> {
        run(self, |c| async move { c.fleet().await })
    }
}

impl Operations for ServerConsole {
    fn gateway(&self, id: String) -> ApiFuture<GatewayDetail> {
        run(self, |c| async move { c.gateway(&id).await })
    }
    fn act(&self, gateway: String, action: String, body: String) -> ApiFuture<ActionResponse> {
        run(self, |c| async move {
            let body = serde_json::from_str(&body).map_err(|e| AppError::invalid("body", format!("not JSON: {e}")))?;
            c.act(&gateway, &action, body).await
        })
    }
    fn actions(&self, gateway: String) -> ApiFuture<Vec<ActionRecord>> {
        run(self, |c| async move { c.actions(Some(&gateway)).await })
    }
    fn undo(&self, id: i64, body: String) -> ApiFuture<ActionResponse> {
        run(self, move |c| async move {
            let body = serde_json::from_str(&body).map_err(|e| AppError::invalid("body", format!("not JSON: {e}")))?;
            c.undo(id, body).await
        })
    }
    fn audit(&self, query: String) -> ApiFuture<AuditPage> {
        run(self, |c| async move { c.audit_page(&Params::from_query(&query)).await })
    }
    fn verify_audit(&self) -> ApiFuture<AuditVerification> {
        run(self, |c| async move { c.verify_audit().await })
    }
    fn search_logs(&self, query: String) -> ApiFuture<LogSearch> {
        run(self, |c| async move { c.search_logs(&Params::from_query(&query)).await })
    }
    fn audit_entry(&self, id: i64) -> ApiFuture<AuditEntryDetail> {
        run(self, move |c| async move { c.audit_entry(id).await })
    }
    fn dependencies(&self) -> ApiFuture<DependencyGraph> {
        run(self, |c| async move { c.dependencies().await })
    }
    fn incidents(&self, query: String) -> ApiFuture<IncidentList> {
        run(self, |c| async move { c.incidents(&Params::from_query(&query)).await })
    }
    fn incident(&self, id: i64) -> ApiFuture<Incident> {
        run(self, move |c| async move { c.incident(id).await })
    }
    fn timeline(&self, id: i64) -> ApiFuture<Timeline> {
        run(self, move |c| async move { c.incident_timeline(id).await })
    }
    fn checklist(&self, id: i64) -> ApiFuture<Checklist> {
        run(self, move |c| async move { c.checklist(id).await })
    }
    fn approvals(&self, query: String) -> ApiFuture<ApprovalList> {
        run(self, |c| async move { c.approvals(&Params::from_query(&query)).await })
    }
    fn send(&self, _method: String, path: String, _body: String) -> ApiFuture<String> {
        // Rendering reads; writes come from the browser, over /api/v1.
        run(self, |_| async move { Err(AppError::NotImplemented(format!("{path}: pages write through /api/v1"))) })
    }
    fn probe(&self, body: String) -> ApiFuture<ProbeResult> {
        run(self, |c| async move {
            let request: ProbeRequest = serde_json::from_str(&body)
                .map_err(|e| AppError::invalid("body", format!("not a probe request: {e}")))?;
            c.probe(&request).await
        })
    }
    fn synthetics(&self) -> ApiFuture<Vec<SyntheticHistory>> {
        run(self, |c| async move { c.synthetics().await })
    }
}
