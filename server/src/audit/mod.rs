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

//!
//! `hash` is the canonical encoding; `search` the filters and keyset pages; `export` the
//! streamed CSV and JSONL; `verify` the chain check.

pub mod checkpoint;
mod export;
mod hash;
pub mod key;
mod record;
mod refusals;
mod seal;
mod search;
mod verify;

pub use export::{CSV_HEADER, Format, csv_field, csv_line};
pub use hash::entry_hash;
pub use key::AuditKey;
pub use refusals::{DEFAULT_WINDOW as REFUSAL_WINDOW, Refusals};
pub use search::{Filter, page_request};
pub use verify::{Check, Verifier, verify_lines};

use crate::db::{Db, Dialect, now_ms};
use crate::error::{AppError, Result};
use app::dto::AuditEntry;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::Mutex;
use verify::VERIFY_PAGE;

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
    /// A change others had to pick up (a DNS record) was served everywhere asked, or was
    /// not by its deadline; links to its intent.
    Propagation,
    /// An incident was declared or changed, or a note was added (`action` says which).
    Incident,
    /// A gateway named by an open incident changed status (with the numbers then).
    GatewayStatus,
    /// A step of a two-person approval: request, approve, deny, refuse, expire,
    /// break-glass, review (`params.step`).
    Approval,
    /// A successful sign-in.
    Login,
    /// A refused sign-in.
    LoginFailure,
    /// A sign-out.
    Logout,
    /// An account was created or its role changed.
    UserChange,
    /// From this entry on, every entry is signed with the audit key named in `params`.
    AuditKey,
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
            Kind::Propagation => "propagation",
            Kind::Incident => "incident",
            Kind::GatewayStatus => "gateway_status",
            Kind::Approval => "approval",
            Kind::Login => "login",
            Kind::LoginFailure => "login_failure",
            Kind::Logout => "logout",
            Kind::UserChange => "user_change",
            Kind::AuditKey => "audit_key",
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

/// Where a request came from, for the audit trail: the client address, user agent and
/// request id (the HTTP layer fills it in).
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// Peer IP address.
    pub addr: String,
    /// `User-Agent`, at most 256 characters.
    pub user_agent: String,
    /// The request's id.
    pub request_id: String,
}

impl Client {
    /// An audit actor named `name` with `role`, from this client.
    pub fn actor(&self, name: &str, role: &str) -> Actor {
        Actor {
            name: name.to_string(),
            role: role.to_string(),
            addr: self.addr.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

/// An intent (of an action, undo or TTL revert) with no outcome yet.
#[derive(Debug, sqlx::FromRow)]
pub struct UnsettledIntent {
    /// The intent's entry id.
    pub id: i64,
    /// The gateway.
    pub target: String,
    /// The intent's params (with the planned `change`), as JSON text.
    pub params: String,
    /// The gateway's state when the intent was written, as JSON text.
    pub before_state: String,
}

const INSERT: &str = "insert into audit_log (id, ts_ms, actor, actor_role, client_addr, user_agent, request_id, \
     kind, action, target, params, reason, incident, outcome, intent_id, before_state, after_state, prev_hash, hash, mac) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

/// The ledger's columns, in the order [`from_row`] reads them.
pub const COLUMNS: &str = "id, ts_ms, actor, actor_role, client_addr, user_agent, request_id, kind, action, target, \
     params, reason, incident, outcome, intent_id, before_state, after_state, prev_hash, hash, mac";

/// An entry from a row of [`COLUMNS`], read by column name.
/// One ledger row as the API shows it.
pub fn from_row(row: &AnyRow) -> std::result::Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        ts_ms: row.try_get("ts_ms")?,
        actor: row.try_get("actor")?,
        actor_role: row.try_get("actor_role")?,
        client_addr: row.try_get("client_addr")?,
        user_agent: row.try_get("user_agent")?,
        request_id: row.try_get("request_id")?,
        kind: row.try_get("kind")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        params: row.try_get("params")?,
        reason: row.try_get("reason")?,
        incident: row.try_get("incident")?,
        outcome: row.try_get("outcome")?,
        intent_id: row.try_get("intent_id")?,
        before_state: row.try_get("before_state")?,
        after_state: row.try_get("after_state")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        mac: row.try_get("mac")?,
    })
}

/// Key of the PostgreSQL advisory lock that serializes appends across replicas (not
/// `replicas::LEADER_LOCK`: a test asserts they differ).
pub const APPEND_LOCK: i64 = 0x6761_7465_7761_7264; // "gatewar d"
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
    /// Every appended entry goes out on it, as JSON, for `GET /api/v1/events` (none: not
    /// published, as for the offline tools).
    bus: Option<std::sync::Arc<crate::bus::Bus>>,
    /// Repeated refusals being counted into their window's summary.
    refusals: Refusals,
    /// Signs each entry (none: entries are hash-chained only).
    key: Option<AuditKey>,
    /// The newest entry this process appended, kept outside the database.
    checkpoint: Option<std::sync::Arc<checkpoint::Checkpointer>>,
}

async fn read_head<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(executor: E) -> Result<(i64, String)> {
    let row: Option<(i64, String)> =
        sqlx::query_as("select id, hash from audit_log order by id desc limit 1").fetch_optional(executor).await?;
    Ok(row.unwrap_or((0, GENESIS.to_string())))
}

impl Ledger {
    /// A ledger over `db` of `dialect`.
    pub fn new(db: Db, dialect: Dialect) -> Self {
        Ledger {
            db,
            dialect,
            head: Mutex::new(None),
            verify_page: VERIFY_PAGE,
            bus: None,
            refusals: Refusals::new(REFUSAL_WINDOW),
            key: None,
            checkpoint: None,
        }
    }

    /// The checkpoint this process keeps, once [`Ledger::seal`] has run.
    pub fn checkpointer(&self) -> Option<&std::sync::Arc<checkpoint::Checkpointer>> {
        self.checkpoint.as_ref()
    }

    fn appended(&self, stored: &AuditEntry) {
        if stored.kind == "action_outcome" {
            crate::metrics::get().action(&stored.action, &stored.outcome);
        }
        if let Some(c) = &self.checkpoint {
            c.advance(stored.id, &stored.hash);
        }
        self.publish(stored);
    }

    /// Publishes every appended entry on `bus`.
    pub fn with_bus(mut self, bus: std::sync::Arc<crate::bus::Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    fn publish(&self, entry: &AuditEntry) {
        if let Some(bus) = self.bus.as_ref().filter(|b| b.wanted())
            && let Ok(json) = serde_json::to_string(entry)
        {
            // Appends are not held up by the other replicas' delivery.
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish("audit", &json).await });
        }
    }

    /// The same ledger folding repeated refusals into windows of `window`.
    pub fn with_refusal_window(mut self, window: std::time::Duration) -> Self {
        self.refusals = Refusals::new(window);
        self
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
        let started = std::time::Instant::now();
        let appended = self.append_timed(entry).await;
        crate::metrics::get().ledger_append(started.elapsed().as_secs_f64());
        appended
    }

    async fn append_timed(&self, entry: NewEntry) -> Result<AuditEntry> {
        let mut head = self.head.lock().await;
        if self.dialect == Dialect::Postgres {
            // Replicas take turns; the head is read under the lock, so no race is lost.
            let mut tx = self.db.begin().await?;
            sqlx::query("select pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await?;
            let prev = read_head(&mut *tx).await?;
            let stored = self.stored(&entry, prev);
            Self::insert(&stored).execute(&mut *tx).await?;
            tx.commit().await?;
            *head = Some((stored.id, stored.hash.clone()));
            self.appended(&stored);
            return Ok(stored);
        }
        for attempt in 0..ATTEMPTS {
            let prev = match head.as_ref() {
                Some(h) => h.clone(),
                None => self.read_head().await?,
            };
            let stored = self.stored(&entry, prev);
            match Self::insert(&stored).execute(&self.db).await {
                Ok(_) => {
                    *head = Some((stored.id, stored.hash.clone()));
                    self.appended(&stored);
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
    fn stored(&self, entry: &NewEntry, (prev_id, prev_hash): (i64, String)) -> AuditEntry {
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
                mac: String::new(),
            };
            stored.hash = entry_hash(&stored);
            if let Some(key) = &self.key {
                stored.mac = key.sign(stored.hash.as_bytes());
            }
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
            .bind(&stored.mac)
    }

    /// Intents without an outcome: the process stopped between the two.
    pub async fn unsettled_intents(&self) -> Result<Vec<UnsettledIntent>> {
        Ok(sqlx::query_as(
            "select i.id, i.target, i.params, i.before_state from audit_log i \
             where i.kind in ('action_intent', 'undo', 'ttl_revert') and i.outcome = 'pending' \
             and not exists (select 1 from audit_log o where o.intent_id = i.id)",
        )
        .fetch_all(&self.db)
        .await?)
    }
}
