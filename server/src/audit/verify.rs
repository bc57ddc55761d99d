//! Verification: every hash and link recomputed, oldest first, a page at a time.

use super::hash::hash_into;
use super::{COLUMNS, GENESIS, Ledger};
use crate::db::Dialect;
use crate::error::{AppError, Result};
use app::dto::{AuditEntry, AuditVerification};

/// Entries per verification page.
pub(super) const VERIFY_PAGE: i64 = 10000;

impl Ledger {
    /// Recomputes every hash and link, oldest first; reports the first entry that
    /// does not match (an edited entry, or the one after a removed one).
    pub async fn verify(&self) -> Result<AuditVerification> {
        let (mut count, mut first_bad, mut head) = (0i64, None, GENESIS.to_string());
        let mut checking: Option<tokio::task::JoinHandle<Result<PageCheck>>> = None;
        let mut after = 0i64;
        loop {
            // The next page is read while the previous one is parsed and hashed.
            let (json, last_id) = self.verify_page(after).await?;
            if let Some(task) = checking.take() {
                let page = task.await.map_err(|e| AppError::Internal(format!("verify task: {e}")))??;
                page.link(&mut count, &mut first_bad, &mut head);
            }
            let Some(last_id) = last_id else { break };
            after = last_id;
            checking = Some(tokio::task::spawn_blocking(move || PageCheck::of(&json)));
        }
        Ok(AuditVerification { ok: first_bad.is_none(), entries: count, head_hash: head, first_bad_id: first_bad })
    }

    /// Up to `VERIFY_PAGE` entries after id `after`, oldest first, as one JSON array of
    /// arrays, and the page's last id. The database packs the page so that one row
    /// crosses the driver per page rather than one per entry (the per-row cost dominated
    /// verification); JSON carries text and integers exactly.
    async fn verify_page(&self, after: i64) -> Result<(String, Option<i64>)> {
        let sql = match self.dialect {
            Dialect::Sqlite => format!(
                "select json_group_array(json_array({COLUMNS})), max(id) from \
                 (select {COLUMNS} from audit_log where id > $1 order by id limit {})",
                self.verify_page
            ),
            Dialect::Postgres => format!(
                "select coalesce(json_agg(json_build_array({COLUMNS}) order by id), '[]')::text, max(id) from \
                 (select {COLUMNS} from audit_log where id > $1 order by id limit {}) page",
                self.verify_page
            ),
        };
        Ok(sqlx::query_as(&sql).bind(after).fetch_one(&self.db).await?)
    }
}

/// One verification page, checked on its own; pages are then linked in order.
struct PageCheck {
    count: i64,
    first_id: i64,
    first_prev: String,
    last_hash: String,
    /// First entry whose hash or in-page link is wrong.
    bad: Option<i64>,
}

impl PageCheck {
    fn of(json: &str) -> Result<Self> {
        // A derived Deserialize reads a struct from an array in field order, and
        // AuditEntry's fields are in COLUMNS order.
        let entries: Vec<AuditEntry> =
            serde_json::from_str(json).map_err(|e| AppError::Internal(format!("verify page: {e}")))?;
        let first = entries.first().ok_or_else(|| AppError::Internal("empty verify page".into()))?;
        let (first_id, first_prev) = (first.id, first.prev_hash.clone());
        let (mut buf, mut bad, mut prev) = (Vec::with_capacity(1024), None, first_prev.clone());
        let count = entries.len() as i64;
        for e in entries {
            if bad.is_none() && (e.prev_hash != prev || hash_into(&e, &mut buf) != e.hash) {
                bad = Some(e.id);
            }
            prev = e.hash;
        }
        Ok(PageCheck { count, first_id, first_prev, last_hash: prev, bad })
    }

    /// Folds this page into the running result; `head` is the previous page's last hash.
    fn link(self, count: &mut i64, first_bad: &mut Option<i64>, head: &mut String) {
        if first_bad.is_none() && self.first_prev != *head {
            *first_bad = Some(self.first_id);
        }
        *first_bad = first_bad.or(self.bad);
        *count += self.count;
        *head = self.last_hash;
    }
}
