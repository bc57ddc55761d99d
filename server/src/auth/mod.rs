//! Who is asking: the signed-in caller and their role check, what a session holds,
//! password hashing, the session store and login throttling. The HTTP side (extractors,
//! sign-in and sign-out handlers, the CSRF guard) lives in `http`.

pub mod oidc;
pub mod password;
pub mod shared_throttle;
pub mod store;
pub mod throttle;

use crate::error::{AppError, Result};
use app::dto::{Role, SessionInfo};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Session key under which [`SessionData`] is stored.
pub const SESSION_KEY: &str = "auth";
/// A session ends this long after login, however active it is.
pub const ABSOLUTE_TIMEOUT_MS: i64 = 12 * 60 * 60 * 1000;
/// A session ends after this long without a request (set on the session layer).
pub const IDLE_TIMEOUT_MINUTES: i64 = 30;

/// What a signed-in session holds. The role is looked up on every request, so a role
/// change takes effect at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionData {
    /// The account's id.
    pub user_id: i64,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the session signed in, Unix ms.
    pub login_at_ms: i64,
    /// When a request last moved the idle clock, Unix ms (0 for sessions from before it
    /// was kept).
    #[serde(default)]
    pub touched_ms: i64,
    /// The account's session epoch at sign-in: when it has moved on since (the account
    /// was disabled, its password reset, its sessions revoked), the session is refused.
    #[serde(default)]
    pub epoch: i64,
}

/// A session's idle clock restarts with activity, but the store is written at most this
/// often per session.
pub const TOUCH_EVERY_MS: i64 = 60 * 1000;

#[derive(Clone, Debug)]
pub struct AuthUser {
    /// Database id.
    pub id: i64,
    /// Account name.
    pub username: String,
    /// Current role.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
}

impl AuthUser {
    /// `Ok` when the caller's role is at least `role`, else 403.
    pub fn require(&self, role: Role) -> Result<()> {
        require_role(self.role, role)
    }

    /// The session description returned to the client.
    pub fn info(&self) -> SessionInfo {
        SessionInfo { username: self.username.clone(), role: self.role, csrf_token: self.csrf.clone() }
    }
}

/// The caller if signed in. Unlike `Option<AuthUser>`, a failing database is an error
/// here, not a silent "anonymous".
#[derive(Clone, Debug)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

/// `Ok` when `have` is at least `need`, else 403 saying both: the one role check every
/// caller type (a signed-in user, the engine's caller) goes through.
pub fn require_role(have: Role, need: Role) -> Result<()> {
    if have >= need { Ok(()) } else { Err(AppError::Forbidden(format!("this needs the {need} role; you are {have}"))) }
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes as hex: a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
