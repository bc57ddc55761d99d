//! Console accounts: storage, validation, the first admin, and `/api/v1/users`.

use crate::auth::password;
use crate::db::{Db, now_ms};
use crate::error::{AppError, Result};
use app::dto::{NewUser, Role, UserSummary};
use rand::Rng;
use std::fmt;

/// A stored account.
#[derive(Clone)]
pub struct UserRow {
    /// Database id.
    pub id: i64,
    /// Account name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

type Row = (i64, String, String, String, i64);

fn from_row((id, username, password_hash, role, created_at_ms): Row) -> Result<UserRow> {
    let role = role.parse().map_err(AppError::Internal)?;
    Ok(UserRow { id, username, password_hash, role, created_at_ms })
}

/// The account named `username` (exact match).
pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>> {
    sqlx::query_as::<_, Row>("select id, username, password_hash, role, created_at from users where username = $1")
        .bind(username)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// Whether an account named `username` exists.
pub async fn exists(db: &Db, username: &str) -> Result<bool> {
    Ok(find_by_username(db, username).await?.is_some())
}

/// The account with `id`, if any.
pub async fn find_by_id(db: &Db, id: i64) -> Result<Option<UserRow>> {
    sqlx::query_as::<_, Row>("select id, username, password_hash, role, created_at from users where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// Every account, by name.
pub async fn list(db: &Db) -> Result<Vec<UserSummary>> {
    let rows =
        sqlx::query_as::<_, Row>("select id, username, password_hash, role, created_at from users order by username")
            .fetch_all(db)
            .await?;
    rows.into_iter()
        .map(|r| {
            from_row(r).map(|u| UserSummary { username: u.username, role: u.role, created_at_ms: u.created_at_ms })
        })
        .collect()
}

/// Checks a new account's fields; 422 naming the field otherwise.
pub fn validate(user: &NewUser) -> Result<()> {
    let name_ok = (1..=64).contains(&user.username.len())
        && user.username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return Err(AppError::invalid("username", "must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'"));
    }
    let chars = user.password.chars().count();
    if !(10..=1024).contains(&chars) {
        return Err(AppError::invalid("password", "must be 10-1024 characters"));
    }
    Ok(())
}

/// Validates, hashes and stores a new account; 409 if the name is taken.
pub async fn create(db: &Db, user: NewUser) -> Result<UserSummary> {
    validate(&user)?;
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
        Ok(_) => Ok(UserSummary { username: user.username, role: user.role, created_at_ms }),
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
            const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            let mut rng = rand::rngs::OsRng;
            let p: String = (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
            (p.clone(), FirstAdmin::Generated(p))
        }
    };
    match create(db, NewUser { username: "admin".into(), password, role: Role::Admin }).await {
        Ok(_) => Ok(outcome),
        // Another replica created it first.
        Err(AppError::Conflict(_)) => Ok(FirstAdmin::NotNeeded),
        Err(e) => Err(e),
    }
}
