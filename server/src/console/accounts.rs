//! Managing accounts (admin): create, change role, disable and enable, reset a password,
//! end sessions; and a person changing their own password.
//!
//! Every change is on the record with its reason, written before the change (fail
//! closed: no record, no change); a change that then fails gets a second entry saying
//! why. Refusals (role, the last admin, a wrong current password) are recorded too.
//! Passwords never are.

use super::ServerConsole;
use crate::accounts::store::{self as users, UserRow};
use crate::audit::{Kind, NewEntry, Outcome};
use crate::auth::AuthUser;
use crate::error::{AppError, Result};
use app::dto::{
    NewUser, PasswordChange, PasswordReset, ReasonBody, Role, SessionsRevoked, UserSource, UserSummary, UserUpdate,
};
use serde::de::DeserializeOwned;

/// A body's fields, with the path to a bad one, as the JSON extractor says it.
fn parse<T: DeserializeOwned>(body: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(body).map_err(|e| AppError::BadRequest {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        message: format!("Failed to deserialize the JSON body into the target type: {e}"),
    })
}

/// A change's reason (the rule is [`app::dto::Reason`]'s).
fn reason(text: &str) -> Result<String> {
    app::dto::Reason::parse(text).map(app::dto::Reason::into_string).map_err(|why| AppError::invalid("reason", why))
}

/// What the ledger says about an account.
fn state_of(user: &UserRow) -> serde_json::Value {
    serde_json::json!({ "role": user.role, "disabled": user.disabled_at_ms.is_some() })
}

impl ServerConsole {
    /// The admin making a change to `target`, and the entry that records it; a caller
    /// below admin is refused, on the record.
    async fn admin_changing(&self, action: &str, target: &str) -> Result<(&AuthUser, NewEntry)> {
        let user = self.user.as_ref().ok_or(AppError::Unauthorized)?;
        let mut entry =
            NewEntry::new(self.client.actor(&user.username, user.role.as_str()), Kind::UserChange, Outcome::Succeeded);
        entry.action = action.into();
        entry.target = target.chars().take(64).collect();
        if let Err(refused) = user.require(Role::Admin) {
            entry.outcome = Outcome::Denied;
            entry.params = serde_json::json!({ "refused": format!("role {} below admin", user.role) });
            self.state.ledger.refuse(entry).await?;
            return Err(refused);
        }
        Ok((user, entry))
    }

    /// A refusal of a change the rules forbid (the last admin), on the record.
    /// Returns the error to answer with.
    async fn refuse_change(&self, mut entry: NewEntry, error: AppError) -> Result<AppError> {
        entry.outcome = Outcome::Denied;
        entry.params["refused"] = serde_json::Value::String(error.to_api().message);
        self.state.ledger.refuse(entry).await?;
        Ok(error)
    }

    /// Ends the open event streams of every session of `user`, on every replica: one
    /// event, however many sessions it had.
    async fn account_streams_end(&self, user: &UserRow) {
        self.state.bus.publish("sign_out", &crate::bus::account_tag(user.id)).await;
    }

    /// Ends the open event streams of the sessions just ended (not this one), on every
    /// replica.
    async fn streams_end(&self, sessions: &[String]) {
        for id in sessions {
            self.state.bus.publish("sign_out", &crate::bus::session_tag(id)).await;
        }
    }

    /// Creates an account (admin). Refusals and creations are audited; the password
    /// never is.
    pub async fn create_user(&self, body: serde_json::Value) -> Result<UserSummary> {
        let text = |field: &str| body.get(field).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let (user, mut entry) = self.admin_changing("create-user", &text("username")).await?;
        entry.params = serde_json::json!({ "role": text("role").chars().take(16).collect::<String>() });
        // Any JSON is read by the handler; its fields only after the role check, so a
        // viewer learns nothing from 422s.
        let new: NewUser = parse(body)?;
        users::validate(&new)?;
        entry.reason = reason(&new.reason)?;
        entry.params = serde_json::json!({ "role": new.role });
        let (_, created) =
            self.state.ledger.recorded(entry, "no account was created", || users::create(&self.state.db, new)).await?;
        tracing::info!(by = %user.username, user = %created.username, role = %created.role, "user created");
        Ok(created)
    }

    /// Changes an account's role and whether it is disabled (admin). The last active
    /// admin can be neither demoted nor disabled; a disabled account's sessions end at
    /// once, on every replica.
    pub async fn update_user(&self, username: &str, body: serde_json::Value) -> Result<UserSummary> {
        let (admin, entry) = self.admin_changing("change-user", username).await?;
        let update: UserUpdate = parse(body)?;
        let why = reason(&update.reason)?;
        if update.role.is_none() && update.disabled.is_none() {
            return Err(AppError::invalid("body", "says nothing to change: give role, disabled, or both"));
        }
        let target = users::named(&self.state.db, username).await?;
        let db = &self.state.db;
        if let Some(role) = update.role.filter(|r| *r != target.role) {
            let mut entry = entry.clone();
            entry.action = "change-role".into();
            entry.reason = why.clone();
            entry.params = serde_json::json!({ "from": target.role, "to": role });
            entry.before = Some(state_of(&target));
            entry.after = Some(serde_json::json!({ "role": role, "disabled": target.disabled_at_ms.is_some() }));
            if role < Role::Admin && self.only_active_admin(&target).await? {
                return Err(self.refuse_change(entry, users::last_admin(&target)).await?);
            }
            let dialect = self.state.dialect;
            self.state
                .ledger
                .recorded(entry, "the role was not changed", || users::set_role(db, dialect, &target, role))
                .await?;
            tracing::info!(by = %admin.username, user = %target.username, %role, "role changed");
        }
        let target = users::named(db, username).await?;
        match update.disabled {
            Some(true) if target.disabled_at_ms.is_none() => {
                let mut entry = entry.clone();
                entry.action = "disable-user".into();
                entry.reason = why;
                entry.before = Some(state_of(&target));
                entry.after = Some(serde_json::json!({ "role": target.role, "disabled": true }));
                if self.only_active_admin(&target).await? {
                    return Err(self.refuse_change(entry, users::last_admin(&target)).await?);
                }
                let (dialect, now) = (self.state.dialect, crate::db::now_ms());
                let disable = || users::disable(db, dialect, &target, now);
                let (_, ended) = self.state.ledger.recorded(entry, "the account was not disabled", disable).await?;
                self.account_streams_end(&target).await;
                tracing::info!(by = %admin.username, user = %target.username, sessions = ended.len(), "user disabled");
            }
            Some(false) if target.disabled_at_ms.is_some() => {
                let mut entry = entry.clone();
                entry.action = "enable-user".into();
                entry.reason = why;
                entry.before = Some(state_of(&target));
                entry.after = Some(serde_json::json!({ "role": target.role, "disabled": false }));
                self.state.ledger.recorded(entry, "the account was not enabled", || users::enable(db, &target)).await?;
                tracing::info!(by = %admin.username, user = %target.username, "user enabled");
            }
            // Already so: nothing changes, nothing to record.
            _ => {}
        }
        users::summary(db, username).await
    }

    /// Whether `user` is the only active admin (so demoting or disabling them would leave
    /// no one to manage accounts). The database checks again as it changes the row.
    async fn only_active_admin(&self, user: &UserRow) -> Result<bool> {
        if user.role != Role::Admin || user.disabled_at_ms.is_some() {
            return Ok(false);
        }
        let (others,): (i64,) =
            sqlx::query_as("select count(*) from users where role = 'admin' and disabled_at is null and id <> $1")
                .bind(user.id)
                .fetch_one(&self.state.db)
                .await?;
        Ok(others == 0)
    }

    /// Gives a local account a new random password, shown this once, and ends its
    /// sessions (admin).
    pub async fn reset_password(&self, username: &str, body: serde_json::Value) -> Result<PasswordReset> {
        let (admin, mut entry) = self.admin_changing("reset-password", username).await?;
        let body: ReasonBody = parse(body)?;
        entry.reason = reason(&body.reason)?;
        let target = users::named(&self.state.db, username).await?;
        if target.source != UserSource::Local {
            return Err(AppError::Conflict(format!(
                "{} signs in through the identity provider and has no password here",
                target.username
            )));
        }
        let password = users::generate_password();
        let hash = crate::auth::password::hash(password.clone()).await?;
        let reset = || users::set_password(&self.state.db, &target, hash, None);
        let (_, (_, ended)) = self.state.ledger.recorded(entry, "the password was not reset", reset).await?;
        self.account_streams_end(&target).await;
        tracing::info!(by = %admin.username, user = %target.username, sessions = ended.len(), "password reset");
        Ok(PasswordReset { username: target.username, password, sessions_ended: ended.len() as i64 })
    }

    /// Ends every session of an account, on every replica (admin).
    pub async fn revoke_sessions(&self, username: &str, body: serde_json::Value) -> Result<SessionsRevoked> {
        let (admin, mut entry) = self.admin_changing("revoke-sessions", username).await?;
        let body: ReasonBody = parse(body)?;
        entry.reason = reason(&body.reason)?;
        let target = users::named(&self.state.db, username).await?;
        let revoke = || users::revoke_sessions(&self.state.db, &target);
        let (_, ended) = self.state.ledger.recorded(entry, "no session was ended", revoke).await?;
        self.account_streams_end(&target).await;
        tracing::info!(by = %admin.username, user = %target.username, sessions = ended.len(), "sessions revoked");
        Ok(SessionsRevoked { username: target.username, sessions_ended: ended.len() as i64 })
    }

    /// The caller changes their own password, giving the current one (at most
    /// [`crate::limits::GUESSES_PER_WINDOW`] wrong ones in 15 minutes, counted apart from
    /// sign-ins so that a stolen session cannot lock its owner out). Their other sessions end; `session` (this one) continues under the
    /// returned epoch.
    pub async fn change_own_password(&self, body: serde_json::Value, session: Option<&str>) -> Result<i64> {
        let user = self.user.as_ref().ok_or(AppError::Unauthorized)?;
        let mut entry =
            NewEntry::new(self.client.actor(&user.username, user.role.as_str()), Kind::UserChange, Outcome::Succeeded);
        entry.action = "change-own-password".into();
        entry.target = user.username.clone();
        entry.reason = "changed by its owner".into();
        let change: PasswordChange = parse(body)?;
        users::validate_password("new_password", &change.new_password)?;
        if change.current_password.len() > 1024 {
            return Err(AppError::invalid("current_password", "must be at most 1024 characters"));
        }
        let account = users::find_by_id(&self.state.db, user.id).await?.ok_or(AppError::Unauthorized)?;
        if account.source != UserSource::Local {
            return Err(AppError::Conflict("you sign in through the identity provider; change it there".into()));
        }
        let state = &self.state;
        let now = crate::db::now_ms();
        if let Err(throttled) = state.caps.password_guess(user.id, now) {
            entry.outcome = Outcome::Denied;
            entry.params = serde_json::json!({ "refused": "throttled" });
            state.ledger.refuse(entry).await?;
            return Err(throttled);
        }
        let Some(turn) = state.accounts.verifies.enter().await else {
            return Err(AppError::TooManyRequests {
                reason: "too many passwords are being checked at once".into(),
                retry_after_s: 1,
            });
        };
        let right = crate::auth::password::verify(change.current_password, account.password_hash.clone()).await?;
        if !right {
            drop(turn);
            state.caps.password_guess_failed(user.id, now);
            entry.outcome = Outcome::Denied;
            entry.params = serde_json::json!({ "refused": "wrong current password" });
            state.ledger.refuse(entry).await?;
            return Err(AppError::invalid("current_password", "is not your password"));
        }
        let hash = crate::auth::password::hash(change.new_password).await?;
        drop(turn);
        let change = || users::set_password(&state.db, &account, hash, session);
        let (_, (epoch, ended)) = state.ledger.recorded(entry, "the password was not changed", change).await?;
        self.streams_end(&ended).await;
        tracing::info!(user = %user.username, sessions = ended.len(), "own password changed");
        Ok(epoch)
    }

    /// Every account (admin).
    pub async fn users(&self) -> Result<Vec<UserSummary>> {
        self.caller(Role::Admin)?;
        users::list(&self.state.db).await
    }
}
