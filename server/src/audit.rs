//! The audit ledger: append-only, hash-chained entries in the database.
//!
//! Each entry's hash is SHA-256 over a canonical encoding (a JSON array of its fields in
//! a fixed order, with the previous entry's hash), so changing, removing or reordering
//! any entry breaks every hash after it. Triggers refuse UPDATE and DELETE.
//!
//! Appends are serialized: in-process by a mutex; across replicas on PostgreSQL by a
//! transaction-scoped advisory lock (the head is read inside it). Underneath both, the
//! `prev_hash` unique constraint makes a fork impossible: a writer that loses a race
//! anyway (a second process on one SQLite file) backs off and retries on the new head.

use crate::db::{Db, Dialect, now_ms};
use crate::error::{AppError, Result};
use app::dto::{AuditEntry, AuditPage, AuditVerification};
use futures::{Stream, TryStreamExt};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
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
    let mut buf = Vec::with_capacity(512);
    hash_into(e, &mut buf)
}

/// The canonical encoding: the fields as a compact JSON array, in this order, written
/// straight into `buf` (reused across entries; verification hashes millions).
fn canonical(e: &AuditEntry, buf: &mut Vec<u8>) {
    use std::io::Write;
    buf.clear();
    let text = |buf: &mut Vec<u8>, s: &str| serde_json::to_writer(&mut *buf, s).expect("writing to a Vec cannot fail");
    let _ = write!(buf, "[{},{},", e.id, e.ts_ms);
    for s in [&e.actor, &e.actor_role, &e.client_addr, &e.user_agent, &e.request_id, &e.kind, &e.action, &e.target] {
        text(buf, s);
        buf.push(b',');
    }
    for s in [&e.params, &e.reason, &e.incident, &e.outcome] {
        text(buf, s);
        buf.push(b',');
    }
    match e.intent_id {
        Some(id) => {
            let _ = write!(buf, "{id},");
        }
        None => buf.extend_from_slice(b"null,"),
    }
    for s in [&e.before_state, &e.after_state] {
        text(buf, s);
        buf.push(b',');
    }
    text(buf, &e.prev_hash);
    buf.push(b']');
}

fn hash_into(e: &AuditEntry, buf: &mut Vec<u8>) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    canonical(e, buf);
    let digest = Sha256::digest(&buf[..]);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// The canonical encoding spelled out with `serde_json::json!`, the definition the fast
/// writer above must match byte for byte (checked in the tests).
#[cfg(test)]
fn canonical_reference(e: &AuditEntry) -> String {
    serde_json::json!([
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
    ])
    .to_string()
}

const INSERT: &str = "insert into audit_log (id, ts_ms, actor, actor_role, client_addr, user_agent, request_id, \
     kind, action, target, params, reason, incident, outcome, intent_id, before_state, after_state, prev_hash, hash) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

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

impl Filter {
    /// Reads the filters of `GET /api/v1/audit` (and its export) from query parameters;
    /// 422 names a bad one.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Filter> {
        let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
        let int = |k: &'static str| -> Result<Option<i64>> {
            text(k)
                .map(|v| v.parse::<i64>().map_err(|_| AppError::invalid(k, format!("'{v}' is not a whole number"))))
                .transpose()
        };
        if let Some(o) = text("outcome")
            && !["pending", "succeeded", "failed", "denied"].contains(&o.as_str())
        {
            return Err(AppError::invalid("outcome", "must be pending, succeeded, failed or denied"));
        }
        Ok(Filter {
            actor: text("actor"),
            action: text("action"),
            target: text("target"),
            outcome: text("outcome"),
            incident: text("incident"),
            kind: text("kind"),
            since_ms: int("since")?,
            until_ms: int("until")?,
            q: text("q"),
        })
    }
}

/// A search request from query parameters: filter, page size (1 to `MAX_PAGE`, default
/// 50) and cursor.
pub fn page_request(q: &HashMap<String, String>) -> Result<(Filter, i64, Option<i64>)> {
    let filter = Filter::from_query(q)?;
    let int = |k: &'static str| -> Result<Option<i64>> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| AppError::invalid(k, "must be a whole number")))
            .transpose()
    };
    let limit = int("limit")?.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid("limit", format!("must be from 1 to {MAX_PAGE}")));
    }
    Ok((filter, limit, int("cursor")?))
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Filter {
    /// `where ...` for this filter plus `min_id <= id < cursor`, with its binds in order.
    fn clause(&self, cursor: Option<i64>, min_id: Option<i64>, dialect: Dialect) -> (String, Vec<Bind>) {
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

/// Key of the PostgreSQL advisory lock that serializes appends across replicas.
const APPEND_LOCK: i64 = 0x6761_7465_7761_7264; // "gatewar d"
/// Attempts before an append gives up racing other writers.
const ATTEMPTS: u32 = 64;

/// The ledger over the console's database.
pub struct Ledger {
    db: Db,
    dialect: Dialect,
    /// (id, hash) of the newest entry, once read; serializes appends in this process.
    head: Mutex<Option<(i64, String)>>,
    /// Entries per verification page.
    verify_page: i64,
    /// Every appended entry, as JSON, for `GET /api/v1/events`.
    events: tokio::sync::broadcast::Sender<std::sync::Arc<str>>,
}

async fn read_head<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(executor: E) -> Result<(i64, String)> {
    let row: Option<(i64, String)> =
        sqlx::query_as("select id, hash from audit_log order by id desc limit 1").fetch_optional(executor).await?;
    Ok(row.unwrap_or((0, GENESIS.to_string())))
}

impl Ledger {
    /// A ledger over `db` of `dialect`.
    pub fn new(db: Db, dialect: Dialect) -> Self {
        let (events, _) = tokio::sync::broadcast::channel(256);
        Ledger { db, dialect, head: Mutex::new(None), verify_page: VERIFY_PAGE, events }
    }

    /// Entries as they are appended.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<str>> {
        self.events.subscribe()
    }

    fn publish(&self, entry: &AuditEntry) {
        if self.events.receiver_count() > 0
            && let Ok(json) = serde_json::to_string(entry)
        {
            let _ = self.events.send(std::sync::Arc::from(json));
        }
    }

    /// The same ledger verifying `entries` per page (tests use small pages to cross
    /// page boundaries; larger pages trade memory for fewer round trips).
    pub fn with_verify_page(mut self, entries: i64) -> Self {
        self.verify_page = entries.max(1);
        self
    }

    async fn read_head(&self) -> Result<(i64, String)> {
        read_head(&self.db).await
    }

    /// Appends `entry` and returns it as stored. Fails (and nothing is stored) if the
    /// database does; callers that guard an action must not run it then.
    pub async fn append(&self, entry: NewEntry) -> Result<AuditEntry> {
        let mut head = self.head.lock().await;
        if self.dialect == Dialect::Postgres {
            // Replicas take turns; the head is read under the lock, so no race is lost.
            let mut tx = self.db.begin().await?;
            sqlx::query("select pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await?;
            let prev = read_head(&mut *tx).await?;
            let stored = Self::stored(&entry, prev);
            Self::insert(&stored).execute(&mut *tx).await?;
            tx.commit().await?;
            *head = Some((stored.id, stored.hash.clone()));
            self.publish(&stored);
            return Ok(stored);
        }
        for attempt in 0..ATTEMPTS {
            let prev = match head.as_ref() {
                Some(h) => h.clone(),
                None => self.read_head().await?,
            };
            let stored = Self::stored(&entry, prev);
            match Self::insert(&stored).execute(&self.db).await {
                Ok(_) => {
                    *head = Some((stored.id, stored.hash.clone()));
                    self.publish(&stored);
                    return Ok(stored);
                }
                // Someone else appended first: back off a little, follow the new head.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    let jitter = rand::random::<u64>() % (1 + u64::from(attempt.min(10)));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
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

    /// The entry as it will be stored after `prev` (id, hash).
    fn stored(entry: &NewEntry, (prev_id, prev_hash): (i64, String)) -> AuditEntry {
        {
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
            stored
        }
    }

    fn insert(stored: &AuditEntry) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        sqlx::query(INSERT)
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
    }

    /// A page of entries matching `filter`, newest first, older than `cursor`.
    pub async fn search(&self, filter: &Filter, limit: i64, cursor: Option<i64>) -> Result<AuditPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        // Ids grow with time, so a time range is an id range: find its ends through the
        // ts index (two lookups) and let the primary key order the page.
        let mut min_id = None;
        if let Some(since) = filter.since_ms {
            min_id = Some(self.first_id_at(since).await?.unwrap_or(i64::MAX));
        }
        let cursor = match filter.until_ms {
            Some(until) => match (self.first_id_at(until).await?, cursor) {
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
        Ok(AuditPage { entries, next_cursor })
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

    /// Every matching entry, oldest first, read a page at a time (for export).
    pub fn stream(&self, filter: Filter) -> impl Stream<Item = Result<AuditEntry>> + Send + 'static {
        let (db, dialect) = (self.db.clone(), self.dialect);
        futures::stream::try_unfold((db, filter, Some(0i64)), move |(db, filter, after)| async move {
            let Some(after) = after else { return Ok::<_, AppError>(None) };
            let (clause, mut binds) = filter.clause(None, None, dialect);
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

/// Entries per verification page.
const VERIFY_PAGE: i64 = 10000;

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
    fn the_fast_encoding_is_byte_for_byte_the_reference_one() {
        let e = AuditEntry {
            id: 42,
            ts_ms: -7,
            actor: "ana \"the\" sre".into(),
            actor_role: "admin".into(),
            client_addr: "::1".into(),
            user_agent: "curl/8 \u{1F680}".into(),
            request_id: "ab\ncd".into(),
            kind: "action_intent".into(),
            action: "scale".into(),
            target: "edge".into(),
            params: "{\"replicas\":8}".into(),
            reason: "tab\there, back\\slash".into(),
            incident: String::new(),
            outcome: "pending".into(),
            intent_id: Some(41),
            before_state: "{}".into(),
            after_state: String::new(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        let mut buf = Vec::new();
        canonical(&e, &mut buf);
        assert_eq!(String::from_utf8(buf).unwrap(), canonical_reference(&e));
        let none = AuditEntry { intent_id: None, ..e };
        let mut buf = Vec::new();
        canonical(&none, &mut buf);
        assert_eq!(String::from_utf8(buf).unwrap(), canonical_reference(&none));
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
