//! Login throttling, in memory, per process (see ARCHITECTURE.md for replicas).
//!
//! Failures are counted per (account, client address) pair, per client address, and per
//! account, over a window. A pair or an address past its free failures must wait before
//! its next attempt, twice as long after each further failure (capped): an attacker at one
//! address slows only themselves, and the account's owner elsewhere signs in at once.
//! An account failing from everywhere at once (a distributed guess) is rate-limited, never
//! locked: past [`ACCOUNT_SLOW_AT`] failures, one attempt at it per [`ACCOUNT_SLOWDOWN`]
//! goes ahead (the rest are told to retry), except from an address it signed in from
//! recently, which also never meets its address's limit (a shared egress or ingress
//! address full of other people's failures does not lock out those who use it).
//!
//! An attempt counts as a failure the moment it is let through, before its password is
//! hashed, so parallel attempts cannot slip past the limit together; a success takes its
//! count back. Keys are fixed-size: a digest of the (lower-cased) name, so a huge name
//! costs what a short one does and throttling says nothing about which accounts exist;
//! and the client's address, an IPv6 client by its /64 (one subscriber's block).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
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
/// Failures of one account (from anywhere) past which its attempts are rate-limited.
pub const ACCOUNT_SLOW_AT: u32 = 50;
/// ... to one per this long.
pub const ACCOUNT_SLOWDOWN: Duration = Duration::from_secs(1);
/// How long a successful sign-in makes its (account, address) pair trusted.
pub const TRUST: Duration = Duration::from_secs(24 * 60 * 60);
/// Above this many tracked keys, expired ones are swept at most once a second; below it,
/// once a minute (memory goes back after the window either way).
const SWEEP_AT: usize = 10_000;
/// Keys tracked at most (each a fixed ~100 bytes: about 10 MB): a flood from ever new
/// addresses and names cannot grow the map past it. Once full, only keys already tracked
/// are counted, so accounts and addresses seen before the flood stay throttled; a new
/// address gains nothing it would not have had with a fresh counter.
pub const MAX_KEYS: usize = 100_000;

/// One sign-in attempt as the throttle keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The first 16 bytes of SHA-256 of the lower-cased name.
    pub account: [u8; 16],
    /// The client: its address, or an IPv6 client's /64.
    pub client: IpAddr,
}

impl Attempt {
    /// The attempt at `name` from `addr`.
    pub fn new(name: &str, addr: IpAddr) -> Self {
        let digest = Sha256::digest(name.to_lowercase().as_bytes());
        let mut account = [0; 16];
        account.copy_from_slice(&digest[..16]);
        Attempt { account, client: client_block(addr) }
    }

    /// The account digest as hex (the shared counters' keys).
    pub fn account_hex(&self) -> String {
        self.account.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The unit a client is counted as: an IPv4 address, or an IPv6 address's /64 (a
/// subscriber gets at least a /64, so counting single IPv6 addresses counts nothing).
pub fn client_block(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair([u8; 16], IpAddr),
    Address(IpAddr),
    Account([u8; 16]),
    /// Signed in successfully from there lately.
    Trusted([u8; 16], IpAddr),
}

impl Key {
    fn expired(&self, c: &Count, now: Instant) -> bool {
        match self {
            Key::Trusted(..) => now - c.last >= TRUST,
            _ => now - c.first >= WINDOW,
        }
    }
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
    /// Go ahead (counted as a failure until [`LoginThrottle::success`]).
    Go,
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

fn seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl LoginThrottle {
    /// Drops what has expired: at most once a second while the map is large, once a
    /// minute otherwise.
    fn sweep(&self, map: &mut HashMap<Key, Count>, now: Instant) {
        let every = if map.len() > SWEEP_AT { Duration::from_secs(1) } else { Duration::from_secs(60) };
        let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
        if swept.is_none_or(|at| now - at >= every) {
            map.retain(|k, c| !k.expired(c, now));
            *swept = Some(now);
        }
    }

    /// Keys tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Lets `attempt` through (and counts it), or says how long to wait.
    pub fn begin(&self, attempt: &Attempt) -> Verdict {
        let now = Instant::now();
        let (account, addr) = (attempt.account, attempt.client);
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut map, now);
        let live = |map: &HashMap<Key, Count>, key: &Key| map.get(key).copied().filter(|c| !key.expired(c, now));
        let trusted = live(&map, &Key::Trusted(account, addr)).is_some();
        let pair = Key::Pair(account, addr);
        let mut limits = vec![(&pair, FREE_PER_PAIR)];
        let address = Key::Address(addr);
        if !trusted {
            limits.push((&address, FREE_PER_ADDRESS));
        }
        let wait = limits
            .into_iter()
            .filter_map(|(key, free)| live(&map, key).map(|c| (c, free)))
            .map(|(c, free)| delay(c.failures, free).saturating_sub(now - c.last))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Verdict::Wait(seconds(wait));
        }
        // An account under a distributed guess: one attempt a second, wherever from
        // (a real rate: parallel attempts do not all pass one shared sleep).
        let account_key = Key::Account(account);
        if !trusted
            && let Some(c) = live(&map, &account_key)
            && c.failures >= ACCOUNT_SLOW_AT
            && now - c.last < ACCOUNT_SLOWDOWN
        {
            return Verdict::Wait(seconds(ACCOUNT_SLOWDOWN - (now - c.last)));
        }
        for key in [pair, address, account_key] {
            if map.len() >= MAX_KEYS && !map.contains_key(&key) {
                continue;
            }
            let c = map.entry(key.clone()).or_insert(Count { first: now, last: now, failures: 0 });
            if key.expired(c, now) {
                *c = Count { first: now, last: now, failures: 0 };
            }
            c.failures += 1;
            c.last = now;
        }
        Verdict::Go
    }

    /// The attempt let through by [`begin`](Self::begin) succeeded: it was not a failure,
    /// the pair's earlier failures are forgiven (the address's and account's stay), and
    /// the pair is trusted for [`TRUST`].
    pub fn success(&self, attempt: &Attempt) {
        let now = Instant::now();
        let (account, addr) = (attempt.account, attempt.client);
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&Key::Pair(account, addr));
        for key in [Key::Address(addr), Key::Account(account)] {
            if let Some(c) = map.get_mut(&key) {
                c.failures = c.failures.saturating_sub(1);
            }
        }
        let trusted = Key::Trusted(account, addr);
        if map.len() < MAX_KEYS || map.contains_key(&trusted) {
            map.insert(trusted, Count { first: now, last: now, failures: 0 });
        }
    }

    /// The attempt let through was never judged (the server was too busy to hash it): it
    /// takes its count back, and nothing is forgiven.
    pub fn abandon(&self, attempt: &Attempt) {
        let (account, addr) = (attempt.account, attempt.client);
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for key in [Key::Pair(account, addr), Key::Address(addr), Key::Account(account)] {
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

    fn at(account: &str, addr: &str) -> Attempt {
        Attempt::new(account, ip(addr))
    }

    /// Moves every counter's clock back by `by` (instead of sleeping).
    fn age(t: &LoginThrottle, by: Duration) {
        t.counts.lock().unwrap().values_mut().for_each(|c| {
            c.first = c.first.checked_sub(by).unwrap_or(c.first);
            c.last = c.last.checked_sub(by).unwrap_or(c.last);
        });
        *t.swept.lock().unwrap() = None;
    }

    #[test]
    fn a_pair_waits_longer_after_each_failure_past_five_and_others_are_untouched() {
        let t = LoginThrottle::default();
        let (attacker, owner) = ("10.0.0.1", "10.0.0.2");
        for _ in 0..FREE_PER_PAIR {
            assert_eq!(t.begin(&at("alice", attacker)), Verdict::Go);
        }
        assert_eq!(t.begin(&at("Alice", attacker)), Verdict::Wait(1), "case does not bypass it");
        assert_eq!(t.begin(&at("alice", owner)), Verdict::Go, "the owner elsewhere goes ahead");
        t.success(&at("alice", owner));
        assert_eq!(t.begin(&at("bob", attacker)), Verdict::Go, "another account from there too");
        assert_eq!(delay(5, 5), Duration::from_secs(1));
        assert_eq!(delay(8, 5), Duration::from_secs(8));
        assert_eq!(delay(100, 5), MAX_DELAY);
    }

    #[test]
    fn an_address_spraying_accounts_waits_after_twenty_failures() {
        let t = LoginThrottle::default();
        for i in 0..FREE_PER_ADDRESS {
            assert_eq!(t.begin(&at(&format!("user{i}"), "10.0.0.1")), Verdict::Go);
        }
        assert!(matches!(t.begin(&at("someone-new", "10.0.0.1")), Verdict::Wait(_)));
        assert_eq!(t.begin(&at("someone-new", "10.0.0.9")), Verdict::Go);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_block() {
        let t = LoginThrottle::default();
        // Each attempt from a new address of the same /64: one client.
        for i in 0..FREE_PER_ADDRESS {
            assert_eq!(t.begin(&at(&format!("user{i}"), &format!("2001:db8:1:2::{:x}", i + 1))), Verdict::Go);
        }
        assert!(matches!(t.begin(&at("another", "2001:db8:1:2:ffff::9")), Verdict::Wait(_)));
        assert_eq!(t.begin(&at("another", "2001:db8:1:3::1")), Verdict::Go, "the next /64 is someone else");
        assert_eq!(client_block(ip("::ffff:192.0.2.7")), ip("192.0.2.7"), "IPv4-mapped is IPv4");
    }

    #[test]
    fn an_account_guessed_from_everywhere_is_rate_limited_not_locked() {
        let t = LoginThrottle::default();
        for i in 0..ACCOUNT_SLOW_AT {
            assert_eq!(t.begin(&at("admin", &format!("10.1.{}.{}", i / 200, i % 200))), Verdict::Go);
        }
        // Past the threshold, one attempt a second goes ahead, from anywhere: the rest
        // are refused at once (not all let through after one shared sleep).
        age(&t, ACCOUNT_SLOWDOWN);
        assert_eq!(t.begin(&at("admin", "192.0.2.7")), Verdict::Go);
        let parallel: Vec<Verdict> = (0..10).map(|i| t.begin(&at("admin", &format!("192.0.2.{}", 10 + i)))).collect();
        assert!(parallel.iter().all(|v| *v == Verdict::Wait(1)), "{parallel:?}");
        age(&t, ACCOUNT_SLOWDOWN);
        assert_eq!(t.begin(&at("admin", "192.0.2.99")), Verdict::Go, "and the next second another");
    }

    #[test]
    fn a_pair_that_signed_in_lately_meets_neither_its_addresses_limit_nor_the_accounts_rate() {
        let t = LoginThrottle::default();
        let ingress = "10.9.0.1";
        t.begin(&at("alice", ingress));
        t.success(&at("alice", ingress));
        // Everyone behind the ingress fails: the address is held...
        for i in 0..FREE_PER_ADDRESS + 5 {
            let _ = t.begin(&at(&format!("guess{i}"), ingress));
        }
        assert!(matches!(t.begin(&at("bob", ingress)), Verdict::Wait(_)));
        // ...and alice is under a distributed guess too.
        for i in 0..ACCOUNT_SLOW_AT {
            let _ = t.begin(&at("alice", &format!("10.2.0.{i}")));
        }
        assert_eq!(t.begin(&at("alice", ingress)), Verdict::Go, "alice from where she signed in goes ahead");
        // A day later the trust is gone.
        age(&t, TRUST);
        for i in 0..FREE_PER_ADDRESS + 5 {
            let _ = t.begin(&at(&format!("again{i}"), ingress));
        }
        assert!(matches!(t.begin(&at("alice", ingress)), Verdict::Wait(_)));
    }

    #[test]
    fn a_flood_of_huge_names_and_new_addresses_is_bounded_and_swept_after_the_window() {
        let t = LoginThrottle::default();
        let attacker = "192.0.2.1";
        for _ in 0..FREE_PER_PAIR + 10 {
            // Tried again and again: each try past the free ones waits longer.
            t.counts
                .lock()
                .unwrap()
                .values_mut()
                .for_each(|c| c.last = c.last.checked_sub(MAX_DELAY).unwrap_or(c.last));
            let _ = t.begin(&at("admin", attacker));
        }
        // A 1 MB name is a 16-byte key like any other.
        let huge = "x".repeat(1 << 20);
        assert_eq!(Attempt::new(&huge, ip("10.0.0.1")).account.len(), 16);
        for i in 0..(MAX_KEYS as u32 / 3 + 1000) {
            t.begin(&Attempt::new(&format!("user{i}"), IpAddr::from((0x0a00_0000u32 + i).to_be_bytes())));
        }
        assert!(t.tracked() <= MAX_KEYS);
        assert!(matches!(t.begin(&at("admin", attacker)), Verdict::Wait(_)), "what was tracked still counts");
        // After the window everything expired is swept, however few keys are left.
        age(&t, WINDOW);
        let _ = t.begin(&at("late", "10.255.0.1"));
        assert_eq!(t.tracked(), 3, "only the new attempt's keys remain");
    }

    #[test]
    fn a_success_takes_its_count_back_and_forgives_the_pair() {
        let t = LoginThrottle::default();
        let a = "10.0.0.1";
        for _ in 0..FREE_PER_PAIR {
            t.begin(&at("alice", a));
        }
        t.success(&at("alice", a));
        for _ in 0..FREE_PER_PAIR {
            assert_eq!(t.begin(&at("alice", a)), Verdict::Go, "the pair starts over");
        }
        t.abandon(&at("alice", a));
        assert_eq!(t.begin(&at("alice", a)), Verdict::Go, "an abandoned attempt does not count");
    }
}
