//! The `actions` table: the mutable operational state of each mitigation (status,
//! progress, impact, undo, expiry). The ledger is the tamper-evident record; this table
//! is what the console shows and updates as an action moves. Columns are read by name.

use crate::db::{Db, now_ms};
use crate::error::{AppError, Result};
use crate::fleet::Change;
use app::dto::{ActionRecord, ImpactReading, Preview, Progress};
use serde_json::json;
use sqlx::Row;

/// The columns `from_row` reads.
const COLUMNS: &str = "id, gateway, action, params, change, inverse, actor, actor_role, reason, incident, \
     status, detail, preview, progress, impact_before, impact_after, undone_by, undo_of, expires_at_s, reverted, applied, \
     intent_id, created_at_ms, undo_claimed_at_ms";

/// An action as stored: what the API shows, plus the change and its inverse.
pub struct Stored {
    /// What the API shows.
    pub record: ActionRecord,
    /// What was done.
    pub change: Change,
    /// How to undo it, if it can be.
    pub inverse: Option<Change>,
}

/// A new row, written right after its audit intent.
pub struct NewAction<'a> {
    pub gateway: &'a str,
    pub action: &'a str,
    pub params: String,
    pub change: &'a Change,
    pub inverse: Option<&'a Change>,
    pub actor: &'a str,
    pub actor_role: &'a str,
    pub reason: &'a str,
    pub incident: &'a str,
    pub preview: &'a Preview,
    pub impact_before: Option<ImpactReading>,
    pub undo_of: Option<i64>,
    pub expires_at_s: Option<i64>,
    pub intent_id: i64,
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| AppError::Internal(format!("stored action: {e}")))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Stored> {
    let json_col = |name: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(name)?) };
    let change: Change = parse_json(&row.try_get::<String, _>("change")?)?;
    let inverse: Option<Change> = json_col("inverse")?.map(|s| parse_json(&s)).transpose()?;
    let undone_by: Option<i64> = row.try_get("undone_by")?;
    let reverted: i64 = row.try_get("reverted")?;
    let applied: i64 = row.try_get("applied")?;
    // An undo or a revert under way holds the claim: no second one can start.
    let claimed: Option<i64> = row.try_get("undo_claimed_at_ms")?;
    let status: String = row.try_get("status")?;
    let record = ActionRecord {
        id: row.try_get("id")?,
        gateway: row.try_get("gateway")?,
        action: row.try_get("action")?,
        params: row.try_get("params")?,
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        incident: row.try_get("incident")?,
        undo_available: inverse.is_some()
            && undone_by.is_none()
            && reverted == 0
            && claimed.is_none()
            && (status != "failed" || applied == 1),
        status,
        detail: row.try_get("detail")?,
        preview: parse_json(&row.try_get::<String, _>("preview")?)?,
        progress: json_col("progress")?.map(|s| parse_json(&s)).transpose()?,
        impact_before: json_col("impact_before")?.map(|s| parse_json(&s)).transpose()?,
        impact_after: json_col("impact_after")?.map(|s| parse_json(&s)).transpose()?,
        undone_by,
        undo_of: row.try_get("undo_of")?,
        expires_at_s: row.try_get("expires_at_s")?,
        intent_id: row.try_get("intent_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
    };
    Ok(Stored { record, change, inverse })
}

/// Inserts a running action; returns its id.
pub async fn insert(db: &Db, a: NewAction<'_>) -> Result<i64> {
    let inserted = sqlx::query(
        "insert into actions (gateway, action, params, change, inverse, actor, actor_role, reason, incident, status, \
         detail, preview, impact_before, undo_of, expires_at_s, reverted, intent_id, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', '', $10, $11, $12, $13, 0, $14, $15) returning id",
    )
    .bind(a.gateway)
    .bind(a.action)
    .bind(a.params)
    .bind(json!(a.change).to_string())
    .bind(a.inverse.map(|c| json!(c).to_string()))
    .bind(a.actor)
    .bind(a.actor_role)
    .bind(a.reason)
    .bind(a.incident)
    .bind(json!(a.preview).to_string())
    .bind(a.impact_before.map(|r| json!(r).to_string()))
    .bind(a.undo_of)
    .bind(a.expires_at_s)
    .bind(a.intent_id)
    .bind(now_ms())
    .fetch_one(db)
    .await?;
    Ok(inserted.try_get("id")?)
}

/// One action, or 404.
pub async fn load(db: &Db, id: i64) -> Result<Stored> {
    let row = sqlx::query(&format!("select {COLUMNS} from actions where id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no action {id}")))?;
    from_row(&row)
}

/// The actions taken for incident `key`, oldest first (at most 500).
pub async fn for_incident(db: &Db, key: &str) -> Result<Vec<ActionRecord>> {
    let rows = sqlx::query(&format!("select {COLUMNS} from actions where incident = $1 order by id limit 500"))
        .bind(key)
        .fetch_all(db)
        .await?;
    rows.iter().map(|r| from_row(r).map(|s| s.record)).collect()
}

/// Recent actions, newest first, optionally for one gateway (`limit` 1 to 500).
pub async fn list(db: &Db, gateway: Option<&str>, limit: i64) -> Result<Vec<ActionRecord>> {
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from actions where ($1 = '' or gateway = $1) order by id desc limit $2"
    ))
    .bind(gateway.unwrap_or(""))
    .bind(limit.clamp(1, 500))
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| from_row(r).map(|s| s.record)).collect()
}

/// Records that the backend made the change, and the status that follows.
pub async fn set_applied(db: &Db, id: i64, status: &str) -> Result<()> {
    sqlx::query("update actions set status = $1, applied = 1 where id = $2").bind(status).bind(id).execute(db).await?;
    Ok(())
}

/// Records a round of a change's propagation: the status, if it ended, and the detail
/// line, unless a later story owns the line (a revert that is pending or done, an undo):
/// a propagation that ends late must not hide that.
pub async fn set_propagated(db: &Db, id: i64, status: Option<&str>, detail: &str) -> Result<()> {
    sqlx::query(
        "update actions set status = coalesce($1, status), detail = case when reverted = 0 and undone_by is null \
         and revert_attempts is null then $2 else detail end where id = $3",
    )
    .bind(status)
    .bind(detail)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks it failed, saying why.
pub async fn set_failed(db: &Db, id: i64, detail: &str) -> Result<()> {
    sqlx::query("update actions set status = 'failed', detail = $1 where id = $2")
        .bind(detail)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records rollout progress and the status it implies.
pub async fn set_progress(db: &Db, id: i64, progress: Progress, status: &str, detail: &str) -> Result<()> {
    sqlx::query("update actions set progress = $1, status = $2, detail = $3 where id = $4")
        .bind(json!(progress).to_string())
        .bind(status)
        .bind(detail)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records the reading taken after the change.
pub async fn set_impact_after(db: &Db, id: i64, reading: &ImpactReading) -> Result<()> {
    sqlx::query("update actions set impact_after = $1 where id = $2")
        .bind(json!(reading).to_string())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Claims action `id` for an undo: true for exactly one caller while it is neither undone
/// nor claimed (a conditional update, so concurrent undos cannot both win).
pub async fn claim_undo(db: &Db, id: i64) -> Result<bool> {
    let claimed = sqlx::query(
        "update actions set undo_claimed_at_ms = $1 where id = $2 and undone_by is null and undo_claimed_at_ms is null",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// The action an intent started, if its row was written.
pub async fn id_of_intent(db: &Db, intent_id: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("select id from actions where intent_id = $1").bind(intent_id).fetch_optional(db).await?)
}

/// Gives up a claim whose undo did not happen.
pub async fn release_undo(db: &Db, id: i64) -> Result<()> {
    sqlx::query("update actions set undo_claimed_at_ms = null where id = $1 and undone_by is null")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Links an action to the action that undid it.
pub async fn set_undone_by(db: &Db, id: i64, undone_by: i64) -> Result<()> {
    sqlx::query("update actions set undone_by = $1 where id = $2").bind(undone_by).bind(id).execute(db).await?;
    Ok(())
}

/// Time-limited actions whose expiry (backend seconds) is at or before `now_s` and that
/// are still in force as far as the table knows (applied: succeeded, or a scale whose
/// pods are still starting).
pub async fn due_for_revert(db: &Db, now_s: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "select id from actions where expires_at_s is not null and expires_at_s <= $1 and reverted = 0 \
         and undone_by is null and (status in ('succeeded', 'running') or applied = 1) \
         and (revert_next_at_s is null or revert_next_at_s <= $1)",
    )
    .bind(now_s)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|(id,)| id)
    .collect())
}

/// Records a failed try to revert an expired action: says why in its detail and when the
/// next try is due (5 s, doubling, at most 5 min, in backend seconds). Returns the wait.
pub async fn revert_failed(db: &Db, id: i64, now_s: i64, why: &str) -> Result<i64> {
    let (attempts,): (Option<i64>,) =
        sqlx::query_as("select revert_attempts from actions where id = $1").bind(id).fetch_one(db).await?;
    let attempts = attempts.unwrap_or(0) + 1;
    let wait = (5i64 << (attempts - 1).min(6)).min(300);
    sqlx::query("update actions set revert_attempts = $1, revert_next_at_s = $2, detail = $3 where id = $4")
        .bind(attempts)
        .bind(now_s + wait)
        .bind(format!("revert pending: {why} (try {attempts} failed; next in {wait} s)"))
        .bind(id)
        .execute(db)
        .await?;
    Ok(wait)
}

/// Sets an action's detail line.
pub async fn set_detail(db: &Db, id: i64, detail: &str) -> Result<()> {
    sqlx::query("update actions set detail = $1 where id = $2").bind(detail).bind(id).execute(db).await?;
    Ok(())
}

/// Marks a time-limited action as reverted (or no longer ours to revert).
pub async fn mark_reverted(db: &Db, id: i64) -> Result<()> {
    sqlx::query("update actions set reverted = 1 where id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Settles the still-running action of an interrupted intent.
pub async fn settle_interrupted(db: &Db, intent_id: i64, status: &str, detail: &str) -> Result<()> {
    sqlx::query(
        "update actions set status = $1, detail = $2, applied = case when $1 = 'succeeded' then 1 else applied end \
         where intent_id = $3 and status = 'running'",
    )
    .bind(status)
    .bind(detail)
    .bind(intent_id)
    .execute(db)
    .await?;
    Ok(())
}
