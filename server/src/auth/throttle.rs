//! Login throttling per account and per client address, in memory.
//!
//! Failures are counted in a fixed window; past the limit, attempts are refused with
//! 429 until the window ends, whether or not the password would have been right. The
//! account key is the submitted name, so throttling says nothing about which accounts
//! exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures allowed per account name within the window.
pub const PER_ACCOUNT: u32 = 5;
/// Failures allowed per client address within the window.
pub const PER_ADDRESS: u32 = 20;
/// Above this many tracked keys, expired ones are swept (bounds memory under attack).
const SWEEP_AT: usize = 10_000;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

#[derive(Default)]
/// Failure counters.
pub struct LoginThrottle {
    failures: Mutex<HashMap<Key, (Instant, u32)>>,
}

impl LoginThrottle {
    fn keys(username: &str, addr: IpAddr) -> [(Key, u32); 2] {
        [(Key::Account(username.to_lowercase()), PER_ACCOUNT), (Key::Address(addr), PER_ADDRESS)]
    }

    /// `Err(seconds to wait)` when either key is over its limit.
    pub fn check(&self, username: &str, addr: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let wait = Self::keys(username, addr)
            .iter()
            .filter_map(|(k, limit)| map.get(k).filter(|(start, n)| n >= limit && now - *start < WINDOW))
            .map(|(start, _)| (WINDOW - (now - *start)).as_secs().max(1))
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Records a failed attempt.
    pub fn failure(&self, username: &str, addr: IpAddr) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_AT {
            map.retain(|_, (start, _)| now - *start < WINDOW);
        }
        for (key, _) in Self::keys(username, addr) {
            let entry = map.entry(key).or_insert((now, 0));
            if now - entry.0 >= WINDOW {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn success(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&Key::Account(username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_five_failures_from_anywhere() {
        let t = LoginThrottle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..PER_ACCOUNT {
            assert!(t.check("alice", a).is_ok());
            t.failure("alice", a);
        }
        assert!(t.check("Alice", b).is_err(), "case and address must not bypass the lock");
        assert!(t.check("bob", b).is_ok());
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures_across_accounts() {
        let t = LoginThrottle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..PER_ADDRESS {
            t.failure(&format!("user{i}"), a);
        }
        assert!(t.check("someone-new", a).is_err());
        assert!(t.check("someone-new", "10.0.0.9".parse().unwrap()).is_ok());
    }
}
