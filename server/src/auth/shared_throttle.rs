//! Login throttling shared by every replica through PostgreSQL (issue 16), on top of each
//! process's own [`LoginThrottle`].
//!
//! The same rules as the in-memory throttle (see `throttle.rs`), counted in the
//! `login_throttle` table: an attacker who spreads attempts over replicas meets one count.
//! Each decision is one statement (a function a migration creates) that takes a
//! transaction-scoped advisory lock,
//! so two replicas' parallel attempts cannot both slip under a limit; at most
//! [`AT_ONCE`] run per replica, so a flood cannot tie up the connection pool (the rest
//! wait, or, after [`QUEUE_WAIT`], are told to retry). The process's own counters still
//! answer first: an address already slowed on this replica costs the database nothing.
//! If the database cannot be asked, the process's own counters decide alone, as they do
//! while this replica runs alone (its counters are then the whole count; a flood of
//! sign-ins on one PostgreSQL replica costs the database nothing more than on SQLite).

use super::throttle::{
    ACCOUNT_SLOW_AT, ACCOUNT_SLOWDOWN, Attempt, FREE_PER_ADDRESS, FREE_PER_PAIR, LoginThrottle, MAX_DELAY, TRUST,
    Verdict, WINDOW,
};
use crate::db::{Db, Dialect, now_ms};
use std::time::Duration;

/// Shared decisions running at once per replica.
pub const AT_ONCE: usize = 4;
/// How long a sign-in waits for a turn at the shared counters.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// The advisory lock that serializes decisions ("gwthrott"; not the ledger's or the leader's).
pub const THROTTLE_LOCK: i64 = 0x6777_7468_726f_7474;

/// The throttle a replica uses.
pub struct Throttle {
    local: LoginThrottle,
    shared: Option<(Db, tokio::sync::Semaphore)>,
    /// The replicas: while this one runs alone, its own counters are the whole count and
    /// the database is not asked.
    replicas: Option<std::sync::Arc<crate::replicas::Replicas>>,
}

/// The shared counters' keys of an attempt: pair, address, account, trusted pair. Fixed
/// size whatever the name (a digest of it).
fn keys(attempt: &Attempt) -> [String; 4] {
    let (account, addr) = (attempt.account_hex(), attempt.client);
    [format!("p:{addr}|{account}"), format!("a:{addr}"), format!("u:{account}"), format!("t:{addr}|{account}")]
}

impl Throttle {
    /// In memory only (SQLite: one replica), or shared through `db` (PostgreSQL) whenever
    /// more than one of `replicas` runs.
    pub fn new(db: &Db, dialect: Dialect, replicas: Option<std::sync::Arc<crate::replicas::Replicas>>) -> Self {
        Throttle {
            local: LoginThrottle::default(),
            shared: (dialect == Dialect::Postgres).then(|| (db.clone(), tokio::sync::Semaphore::new(AT_ONCE))),
            replicas,
        }
    }

    /// The shared counters, when they are to be asked: PostgreSQL, and another replica runs
    /// (or may: the count is unknown without a registry).
    fn shared(&self) -> Option<&(Db, tokio::sync::Semaphore)> {
        self.shared.as_ref().filter(|_| self.replicas.as_ref().is_none_or(|r| r.running() > 1))
    }

    /// Lets an attempt through (and counts it everywhere) or says how long to wait.
    pub async fn begin(&self, attempt: &Attempt) -> Verdict {
        let local = self.local.begin(attempt);
        let Some((db, turns)) = self.shared() else { return local };
        if matches!(local, Verdict::Wait(_)) {
            return local;
        }
        let Ok(Ok(_turn)) = tokio::time::timeout(QUEUE_WAIT, turns.acquire()).await else {
            self.local.abandon(attempt);
            return Verdict::Wait(1);
        };
        match decide(db, attempt).await {
            Ok(Verdict::Wait(s)) => {
                // Refused by the shared count: this replica's own count takes it back.
                self.local.abandon(attempt);
                Verdict::Wait(s)
            }
            Ok(Verdict::Go) => Verdict::Go,
            Err(e) => {
                tracing::warn!(error = %e, "shared sign-in throttling unavailable; this replica's counts decide");
                local
            }
        }
    }

    /// The attempt succeeded (see [`LoginThrottle::success`]).
    pub async fn success(&self, attempt: &Attempt) {
        self.local.success(attempt);
        if let Some((db, _)) = self.shared() {
            let [pair, address, user, trusted] = keys(attempt);
            let forgiven = async {
                sqlx::query("delete from login_throttle where key = $1").bind(&pair).execute(db).await?;
                sqlx::query("update login_throttle set failures = failures - 1 where failures > 0 and key in ($1, $2)")
                    .bind(&address)
                    .bind(&user)
                    .execute(db)
                    .await?;
                let now = now_ms();
                sqlx::query(
                    "insert into login_throttle (key, first_ms, last_ms, failures) values ($1, $2, $2, 0) \
                     on conflict (key) do update set first_ms = $2, last_ms = $2",
                )
                .bind(&trusted)
                .bind(now)
                .execute(db)
                .await
            };
            if let Err(e) = forgiven.await {
                tracing::warn!(error = %e, "could not take back a shared sign-in count");
            }
        }
    }

    /// The attempt was never judged (see [`LoginThrottle::abandon`]).
    pub async fn abandon(&self, attempt: &Attempt) {
        self.local.abandon(attempt);
        if let Some((db, _)) = self.shared() {
            let [pair, address, user, _] = keys(attempt);
            let taken_back = sqlx::query(
                "update login_throttle set failures = failures - 1 where failures > 0 and key in ($1, $2, $3)",
            )
            .bind(&pair)
            .bind(&address)
            .bind(&user)
            .execute(db)
            .await;
            if let Err(e) = taken_back {
                tracing::warn!(error = %e, "could not take back a shared sign-in count");
            }
        }
    }

    /// Deletes shared counters whose window has passed (the leader does).
    pub async fn sweep(&self) -> crate::error::Result<u64> {
        let Some((db, _)) = &self.shared else { return Ok(0) };
        let now = now_ms();
        let done = sqlx::query(
            "delete from login_throttle where (key like 't:%' and last_ms < $2) or (key not like 't:%' and first_ms < $1)",
        )
        .bind(now - WINDOW.as_millis() as i64)
        .bind(now - TRUST.as_millis() as i64)
        .execute(db)
        .await?;
        Ok(done.rows_affected())
    }
}

/// One decision on the shared counters: one round trip to `gatewarden_login_attempt_v2`
/// (a migration), which takes [`THROTTLE_LOCK`] for its transaction and reads the clock
/// under it (the database's clock), so a decision that waited for the lock does not judge
/// later attempts as future ones.
async fn decide(db: &Db, attempt: &Attempt) -> Result<Verdict, sqlx::Error> {
    let [pair, address, user, trusted] = keys(attempt);
    let ms = |d: Duration| d.as_millis() as i64;
    let answer: i64 =
        sqlx::query_scalar("select gatewarden_login_attempt_v2($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
            .bind(THROTTLE_LOCK)
            .bind(&pair)
            .bind(&address)
            .bind(&user)
            .bind(&trusted)
            .bind(ms(WINDOW))
            .bind(i64::from(FREE_PER_PAIR))
            .bind(i64::from(FREE_PER_ADDRESS))
            .bind(i64::from(ACCOUNT_SLOW_AT))
            .bind(ms(ACCOUNT_SLOWDOWN))
            .bind(ms(TRUST))
            .bind(ms(MAX_DELAY))
            .fetch_one(db)
            .await?;
    Ok(if answer > 0 { Verdict::Wait(((answer + 999) / 1000).max(1) as u64) } else { Verdict::Go })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_throttle_lock_is_its_own() {
        assert_ne!(super::THROTTLE_LOCK, crate::audit::APPEND_LOCK);
        assert_ne!(super::THROTTLE_LOCK, crate::replicas::LEADER_LOCK);
    }
}
