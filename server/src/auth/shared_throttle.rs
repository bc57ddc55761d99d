//! Login throttling shared by every replica through PostgreSQL (issue 16), on top of each
//! process's own [`LoginThrottle`].
//!
//! The same rules as the in-memory throttle (see `throttle.rs`), counted in the
//! `login_throttle` table: an attacker who spreads attempts over replicas meets one count.
//! Each decision is one short transaction that takes a transaction-scoped advisory lock,
//! so two replicas' parallel attempts cannot both slip under a limit; at most
//! [`AT_ONCE`] run per replica, so a flood cannot tie up the connection pool (the rest
//! wait, or, after [`QUEUE_WAIT`], are told to retry). The process's own counters still
//! answer first: an address already slowed on this replica costs the database nothing.
//! If the database cannot be asked, the process's own counters decide alone.

use super::throttle::{
    ACCOUNT_SLOW_AT, ACCOUNT_SLOWDOWN, FREE_PER_ADDRESS, FREE_PER_PAIR, LoginThrottle, MAX_DELAY, Verdict, WINDOW,
};
use crate::db::{Db, Dialect, now_ms};
use std::net::IpAddr;
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
}

fn keys(account: &str, addr: IpAddr) -> [String; 3] {
    [format!("p:{addr}|{account}"), format!("a:{addr}"), format!("u:{account}")]
}

fn delay_ms(failures: i64, free: u32) -> i64 {
    let free = i64::from(free);
    if failures < free {
        return 0;
    }
    let doublings = (failures - free).min(20) as u32;
    ((1i64 << doublings) * 1000).min(MAX_DELAY.as_millis() as i64)
}

impl Throttle {
    /// In memory only (SQLite: one replica), or shared through `db` (PostgreSQL).
    pub fn new(db: &Db, dialect: Dialect) -> Self {
        Throttle {
            local: LoginThrottle::default(),
            shared: (dialect == Dialect::Postgres).then(|| (db.clone(), tokio::sync::Semaphore::new(AT_ONCE))),
        }
    }

    /// Lets an attempt through (and counts it everywhere) or says how long to wait.
    pub async fn begin(&self, account: &str, addr: IpAddr) -> Verdict {
        let local = self.local.begin(account, addr);
        let Some((db, turns)) = &self.shared else { return local };
        if matches!(local, Verdict::Wait(_)) {
            return local;
        }
        let Ok(Ok(_turn)) = tokio::time::timeout(QUEUE_WAIT, turns.acquire()).await else {
            self.local.abandon(account, addr);
            return Verdict::Wait(1);
        };
        match decide(db, &account.to_lowercase(), addr).await {
            Ok(Verdict::Wait(s)) => {
                // Refused by the shared count: this replica's own count takes it back.
                self.local.abandon(account, addr);
                Verdict::Wait(s)
            }
            Ok(go) => max_go(local, go),
            Err(e) => {
                tracing::warn!(error = %e, "shared sign-in throttling unavailable; this replica's counts decide");
                local
            }
        }
    }

    /// The attempt succeeded (see [`LoginThrottle::success`]).
    pub async fn success(&self, account: &str, addr: IpAddr) {
        self.local.success(account, addr);
        if let Some((db, _)) = &self.shared {
            let [pair, address, user] = keys(&account.to_lowercase(), addr);
            let forgiven = async {
                sqlx::query("delete from login_throttle where key = $1").bind(&pair).execute(db).await?;
                sqlx::query("update login_throttle set failures = failures - 1 where failures > 0 and key in ($1, $2)")
                    .bind(&address)
                    .bind(&user)
                    .execute(db)
                    .await
            };
            if let Err(e) = forgiven.await {
                tracing::warn!(error = %e, "could not take back a shared sign-in count");
            }
        }
    }

    /// The attempt was never judged (see [`LoginThrottle::abandon`]).
    pub async fn abandon(&self, account: &str, addr: IpAddr) {
        self.local.abandon(account, addr);
        if let Some((db, _)) = &self.shared {
            let [pair, address, user] = keys(&account.to_lowercase(), addr);
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
        let done = sqlx::query("delete from login_throttle where first_ms < $1")
            .bind(now_ms() - WINDOW.as_millis() as i64)
            .execute(db)
            .await?;
        Ok(done.rows_affected())
    }
}

/// The longer of two slowdowns.
fn max_go(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Go(x), Verdict::Go(y)) => Verdict::Go(x.max(y)),
        (w @ Verdict::Wait(_), _) | (_, w @ Verdict::Wait(_)) => w,
    }
}

/// One decision on the shared counters, in one transaction under [`THROTTLE_LOCK`].
async fn decide(db: &Db, account: &str, addr: IpAddr) -> Result<Verdict, sqlx::Error> {
    let [pair, address, user] = keys(account, addr);
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(THROTTLE_LOCK).execute(&mut *tx).await?;
    // The clock is read under the lock: a decision that waited for it must not judge
    // against attempts made while it waited as if they were in its future.
    let now = now_ms();
    let window_start = now - WINDOW.as_millis() as i64;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select key, last_ms, failures from login_throttle where key in ($1, $2, $3) and first_ms >= $4",
    )
    .bind(&pair)
    .bind(&address)
    .bind(&user)
    .bind(window_start)
    .fetch_all(&mut *tx)
    .await?;
    let row = |key: &str| rows.iter().find(|(k, _, _)| k == key).map(|(_, last, failures)| (*last, *failures));
    let wait_ms = [(&pair, FREE_PER_PAIR), (&address, FREE_PER_ADDRESS)]
        .into_iter()
        .filter_map(|(key, free)| row(key).map(|(last, failures)| (failures, free, now - last)))
        .filter(|(failures, free, _)| delay_ms(*failures, *free) > 0)
        .map(|(failures, free, since)| delay_ms(failures, free) - since.max(0))
        .max()
        .unwrap_or(0);
    if wait_ms > 0 {
        tx.commit().await?;
        return Ok(Verdict::Wait(((wait_ms + 999) / 1000).max(1) as u64));
    }
    let slow = row(&user).is_some_and(|(_, failures)| failures >= i64::from(ACCOUNT_SLOW_AT));
    for key in [&pair, &address, &user] {
        sqlx::query(
            "insert into login_throttle (key, first_ms, last_ms, failures) values ($1, $2, $2, 1) \
             on conflict (key) do update set \
               failures = case when login_throttle.first_ms < $3 then 1 else login_throttle.failures + 1 end, \
               first_ms = case when login_throttle.first_ms < $3 then $2 else login_throttle.first_ms end, \
               last_ms = $2",
        )
        .bind(key)
        .bind(now)
        .bind(window_start)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Verdict::Go(if slow { ACCOUNT_SLOWDOWN } else { Duration::ZERO }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shared_delays_match_the_local_ones() {
        // 1 s after the free failures, doubling, capped at 15 min.
        assert_eq!(super::delay_ms(4, 5), 0);
        assert_eq!(super::delay_ms(5, 5), 1000);
        assert_eq!(super::delay_ms(8, 5), 8000);
        assert_eq!(super::delay_ms(40, 5), 15 * 60 * 1000);
        assert_ne!(super::THROTTLE_LOCK, crate::audit::APPEND_LOCK);
        assert_ne!(super::THROTTLE_LOCK, crate::replicas::LEADER_LOCK);
    }
}
