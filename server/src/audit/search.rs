//! Search: filters from query parameters, turned into SQL; keyset pages, newest first.

use super::{COLUMNS, Ledger, MAX_PAGE, from_row};
use crate::db::Dialect;
use crate::error::{AppError, Result};
use crate::params::Params;
use app::dto::{AuditEntry, AuditPage};

/// Search filters; all optional and combined with AND.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action name.
    pub action: Option<String>,
    /// Exact target.
    pub target: Option<String>,
    /// Exact outcome.
    pub outcome: Option<String>,
    /// Exact incident id.
    pub incident: Option<String>,
    /// Exact kind.
    pub kind: Option<String>,
    /// From this time (Unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Case-insensitive substring of actor, target, action, reason, params or incident.
    pub q: Option<String>,
}

impl Filter {
    /// Reads the filters of `GET /api/v1/audit` (and its export) from query parameters;
    /// 422 names a bad one.
    pub fn from_query(q: &Params) -> Result<Filter> {
        const TEXT_MAX: usize = 256;
        const TEXT_BOUND: &str = "must be at most 256 characters";
        let text = |k: &str| q.text(k).map(str::to_string);
        if let Some(o) = q.text("outcome")
            && !["pending", "succeeded", "failed", "denied"].contains(&o)
        {
            return Err(AppError::invalid("outcome", "must be pending, succeeded, failed or denied"));
        }
        // Each text is matched against every entry in the range: bounded like a log query.
        for field in ["actor", "action", "target", "incident", "kind", "q"] {
            if q.text(field).is_some_and(|v| v.chars().count() > TEXT_MAX) {
                return Err(AppError::invalid(field, TEXT_BOUND));
            }
        }
        Ok(Filter {
            actor: text("actor"),
            action: text("action"),
            target: text("target"),
            outcome: text("outcome"),
            incident: text("incident"),
            kind: text("kind"),
            since_ms: q.timestamp("since")?,
            until_ms: q.timestamp("until")?,
            q: text("q"),
        })
    }
}

/// A search request from query parameters: filter, page size (1 to `MAX_PAGE`, default
/// 50) and cursor.
pub fn page_request(q: &Params) -> Result<(Filter, i64, Option<i64>)> {
    let filter = Filter::from_query(q)?;
    let limit = q.whole("limit", 1..=MAX_PAGE)?.unwrap_or(50);
    Ok((filter, limit, q.cursor("cursor")?))
}

pub(super) enum Bind {
    Text(String),
    Int(i64),
}

impl Filter {
    /// `where ...` for this filter plus `min_id <= id < cursor`, with its binds in order.
    pub(super) fn clause(&self, cursor: Option<i64>, min_id: Option<i64>, dialect: Dialect) -> (String, Vec<Bind>) {
        let mut parts = Vec::new();
        let mut binds = Vec::new();
        let mut push = |sql: &str, bind: Bind| {
            binds.push(bind);
            parts.push(sql.replace('?', &format!("${}", binds.len())));
        };
        for (column, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("incident", &self.incident),
            ("kind", &self.kind),
        ] {
            if let Some(v) = value {
                push(&format!("{column} = ?"), Bind::Text(v.clone()));
            }
        }
        // `+ 0` keeps the planner off the ts_ms index here: time ranges are turned into
        // id bounds first (see `search`), so the primary key can drive the scan.
        if let Some(v) = self.since_ms {
            push("ts_ms + 0 >= ?", Bind::Int(v));
        }
        if let Some(v) = self.until_ms {
            push("ts_ms + 0 < ?", Bind::Int(v));
        }
        if let Some(v) = min_id {
            push("id >= ?", Bind::Int(v));
        }
        if let Some(c) = cursor {
            push("id < ?", Bind::Int(c));
        }
        if let Some(q) = &self.q {
            // LIKE wildcards in the user's text match themselves.
            let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            binds.push(Bind::Text(format!("%{escaped}%")));
            let n = binds.len();
            // The trigram index finds candidates (it needs three characters); the LIKEs
            // after it decide, so results are the same with or without it.
            if q.chars().count() >= 3 {
                match dialect {
                    Dialect::Sqlite => {
                        binds.push(Bind::Text(format!("\"{}\"", q.replace('"', "\"\""))));
                        parts.push(format!("id in (select rowid from audit_text where audit_text match ${})", binds.len()));
                    }
                    Dialect::Postgres => parts.push(format!(
                        "lower(actor || ' ' || target || ' ' || action || ' ' || reason || ' ' || params || ' ' || incident) \
                         like ${n} escape '\\'"
                    )),
                }
            }
            parts.push(format!(
                "(lower(actor) like ${n} escape '\\' or lower(target) like ${n} escape '\\' \
                 or lower(action) like ${n} escape '\\' or lower(reason) like ${n} escape '\\' \
                 or lower(params) like ${n} escape '\\' or lower(incident) like ${n} escape '\\')"
            ));
        }
        let clause = if parts.is_empty() { String::new() } else { format!("where {}", parts.join(" and ")) };
        (clause, binds)
    }
}

pub(super) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

/// How far out of order (by time against id) entries may be and still be found by a
/// time-range search: a clock stepped back, or replicas' clocks disagreeing, by up to this.
pub const MAX_SKEW_MS: i64 = 10 * 60 * 1000;

impl Ledger {
    /// A page of entries matching `filter`, newest first, older than `cursor`.
    pub async fn search(&self, filter: &Filter, limit: i64, cursor: Option<i64>) -> Result<AuditPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        // Ids grow with time, so a time range is nearly an id range: find its ends through
        // the ts index (two lookups) and let the primary key order the page. "Nearly": a
        // clock stepped back, or replicas whose clocks disagree, write timestamps out of
        // order. If no entry is more than [`MAX_SKEW_MS`] older than one before it, then
        // every entry at or after `since` comes after the newest-timed entry before
        // `since - skew`, and every entry before `until` comes before the first entry at
        // or after `until + skew`. Those two seeks bound the ids; the time filter decides.
        let mut min_id = None;
        if let Some(since) = filter.since_ms {
            min_id = self.last_id_before(since.saturating_sub(MAX_SKEW_MS)).await?.map(|id| id + 1);
        }
        let cursor = match filter.until_ms {
            Some(until) => match (self.first_id_at(until.saturating_add(MAX_SKEW_MS)).await?, cursor) {
                (Some(e), Some(c)) => Some(e.min(c)),
                (Some(e), None) => Some(e),
                (None, c) => c,
            },
            None => cursor,
        };
        let (clause, binds) = filter.clause(cursor, min_id, self.dialect);
        let sql = format!("select {COLUMNS} from audit_log {clause} order by id desc limit {}", limit + 1);
        let rows = bind_all(sqlx::query(&sql), binds).fetch_all(&self.db).await?;
        let mut entries = rows.iter().map(from_row).collect::<std::result::Result<Vec<_>, _>>()?;
        let next_cursor = if entries.len() as i64 > limit {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        let settled = self.settled(&entries).await?;
        Ok(AuditPage { entries, next_cursor, settled })
    }

    /// How the pending intents among `entries` ended: one lookup in the intent index.
    async fn settled(&self, entries: &[AuditEntry]) -> Result<std::collections::BTreeMap<i64, String>> {
        let pending: Vec<i64> = entries.iter().filter(|e| e.outcome == "pending").map(|e| e.id).collect();
        if pending.is_empty() {
            return Ok(Default::default());
        }
        // Ids are integers: written into the statement, no binding per id.
        let list = pending.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "select intent_id, outcome from audit_log where intent_id in ({list}) order by id"
        ))
        .fetch_all(&self.db)
        .await?;
        // The newest word on each intent wins (a reconciliation after an outcome, say).
        Ok(rows.into_iter().collect())
    }

    /// The entry with the latest time before `ts_ms`: one seek in the (ts_ms, id) index.
    async fn last_id_before(&self, ts_ms: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("select id from audit_log where ts_ms < $1 order by ts_ms desc, id desc limit 1")
                .bind(ts_ms)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.map(|(id,)| id))
    }

    /// The first entry at or after `ts_ms`: one seek in the (ts_ms, id) index.
    async fn first_id_at(&self, ts_ms: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("select id from audit_log where ts_ms >= $1 order by ts_ms, id limit 1")
                .bind(ts_ms)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.map(|(id,)| id))
    }

    /// One entry and every entry linked to it (its intent, or its outcomes).
    pub async fn entry(&self, id: i64) -> Result<(AuditEntry, Vec<AuditEntry>)> {
        let row = sqlx::query(&format!("select {COLUMNS} from audit_log where id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no audit entry {id}")))?;
        let entry = from_row(&row)?;
        let linked = sqlx::query(&format!(
            "select {COLUMNS} from audit_log where (intent_id = $1 or id = $2) and id <> $1 order by id"
        ))
        .bind(id)
        .bind(entry.intent_id.unwrap_or(0))
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(from_row)
        .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((entry, linked))
    }
}
