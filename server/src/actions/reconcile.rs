//! Start-up reconciliation: an intent the ledger holds without an outcome (the process
//! died between the two) is settled against what the fleet shows now.

use super::plan::took_effect;
use super::{Engine, store};
use crate::audit::{Actor, Kind, NewEntry, Outcome, UnsettledIntent};
use crate::error::Result;
use crate::fleet::{Change, GatewayState};
use serde_json::{Value, json};
use std::time::Duration;

/// How long start-up waits for the backend's first full read before settling interrupted
/// actions (after that, what cannot be read is settled as unknown).
const RECONCILE_SYNC_LIMIT: Duration = Duration::from_secs(15);

impl Engine {
    /// Settles intents that have no outcome (the process died between the two):
    /// compares the fleet's actual state with the intent's and records a
    /// `reconciliation` entry; the action is marked accordingly.
    ///
    /// Only the intents of replicas that can no longer finish them: not this one's, not a
    /// live replica's (see `Replicas::alive`); an intent that names no replica is from a
    /// single-process console and is settled.
    pub async fn reconcile(&self) -> Result<usize> {
        let alive = self.alive_replicas().await?;
        let mut pending = self.ledger.unsettled_intents().await?;
        pending.retain(|i| {
            let replica =
                serde_json::from_str::<Value>(&i.params).ok().and_then(|p| p["replica"].as_str().map(String::from));
            replica.is_none_or(|r| !alive.contains(&r))
        });
        if !pending.is_empty() {
            // Judge on the backend's actual state: a cluster's watches list first.
            self.fleet.synced(RECONCILE_SYNC_LIMIT).await;
        }
        for UnsettledIntent { id: intent_id, target: gateway, params, before_state: before } in &pending {
            let change: Option<Change> = serde_json::from_str::<Value>(params)
                .ok()
                .and_then(|p| serde_json::from_value(p["change"].clone()).ok());
            let before: Option<GatewayState> = serde_json::from_str(before).ok();
            let now = self.fleet.state(gateway).await.ok();
            // `None`: not looked (the gateway, or what the change set, could not be read).
            let verdict = match (&change, &before, &now) {
                (Some(c), Some(b), Some(n)) => took_effect(c, b, n).ok(),
                (_, _, Some(_)) => Some(false),
                _ => None,
            };
            let applied = verdict == Some(true);
            let detail = match verdict {
                Some(true) => "interrupted after the change was made; the fleet shows it in force",
                Some(false) => "interrupted before the change took effect; the fleet shows it was not made",
                // Never claim "not made" without having looked.
                None => {
                    "interrupted; the gateway (or what the change set) could not be read when it was settled, so \
                     whether the change was made is unknown: check it before acting again"
                }
            };
            let mut entry = NewEntry::new(
                Actor::system(),
                Kind::Reconciliation,
                if applied { Outcome::Succeeded } else { Outcome::Failed },
            );
            entry.target = gateway.clone();
            entry.intent_id = Some(*intent_id);
            entry.reason = detail.into();
            entry.after = now.as_ref().map(|n| json!(n));
            self.ledger.append(entry).await?;
            store::settle_interrupted(&self.db, *intent_id, if applied { "succeeded" } else { "failed" }, detail)
                .await?;
            // An interrupted undo or revert holds its original's claim: settle that too, or
            // the original could never be reverted (or undone) again.
            let inner = serde_json::from_str::<Value>(params).ok().map(|p| p["params"].clone()).unwrap_or_default();
            let original = inner["revert_of"].as_i64().or(inner["undo_of"].as_i64());
            if let Some(original) = original {
                if !applied {
                    store::release_undo(&self.db, original).await?;
                } else if inner["revert_of"].is_i64() {
                    store::mark_reverted(&self.db, original).await?;
                    store::set_detail(&self.db, original, "reverted when its time limit was reached").await?;
                } else if let Some(by) = store::id_of_intent(&self.db, *intent_id).await? {
                    store::set_undone_by(&self.db, original, by).await?;
                }
                self.publish(original).await;
            }
        }
        Ok(pending.len())
    }
}
