//! Single sign-on's account rules: the provider vouched for a person; who gets an
//! account here, with which role, and who stays out.

use super::Accounts;
use super::store::{self as users, UserRow};
use crate::audit::{Client, Kind, NewEntry, Outcome};
use crate::auth::oidc::Identity;
use app::dto::Role;

/// Why a person the provider vouched for is not signed in (each on the record).
#[derive(Debug)]
pub enum SsoRefusal {
    /// None of their groups maps to a role here.
    NoRole {
        /// The name the provider gave.
        username: String,
        /// Their groups, as the provider listed them.
        groups: Vec<String>,
    },
    /// Their name cannot be an account name here.
    UnusableName(String),
    /// Their account is disabled.
    Disabled,
    /// Their name belongs to another account (the message says which way out).
    Taken(String),
    /// The account could not be read, recorded or changed: try again.
    Unavailable(&'static str),
}

/// Names an account may have (as for local accounts, with `@` for e-mail-like names).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl Accounts {
    /// The provider's name for people (for pages and the record).
    pub fn provider_name(&self) -> &str {
        self.oidc.as_ref().map_or("the identity provider", |o| o.settings().provider_name.as_str())
    }

    /// The account of the person `who` is: found (its role following their groups) or
    /// made on their first sign-in; the sign-in is on the record. Every change to the
    /// account is on the record before it is made (fail closed), and one that then fails
    /// gets a second entry saying so.
    pub async fn sign_in_with_identity(&self, client: &Client, who: &Identity) -> Result<UserRow, SsoRefusal> {
        let provider = self.provider_name().to_string();
        let Some(role) = who.role else {
            let why = format!("no mapped group (groups: {})", who.groups.join(", "));
            // Someone whose groups no longer give a role here keeps no session from when
            // they did (their role would otherwise live on until those expire).
            let linked = users::find_by_subject(&self.db, &who.subject).await.ok().flatten();
            if let Some(user) = &linked {
                let mut entry = NewEntry::new(
                    client.actor(&user.username, user.role.as_str()),
                    Kind::UserChange,
                    Outcome::Succeeded,
                );
                entry.action = "revoke-sessions".into();
                entry.target = user.username.clone();
                entry.reason = format!("the groups {provider} lists at sign-in give no role here");
                entry.params = serde_json::json!({ "via": "oidc", "groups": who.groups });
                let end = || users::revoke_sessions(&self.db, user);
                if let Err(e) = self.ledger.recorded(entry, "no session was ended", end).await {
                    tracing::error!(error = ?e, "single sign-on: the sessions of an account left without a role stay");
                }
            }
            let name = linked.as_ref().map_or(who.username.as_str(), |u| u.username.as_str());
            self.refuse(client, name, &why, Some("oidc")).await;
            return Err(SsoRefusal::NoRole { username: who.username.clone(), groups: who.groups.clone() });
        };
        if !valid_name(&who.username) {
            self.refuse(client, &who.username, "unusable account name", Some("oidc")).await;
            return Err(SsoRefusal::UnusableName(who.username.chars().take(80).collect()));
        }
        let unreadable = |e: crate::error::AppError| {
            tracing::error!(error = ?e, "single sign-on: the account could not be read");
            SsoRefusal::Unavailable("The account could not be read")
        };
        let found = users::find_by_subject(&self.db, &who.subject).await.map_err(unreadable)?;
        // The record names the account here (linked by the provider's subject), not the
        // name the token carries today, which the person may have changed at the provider.
        let name = found.as_ref().map_or_else(|| who.username.clone(), |u| u.username.clone());
        let actor = client.actor(&name, role.as_str());
        let change = |action: &str, reason: String, params: serde_json::Value| {
            let mut e = NewEntry::new(actor.clone(), Kind::UserChange, Outcome::Succeeded);
            e.action = action.into();
            e.target = name.clone();
            e.params = params;
            e.reason = reason;
            e
        };
        let user = match found {
            Some(user) if user.disabled_at_ms.is_some() => {
                self.refuse(client, &user.username, "account disabled", Some("oidc")).await;
                return Err(SsoRefusal::Disabled);
            }
            Some(user) if user.role == role => user,
            Some(user) => {
                let entry = change(
                    "change-role",
                    format!("the groups {provider} lists at sign-in map to {role}"),
                    serde_json::json!({ "from": user.role, "to": role, "via": "oidc", "groups": who.groups }),
                );
                self.set_role(entry, user, role).await?
            }
            None => {
                if users::exists(&self.db, &who.username).await.map_err(unreadable)? {
                    self.refuse(client, &who.username, "the name belongs to another account", Some("oidc")).await;
                    return Err(SsoRefusal::Taken(users::name_taken(&who.username).to_api().message));
                }
                let entry = change(
                    "create-user",
                    format!("first sign-in through {provider}"),
                    serde_json::json!({ "role": role, "via": "oidc", "groups": who.groups }),
                );
                self.create(entry, who, role).await?
            }
        };
        let mut login = NewEntry::new(actor, Kind::Login, Outcome::Succeeded);
        login.params = serde_json::json!({ "via": "oidc" });
        // Fail closed, as for passwords: a sign-in that cannot be recorded does not happen.
        self.record(login).await?;
        Ok(user)
    }

    /// Appends `entry`; its id, or the refusal to go on without it.
    async fn record(&self, entry: NewEntry) -> Result<i64, SsoRefusal> {
        self.ledger.append(entry).await.map(|stored| stored.id).map_err(|e| {
            tracing::error!(error = ?e, "single sign-on not recorded; refused");
            SsoRefusal::Unavailable("The sign-in could not be recorded")
        })
    }

    /// The role the provider's groups map to, recorded first.
    async fn set_role(&self, entry: NewEntry, mut user: UserRow, role: Role) -> Result<UserRow, SsoRefusal> {
        let set = || users::set_sso_role(&self.db, &user, role);
        match self.ledger.recorded(entry, "the role was not changed", set).await {
            Ok(_) => {
                user.role = role;
                Ok(user)
            }
            Err(crate::error::AppError::Unavailable(_)) => {
                Err(SsoRefusal::Unavailable("The sign-in could not be recorded"))
            }
            Err(e) => {
                tracing::error!(error = ?e, "single sign-on: the role could not be set");
                Err(SsoRefusal::Unavailable("The account's role could not be set"))
            }
        }
    }

    /// A first sign-in's account, recorded first; a failure is recorded too.
    async fn create(&self, entry: NewEntry, who: &Identity, role: Role) -> Result<UserRow, SsoRefusal> {
        let create = || users::create_sso(&self.db, &who.subject, &who.username, role);
        match self.ledger.recorded(entry, "no account was created", create).await {
            Ok((_, user)) => Ok(user),
            Err(crate::error::AppError::Conflict(why)) => Err(SsoRefusal::Taken(why)),
            Err(crate::error::AppError::Unavailable(_)) => {
                Err(SsoRefusal::Unavailable("The sign-in could not be recorded"))
            }
            Err(e) => {
                tracing::error!(error = ?e, "single sign-on: the account could not be made");
                Err(SsoRefusal::Unavailable("The account could not be made"))
            }
        }
    }
}
