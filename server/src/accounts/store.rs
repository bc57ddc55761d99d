//! Console accounts: storage, validation, the first admin, and `/api/v1/users`.

use crate::auth::password;
use crate::db::{Db, Dialect, now_ms};
use crate::error::{AppError, Result};
use app::dto::{NewUser, Role, UserSource, UserSummary};
use rand::Rng;
use std::fmt;

/// A stored account.
#[derive(Clone)]
pub struct UserRow {
    /// Database id.
    pub id: i64,
    /// Account name.
    pub username: String,
    /// Argon2id PHC string ("" for an account the identity provider vouches for).
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// When it was disabled, Unix ms.
    pub disabled_at_ms: Option<i64>,
    /// Sessions signed in under an older epoch are refused.
    pub session_epoch: i64,
    /// Last successful sign-in, Unix ms.
    pub last_sign_in_ms: Option<i64>,
    /// Where it signs in.
    pub source: UserSource,
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("disabled_at_ms", &self.disabled_at_ms)
            .field("source", &self.source)
            .finish()
    }
}

type Row = (i64, String, String, String, i64, Option<i64>, i64, Option<i64>, String);

const COLUMNS: &str =
    "id, username, password_hash, role, created_at, disabled_at, session_epoch, last_sign_in_at, source";

fn source_of(text: &str) -> UserSource {
    if text == "oidc" { UserSource::Oidc } else { UserSource::Local }
}

fn from_row(row: Row) -> Result<UserRow> {
    let (id, username, password_hash, role, created_at_ms, disabled_at_ms, session_epoch, last_sign_in_ms, source) =
        row;
    let role = role.parse().map_err(AppError::Internal)?;
    Ok(UserRow {
        id,
        username,
        password_hash,
        role,
        created_at_ms,
        disabled_at_ms,
        session_epoch,
        last_sign_in_ms,
        source: source_of(&source),
    })
}

/// The account whose `column` (one of this module's names, never input) is `value`.
async fn find_where(db: &Db, column: &'static str, value: &str) -> Result<Option<UserRow>> {
    sqlx::query_as::<_, Row>(&format!("select {COLUMNS} from users where {column} = $1"))
        .bind(value)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// The account named `username` (exact match).
pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>> {
    find_where(db, "username", username).await
}

/// The account named `username`, or 404 saying so.
pub async fn named(db: &Db, username: &str) -> Result<UserRow> {
    let found = if username.len() <= 64 { find_by_username(db, username).await? } else { None };
    found
        .ok_or_else(|| AppError::NotFound(format!("no user named '{}'", username.chars().take(64).collect::<String>())))
}

/// Whether an account named `username` exists.
pub async fn exists(db: &Db, username: &str) -> Result<bool> {
    Ok(find_by_username(db, username).await?.is_some())
}

/// The account with `id`, if any.
pub async fn find_by_id(db: &Db, id: i64) -> Result<Option<UserRow>> {
    sqlx::query_as::<_, Row>(&format!("select {COLUMNS} from users where id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

type ListRow = (String, String, i64, Option<i64>, Option<i64>, String, i64);

/// Every account, by name, with its sessions signed in now.
pub async fn list(db: &Db) -> Result<Vec<UserSummary>> {
    listed(db, None).await
}

async fn listed(db: &Db, username: Option<&str>) -> Result<Vec<UserSummary>> {
    let rows = sqlx::query_as::<_, ListRow>(
        "select u.username, u.role, u.created_at, u.disabled_at, u.last_sign_in_at, u.source,
                (select count(*) from sessions s where s.user_id = u.id and s.expiry_date > $1)
         from users u where $2 = '' or u.username = $3 order by u.username",
    )
    .bind(now_ms())
    .bind(username.unwrap_or(""))
    .bind(username.unwrap_or(""))
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(username, role, created_at_ms, disabled_at_ms, last_sign_in_ms, source, active_sessions)| {
            Ok(UserSummary {
                username,
                role: role.parse().map_err(AppError::Internal)?,
                created_at_ms,
                source: source_of(&source),
                disabled_at_ms,
                last_sign_in_ms,
                active_sessions,
            })
        })
        .collect()
}

/// One account as listed.
pub async fn summary(db: &Db, username: &str) -> Result<UserSummary> {
    listed(db, Some(username))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound(format!("no user named '{username}'")))
}

/// Records a successful sign-in.
pub async fn record_sign_in(db: &Db, id: i64, at_ms: i64) -> Result<()> {
    sqlx::query("update users set last_sign_in_at = $1 where id = $2").bind(at_ms).bind(id).execute(db).await?;
    Ok(())
}

/// Other active admins than `$n`, as an SQL condition on a user id parameter.
fn another_admin(param: &str) -> String {
    format!("exists (select 1 from users o where o.role = 'admin' and o.disabled_at is null and o.id <> {param})")
}

/// Serializes the changes that could leave no active admin: with PostgreSQL, two
/// transactions could each see the other's admin still active and both go ahead, so
/// each first locks the active admins' rows (SQLite runs one writer at a time, and each
/// guarded change is one statement).
async fn lock_admins(tx: &mut sqlx::Transaction<'_, sqlx::Any>, dialect: Dialect) -> Result<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("select id from users where role = 'admin' and disabled_at is null for update")
            .fetch_all(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The refusal to demote or disable the last active admin.
pub fn last_admin(user: &UserRow) -> AppError {
    AppError::Conflict(format!(
        "{} is the last active admin: make another account admin first, or no one could manage users",
        user.username
    ))
}

/// Ends `user_id`'s sessions (all but `keep`): their rows go, and their ids are returned
/// so that their open event streams can be ended on every replica.
async fn end_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: i64,
    keep: Option<&str>,
) -> Result<Vec<String>> {
    let keep = keep.unwrap_or("");
    let ids: Vec<(String,)> = sqlx::query_as("select id from sessions where user_id = $1 and id <> $2")
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut **tx)
        .await?;
    sqlx::query("delete from sessions where user_id = $1 and id <> $2")
        .bind(user_id)
        .bind(keep)
        .execute(&mut **tx)
        .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Gives `user` `role`; refuses (409) to demote the last active admin.
pub async fn set_role(db: &Db, dialect: Dialect, user: &UserRow, role: Role) -> Result<()> {
    let mut tx = db.begin().await?;
    lock_admins(&mut tx, dialect).await?;
    let guard = if role == Role::Admin {
        String::new()
    } else {
        format!(" and (role <> 'admin' or disabled_at is not null or {})", another_admin("$3"))
    };
    let changed = sqlx::query(&format!("update users set role = $1 where id = $2{guard}"))
        .bind(role.as_str())
        .bind(user.id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() == 0 {
        return Err(last_admin(user));
    }
    tx.commit().await?;
    Ok(())
}

/// Disables `user` and ends every session of theirs (returned); refuses (409) to disable
/// the last active admin. Disabling a disabled account changes nothing.
pub async fn disable(db: &Db, dialect: Dialect, user: &UserRow, at_ms: i64) -> Result<Vec<String>> {
    let mut tx = db.begin().await?;
    lock_admins(&mut tx, dialect).await?;
    let changed = sqlx::query(&format!(
        "update users set disabled_at = $1, session_epoch = session_epoch + 1
         where id = $2 and disabled_at is null and (role <> 'admin' or {})",
        another_admin("$3")
    ))
    .bind(at_ms)
    .bind(user.id)
    .bind(user.id)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 && user.disabled_at_ms.is_none() {
        return Err(last_admin(user));
    }
    let ended = end_sessions(&mut tx, user.id, None).await?;
    tx.commit().await?;
    Ok(ended)
}

/// Lets `user` sign in again.
pub async fn enable(db: &Db, user: &UserRow) -> Result<()> {
    sqlx::query("update users set disabled_at = null where id = $1").bind(user.id).execute(db).await?;
    Ok(())
}

/// Replaces `user`'s password hash and ends their sessions but `keep` (returned).
pub async fn set_password(db: &Db, user: &UserRow, hash: String, keep: Option<&str>) -> Result<(i64, Vec<String>)> {
    let mut tx = db.begin().await?;
    let (epoch,): (i64,) = sqlx::query_as(
        "update users set password_hash = $1, session_epoch = session_epoch + 1 where id = $2 returning session_epoch",
    )
    .bind(hash)
    .bind(user.id)
    .fetch_one(&mut *tx)
    .await?;
    let ended = end_sessions(&mut tx, user.id, keep).await?;
    tx.commit().await?;
    Ok((epoch, ended))
}

/// Ends every session of `user` (returned).
pub async fn revoke_sessions(db: &Db, user: &UserRow) -> Result<Vec<String>> {
    let mut tx = db.begin().await?;
    sqlx::query("update users set session_epoch = session_epoch + 1 where id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    let ended = end_sessions(&mut tx, user.id, None).await?;
    tx.commit().await?;
    Ok(ended)
}

/// The account the identity provider vouches for as `subject`, if it has one here.
pub async fn find_by_subject(db: &Db, subject: &str) -> Result<Option<UserRow>> {
    find_where(db, "external_id", subject).await
}

/// Makes the account of `subject`, named `username`, with `role` (its first sign-in);
/// 409 when the name is taken.
pub async fn create_sso(db: &Db, subject: &str, username: &str, role: Role) -> Result<UserRow> {
    if case_twin(db, username).await?.is_some() {
        return Err(name_taken(username));
    }
    let inserted = sqlx::query(
        "insert into users (username, password_hash, role, created_at, source, external_id)
         values ($1, '', $2, $3, 'oidc', $4)",
    )
    .bind(username)
    .bind(role.as_str())
    .bind(now_ms())
    .bind(subject)
    .execute(db)
    .await;
    match inserted {
        Ok(_) => find_by_subject(db, subject).await?.ok_or(AppError::Unauthorized),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(name_taken(username)),
        Err(e) => Err(e.into()),
    }
}

/// The refusal of a first sign-in whose name another account has.
pub fn name_taken(username: &str) -> AppError {
    AppError::Conflict(format!(
        "an account named '{username}' already exists here and is not yours at the identity provider: ask an \
         admin to rename one of them"
    ))
}

/// Sets the role the identity provider's groups give (at each sign-in). Not guarded for
/// the last admin: the provider decides, and the break-glass admin stays local.
pub async fn set_sso_role(db: &Db, user: &UserRow, role: Role) -> Result<()> {
    sqlx::query("update users set role = $1 where id = $2").bind(role.as_str()).bind(user.id).execute(db).await?;
    Ok(())
}

/// A new random password: 20 characters of an alphabet without look-alikes (~114 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// Checks a new password's length; 422 naming `field` otherwise.
pub fn validate_password(field: &'static str, password: &str) -> Result<()> {
    if !(10..=1024).contains(&password.chars().count()) {
        return Err(AppError::invalid(field, "must be 10-1024 characters"));
    }
    Ok(())
}

/// Checks a new account's fields; 422 naming the field otherwise.
pub fn validate(user: &NewUser) -> Result<()> {
    let name_ok = (1..=64).contains(&user.username.len())
        && user.username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return Err(AppError::invalid("username", "must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'"));
    }
    validate_password("password", &user.password)
}

/// The existing account whose name differs from `username` only by case, if any: `Admin`
/// beside `admin` reads as the same person in the audit trail and the approvals.
async fn case_twin(db: &Db, username: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("select username from users where lower(username) = lower($1) and username <> $1 limit 1")
        .bind(username)
        .fetch_optional(db)
        .await?)
}

/// Validates, hashes and stores a new account; 409 if the name is taken, even in another
/// case.
pub async fn create(db: &Db, user: NewUser) -> Result<UserSummary> {
    validate(&user)?;
    if let Some(twin) = case_twin(db, &user.username).await? {
        return Err(AppError::Conflict(format!(
            "a user named '{twin}' already exists: names that differ only by case are one name here"
        )));
    }
    let hash = password::hash(user.password).await?;
    let created_at_ms = now_ms();
    let result = sqlx::query("insert into users (username, password_hash, role, created_at) values ($1, $2, $3, $4)")
        .bind(&user.username)
        .bind(hash)
        .bind(user.role.as_str())
        .bind(created_at_ms)
        .execute(db)
        .await;
    match result {
        Ok(_) => Ok(UserSummary {
            username: user.username,
            role: user.role,
            created_at_ms,
            source: UserSource::Local,
            disabled_at_ms: None,
            last_sign_in_ms: None,
            active_sessions: 0,
        }),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(AppError::Conflict(format!("a user named '{}' already exists", user.username)))
        }
        Err(e) => Err(e.into()),
    }
}

/// What happened to the first admin at start-up.
#[derive(Debug, PartialEq)]
pub enum FirstAdmin {
    /// Accounts exist already.
    NotNeeded,
    /// Created with the password from `GATEWARDEN_ADMIN_PASSWORD`.
    FromEnvironment,
    /// Created with this generated password, to be shown once.
    Generated(String),
}

/// Creates `admin` when there are no accounts yet.
pub async fn ensure_first_admin(db: &Db, password: Option<String>) -> Result<FirstAdmin> {
    let (count,): (i64,) = sqlx::query_as("select count(*) from users").fetch_one(db).await?;
    if count > 0 {
        return Ok(FirstAdmin::NotNeeded);
    }
    let (password, outcome) = match password {
        Some(p) => (p.clone(), FirstAdmin::FromEnvironment),
        None => {
            let p = generate_password();
            (p.clone(), FirstAdmin::Generated(p))
        }
    };
    let first = NewUser { username: "admin".into(), password, role: Role::Admin, reason: "the first admin".into() };
    match create(db, first).await {
        Ok(_) => Ok(outcome),
        // Another replica created it first.
        Err(AppError::Conflict(_)) => Ok(FirstAdmin::NotNeeded),
        Err(e) => Err(e),
    }
}
