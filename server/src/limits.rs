//! Caps on expensive work, so no single user or request can exhaust the console.
//!
//! Each kind of work has a global cap and a cap per signed-in user (every session of one
//! account together). Past either, the request is answered at once with 429 and a
//! `Retry-After` that says which cap; nothing waits in an unbounded queue. The caps are
//! per process: N replicas allow N times the global caps (ARCHITECTURE.md).
//! Defaults are far above what a team of 50 does; each is a flag.

use crate::error::AppError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every bound, resolved from flags.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Password checks running at once (each holds ~19 MiB).
    pub sign_ins_at_once: usize,
    /// Sign-ins that may queue for a check (for at most 2 s) before 429.
    pub sign_ins_queued: usize,
    /// Open event streams and log tails, all users together.
    pub streams: usize,
    /// Open event streams and log tails of one user.
    pub streams_per_user: usize,
    /// Probes in flight, all users together.
    pub probes: usize,
    /// Probes in flight of one user.
    pub probes_per_user: usize,
    /// Log searches running, all users together.
    pub searches: usize,
    /// Log searches running of one user.
    pub searches_per_user: usize,
    /// Audit chain verifications running, all users together.
    pub verifies: usize,
    /// Audit chain verifications running of one user.
    pub verifies_per_user: usize,
    /// Bytes read from one pod's log per request (`limitBytes`).
    pub pod_log_bytes: usize,
    /// Bytes read from all pods' logs per request.
    pub pod_log_bytes_total: usize,
    /// Repeated refusals are folded into one audit entry per this window.
    pub refusal_window: Duration,
    /// Writes to incidents (declaring, updates, notes, pins, stars, runbook ticks) one user
    /// may make in a minute.
    pub incident_writes_per_minute: usize,
    /// The longest a read (`GET`, not a stream or an export) may take before it is stopped
    /// and answered 503.
    pub read_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sign_ins_at_once: 4,
            sign_ins_queued: 32,
            streams: 2_000,
            streams_per_user: 16,
            probes: 64,
            probes_per_user: 16,
            searches: 8,
            searches_per_user: 2,
            verifies: 2,
            verifies_per_user: 1,
            pod_log_bytes: 256 * 1024,
            pod_log_bytes_total: 4 * 1024 * 1024,
            refusal_window: crate::audit::REFUSAL_WINDOW,
            incident_writes_per_minute: 60,
            read_deadline: Duration::from_secs(30),
        }
    }
}

/// A kind of capped work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// `/api/v1/events` and `/api/v1/logs/tail`.
    Stream,
    /// `POST /api/v1/probe`.
    Probe,
    /// `GET /api/v1/logs`.
    Search,
    /// `GET /api/v1/audit/verify`.
    Verify,
    /// `GET /api/v1/audit` and `/api/v1/audit/export` (the same caps as log searches,
    /// counted apart: a database scan each).
    AuditRead,
    /// `GET /api/v1/gateways/{id}/logs` (the same caps as log searches, counted apart: a
    /// read of every pod's log from the cluster each).
    PodLogs,
}

impl Work {
    fn what(self) -> &'static str {
        match self {
            Work::Stream => "open event streams and log tails",
            Work::Probe => "probes in flight",
            Work::Search => "log searches running",
            Work::Verify => "audit verifications running",
            Work::AuditRead => "audit searches and exports running",
            Work::PodLogs => "pod log reads running",
        }
    }

    /// When to try again: streams wait for another to close, the rest are quick.
    fn retry_after_s(self) -> u64 {
        match self {
            Work::Stream => 5,
            Work::Verify => 2,
            Work::Probe | Work::Search | Work::AuditRead | Work::PodLogs => 1,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: HashMap<Work, usize>,
    per_user: HashMap<(Work, i64), usize>,
}

/// The live counts against [`Limits`].
pub struct Caps {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
    /// Incident writes per user in the current minute: (minute, count).
    writes: Mutex<HashMap<i64, (u64, usize)>>,
    /// Wrong current passwords given per user when changing their own: (window, count).
    guesses: Mutex<HashMap<i64, (u64, usize)>>,
}

/// Wrong current passwords a signed-in person may give in [`GUESS_WINDOW_MS`] when
/// changing their own (counted apart from sign-in failures, so a stolen session guessing
/// cannot lock the owner out of signing in).
pub const GUESSES_PER_WINDOW: usize = 5;
/// The window of [`GUESSES_PER_WINDOW`].
pub const GUESS_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A unit of capped work; dropping it frees its place.
#[must_use = "the place is freed when the permit is dropped"]
pub struct Permit {
    work: Work,
    user: i64,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.total.get_mut(&self.work) {
            *n = n.saturating_sub(1);
        }
        let key = (self.work, self.user);
        if let Some(n) = c.per_user.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_user.remove(&key);
            }
        }
    }
}

impl Caps {
    /// Counting against `limits`.
    pub fn new(limits: Limits) -> Self {
        Caps { limits, counts: Default::default(), writes: Default::default(), guesses: Default::default() }
    }

    /// Whether `user` may try their current password again now; 429 (until the window
    /// ends) after [`GUESSES_PER_WINDOW`] wrong ones.
    pub fn password_guess(&self, user: i64, now_ms: i64) -> Result<(), AppError> {
        let window = (now_ms.max(0) / GUESS_WINDOW_MS) as u64;
        let mut guesses = self.guesses.lock().unwrap_or_else(|e| e.into_inner());
        guesses.retain(|_, (w, _)| *w == window);
        let wrong = guesses.get(&user).map_or(0, |(_, n)| *n);
        if wrong >= GUESSES_PER_WINDOW {
            let left_s = ((GUESS_WINDOW_MS - now_ms.max(0) % GUESS_WINDOW_MS) / 1000) as u64;
            return Err(AppError::TooManyRequests {
                reason: format!("{wrong} wrong current passwords (at most {GUESSES_PER_WINDOW} in 15 minutes)"),
                retry_after_s: left_s.max(1),
            });
        }
        Ok(())
    }

    /// Counts a wrong current password of `user`.
    pub fn password_guess_failed(&self, user: i64, now_ms: i64) {
        let window = (now_ms.max(0) / GUESS_WINDOW_MS) as u64;
        let mut guesses = self.guesses.lock().unwrap_or_else(|e| e.into_inner());
        let entry = guesses.entry(user).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
    }

    /// The bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn caps(&self, work: Work) -> (usize, usize) {
        let l = &self.limits;
        match work {
            Work::Stream => (l.streams, l.streams_per_user),
            Work::Probe => (l.probes, l.probes_per_user),
            Work::Search | Work::AuditRead | Work::PodLogs => (l.searches, l.searches_per_user),
            Work::Verify => (l.verifies, l.verifies_per_user),
        }
    }

    /// How many of `work` are running now, all users together.
    pub fn running(&self, work: Work) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total.get(&work).copied().unwrap_or(0)
    }

    /// Counts one incident write by `user` at `now_ms`, or refuses it with 429 (until the
    /// next minute) past [`Limits::incident_writes_per_minute`]. Each request is bounded in
    /// size; this bounds how many a user (or a stolen session) can make.
    pub fn incident_write(&self, user: i64, now_ms: i64) -> Result<(), AppError> {
        let minute = (now_ms.max(0) / 60_000) as u64;
        let cap = self.limits.incident_writes_per_minute;
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        // Only the current minute counts: older entries go (one per account at most).
        writes.retain(|_, (m, _)| *m == minute);
        let (_, count) = writes.entry(user).or_insert((minute, 0));
        if *count >= cap {
            let left_s = 60 - (now_ms.max(0) / 1000 % 60) as u64;
            return Err(AppError::TooManyRequests {
                reason: format!("you made {count} changes to incidents this minute (at most {cap} a minute)"),
                retry_after_s: left_s.max(1),
            });
        }
        *count += 1;
        Ok(())
    }

    /// A place for `work` by user `user`, or 429 naming the cap that is full.
    pub fn enter(&self, work: Work, user: i64) -> Result<Permit, AppError> {
        let (total_cap, user_cap) = self.caps(work);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let total = c.total.get(&work).copied().unwrap_or(0);
        let mine = c.per_user.get(&(work, user)).copied().unwrap_or(0);
        let full = if mine >= user_cap {
            Some(format!("you have {mine} {} (at most {user_cap} per user)", work.what()))
        } else if total >= total_cap {
            Some(format!("the console has {total} {} (at most {total_cap})", work.what()))
        } else {
            None
        };
        if let Some(reason) = full {
            return Err(AppError::TooManyRequests { reason, retry_after_s: work.retry_after_s() });
        }
        *c.total.entry(work).or_default() += 1;
        *c.per_user.entry((work, user)).or_default() += 1;
        Ok(Permit { work, user, counts: self.counts.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_cap_and_the_global_cap_each_refuse_naming_themselves_and_places_come_back() {
        let caps = Caps::new(Limits { searches: 3, searches_per_user: 2, ..Limits::default() });
        let a1 = caps.enter(Work::Search, 1).unwrap();
        let _a2 = caps.enter(Work::Search, 1).unwrap();
        let e = caps.enter(Work::Search, 1).err().unwrap().to_string();
        assert!(e.contains("at most 2 per user") && e.contains("try again in 1 s"), "{e}");
        let _b1 = caps.enter(Work::Search, 2).unwrap();
        let e = caps.enter(Work::Search, 3).err().unwrap().to_string();
        assert!(e.contains("the console has 3 log searches running (at most 3)"), "{e}");
        drop(a1);
        assert!(caps.enter(Work::Search, 3).is_ok(), "a finished search frees its place");
        assert!(caps.enter(Work::Probe, 1).is_ok(), "other kinds of work are counted apart");
    }

    #[test]
    fn incident_writes_are_counted_per_user_per_minute() {
        let caps = Caps::new(Limits { incident_writes_per_minute: 2, ..Limits::default() });
        let t = 10 * 60_000 + 45_000;
        assert!(caps.incident_write(1, t).is_ok() && caps.incident_write(1, t + 1).is_ok());
        let e = caps.incident_write(1, t + 2).err().unwrap();
        assert!(e.to_string().contains("at most 2 a minute") && e.to_string().contains("try again in 15 s"), "{e}");
        assert!(caps.incident_write(2, t + 3).is_ok(), "another user has their own count");
        assert!(caps.incident_write(1, t + 15_000).is_ok(), "the next minute starts again");
    }
}
