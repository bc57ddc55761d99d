//! Refusals folded into windows, so a loop of refused requests cannot grow the ledger
//! until appends fail (and then nobody can sign in or act: the ledger fails closed).
//!
//! The first refusal of a key (kind, action, target, actor, client address, reason) in a
//! window is written at once, with `"count": 1`. Further refusals of that key within the window are
//! only counted; when the window ends, one summary entry records how many there were
//! (`"count"`), the first and last time, the first entry's id and up to
//! [`TARGETS_LISTED`] distinct targets and client addresses. Every attempt is accounted for (the counts add
//! up), and the ledger grows with windows, not attempts.
//!
//! Counting happens in memory, per process: a process that dies mid-window loses at most
//! that window's count of repeats (each key's first refusal is already written).

use super::{Ledger, NewEntry};
use crate::db::now_ms;
use crate::error::Result;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long repeats of one refusal are folded into one summary entry by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Distinct targets a summary names (the rest are counted).
pub const TARGETS_LISTED: usize = 20;
/// Keys tracked at once; past this, a window is summarized early to make room.
const MAX_KEYS: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: &'static str,
    action: String,
    target: String,
    actor: String,
    addr: String,
    why: String,
}

impl Key {
    /// Refusals of attempts that were judged (a wrong password, a role too low) are told
    /// apart by target and client address; attempts turned away unjudged (throttled, busy)
    /// are not, so neither one address spraying account names nor a botnet spraying from
    /// thousands of addresses adds more than one entry (and a summary) a window.
    fn of(e: &NewEntry) -> Key {
        let why = e.params.get("refused").and_then(Value::as_str).unwrap_or_default().to_string();
        let unjudged = matches!(why.as_str(), "throttled" | "busy");
        Key {
            kind: e.kind.as_str(),
            action: e.action.clone(),
            target: if unjudged { String::new() } else { e.target.clone() },
            actor: e.actor.name.clone(),
            addr: if unjudged { String::new() } else { e.actor.addr.clone() },
            why,
        }
    }
}

struct Pending {
    opened: Instant,
    first_id: Option<i64>,
    first_ms: i64,
    last_ms: i64,
    repeats: u64,
    targets: BTreeSet<String>,
    more_targets: u64,
    addrs: BTreeSet<String>,
    more_addrs: u64,
    template: NewEntry,
}

/// The refusals being counted, per process.
pub struct Refusals {
    window: Duration,
    pending: std::sync::Mutex<HashMap<Key, Pending>>,
}

impl Refusals {
    /// Folding repeats within `window`.
    pub fn new(window: Duration) -> Self {
        Refusals { window: window.max(Duration::from_millis(10)), pending: Default::default() }
    }
}

impl Ledger {
    /// Records a refused attempt: written at once if it is the first of its kind in the
    /// window, else counted into the window's summary. Fails (like `append`) only when a
    /// write is due and the database refuses it.
    pub async fn refuse(&self, mut entry: NewEntry) -> Result<()> {
        let key = Key::of(&entry);
        let now = Instant::now();
        let due = {
            let mut map = self.refusals.pending.lock().unwrap_or_else(|e| e.into_inner());
            match map.get_mut(&key) {
                Some(p) if now - p.opened < self.refusals.window => {
                    p.repeats += 1;
                    p.last_ms = now_ms();
                    if p.targets.len() < TARGETS_LISTED {
                        p.targets.insert(entry.target.clone());
                    } else if !p.targets.contains(&entry.target) {
                        p.more_targets += 1;
                    }
                    if p.addrs.len() < TARGETS_LISTED {
                        p.addrs.insert(entry.actor.addr.clone());
                    } else if !p.addrs.contains(&entry.actor.addr) {
                        p.more_addrs += 1;
                    }
                    return Ok(());
                }
                _ => {
                    let mut due: Vec<Pending> = map.remove(&key).into_iter().collect();
                    if map.len() >= MAX_KEYS {
                        due.extend(map.drain().map(|(_, p)| p));
                    }
                    let ms = now_ms();
                    map.insert(
                        key.clone(),
                        Pending {
                            opened: now,
                            first_id: None,
                            first_ms: ms,
                            last_ms: ms,
                            repeats: 0,
                            targets: BTreeSet::from([entry.target.clone()]),
                            more_targets: 0,
                            addrs: BTreeSet::from([entry.actor.addr.clone()]),
                            more_addrs: 0,
                            template: entry.clone(),
                        },
                    );
                    due
                }
            }
        };
        for p in due {
            self.summarize(p).await?;
        }
        if let Value::Object(params) = &mut entry.params {
            params.insert("count".into(), json!(1));
        }
        let stored = self.append(entry).await?;
        if let Some(p) = self.refusals.pending.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&key) {
            p.first_id.get_or_insert(stored.id);
        }
        Ok(())
    }

    /// Writes the summaries of windows that have ended (all of them with `all`, at
    /// shutdown). Returns how many entries it wrote.
    pub async fn flush_refusals(&self, all: bool) -> Result<usize> {
        let now = Instant::now();
        let due: Vec<Pending> = {
            let mut map = self.refusals.pending.lock().unwrap_or_else(|e| e.into_inner());
            let ended: Vec<Key> = map
                .iter()
                .filter(|(_, p)| all || now - p.opened >= self.refusals.window)
                .map(|(k, _)| k.clone())
                .collect();
            ended.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        let mut written = 0;
        for p in due {
            written += usize::from(self.summarize(p).await?);
        }
        Ok(written)
    }

    /// Summarizes ended windows every `every` until the task is stopped.
    pub fn spawn_refusal_flusher(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let ledger = std::sync::Arc::clone(self);
        let every = (ledger.refusals.window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = ledger.flush_refusals(false).await {
                    tracing::error!(error = ?e, "could not summarize refusals; will retry");
                }
            }
        })
    }

    /// One summary entry for a window's repeats (none when there were none).
    async fn summarize(&self, p: Pending) -> Result<bool> {
        if p.repeats == 0 {
            return Ok(false);
        }
        let mut e = p.template;
        let why = e.params.get("refused").cloned().unwrap_or(Value::Null);
        e.target = String::new();
        e.reason = format!(
            "{} more refusals like entry #{} between {} and {} (Unix ms)",
            p.repeats,
            p.first_id.unwrap_or_default(),
            p.first_ms,
            p.last_ms
        );
        e.params = json!({
            "refused": why,
            "count": p.repeats,
            "repeats_of": p.first_id,
            "first_ms": p.first_ms,
            "last_ms": p.last_ms,
            "targets": p.targets,
            "more_targets": p.more_targets,
            "client_addrs": p.addrs,
            "more_client_addrs": p.more_addrs,
        });
        self.append(e).await?;
        Ok(true)
    }
}
