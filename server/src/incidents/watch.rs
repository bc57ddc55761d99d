//! Gateway status transitions on the timelines of the incidents that name them: the
//! leader reads each live snapshot the health hub publishes (computed once per fleet
//! change for every event stream; nothing is measured again here), compares each
//! gateway's status with the last it saw, and a change of a gateway named by an open
//! incident becomes a ledger entry for that incident, with the numbers then.

use super::Incidents;
use crate::audit::{Actor, Kind, NewEntry, Outcome};
use crate::error::Result;
use app::dto::LiveSnapshot;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

impl Incidents {
    /// One snapshot: records the transitions since `last` (and updates it).
    pub async fn record_transitions(
        &self,
        last: &mut HashMap<String, &'static str>,
        snapshot: &LiveSnapshot,
    ) -> Result<usize> {
        let mut recorded = 0;
        let mut open = None;
        for g in snapshot.gateways.iter().map(|g| &g.summary) {
            // Blind is not a status change: a gateway whose numbers cannot be read keeps
            // its last known status here, and nothing is recorded until they can again.
            let (Some(rps), Some(e5), Some(e429), Some(latency)) =
                (g.rps, g.error_rate_5xx, g.throttle_rate_429, g.latency_ms)
            else {
                continue;
            };
            let now = g.status.as_str();
            let before = last.insert(g.id.clone(), now);
            let Some(before) = before.filter(|b| *b != now) else { continue };
            // Open incidents are read only when something changed.
            if open.is_none() {
                open = Some(self.list(&super::ListFilter { open: Some(true), ..Default::default() }).await?);
            }
            for incident in open.iter().flatten().filter(|i| i.gateways.contains(&g.id)) {
                let mut entry = NewEntry::new(Actor::system(), Kind::GatewayStatus, Outcome::Succeeded);
                entry.target = g.id.clone();
                entry.incident = incident.key.clone();
                entry.reason = format!(
                    "{rps:.0} req/s, 5xx {:.2}%, 429 {:.2}%, p99 {:.0} ms",
                    e5 * 100.0,
                    e429 * 100.0,
                    latency.p99
                );
                entry.params = json!({
                    "from": before, "to": now, "rps": rps, "error_rate_5xx": e5,
                    "throttle_rate_429": e429, "p99_ms": latency.p99,
                });
                self.ledger.append(entry).await?;
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    /// On the leader (`leads`), for every snapshot the live hub publishes: records
    /// transitions. A new leader starts from what it sees (a change during the hand-over
    /// is not recorded).
    pub fn spawn_status_watch(
        self: &Arc<Self>,
        leads: impl Fn() -> bool + Send + 'static,
        mut live: watch::Receiver<Option<crate::health::Live>>,
    ) -> tokio::task::JoinHandle<()> {
        let incidents = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = HashMap::new();
            loop {
                // The hub's own data: nothing is parsed back from the JSON it sent.
                let snapshot = live.borrow_and_update().as_ref().map(|l| l.snapshot.clone()).filter(|_| leads());
                match snapshot {
                    Some(snapshot) => {
                        if let Err(e) = incidents.record_transitions(&mut last, &snapshot).await {
                            tracing::warn!(error = ?e, "recording gateway status changes on incident timelines failed");
                        }
                    }
                    _ => last.clear(),
                }
                if live.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}
