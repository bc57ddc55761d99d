//! Database connection and migrations for both dialects through `sqlx::Any`.
//!
//! One SQL text serves SQLite and PostgreSQL: `$1` placeholders (SQLite binds `$N` by
//! number), `bigint` Unix-millisecond timestamps, text for everything else, and
//! `returning` for generated ids. Queries are checked by the integration tests, which
//! run against both databases, rather than at compile time (see docs/adr/0001).

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// The connection pool; `Any` dispatches to SQLite or PostgreSQL by URL.
pub type Db = AnyPool;

/// Which dialect a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs.
    Postgres,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// Neither sqlite: nor postgres:.
    #[error("unsupported database URL '{0}' (expected sqlite:PATH or postgres://...)")]
    Scheme(String),
    /// Could not connect.
    #[error("cannot open database: {0}")]
    Connect(sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
}

/// The dialect of `url`, if supported.
pub fn dialect(url: &str) -> Option<Dialect> {
    if url.starts_with("sqlite:") {
        Some(Dialect::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Some(Dialect::Postgres)
    } else {
        None
    }
}

/// A SQLite URL creates its file unless the caller chose another mode.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Opens the pool and brings the schema up to date.
pub async fn connect(url: &str) -> Result<Db, DbSetupError> {
    sqlx::any::install_default_drivers();
    let dialect = dialect(url).ok_or_else(|| DbSetupError::Scheme(redact(url)))?;
    let url = match dialect {
        Dialect::Sqlite => with_create_mode(url),
        Dialect::Postgres => url.to_string(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(if dialect == Dialect::Sqlite { 8 } else { 16 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                if conn.backend_name() == "SQLite" {
                    // WAL lets readers proceed during a write; NORMAL is durable in WAL.
                    conn.execute("pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;")
                        .await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(DbSetupError::Connect)?;
    let migrator = match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATIONS,
        Dialect::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator.run(&pool).await.map_err(DbSetupError::Migrate)?;
    Ok(pool)
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Now, in Unix milliseconds (the unit of every stored timestamp).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_their_file_unless_told_otherwise() {
        assert_eq!(with_create_mode("sqlite:gw.db"), "sqlite:gw.db?mode=rwc");
        assert_eq!(with_create_mode("sqlite:gw.db?cache=shared"), "sqlite:gw.db?cache=shared&mode=rwc");
        assert_eq!(with_create_mode("sqlite:gw.db?mode=ro"), "sqlite:gw.db?mode=ro");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact("postgres://gw:s3cret@db:5432/gw"), "postgres://gw:***@db:5432/gw");
        assert_eq!(redact("postgres://gw@db/gw"), "postgres://gw@db/gw");
    }
}
