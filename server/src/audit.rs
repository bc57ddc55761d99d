//! The audit ledger: append-only, hash-chained entries in the database.
//!
//! Each entry's hash is SHA-256 over a canonical encoding (a JSON array of its fields in
//! a fixed order, with the previous entry's hash), so changing, removing or reordering
//! any entry breaks every hash after it. Appends are serialized in-process, and the
//! `prev_hash` unique constraint stops a second appender (another replica) from forking
//! the chain: it retries on the new head. Triggers refuse UPDATE and DELETE.

use crate::db::{Db, now_ms};
use crate::error::{AppError, Result};
use app::dto::{AuditEntry, AuditPage, AuditVerification};
use futures::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::Mutex;

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Largest page a search returns.
pub const MAX_PAGE: i64 = 500;

/// What kind of event an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A mitigation is about to run (written before it does).
    ActionIntent,
    /// How a mitigation (or undo, or revert) ended; links to its intent.
    ActionOutcome,
    /// An undo is about to run.
    Undo,
    /// A TTL expired and the system is reverting a change.
    TtlRevert,
    /// Start-up found an intent without an outcome and settled it.
    Reconciliation,
    /// A successful sign-in.
    Login,
    /// A refused sign-in.
    LoginFailure,
    /// A sign-out.
    Logout,
    /// An account was created or its role changed.
    UserChange,
}

impl Kind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ActionIntent => "action_intent",
            Kind::ActionOutcome => "action_outcome",
            Kind::Undo => "undo",
            Kind::TtlRevert => "ttl_revert",
            Kind::Reconciliation => "reconciliation",
            Kind::Login => "login",
            Kind::LoginFailure => "login_failure",
            Kind::Logout => "logout",
            Kind::UserChange => "user_change",
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written before the work; settled by a later entry.
    Pending,
    /// It worked.
    Succeeded,
    /// It was tried and did not work.
    Failed,
    /// It was refused (role, CSRF, throttling, bad credentials).
    Denied,
}

impl Outcome {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Denied => "denied",
        }
    }
}

/// Who did something and from where (never a secret).
#[derive(Clone, Debug, Default)]
pub struct Actor {
    /// Username, or `system`.
    pub name: String,
    /// Role at the time ("" for unknown callers).
    pub role: String,
    /// Client IP.
    pub addr: String,
    /// Client user agent (truncated).
    pub user_agent: String,
    /// Request id.
    pub request_id: String,
}

impl Actor {
    /// The console itself (TTL reverts, reconciliation).
    pub fn system() -> Self {
        Actor { name: "system".into(), role: "system".into(), ..Default::default() }
    }
}

/// An entry to append; the ledger fills in id, time and hashes.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// Who.
    pub actor: Actor,
    /// What kind of event.
    pub kind: Kind,
    /// Action name or "".
    pub action: String,
    /// Target or "".
    pub target: String,
    /// Parameters (must never contain secrets).
    pub params: serde_json::Value,
    /// Why.
    pub reason: String,
    /// Incident id or "".
    pub incident: String,
    /// Outcome.
    pub outcome: Outcome,
    /// The intent an outcome completes.
    pub intent_id: Option<i64>,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
}

impl NewEntry {
    /// An entry of `kind` by `actor` with `outcome` and nothing else filled in.
    pub fn new(actor: Actor, kind: Kind, outcome: Outcome) -> Self {
        NewEntry {
            actor,
            kind,
            action: String::new(),
            target: String::new(),
            params: serde_json::Value::Object(Default::default()),
            reason: String::new(),
            incident: String::new(),
            outcome,
            intent_id: None,
            before: None,
            after: None,
        }
    }
}

/// SHA-256 of the canonical encoding of `e` (its `hash` field is not part of it).
pub fn entry_hash(e: &AuditEntry) -> String {
    let canonical = serde_json::json!([
        e.id,
        e.ts_ms,
        e.actor,
        e.actor_role,
        e.client_addr,
        e.user_agent,
        e.request_id,
        e.kind,
        e.action,
        e.target,
        e.params,
        e.reason,
        e.incident,
        e.outcome,
        e.intent_id,
        e.before_state,
        e.after_state,
        e.prev_hash,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

const COLUMNS: &str = "id, ts_ms, actor, actor_role, client_addr, user_agent, request_id, kind, action, target, \
     params, reason, incident, outcome, intent_id, before_state, after_state, prev_hash, hash";

fn from_row(row: &AnyRow) -> std::result::Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: row.try_get(0)?,
        ts_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        actor_role: row.try_get(3)?,
        client_addr: row.try_get(4)?,
        user_agent: row.try_get(5)?,
        request_id: row.try_get(6)?,
        kind: row.try_get(7)?,
        action: row.try_get(8)?,
        target: row.try_get(9)?,
        params: row.try_get(10)?,
        reason: row.try_get(11)?,
        incident: row.try_get(12)?,
        outcome: row.try_get(13)?,
        intent_id: row.try_get(14)?,
        before_state: row.try_get(15)?,
        after_state: row.try_get(16)?,
        prev_hash: row.try_get(17)?,
        hash: row.try_get(18)?,
    })
}

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

enum Bind {
    Text(String),
    Int(i64),
}

impl Filter {
    /// `where ...` for this filter plus `id < cursor`, with its binds in order.
    fn clause(&self, cursor: Option<i64>) -> (String, Vec<Bind>) {
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
        if let Some(v) = self.since_ms {
            push("ts_ms >= ?", Bind::Int(v));
        }
        if let Some(v) = self.until_ms {
            push("ts_ms < ?", Bind::Int(v));
        }
        if let Some(c) = cursor {
            push("id < ?", Bind::Int(c));
        }
        if let Some(q) = &self.q {
            // LIKE wildcards in the user's text match themselves.
            let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            binds.push(Bind::Text(format!("%{escaped}%")));
            let n = binds.len();
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

fn bind_all<'q>(
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

/// The ledger over the console's database.
pub struct Ledger {
    db: Db,
    /// (id, hash) of the newest entry, once read; serializes appends in this process.
    head: Mutex<Option<(i64, String)>>,
}

impl Ledger {
    /// A ledger over `db`.
    pub fn new(db: Db) -> Self {
        Ledger { db, head: Mutex::new(None) }
    }

    async fn read_head(&self) -> Result<(i64, String)> {
        let row: Option<(i64, String)> =
            sqlx::query_as("select id, hash from audit_log order by id desc limit 1").fetch_optional(&self.db).await?;
        Ok(row.unwrap_or((0, GENESIS.to_string())))
    }

    /// Appends `entry` and returns it as stored. Fails (and nothing is stored) if the
    /// database does; callers that guard an action must not run it then.
    pub async fn append(&self, entry: NewEntry) -> Result<AuditEntry> {
        let mut head = self.head.lock().await;
        for _ in 0..8 {
            let (prev_id, prev_hash) = match head.as_ref() {
                Some(h) => h.clone(),
                None => self.read_head().await?,
            };
            let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
            let mut stored = AuditEntry {
                id: prev_id + 1,
                ts_ms: now_ms(),
                actor: entry.actor.name.clone(),
                actor_role: entry.actor.role.clone(),
                client_addr: entry.actor.addr.clone(),
                user_agent: entry.actor.user_agent.chars().take(256).collect(),
                request_id: entry.actor.request_id.clone(),
                kind: entry.kind.as_str().into(),
                action: entry.action.clone(),
                target: entry.target.clone(),
                params: entry.params.to_string(),
                reason: entry.reason.clone(),
                incident: entry.incident.clone(),
                outcome: entry.outcome.as_str().into(),
                intent_id: entry.intent_id,
                before_state: json(&entry.before),
                after_state: json(&entry.after),
                prev_hash,
                hash: String::new(),
            };
            stored.hash = entry_hash(&stored);
            let inserted = sqlx::query(&format!(
                "insert into audit_log ({COLUMNS}) values \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
            ))
            .bind(stored.id)
            .bind(stored.ts_ms)
            .bind(&stored.actor)
            .bind(&stored.actor_role)
            .bind(&stored.client_addr)
            .bind(&stored.user_agent)
            .bind(&stored.request_id)
            .bind(&stored.kind)
            .bind(&stored.action)
            .bind(&stored.target)
            .bind(&stored.params)
            .bind(&stored.reason)
            .bind(&stored.incident)
            .bind(&stored.outcome)
            .bind(stored.intent_id)
            .bind(&stored.before_state)
            .bind(&stored.after_state)
            .bind(&stored.prev_hash)
            .bind(&stored.hash)
            .execute(&self.db)
            .await;
            match inserted {
                Ok(_) => {
                    *head = Some((stored.id, stored.hash.clone()));
                    return Ok(stored);
                }
                // Someone else appended first (another replica): follow the new head.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    *head = Some(self.read_head().await?);
                }
                Err(e) => {
                    *head = None;
                    return Err(e.into());
                }
            }
        }
        Err(AppError::Internal("audit append kept racing another writer".into()))
    }

    /// A page of entries matching `filter`, newest first, older than `cursor`.
    pub async fn search(&self, filter: &Filter, limit: i64, cursor: Option<i64>) -> Result<AuditPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (clause, binds) = filter.clause(cursor);
        let sql = format!("select {COLUMNS} from audit_log {clause} order by id desc limit {}", limit + 1);
        let rows = bind_all(sqlx::query(&sql), binds).fetch_all(&self.db).await?;
        let mut entries = rows.iter().map(from_row).collect::<std::result::Result<Vec<_>, _>>()?;
        let next_cursor = if entries.len() as i64 > limit {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok(AuditPage { entries, next_cursor })
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

    /// Every matching entry, oldest first, read a page at a time (for export).
    pub fn stream(&self, filter: Filter) -> impl Stream<Item = Result<AuditEntry>> + Send + 'static {
        let db = self.db.clone();
        futures::stream::try_unfold((db, filter, Some(0i64)), |(db, filter, after)| async move {
            let Some(after) = after else { return Ok::<_, AppError>(None) };
            let (clause, mut binds) = filter.clause(None);
            binds.push(Bind::Int(after));
            let and = if clause.is_empty() { "where" } else { "and" };
            let sql =
                format!("select {COLUMNS} from audit_log {clause} {and} id > ${} order by id limit 1000", binds.len());
            let rows = bind_all(sqlx::query(&sql), binds).fetch_all(&db).await?;
            let page = rows.iter().map(from_row).collect::<std::result::Result<Vec<_>, _>>()?;
            let next = if page.len() == 1000 { page.last().map(|e| e.id) } else { None };
            Ok(Some((futures::stream::iter(page.into_iter().map(Ok)), (db, filter, next))))
        })
        .try_flatten()
    }

    /// Recomputes every hash and link, oldest first; reports the first entry that
    /// does not match (an edited entry, or the one after a removed one).
    pub async fn verify(&self) -> Result<AuditVerification> {
        let sql = format!("select {COLUMNS} from audit_log order by id");
        let mut rows = sqlx::query(&sql).fetch(&self.db);
        let (mut expected_prev, mut count, mut first_bad) = (GENESIS.to_string(), 0i64, None);
        while let Some(row) = rows.next().await {
            let e = from_row(&row?)?;
            count += 1;
            if first_bad.is_none() && (e.prev_hash != expected_prev || entry_hash(&e) != e.hash) {
                first_bad = Some(e.id);
            }
            expected_prev = e.hash;
        }
        Ok(AuditVerification {
            ok: first_bad.is_none(),
            entries: count,
            head_hash: if count == 0 { GENESIS.to_string() } else { expected_prev },
            first_bad_id: first_bad,
        })
    }
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The CSV header line of an export.
pub const CSV_HEADER: &str = "id,ts_ms,actor,actor_role,client_addr,user_agent,request_id,kind,action,target,params,reason,incident,outcome,intent_id,before_state,after_state,prev_hash,hash\n";

/// One entry as a CSV line.
pub fn csv_line(e: &AuditEntry) -> String {
    let intent = e.intent_id.map(|i| i.to_string()).unwrap_or_default();
    let fields = [
        e.id.to_string(),
        e.ts_ms.to_string(),
        csv_field(&e.actor),
        csv_field(&e.actor_role),
        csv_field(&e.client_addr),
        csv_field(&e.user_agent),
        csv_field(&e.request_id),
        csv_field(&e.kind),
        csv_field(&e.action),
        csv_field(&e.target),
        csv_field(&e.params),
        csv_field(&e.reason),
        csv_field(&e.incident),
        csv_field(&e.outcome),
        intent,
        csv_field(&e.before_state),
        csv_field(&e.after_state),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    let mut line = fields.join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_and_newlines_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn the_hash_covers_every_field() {
        let mut e = AuditEntry {
            id: 1,
            ts_ms: 2,
            actor: "a".into(),
            actor_role: "admin".into(),
            client_addr: "127.0.0.1".into(),
            user_agent: "ua".into(),
            request_id: "r".into(),
            kind: "login".into(),
            action: String::new(),
            target: String::new(),
            params: "{}".into(),
            reason: String::new(),
            incident: String::new(),
            outcome: "succeeded".into(),
            intent_id: None,
            before_state: String::new(),
            after_state: String::new(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        let h = entry_hash(&e);
        assert_eq!(h.len(), 64);
        e.reason = "x".into();
        assert_ne!(entry_hash(&e), h);
        e.reason.clear();
        e.intent_id = Some(1);
        assert_ne!(entry_hash(&e), h);
    }
}
