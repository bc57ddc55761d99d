//! The audit trail: a page, an entry, verification, export.

use super::ServerConsole;
use crate::error::Result;
use crate::limits::Work;
use crate::params::Params;
use app::dto::*;

impl ServerConsole {
    /// A page of the audit trail for query parameters `q` (viewer).
    pub async fn audit_page(&self, q: &Params) -> Result<AuditPage> {
        let user = self.caller(Role::Viewer)?;
        let (filter, limit, cursor) = crate::audit::page_request(q)?;
        let _running = self.state.caps.enter(Work::AuditRead, user.id)?;
        self.state.ledger.search(&filter, limit, cursor).await
    }

    /// One audit entry with its linked entries (viewer).
    pub async fn audit_entry(&self, id: i64) -> Result<AuditEntryDetail> {
        self.caller(Role::Viewer)?;
        let (entry, linked) = self.state.ledger.entry(id).await?;
        Ok(AuditEntryDetail { entry, linked })
    }

    /// Recomputes the audit chain (viewer).
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let user = self.caller(Role::Viewer)?;
        let _running = self.state.caps.enter(Work::Verify, user.id)?;
        self.state.ledger.verify().await
    }

    /// The format asked for, and every entry matching the query's filter, oldest first,
    /// for export (viewer).
    pub fn audit_export(
        &self,
        q: &Params,
    ) -> Result<(crate::audit::Format, impl futures::Stream<Item = Result<AuditEntry>> + Send + 'static)> {
        use futures::StreamExt;
        let user = self.caller(Role::Viewer)?;
        let filter = crate::audit::Filter::from_query(q)?;
        let format = crate::audit::Format::parse(q.text("format"))?;
        // The export holds its place for as long as it streams.
        let running = self.state.caps.enter(Work::AuditRead, user.id)?;
        Ok((
            format,
            self.state.ledger.stream(filter).map(move |e| {
                let _held = &running;
                e
            }),
        ))
    }
}
