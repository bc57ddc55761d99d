//! Record, then act: the one way a change goes on the record. The entry is appended
//! before the change it describes (no record, no change: a 503 that says what was not
//! done); a change that then fails gets a second entry, `failed`, linked to the first,
//! with the error a client may see (never a database's own words). Mitigations, account
//! changes, incidents, runbook ticks and `gatewarden user add` all go through here.

use super::{Ledger, NewEntry, Outcome};
use crate::error::{AppError, Result};
use app::dto::AuditEntry;
use std::future::Future;

impl Ledger {
    /// Appends `entry` before the change it describes; when the ledger cannot be written,
    /// nothing may change: `Unavailable`, saying `what` ("so nothing was changed").
    pub async fn record_first(&self, entry: NewEntry, what: &str) -> Result<AuditEntry> {
        self.append(entry).await.map_err(|e| {
            tracing::error!(error = ?e, "audit entry not written, so {what}");
            AppError::Unavailable(format!("the audit ledger is unavailable, so {what}"))
        })
    }

    /// Appends each of `entries` before the change they describe together; when one cannot
    /// be written, those already written get their `failed` entries and nothing may change.
    pub async fn record_all_first(&self, entries: Vec<NewEntry>, what: &str) -> Result<Vec<AuditEntry>> {
        let mut written = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.record_first(entry.clone(), what).await {
                Ok(stored) => written.push((entry, stored)),
                Err(error) => {
                    for (entry, stored) in written {
                        self.record_failure(entry, stored.id, &error).await?;
                    }
                    return Err(error);
                }
            }
        }
        Ok(written.into_iter().map(|(_, stored)| stored).collect())
    }

    /// Records that the change `entry` described (written as #`intent`) did not happen,
    /// and why.
    pub async fn record_failure(&self, mut entry: NewEntry, intent: i64, error: &AppError) -> Result<()> {
        entry.outcome = Outcome::Failed;
        entry.intent_id = Some(intent);
        entry.params["error"] = serde_json::Value::String(error.to_api().message);
        self.append(entry).await?;
        Ok(())
    }

    /// Record, then act: [`Ledger::record_first`], then `act`; when `act` fails, its
    /// [`Ledger::record_failure`] and its error. Answers the entry and what `act` made.
    pub async fn recorded<T, Fut>(
        &self,
        entry: NewEntry,
        what: &str,
        act: impl FnOnce() -> Fut,
    ) -> Result<(AuditEntry, T)>
    where
        Fut: Future<Output = Result<T>>,
    {
        let stored = self.record_first(entry.clone(), what).await?;
        match act().await {
            Ok(done) => Ok((stored, done)),
            Err(error) => {
                self.record_failure(entry, stored.id, &error).await?;
                Err(error)
            }
        }
    }
}
