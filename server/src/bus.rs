//! Events that every replica's streams carry: action updates, audit entries, sign-outs
//! (issue 16).
//!
//! With PostgreSQL an event is a row in `event_outbox` (its id is the SSE event id) and a
//! `NOTIFY gatewarden_events` carrying only that id (NOTIFY payloads are capped at 8 KB
//! and an action record can be larger). Each replica LISTENs and reads the rows after the
//! last one it relayed, so notifications lost while its listener reconnects are read on
//! the next one, and a browser that reconnects to any replica with `Last-Event-ID` is sent
//! what it missed (`since`). The leader prunes rows older than [`KEEP_MS`].
//!
//! With SQLite there is one replica: events go straight to its subscribers, numbered in
//! memory, and nothing is written.

use crate::db::{Db, Dialect, now_ms};
use crate::error::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::{broadcast, watch};

/// The NOTIFY channel.
pub const CHANNEL: &str = "gatewarden_events";
/// How long events stay replayable.
pub const KEEP_MS: i64 = 15 * 60 * 1000;
/// At most this many missed events are replayed to a reconnecting stream.
pub const REPLAY_MAX: i64 = 1000;

/// One event: its id, what it is about, and its JSON (or, for sign-outs, the hash of the
/// session id: the table never holds a live session id).
#[derive(Clone, Debug)]
pub struct BusEvent {
    /// Outbox id (PostgreSQL) or this process's counter (SQLite).
    pub id: i64,
    /// `action`, `audit` or `sign_out`.
    pub topic: String,
    /// The event's data.
    pub payload: Arc<str>,
}

/// The event bus of this replica.
pub struct Bus {
    db: Db,
    dialect: Dialect,
    tx: broadcast::Sender<Arc<BusEvent>>,
    /// Sign-outs (their session tags) apart: each open stream waits for its own, and
    /// should not be woken by every action and audit event to find it.
    sign_outs: broadcast::Sender<Arc<str>>,
    /// The newest id relayed to this replica's subscribers.
    last: AtomicI64,
    /// Subscribers inside the process that need only some events (see
    /// [`Bus::subscribe_internal`]): they do not make every event wanted.
    internal: std::sync::atomic::AtomicUsize,
}

impl Bus {
    /// A bus over `db`.
    pub fn new(db: Db, dialect: Dialect) -> Arc<Self> {
        Arc::new(Bus {
            db,
            dialect,
            tx: broadcast::channel(1024).0,
            sign_outs: broadcast::channel(256).0,
            last: AtomicI64::new(0),
            internal: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Someone may receive an event now (always with PostgreSQL: another replica's
    /// streams cannot be counted from here).
    pub fn wanted(&self) -> bool {
        self.dialect == Dialect::Postgres || self.tx.receiver_count() > self.internal.load(Ordering::Relaxed)
    }

    /// Events as they reach this replica.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }

    /// Events as they reach this replica, for a task of the process that reads only a
    /// topic whose publishers send regardless of [`Bus::wanted`] (approvals): it does not
    /// make every action and audit entry be serialized when no stream is open.
    pub fn subscribe_internal(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.internal.fetch_add(1, Ordering::Relaxed);
        self.tx.subscribe()
    }

    /// Session tags (see [`session_tag`]) as their sessions sign out, on any replica.
    pub fn sign_outs(&self) -> broadcast::Receiver<Arc<str>> {
        self.sign_outs.subscribe()
    }

    /// Hands a relayed event to this replica's subscribers of its kind.
    fn deliver(&self, e: BusEvent) {
        if e.topic == "sign_out" {
            let _ = self.sign_outs.send(e.payload);
        } else {
            let _ = self.tx.send(Arc::new(e));
        }
    }

    /// Sends `payload` on `topic` to every replica's subscribers.
    pub async fn publish(&self, topic: &str, payload: &str) {
        match self.dialect {
            Dialect::Sqlite => {
                let id = self.last.fetch_add(1, Ordering::SeqCst) + 1;
                self.deliver(BusEvent { id, topic: topic.into(), payload: Arc::from(payload) });
            }
            Dialect::Postgres => {
                let sent = sqlx::query(
                    "with e as (insert into event_outbox (ts_ms, topic, payload) values ($1, $2, $3) returning id) \
                     select pg_notify($4, cast(id as text)) from e",
                )
                .bind(now_ms())
                .bind(topic)
                .bind(payload)
                .bind(CHANNEL)
                .execute(&self.db)
                .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, topic, "an event could not be sent to the other replicas");
                }
            }
        }
    }

    /// Events after `id` (oldest first, at most [`REPLAY_MAX`]) that a reconnecting stream
    /// missed; none with SQLite.
    pub async fn since(&self, id: i64) -> Result<Vec<BusEvent>> {
        if self.dialect == Dialect::Sqlite {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("select id, topic, payload from event_outbox where id > $1 order by id limit $2")
                .bind(id)
                .bind(REPLAY_MAX)
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(|(id, topic, payload)| BusEvent { id, topic, payload: Arc::from(payload) }).collect())
    }

    /// Relays the outbox to this replica's subscribers until `stop` (PostgreSQL only): on
    /// each notification, and after each reconnect, reads every row after the last one.
    pub fn spawn_listener(
        self: &Arc<Self>,
        url: &str,
        mut stop: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.dialect != Dialect::Postgres {
            return None;
        }
        let (bus, url) = (Arc::clone(self), url.to_string());
        Some(tokio::spawn(async move {
            // Start after what already happened: streams opened from now on get new events;
            // a reconnecting one asks for older ones itself.
            let newest: i64 = sqlx::query_scalar("select coalesce(max(id), 0) from event_outbox")
                .fetch_one(&bus.db)
                .await
                .unwrap_or(0);
            bus.last.store(newest, Ordering::SeqCst);
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener cannot connect; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                            _ = stopped(&mut stop) => return,
                        }
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "event listener cannot LISTEN; retrying");
                    continue;
                }
                // Anything sent while not listening.
                bus.relay_new().await;
                loop {
                    tokio::select! {
                        n = listener.try_recv() => match n {
                            Ok(Some(_)) => bus.relay_new().await,
                            // Reconnected: notifications may have been lost meanwhile.
                            Ok(None) => bus.relay_new().await,
                            Err(e) => {
                                tracing::warn!(error = %e, "event listener lost its connection");
                                break;
                            }
                        },
                        _ = stopped(&mut stop) => return,
                    }
                }
            }
        }))
    }

    /// Reads and relays the rows after the last one relayed.
    async fn relay_new(&self) {
        let after = self.last.load(Ordering::SeqCst);
        match self.since(after).await {
            Ok(events) => {
                for e in events {
                    self.last.fetch_max(e.id, Ordering::SeqCst);
                    self.deliver(e);
                }
            }
            Err(e) => tracing::warn!(error = ?e, "reading the event outbox failed"),
        }
    }

    /// Deletes events older than [`KEEP_MS`] (the leader does, every minute).
    pub async fn prune(&self) -> Result<u64> {
        if self.dialect == Dialect::Sqlite {
            return Ok(0);
        }
        let done =
            sqlx::query("delete from event_outbox where ts_ms < $1").bind(now_ms() - KEEP_MS).execute(&self.db).await?;
        Ok(done.rows_affected())
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What a sign-out event carries: a hash of the session id (hex SHA-256), so that the
/// outbox never holds a session id that still works.
pub fn session_tag(session_id: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(session_id.as_bytes()))
}

/// What a sign-out event carries when every session of account `user_id` ends (it was
/// disabled, its password reset, its sessions revoked): one event, however many sessions.
pub fn account_tag(user_id: i64) -> String {
    format!("account:{user_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sign_out_carries_a_hash_of_the_session_id_never_the_id() {
        let tag = super::session_tag("secret-session-id");
        assert_eq!(tag.len(), 64);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()) && !tag.contains("secret"));
        assert_eq!(tag, super::session_tag("secret-session-id"), "the same session, the same tag");
        assert_ne!(tag, super::session_tag("another-session-id"));
    }
}
