//! Accounts: who may sign in, and how. Password sign-in (throttled per account and per
//! address, checked off the async workers, the same work for a name that does not exist),
//! single sign-on's account rules (who gets an account, with which role; a disabled
//! account stays out), and the users store. Every sign-in and every refusal is on the
//! record before it takes effect. The answers are the domain's (an account, or why not):
//! `http::session` and `http::sso` turn them into cookies, redirects and pages.

mod password;
mod sso;
pub mod store;

pub use password::LOCAL_OFF;
pub use sso::SsoRefusal;

use crate::audit::{Client, Kind, Ledger, NewEntry, Outcome};
use crate::auth::oidc::Oidc;
use crate::auth::shared_throttle::Throttle;
use crate::auth::throttle::VerifyGate;
use crate::db::Db;
use std::sync::Arc;

/// The accounts service: what signing in needs, and nothing of HTTP.
pub struct Accounts {
    /// Where accounts are kept.
    pub db: Db,
    ledger: Arc<Ledger>,
    /// Failed-sign-in counters (this process's, and with PostgreSQL every replica's).
    pub throttle: Arc<Throttle>,
    /// Password checks running and queued at once.
    pub verifies: Arc<VerifyGate>,
    /// Hash checked for unknown users, so they cost the same time as known ones.
    dummy_hash: Arc<str>,
    /// Whether accounts may sign in with a password (else only `break_glass_admin`).
    pub local_accounts: bool,
    /// The account that signs in with a password when local accounts are off.
    pub break_glass_admin: Arc<str>,
    /// Single sign-on's provider, if set up.
    pub oidc: Option<Arc<Oidc>>,
}

/// What [`Accounts::new`] takes besides the database and the ledger.
pub struct Policy {
    /// `--local-accounts`.
    pub local_accounts: bool,
    /// `--break-glass-admin`.
    pub break_glass_admin: String,
    /// Single sign-on, if set up.
    pub oidc: Option<Arc<Oidc>>,
    /// Sign-ins checked at once, and queued.
    pub sign_ins: (usize, usize),
}

impl Accounts {
    /// The service; hashes the stand-in password unknown names are checked against.
    pub async fn new(
        db: Db,
        ledger: Arc<Ledger>,
        throttle: Arc<Throttle>,
        policy: Policy,
    ) -> crate::error::Result<Self> {
        let dummy_hash = crate::auth::password::hash("not a real password".into()).await?;
        Ok(Accounts {
            db,
            ledger,
            throttle,
            verifies: Arc::new(VerifyGate::new(policy.sign_ins.0, policy.sign_ins.1)),
            dummy_hash: dummy_hash.into(),
            local_accounts: policy.local_accounts,
            break_glass_admin: Arc::from(policy.break_glass_admin.as_str()),
            oidc: policy.oidc,
        })
    }

    /// Records a refused sign-in (folded with its repeats); a ledger failure is logged,
    /// and the refusal stands either way.
    pub async fn refuse(&self, client: &Client, username: &str, why: &str, via: Option<&str>) {
        let mut entry = NewEntry::new(client.actor("", ""), Kind::LoginFailure, Outcome::Denied);
        // The submitted name, never the password.
        entry.target = username.chars().take(64).collect();
        entry.params = match via {
            Some(via) => serde_json::json!({ "refused": why, "via": via }),
            None => serde_json::json!({ "refused": why }),
        };
        if let Err(e) = self.ledger.refuse(entry).await {
            tracing::error!(error = ?e, "could not audit a refused sign-in");
        }
    }
}
