//! Start-up: the ledger takes its key, compares itself with the checkpoint it left last
//! time, and makes sure its newest key marker carries this key.

use super::checkpoint::{self, Body, Break, Checkpointer};
use super::key::AuditKey;
use super::{Actor, Kind, Ledger, NewEntry, Outcome};
use crate::db::now_ms;
use crate::error::Result;
use std::path::PathBuf;

fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

impl Ledger {
    /// Signs every entry from now on with `key`, and keeps the checkpoint in `path`
    /// (none: in memory only, for a database that lives as long as the process).
    ///
    /// Before anything is appended, the checkpoint left by the last run is compared with
    /// the database; what does not match is kept in the new checkpoint (and logged), so
    /// verification reports it however often the console restarts.
    pub async fn seal(mut self, key: AuditKey, path: Option<PathBuf>) -> Result<Self> {
        let now = now_ms();
        let mut breaks = Vec::new();
        let mut previous = None;
        if let Some(path) = &path {
            match checkpoint::read(path, &key) {
                Ok(body) => previous = body,
                Err(problem) => {
                    // Kept for whoever investigates; a new checkpoint starts beside it.
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint");
                    let kept = path.with_file_name(format!("{name}.rejected-{now}"));
                    let kept = match std::fs::rename(path, &kept) {
                        Ok(()) => format!("it was kept as {}", kept.display()),
                        Err(e) => format!("it could not be set aside ({e})"),
                    };
                    breaks.push(Break {
                        found_ms: now,
                        check: "checkpoint".into(),
                        id: 0,
                        message: format!("{problem}; {kept}"),
                    });
                }
            }
        }
        let (db_head, _) = self.read_head().await?;
        if let Some(prev) = &previous {
            breaks.splice(0..0, prev.breaks.iter().cloned());
            let at = when(prev.written_ms);
            let recorded: Option<(String,)> = sqlx::query_as("select hash from audit_log where id = $1")
                .bind(prev.head_id)
                .fetch_optional(&self.db)
                .await?;
            let found =
                |check: &str, id: i64, message: String| Break { found_ms: now, check: check.into(), id, message };
            match recorded {
                None if db_head < prev.head_id => breaks.push(found(
                    "truncation",
                    db_head,
                    format!(
                        "{} {} missing after #{db_head}: the checkpoint of {at} recorded entry #{}",
                        prev.head_id - db_head,
                        if prev.head_id - db_head == 1 { "entry" } else { "entries" },
                        prev.head_id
                    ),
                )),
                None => breaks.push(found(
                    "checkpoint",
                    prev.head_id,
                    format!("entry #{}, which the checkpoint of {at} recorded, is missing", prev.head_id),
                )),
                Some((hash,)) if hash != prev.head_hash => breaks.push(found(
                    "checkpoint",
                    prev.head_id,
                    format!(
                        "entry #{} is not the entry the checkpoint of {at} recorded: the ledger was rewritten at or \
                         before it",
                        prev.head_id
                    ),
                )),
                Some(_) => {}
            }
            let marker: Option<(String, String, String)> =
                sqlx::query_as("select kind, hash, mac from audit_log where id = $1")
                    .bind(prev.auth_from)
                    .fetch_optional(&self.db)
                    .await?;
            let intact = marker
                .is_some_and(|(kind, hash, mac)| kind == Kind::AuditKey.as_str() && key.check(hash.as_bytes(), &mac));
            if !intact {
                breaks.push(found(
                    "key",
                    prev.auth_from,
                    format!(
                        "entry #{}, from which the checkpoint of {at} says every entry is signed, no longer carries \
                         the audit key",
                        prev.auth_from
                    ),
                ));
            }
        }
        for b in &breaks {
            if b.found_ms == now {
                tracing::error!(check = %b.check, id = b.id, "the audit ledger does not match its checkpoint: {}", b.message);
            }
        }

        self.key = Some(key.clone());
        // The newest marker must carry this key: a first start, an old ledger from before
        // signing, or a new key each begin signing here.
        let latest: Option<(i64, String, String, String)> = sqlx::query_as(
            "select id, hash, mac, params from audit_log where kind = 'audit_key' order by id desc limit 1",
        )
        .fetch_optional(&self.db)
        .await?;
        let auth_from = match latest {
            Some((id, hash, mac, _)) if key.check(hash.as_bytes(), &mac) => id,
            other => {
                let mut marker = NewEntry::new(Actor::system(), Kind::AuditKey, Outcome::Succeeded);
                marker.params = serde_json::json!({ "key_id": key.id() });
                marker.reason = match other {
                    None if db_head == 0 => format!("every entry is signed with audit key {}", key.id()),
                    None => format!(
                        "entries from here on are signed with audit key {}; the {db_head} before are vouched for by \
                         their hashes, which this entry's signature covers",
                        key.id()
                    ),
                    Some((id, ..)) => format!(
                        "the audit key changed: entry #{id} does not carry key {}; entries from here on are signed \
                         with it",
                        key.id()
                    ),
                };
                self.append(marker).await?.id
            }
        };
        let (head_id, head_hash) = self.read_head().await?;
        let body = Body {
            format: checkpoint::FORMAT.into(),
            key_id: key.id().into(),
            auth_from,
            head_id,
            head_hash,
            written_ms: now,
            breaks,
        };
        let checkpointer = Checkpointer::new(path, key, body);
        if let Err(e) = checkpointer.flush() {
            tracing::error!(error = %e, path = ?checkpointer.path(), "could not write the audit checkpoint");
        }
        self.checkpoint = Some(checkpointer);
        Ok(self)
    }
}
