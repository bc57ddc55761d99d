//! How the rest of the console names an incident: its key (`INC-<id>`), and whether a key
//! names one that is open. A leaf, so that the action engine (which `incidents` reads)
//! can check an action's incident without importing `incidents` back.

use crate::error::{AppError, Result};

/// `INC-<id>`.
pub fn key(id: i64) -> String {
    format!("INC-{id}")
}

/// The id in `INC-<id>`.
pub fn id_of(key: &str) -> Option<i64> {
    key.strip_prefix("INC-")?.parse().ok().filter(|id| *id > 0)
}

/// Checks that `key` names an open incident (not resolved, not closed): what an action or
/// a probe may be recorded on. 422 on `incident` naming it otherwise (a typo would
/// otherwise put the change on no timeline, or on a closed one).
pub async fn open_named(db: &crate::db::Db, key: &str) -> Result<()> {
    let shown: String = key.chars().take(32).collect();
    let id = id_of(key)
        .ok_or_else(|| AppError::invalid("incident", format!("'{shown}' is not an incident key (INC-<id>)")))?;
    let status: Option<String> =
        sqlx::query_scalar("select status from incidents where id = $1 and status <> 'declaring'")
            .bind(id)
            .fetch_optional(db)
            .await?;
    match status.as_deref() {
        None => Err(AppError::invalid("incident", format!("there is no incident {shown}"))),
        Some(s @ ("resolved" | "closed")) => {
            Err(AppError::invalid("incident", format!("{shown} is {s}: name an open incident, or none")))
        }
        Some(_) => Ok(()),
    }
}
