//! Following actions after they ran: rollout progress and the impact reading, and the
//! reverting of time-limited changes when their expiry passes.

use super::plan::{in_force, inverse_plan};
use super::{Engine, IMPACT_AFTER_S, catalogue, store};
use crate::audit::{Actor, Kind, NewEntry, Outcome};
use crate::error::Result;
use crate::fleet::{Change, Propagation};
use app::dto::Progress;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// The next round of a propagation, or never when there is none to follow.
async fn next_round(propagation: &mut Option<UnboundedReceiver<Propagation>>) -> Option<Propagation> {
    match propagation {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Actions older than this are not adopted from a stopped replica (their rollout and
/// reading are long over, or will never come).
const ADOPT_WITHIN_MS: i64 = 30 * 60 * 1000;

/// How often the leader looks for intents a stopped replica left unsettled.
pub const ORPHANS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Engine {
    /// Follows a running action: rollout progress until done, propagation until served
    /// everywhere asked (or its deadline), and the impact reading `IMPACT_AFTER_S` backend
    /// seconds after `started` (when it ran).
    pub(super) fn track(
        self: &Arc<Self>,
        id: i64,
        gateway: String,
        change: Change,
        propagation: Option<UnboundedReceiver<Propagation>>,
        started: i64,
    ) {
        if !self.tracked.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            return;
        }
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            engine.follow(id, &gateway, &change, propagation, started).await;
            engine.tracked.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }

    /// On the leader: takes over following the actions of replicas that died while they
    /// followed them (a rollout in progress, or the impact reading still to take), so their
    /// progress and the reading still arrive. Returns how many it adopted.
    pub async fn adopt_orphans(self: &Arc<Self>) -> Result<usize> {
        let alive = self.alive_replicas().await?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "select a.id, a.gateway, i.params from actions a join audit_log i on i.id = a.intent_id \
             where (a.status = 'running' or (a.status = 'succeeded' and a.impact_after is null)) \
             and a.created_at_ms >= $1 \
             and exists (select 1 from audit_log o where o.intent_id = a.intent_id)",
        )
        .bind(crate::db::now_ms() - ADOPT_WITHIN_MS)
        .fetch_all(&self.db)
        .await?;
        let mut adopted = 0;
        for (id, gateway, params) in rows {
            let params: serde_json::Value = serde_json::from_str(&params).unwrap_or_default();
            let Some(replica) = params["replica"].as_str() else { continue };
            if alive.contains(replica) || self.tracked.lock().unwrap_or_else(|e| e.into_inner()).contains(&id) {
                continue;
            }
            let stored = store::load(&self.db, id).await?;
            let started = stored.record.impact_before.map_or_else(|| self.fleet.clock_s(), |r| r.clock_s);
            tracing::info!(action = id, from = replica, "following an action a stopped replica was following");
            // A propagation still running is followed again from the start (its deadline too).
            let propagation =
                (stored.record.status == "running").then(|| self.fleet.propagation(&gateway, &stored.change)).flatten();
            self.track(id, gateway, stored.change, propagation, started);
            adopted += 1;
        }
        Ok(adopted)
    }

    async fn follow(
        self: &Arc<Self>,
        id: i64,
        gateway: &str,
        change: &Change,
        mut propagation: Option<UnboundedReceiver<Propagation>>,
        started: i64,
    ) {
        let engine = self;
        let rollout = super::replaces_pods(change);
        let gateway = gateway.to_string();
        {
            let mut updates = engine.fleet.updates();
            let mut rollout_done = !rollout;
            let mut impact_taken = false;
            let mut last_progress = None;
            while !(rollout_done && impact_taken && propagation.is_none()) {
                if !rollout_done && let Ok(r) = engine.fleet.rollout(&gateway).await {
                    let progress = Progress { desired: r.desired, updated: r.updated, ready: r.ready, total: r.total };
                    rollout_done = r.done || r.failed.is_some();
                    // Written and announced only when it moves, not on every tick.
                    if last_progress != Some(progress) || rollout_done {
                        last_progress = Some(progress);
                        let status = match (&r.failed, r.done) {
                            (Some(_), _) => "failed",
                            (None, true) => "succeeded",
                            (None, false) => "running",
                        };
                        let detail = r.failed.clone().unwrap_or_default();
                        let _ = store::set_progress(&engine.db, id, progress, status, &detail).await;
                        engine.publish(id).await;
                    }
                }
                // One reading, IMPACT_AFTER_S after the change, however long the rollout runs.
                if !impact_taken && engine.fleet.clock_s() >= started + IMPACT_AFTER_S {
                    impact_taken = true;
                    if let Some(after) = engine.reading(&gateway, change).await {
                        let _ = store::set_impact_after(&engine.db, id, &after).await;
                        engine.publish(id).await;
                    }
                }
                // On every fleet change, and at least every second: a quiet cluster sends
                // no watch events, and the impact reading is still due on time.
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    round = next_round(&mut propagation) => match round {
                        Some(round) => {
                            if round.finished.is_some() {
                                propagation = None;
                            }
                            if let Err(e) = engine.propagated(id, &gateway, round).await {
                                tracing::warn!(action = id, error = ?e, "recording a propagation round failed");
                            }
                        }
                        None => propagation = None,
                    },
                }
            }
        }
    }

    /// Records one round of a change's propagation: the detail line while it goes on;
    /// at the end, the status and an entry on the record with who serves it and how long
    /// it took (or who still did not when the deadline passed).
    async fn propagated(&self, id: i64, gateway: &str, round: Propagation) -> Result<()> {
        let asked = round.serving.len() + round.pending.len();
        let Some(finished) = round.finished else {
            let detail = match &round.by {
                Some(by) => format!("propagating: waiting for {by} to publish the new record"),
                None => format!(
                    "propagating: {} of {asked} DNS servers serve the new record; waiting for {}",
                    round.serving.len(),
                    round.pending.join(", ")
                ),
            };
            store::set_propagated(&self.db, id, None, &detail).await?;
            self.publish(id).await;
            return Ok(());
        };
        let stored = store::load(&self.db, id).await?;
        let (status, outcome, detail) = match (finished, &round.problem) {
            (Ok(took), _) if round.by.is_some() => (
                "succeeded",
                Outcome::Succeeded,
                format!("published by {} after {:.1} s", round.by.as_deref().unwrap_or_default(), took.as_secs_f64()),
            ),
            (Err(deadline), None) if round.by.is_some() => (
                "failed",
                Outcome::Failed,
                format!(
                    "not published by {} after {} s; the change is made, and undo puts the old record back",
                    round.by.as_deref().unwrap_or_default(),
                    deadline.as_secs()
                ),
            ),
            (Ok(took), _) => (
                "succeeded",
                Outcome::Succeeded,
                format!(
                    "served by {} asked ({}) after {:.1} s",
                    if asked == 1 { "the one DNS server".to_string() } else { format!("all {asked} DNS servers") },
                    round.serving.join(", "),
                    took.as_secs_f64()
                ),
            ),
            (Err(_), Some(problem)) => (
                "failed",
                Outcome::Failed,
                format!("made on the primary, but its propagation could not be followed: {problem}"),
            ),
            (Err(deadline), None) => (
                "failed",
                Outcome::Failed,
                format!(
                    "not served by {} after {} s ({} of {asked} serve it); the primary has the new record{}",
                    round.pending.join(", "),
                    deadline.as_secs(),
                    round.serving.len(),
                    if stored.inverse.is_some() { ", and undo puts the old one back" } else { "" }
                ),
            ),
        };
        let mut entry = NewEntry::new(Actor::system(), Kind::Propagation, outcome);
        entry.action = stored.record.action.clone();
        entry.target = gateway.into();
        entry.intent_id = Some(stored.record.intent_id);
        entry.incident = stored.record.incident.clone();
        entry.reason = detail.clone();
        entry.params = json!({
            "action_id": id,
            "serving": round.serving,
            "pending": round.pending,
            "elapsed_ms": finished.ok().map(|d| d.as_millis() as u64),
            "deadline_s": finished.err().map(|d| d.as_secs()),
        });
        self.ledger.append(entry).await?;
        store::set_propagated(&self.db, id, Some(status), &detail).await?;
        self.publish(id).await;
        Ok(())
    }

    /// Reverts time-limited changes whose TTL has passed, as the system, but only if the
    /// change is still in force (someone may have changed it since: then it stops and says
    /// so). A revert that fails is tried again, waiting 5 s, then twice as long each time
    /// (at most 5 min), until it succeeds; every failed try is on the record, the action
    /// says "revert pending: <reason>", and a person can still undo it meanwhile.
    pub async fn revert_expired(self: &Arc<Self>) -> Result<()> {
        let now = self.fleet.clock_s();
        for id in store::due_for_revert(&self.db, now).await? {
            if let Err(e) = self.revert_one(id, now).await {
                tracing::warn!(action = id, error = ?e, "reverting an expired change failed");
            }
        }
        Ok(())
    }

    async fn revert_one(self: &Arc<Self>, id: i64, now: i64) -> Result<()> {
        let stored = store::load(&self.db, id).await?;
        let gateway = stored.record.gateway.clone();
        let action = catalogue::action_of(&stored.change);
        // Nothing is tried unless the gateway, and what the change set, can be read: then
        // it says so on the record, waits and tries again.
        let read = match self.fleet.state(&gateway).await {
            Ok(state) => in_force(&stored.change, &state)
                .map(|in_force| (state, in_force))
                .map_err(|why| format!("what it set could not be read: {why}")),
            Err(e) => Err(format!("{gateway} could not be read: {}", crate::error::AppError::from(e).to_api().message)),
        };
        let state = match read {
            Ok((state, true)) => state,
            Ok((_, false)) => {
                tracing::info!(action = id, "TTL passed but the change was replaced since; not reverting");
                store::mark_reverted(&self.db, id).await?;
                store::set_detail(&self.db, id, "not reverted: it was changed since, and the newer setting stays")
                    .await?;
                self.publish(id).await;
                return Ok(());
            }
            Err(why) => {
                let mut entry = NewEntry::new(Actor::system(), Kind::TtlRevert, Outcome::Failed);
                entry.action = action.as_str().into();
                entry.target = gateway.clone();
                entry.reason = format!("time limit reached; {why}");
                entry.params = json!({ "revert_of": id });
                self.ledger.append(entry).await?;
                store::revert_failed(&self.db, id, now, &why).await?;
                self.publish(id).await;
                return Ok(());
            }
        };
        let Some(inverse) = stored.inverse.clone() else {
            store::mark_reverted(&self.db, id).await?;
            return Ok(());
        };
        // Claimed like an undo, so a person undoing it at the same moment cannot also win.
        if !store::claim_undo(&self.db, id).await? {
            return Ok(());
        }
        let plan = inverse_plan(&stored.record, inverse);
        let reverted = self
            .execute(
                Actor::system(),
                Kind::TtlRevert,
                &gateway,
                action,
                &json!({ "revert_of": id }),
                "time limit reached",
                &stored.record.incident,
                plan,
                Some(id),
                &state,
            )
            .await;
        match reverted {
            Ok(_) => {
                store::mark_reverted(&self.db, id).await?;
                store::set_detail(&self.db, id, "reverted when its time limit was reached").await?;
            }
            Err(e) => {
                // The intent and the failed outcome are on the record (execute wrote them).
                store::release_undo(&self.db, id).await?;
                store::revert_failed(&self.db, id, now, &e.to_api().message).await?;
            }
        }
        self.publish(id).await;
        Ok(())
    }
}
