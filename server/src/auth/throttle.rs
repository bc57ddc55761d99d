//! Login throttling, in memory, per process (see ARCHITECTURE.md for replicas).
//!
//! Failures are counted per (account, client address) pair, per client address, and per
//! account, over a window. A pair or an address past its free failures must wait before
//! its next attempt, twice as long after each further failure (capped): an attacker at one
//! address slows only themselves, and the account's owner elsewhere signs in at once.
//! An account failing from everywhere at once (a distributed guess) is slowed, never
//! locked: every attempt at it waits [`ACCOUNT_SLOWDOWN`], the right password included.
//!
//! An attempt counts as a failure the moment it is let through, before its password is
//! hashed, so parallel attempts cannot slip past the limit together; a success takes its
//! count back. The account key is the submitted name, so throttling says nothing about
//! which accounts exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one account from one address before delays start.
pub const FREE_PER_PAIR: u32 = 5;
/// Failures from one address (any accounts) before delays start.
pub const FREE_PER_ADDRESS: u32 = 20;
/// The longest delay a pair or an address is made to wait.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Failures of one account (from anywhere) past which every attempt at it is slowed.
pub const ACCOUNT_SLOW_AT: u32 = 50;
/// How much each attempt at such an account is slowed.
pub const ACCOUNT_SLOWDOWN: Duration = Duration::from_secs(1);
/// Above this many tracked keys, expired ones are swept.
const SWEEP_AT: usize = 10_000;
/// Keys tracked at most (about 10 MB): a flood from ever new addresses and names cannot
/// grow the map past it. Once full, only keys already tracked are counted, so accounts
/// and addresses seen before the flood stay throttled; a new address gains nothing it
/// would not have had with a fresh counter.
pub const MAX_KEYS: usize = 100_000;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Address(IpAddr),
    Account(String),
}

#[derive(Clone, Copy)]
struct Count {
    first: Instant,
    last: Instant,
    failures: u32,
}

/// Failure counters.
#[derive(Default)]
pub struct LoginThrottle {
    counts: Mutex<HashMap<Key, Count>>,
    /// When expired keys were last swept: a sweep walks the whole map, so at most one a
    /// second, not one per attempt while the map is large.
    swept: Mutex<Option<Instant>>,
}

/// What a sign-in attempt may do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead (counted as a failure until [`LoginThrottle::success`]), after waiting
    /// this long (zero unless the account is under a distributed attack).
    Go(Duration),
    /// Refused: try again after this many seconds.
    Wait(u64),
}

/// The delay owed after `failures` when `free` come free: 1 s, 2 s, 4 s ... capped.
fn delay(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let doublings = (failures - free).min(20);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

impl LoginThrottle {
    /// Lets an attempt at `account` from `addr` through (and counts it), or says how long
    /// to wait.
    pub fn begin(&self, account: &str, addr: IpAddr) -> Verdict {
        let now = Instant::now();
        let account = account.to_lowercase();
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_AT {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if swept.is_none_or(|at| now - at >= Duration::from_secs(1)) {
                map.retain(|_, c| now - c.first < WINDOW);
                *swept = Some(now);
            }
        }
        let live = |map: &HashMap<Key, Count>, key: &Key| map.get(key).copied().filter(|c| now - c.first < WINDOW);
        let pair = Key::Pair(account.clone(), addr);
        let wait = [(&pair, FREE_PER_PAIR), (&Key::Address(addr), FREE_PER_ADDRESS)]
            .into_iter()
            .filter_map(|(key, free)| live(&map, key).map(|c| (c, free)))
            .map(|(c, free)| delay(c.failures, free).saturating_sub(now - c.last))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Verdict::Wait(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        let account_key = Key::Account(account.clone());
        let slow = live(&map, &account_key).is_some_and(|c| c.failures >= ACCOUNT_SLOW_AT);
        for key in [pair, Key::Address(addr), account_key] {
            if map.len() >= MAX_KEYS && !map.contains_key(&key) {
                continue;
            }
            let c = map.entry(key).or_insert(Count { first: now, last: now, failures: 0 });
            if now - c.first >= WINDOW {
                *c = Count { first: now, last: now, failures: 0 };
            }
            c.failures += 1;
            c.last = now;
        }
        Verdict::Go(if slow { ACCOUNT_SLOWDOWN } else { Duration::ZERO })
    }

    /// The attempt let through by [`begin`](Self::begin) succeeded: it was not a failure,
    /// and the pair's earlier failures are forgiven (the address's and account's stay).
    pub fn success(&self, account: &str, addr: IpAddr) {
        let account = account.to_lowercase();
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&Key::Pair(account.clone(), addr));
        for key in [Key::Address(addr), Key::Account(account)] {
            if let Some(c) = map.get_mut(&key) {
                c.failures = c.failures.saturating_sub(1);
            }
        }
    }

    /// The attempt let through was never judged (the server was too busy to hash it): it
    /// takes its count back, and nothing is forgiven.
    pub fn abandon(&self, account: &str, addr: IpAddr) {
        let account = account.to_lowercase();
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for key in [Key::Pair(account.clone(), addr), Key::Address(addr), Key::Account(account)] {
            if let Some(c) = map.get_mut(&key) {
                c.failures = c.failures.saturating_sub(1);
            }
        }
    }
}

/// Bounds the password checks running at once: each argon2id verify holds ~19 MiB for
/// tens of milliseconds, so a flood of parallel sign-ins must queue, not pile up. At most
/// `concurrent` run; up to `waiting` more queue for at most [`VERIFY_QUEUE_WAIT`]; the
/// rest are turned away at once (429 with `Retry-After`).
pub struct VerifyGate {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

/// How long a sign-in queues for a password check before it is turned away.
pub const VERIFY_QUEUE_WAIT: Duration = Duration::from_secs(2);

impl VerifyGate {
    /// A gate letting `concurrent` checks run and `waiting` more queue.
    pub fn new(concurrent: usize, waiting: usize) -> Self {
        VerifyGate {
            permits: tokio::sync::Semaphore::new(concurrent.max(1)),
            waiting: Default::default(),
            max_waiting: waiting,
        }
    }

    /// A turn to check a password, or `None` when the server is too busy.
    pub async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = self.permits.try_acquire() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let permit = tokio::time::timeout(VERIFY_QUEUE_WAIT, self.permits.acquire()).await.ok().and_then(Result::ok);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fail(t: &LoginThrottle, account: &str, addr: IpAddr) -> Verdict {
        t.begin(account, addr)
    }

    #[test]
    fn a_pair_waits_longer_after_each_failure_past_five_and_others_are_untouched() {
        let t = LoginThrottle::default();
        let (attacker, owner) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..FREE_PER_PAIR {
            assert_eq!(fail(&t, "alice", attacker), Verdict::Go(Duration::ZERO));
        }
        assert_eq!(t.begin("Alice", attacker), Verdict::Wait(1), "case does not bypass it");
        assert_eq!(t.begin("alice", owner), Verdict::Go(Duration::ZERO), "the owner elsewhere goes ahead");
        t.success("alice", owner);
        assert_eq!(t.begin("bob", attacker), Verdict::Go(Duration::ZERO), "another account from there too");
        assert_eq!(delay(5, 5), Duration::from_secs(1));
        assert_eq!(delay(8, 5), Duration::from_secs(8));
        assert_eq!(delay(100, 5), MAX_DELAY);
    }

    #[test]
    fn an_address_spraying_accounts_waits_after_twenty_failures() {
        let t = LoginThrottle::default();
        let a = ip("10.0.0.1");
        for i in 0..FREE_PER_ADDRESS {
            assert!(matches!(t.begin(&format!("user{i}"), a), Verdict::Go(_)));
        }
        assert!(matches!(t.begin("someone-new", a), Verdict::Wait(_)));
        assert!(matches!(t.begin("someone-new", ip("10.0.0.9")), Verdict::Go(_)));
    }

    #[test]
    fn an_account_guessed_from_everywhere_is_slowed_not_locked() {
        let t = LoginThrottle::default();
        for i in 0..ACCOUNT_SLOW_AT {
            assert_eq!(t.begin("admin", ip(&format!("10.1.{}.{}", i / 200, i % 200))), Verdict::Go(Duration::ZERO));
        }
        assert_eq!(t.begin("admin", ip("192.0.2.7")), Verdict::Go(ACCOUNT_SLOWDOWN));
    }

    #[test]
    fn a_flood_of_new_addresses_and_names_cannot_grow_the_counters_past_their_bound() {
        let t = LoginThrottle::default();
        let attacker = ip("192.0.2.1");
        for _ in 0..FREE_PER_PAIR + 10 {
            // Tried again and again: each try past the free ones waits longer (here 512 s).
            t.counts
                .lock()
                .unwrap()
                .values_mut()
                .for_each(|c| c.last = c.last.checked_sub(MAX_DELAY).unwrap_or(c.last));
            let _ = t.begin("admin", attacker);
        }
        for i in 0..(MAX_KEYS as u32 / 3 + 1000) {
            t.begin(&format!("user{i}"), IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()));
        }
        assert!(t.counts.lock().unwrap().len() <= MAX_KEYS);
        assert!(matches!(t.begin("admin", attacker), Verdict::Wait(_)), "what was tracked still counts");
    }

    #[test]
    fn a_success_takes_its_count_back_and_forgives_the_pair() {
        let t = LoginThrottle::default();
        let a = ip("10.0.0.1");
        for _ in 0..FREE_PER_PAIR - 1 {
            t.begin("alice", a);
        }
        t.begin("alice", a);
        t.success("alice", a);
        for _ in 0..FREE_PER_PAIR {
            assert!(matches!(t.begin("alice", a), Verdict::Go(_)), "the pair starts over");
        }
        t.abandon("alice", a);
        assert!(matches!(t.begin("alice", a), Verdict::Go(_)), "an abandoned attempt does not count");
    }
}
