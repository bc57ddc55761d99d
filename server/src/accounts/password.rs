//! Password sign-in: the rules, in the order they are checked.

use super::Accounts;
use super::store::{self as users, UserRow};
use crate::audit::{Client, Kind, NewEntry, Outcome};
use crate::auth::password;
use crate::auth::throttle::{Attempt, Verdict};
use crate::error::{AppError, Result};
use app::dto::{LoginRequest, UserSource};
use std::net::IpAddr;

/// The refusal of a password sign-in when only single sign-on is on.
pub const LOCAL_OFF: &str = "password sign-in is off here: sign in with single sign-on";

impl Accounts {
    /// The account `req` names, if its password is right and it may sign in now; its
    /// sign-in is on the record. Unknown user and wrong password fail the same way, after
    /// the same hashing work; both count towards throttling, and they count before the
    /// password is hashed, so parallel attempts cannot pass the limit together.
    pub async fn sign_in_with_password(&self, client: &Client, addr: IpAddr, req: LoginRequest) -> Result<UserRow> {
        // Keyed by a digest of the name: whatever its length, it costs the throttle the
        // same; logs get at most 64 of its characters, escaped.
        let attempt = Attempt::new(&req.username, addr);
        let name = loggable(&req.username);
        match self.throttle.begin(&attempt).await {
            Verdict::Wait(retry_after_s) => {
                tracing::info!(username = %name, %addr, "sign-in throttled");
                self.refuse(client, &req.username, "throttled", None).await;
                return Err(AppError::TooManyRequests {
                    reason: "too many failed sign-in attempts from here, or at this account".into(),
                    retry_after_s,
                });
            }
            Verdict::Go => {}
        }
        // With single sign-on only, a password signs in the break-glass admin, no one else
        // (refused before any hashing; a wrong name learns only what the sign-in page says).
        if !self.local_accounts && req.username != *self.break_glass_admin {
            self.throttle.abandon(&attempt).await;
            self.refuse(client, &req.username, "local accounts are off", None).await;
            return Err(AppError::Forbidden(LOCAL_OFF.into()));
        }
        let Some(turn) = self.verifies.enter().await else {
            self.throttle.abandon(&attempt).await;
            self.refuse(client, &req.username, "busy", None).await;
            return Err(AppError::TooManyRequests {
                reason: "too many sign-ins are being checked at once".into(),
                retry_after_s: 1,
            });
        };
        // Over-long inputs are refused like a wrong password, after the same work.
        let sane = !req.username.is_empty() && req.username.len() <= 64 && req.password.len() <= 1024;
        let user = if sane { users::find_by_username(&self.db, &req.username).await? } else { None };
        // An account the identity provider vouches for has no password here: it fails like
        // an unknown name, after the same work.
        let user = user.filter(|u| u.source == UserSource::Local);
        let stored = user.as_ref().map_or_else(|| self.dummy_hash.to_string(), |u| u.password_hash.clone());
        let password = if sane { req.password } else { String::new() };
        let ok = password::verify(password, stored).await? && user.is_some();
        drop(turn);
        let Some(user) = user.filter(|_| ok) else {
            tracing::info!(username = %name, %addr, "failed sign-in");
            self.refuse(client, &req.username, "invalid credentials", None).await;
            return Err(AppError::InvalidCredentials);
        };
        self.throttle.success(&attempt).await;
        // Said only to someone who knows the password.
        if user.disabled_at_ms.is_some() {
            tracing::info!(username = %name, %addr, "sign-in to a disabled account");
            self.refuse(client, &req.username, "account disabled", None).await;
            return Err(AppError::Forbidden("this account is disabled: ask an admin to enable it".into()));
        }
        // Fail closed: a sign-in that cannot be recorded does not happen.
        let login = NewEntry::new(client.actor(&user.username, user.role.as_str()), Kind::Login, Outcome::Succeeded);
        self.ledger.append(login).await?;
        Ok(user)
    }
}

/// A submitted name as text logs may carry it: at most 64 characters, control characters
/// (a newline that would forge a log line) escaped.
pub fn loggable(name: &str) -> String {
    let mut shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().nth(64).is_some() {
        shown.push_str(&format!("… ({} bytes)", name.len()));
    }
    shown
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_submitted_name_reaches_the_logs_short_and_escaped() {
        assert_eq!(super::loggable("alice"), "alice");
        assert_eq!(super::loggable("eve\nINFO signed in admin"), "eve\\nINFO signed in admin");
        let huge = "x".repeat(2 << 20);
        let shown = super::loggable(&huge);
        assert!(shown.len() < 100 && shown.ends_with("(2097152 bytes)"), "{shown}");
    }
}
