//! A tower-sessions store in the console's own database (SQLite or PostgreSQL through
//! `sqlx::Any`), so sessions survive restarts and are shared by replicas.

use crate::db::{Db, now_ms};
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

/// Sessions in the `sessions` table: the record as JSON, expiry as Unix ms.
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    /// A store over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn backend(e: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// Whose session a record is (the signed-in account's id), kept in its own column.
fn user_of(record: &Record) -> Option<i64> {
    record.data.get(crate::auth::SESSION_KEY)?.get("user_id")?.as_i64()
}

fn expiry_ms(record: &Record) -> i64 {
    (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // Ids are 128 random bits; still, never overwrite someone else's session.
        loop {
            let inserted = sqlx::query(
                "insert into sessions (id, data, expiry_date, user_id) values ($1, $2, $3, $4)
                 on conflict (id) do nothing",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(expiry_ms(record))
            .bind(user_of(record))
            .execute(&self.db)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query(
            "insert into sessions (id, data, expiry_date, user_id) values ($1, $2, $3, $4)
             on conflict (id) do update set data = excluded.data, expiry_date = excluded.expiry_date,
             user_id = excluded.user_id",
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(expiry_ms(record))
        .bind(user_of(record))
        .execute(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String,)> = sqlx::query_as("select data from sessions where id = $1 and expiry_date > $2")
            .bind(id.to_string())
            .bind(now_ms())
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
        row.map(|(data,)| serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("delete from sessions where id = $1")
            .bind(id.to_string())
            .execute(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("delete from sessions where expiry_date <= $1")
            .bind(now_ms())
            .execute(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
