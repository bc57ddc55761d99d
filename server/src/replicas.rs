//! Replicas sharing one database, and the one among them that leads (issue 16).
//!
//! Each replica registers a row at start (id, version, start time), heartbeats it every
//! [`HEARTBEAT`] and removes it on a clean stop. With PostgreSQL each replica keeps one
//! connection of its own, outside the pool: on it, it tries `pg_try_advisory_lock` on
//! [`LEADER_LOCK`] until it holds it, and its backend's pid is in its row. Session-level
//! advisory locks belong to the connection, so a replica that dies (or whose connection
//! drops) lets go of leadership at once, and another one takes it on its next try; and a
//! replica is alive exactly while that connection is (`pg_stat_activity`), which tells a
//! killed replica from a slow one without waiting for its heartbeat to age. With SQLite
//! there is one replica and it leads.
//!
//! What only the leader does: TTL reverts, settling the intents of replicas that died
//! mid-action, and reclaiming expired sessions (see ARCHITECTURE.md).

use crate::db::{Db, Dialect, now_ms};
use crate::error::Result;
use sqlx::{Connection, Row};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a replica writes its heartbeat and, when it does not lead, tries to.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica whose heartbeat is older than this is not counted as running (for the
/// simulator's one-process rule and the list), whatever its connection says.
pub const EXPIRY_MS: i64 = 10_000;
/// The advisory lock whose holder leads ("gwleader" in ASCII; not the ledger's append
/// lock, which every replica takes for each append).
pub const LEADER_LOCK: i64 = 0x6777_6c65_6164_6572;

/// One replica as `GET /api/v1/replicas` lists it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReplicaInfo {
    /// Random id, chosen at start.
    pub id: String,
    /// The console's version.
    pub version: String,
    /// `sim` or `kube`.
    pub fleet: String,
    /// Start, Unix ms.
    pub started_at: i64,
    /// Last heartbeat, Unix ms.
    pub last_seen: i64,
    /// It leads.
    pub leader: bool,
}

/// Why a replica may not start.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The simulator is one process, and another replica runs it on this database.
    #[error(
        "another console (replica {id}, started {started} s ago, last seen {ago} s ago) runs the simulated fleet \
         on this database; the simulator is one process: stop that one, or give this one another database"
    )]
    SimulatorRunning {
        /// The live replica.
        id: String,
        /// Seconds since it started.
        started: i64,
        /// Seconds since its last heartbeat.
        ago: i64,
    },
    /// The database failed.
    #[error("registering this replica failed: {0}")]
    Db(String),
}

/// This process as a replica.
pub struct Replicas {
    db: Db,
    dialect: Dialect,
    url: String,
    /// This replica's id.
    pub id: String,
    fleet: &'static str,
    started_at_ms: i64,
    leader: watch::Sender<bool>,
    /// The pid of this replica's own PostgreSQL connection (0 until it has one).
    pid: std::sync::atomic::AtomicI64,
    /// Replicas running at the last heartbeat (this one included).
    running: std::sync::atomic::AtomicUsize,
}

impl Replicas {
    /// Registers this process. With `fleet` = `sim`, refuses while another live replica
    /// is registered. With SQLite, rows left by earlier processes are removed (one file,
    /// one process) and this one leads at once.
    pub async fn join(db: Db, dialect: Dialect, url: &str, fleet: &'static str) -> Result<Arc<Self>, JoinError> {
        let err = |e: sqlx::Error| JoinError::Db(e.to_string());
        let now = now_ms();
        if dialect == Dialect::Sqlite {
            sqlx::query("delete from replicas").execute(&db).await.map_err(err)?;
        } else if fleet == "sim" {
            let live: Option<(String, i64, i64)> = sqlx::query_as(
                "select id, started_at_ms, last_seen_ms from replicas where last_seen_ms >= $1 \
                 and (backend_pid = 0 or backend_pid in (select pid from pg_stat_activity)) \
                 order by started_at_ms limit 1",
            )
            .bind(now - EXPIRY_MS)
            .fetch_optional(&db)
            .await
            .map_err(err)?;
            if let Some((id, started, seen)) = live {
                return Err(JoinError::SimulatorRunning {
                    id,
                    started: (now - started).max(0) / 1000,
                    ago: (now - seen).max(0) / 1000,
                });
            }
        }
        let id = format!("r-{:012x}", rand::random::<u64>() >> 16);
        sqlx::query(
            "insert into replicas (id, version, fleet, started_at_ms, last_seen_ms, leader, backend_pid) \
             values ($1, $2, $3, $4, $4, $5, 0)",
        )
        .bind(&id)
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(fleet)
        .bind(now)
        .bind(i64::from(dialect == Dialect::Sqlite))
        .execute(&db)
        .await
        .map_err(err)?;
        Ok(Arc::new(Replicas {
            db,
            dialect,
            url: url.to_string(),
            id,
            fleet,
            started_at_ms: now,
            leader: watch::channel(dialect == Dialect::Sqlite).0,
            pid: Default::default(),
            running: std::sync::atomic::AtomicUsize::new(1),
        }))
    }

    /// This replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Leadership as it changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// Heartbeats and (PostgreSQL) campaigns for leadership until `stop` turns true; then
    /// lets go of leadership and removes this replica's row.
    pub fn spawn(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut own: Option<sqlx::AnyConnection> = None;
            loop {
                if me.dialect == Dialect::Postgres {
                    me.campaign(&mut own).await;
                }
                me.heartbeat().await;
                tokio::select! {
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            // A clean stop: leadership goes with the connection, the row goes now.
            me.leader.send_replace(false);
            if let Some(conn) = own.take() {
                let _ = conn.close().await;
            }
            if let Err(e) = sqlx::query("delete from replicas where id = $1").bind(&me.id).execute(&me.db).await {
                tracing::warn!(error = %e, "removing this replica's row failed");
            }
        })
    }

    /// One round of the election on this replica's own connection.
    async fn campaign(&self, own: &mut Option<sqlx::AnyConnection>) {
        if own.is_none() {
            match sqlx::AnyConnection::connect(&self.url).await {
                Ok(mut conn) => {
                    match sqlx::query_scalar::<_, i32>("select pg_backend_pid()").fetch_one(&mut conn).await {
                        Ok(pid) => {
                            self.pid.store(i64::from(pid), std::sync::atomic::Ordering::Relaxed);
                            *own = Some(conn);
                        }
                        Err(e) => tracing::warn!(error = %e, "the replica connection did not answer"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "no replica connection to the database"),
            }
        }
        let Some(conn) = own.as_mut() else {
            self.set_leader(false).await;
            return;
        };
        let asked = if self.is_leader() {
            // Still connected, so still holding the lock.
            sqlx::query_scalar::<_, i32>("select 1").fetch_one(&mut *conn).await.map(|_| true)
        } else {
            sqlx::query_scalar::<_, bool>("select pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut *conn)
                .await
        };
        match asked {
            Ok(leads) => self.set_leader(leads).await,
            Err(e) => {
                // The connection is gone, and with it the lock (if the server still holds
                // it, it goes when the server notices).
                tracing::warn!(error = %e, "lost the replica connection; not leading");
                *own = None;
                self.pid.store(0, std::sync::atomic::Ordering::Relaxed);
                self.set_leader(false).await;
            }
        }
    }

    async fn set_leader(&self, leads: bool) {
        if self.leader.send_if_modified(|l| std::mem::replace(l, leads) != leads) {
            if leads {
                tracing::info!(replica = %self.id, "this replica leads");
            } else {
                tracing::warn!(replica = %self.id, "this replica no longer leads");
            }
            self.heartbeat().await;
        }
    }

    async fn heartbeat(&self) {
        let pid = self.pid.load(std::sync::atomic::Ordering::Relaxed);
        let updated = sqlx::query("update replicas set last_seen_ms = $2, leader = $3, backend_pid = $4 where id = $1")
            .bind(&self.id)
            .bind(now_ms())
            .bind(i64::from(self.is_leader()))
            .bind(pid)
            .execute(&self.db)
            .await;
        match updated {
            // Removed (an operator's clean-up): register again.
            Ok(r) if r.rows_affected() == 0 => {
                let _ = sqlx::query(
                    "insert into replicas (id, version, fleet, started_at_ms, last_seen_ms, leader, backend_pid) \
                     values ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&self.id)
                .bind(env!("CARGO_PKG_VERSION"))
                .bind(self.fleet)
                .bind(self.started_at_ms)
                .bind(now_ms())
                .bind(i64::from(self.is_leader()))
                .bind(pid)
                .execute(&self.db)
                .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "replica heartbeat failed"),
        }
        if let Ok(n) = sqlx::query_scalar::<_, i64>("select count(*) from replicas where last_seen_ms >= $1")
            .bind(now_ms() - EXPIRY_MS)
            .fetch_one(&self.db)
            .await
        {
            self.running.store((n.max(1)) as usize, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// How many replicas were running at the last heartbeat (at least this one).
    pub fn running(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The replicas running now (heartbeat fresh; with PostgreSQL, connection alive),
    /// oldest first.
    pub async fn list(&self) -> Result<Vec<ReplicaInfo>> {
        let alive = match self.dialect {
            Dialect::Postgres => " and backend_pid in (select pid from pg_stat_activity)",
            Dialect::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "select id, version, fleet, started_at_ms, last_seen_ms, leader from replicas \
             where last_seen_ms >= $1{alive} order by started_at_ms, id"
        ))
        .bind(now_ms() - EXPIRY_MS)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplicaInfo {
                    id: r.try_get("id")?,
                    version: r.try_get("version")?,
                    fleet: r.try_get("fleet")?,
                    started_at: r.try_get("started_at_ms")?,
                    last_seen: r.try_get("last_seen_ms")?,
                    leader: r.try_get::<i64, _>("leader")? != 0,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The ids of replicas that may still be working on something: registered and, with
    /// PostgreSQL, with their connection alive (a dead process's is gone at once). A slow
    /// replica whose heartbeat is late but whose connection lives counts as alive, so its
    /// in-flight actions are never settled under it. This replica always counts.
    pub async fn alive(&self) -> Result<HashSet<String>> {
        let mut ids: HashSet<String> = match self.dialect {
            Dialect::Postgres => sqlx::query_scalar(
                "select id from replicas where backend_pid in (select pid from pg_stat_activity) \
                 or (backend_pid = 0 and last_seen_ms >= $1)",
            )
            .bind(now_ms() - EXPIRY_MS)
            .fetch_all(&self.db)
            .await?
            .into_iter()
            .collect(),
            Dialect::Sqlite => HashSet::new(),
        };
        ids.insert(self.id.clone());
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn leadership_and_ledger_appends_use_different_locks() {
        // The leader holds its lock for as long as it runs: sharing a key with the ledger's
        // per-append lock would stop every other replica from writing the audit trail.
        assert_ne!(super::LEADER_LOCK, crate::audit::APPEND_LOCK);
    }
}
