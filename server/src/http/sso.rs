//! Single sign-on's browser side: `GET /auth/oidc/login` sends the browser to the
//! identity provider, `GET /auth/oidc/callback` takes it back and signs the person in.
//! The state, nonce and PKCE verifier wait in the browser's session (so any replica can
//! take the callback) and are used once. Every refusal is a page that says why, and is
//! on the record.

use super::extract::ClientAddr;
use super::pages::{escape, plain_page};
use crate::audit::{Client, Kind, NewEntry, Outcome};
use crate::auth::constant_time_eq;
use crate::auth::oidc::{Identity, OidcError, PENDING_FOR_MS, Pending};
use crate::db::now_ms;
use crate::state::AppState;
use crate::users;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

/// Where a started sign-in waits: a record of its own in the session store, named by a
/// cookie of its own. Not the session's cookie: that one is `SameSite=Strict`, so a
/// browser does not send it on the provider's redirect back from another site; this one
/// is `Lax` (sent on that top-level GET), lives ten minutes and only under `/auth/oidc`.
const PENDING_COOKIE: &str = "gatewarden_sso";
const PENDING_KEY: &str = "oidc";

fn pending_cookie(value: &str, max_age_s: i64, secure: bool) -> String {
    tower_sessions::cookie::Cookie::build((PENDING_COOKIE, value.to_string()))
        .http_only(true)
        .same_site(tower_sessions::cookie::SameSite::Lax)
        .secure(secure)
        .path("/auth/oidc")
        .max_age(time::Duration::seconds(max_age_s))
        .build()
        .to_string()
}

/// Keeps `pending` in the session store; the id to put in the cookie.
async fn keep(state: &AppState, pending: &Pending) -> Result<String, String> {
    use tower_sessions::session_store::SessionStore;
    let mut record = tower_sessions::session::Record {
        id: tower_sessions::session::Id::default(),
        data: [(PENDING_KEY.to_string(), serde_json::to_value(pending).map_err(|e| e.to_string())?)].into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::milliseconds(PENDING_FOR_MS),
    };
    let store = crate::auth::store::DbSessionStore::new(state.db.clone());
    store.create(&mut record).await.map_err(|e| e.to_string())?;
    Ok(record.id.to_string())
}

/// The started sign-in the request's cookie names, taken out of the store (used once).
async fn take(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Pending> {
    use tower_sessions::session_store::SessionStore;
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == PENDING_COOKIE)
        .and_then(|(_, value)| value.parse::<tower_sessions::session::Id>().ok())?;
    let store = crate::auth::store::DbSessionStore::new(state.db.clone());
    let record = store.load(&id).await.ok().flatten();
    let _ = store.delete(&id).await;
    serde_json::from_value(record?.data.get(PENDING_KEY)?.clone()).ok()
}

fn secure(state: &AppState) -> bool {
    state.oidc.as_ref().is_some_and(|o| o.settings().redirect_url.starts_with("https://"))
}

/// A response that also forgets the started sign-in's cookie.
fn forgetting(state: &AppState, mut response: Response) -> Response {
    if let Ok(v) = pending_cookie("", 0, secure(state)).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// A page that says what happened and what to do, with `status`.
fn page(status: StatusCode, title: &str, said: &str) -> Response {
    let main = format!(
        "<h1>{}</h1><p data-testid=\"sso-said\">{}</p><p><a class=\"btn\" href=\"/login\">Back to sign-in</a></p>",
        escape(title),
        escape(said)
    );
    let html = plain_page(title, "", "page sso-page", &main);
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn not_set_up() -> Response {
    page(StatusCode::NOT_FOUND, "Single sign-on is not set up", "This console signs people in with passwords only.")
}

/// Records a refused single sign-on (folded with its repeats).
async fn refuse(state: &AppState, client: &Client, username: &str, why: &str) {
    let mut entry = NewEntry::new(client.actor("", ""), Kind::LoginFailure, Outcome::Denied);
    entry.target = username.chars().take(64).collect();
    entry.params = serde_json::json!({ "refused": why, "via": "oidc" });
    if let Err(e) = state.ledger.refuse(entry).await {
        tracing::error!(error = ?e, "could not audit a refused single sign-on");
    }
}

/// `GET /auth/oidc/login`: to the identity provider.
pub async fn start(State(state): State<AppState>, ClientAddr(addr): ClientAddr, client: Client) -> Response {
    let Some(oidc) = state.oidc.clone() else { return not_set_up() };
    let now = now_ms();
    if let Err((why, retry_after_s)) = oidc.admit(addr, now) {
        refuse(&state, &client, "", "throttled").await;
        let mut response = page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins started",
            &format!("{why}. Try again in {retry_after_s} s."),
        );
        if let Ok(v) = retry_after_s.to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    match oidc.begin(now).await {
        Ok((url, pending)) => match keep(&state, &pending).await {
            Ok(id) => {
                let mut response = Redirect::to(&url).into_response();
                if let Ok(v) = pending_cookie(&id, PENDING_FOR_MS / 1000, secure(&state)).parse() {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "could not keep a started sign-in");
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in could not start",
                    "The console could not keep this sign-in's state; try again in a moment.",
                )
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on could not start");
            unavailable(&state, &e)
        }
    }
}

fn unavailable(state: &AppState, e: &OidcError) -> Response {
    let local = if state.local_accounts {
        "Sign in with your password instead, or try again in a minute."
    } else {
        "Try again in a minute; the break-glass admin can still sign in with a password."
    };
    page(StatusCode::BAD_GATEWAY, "The identity provider does not answer", &format!("{e}. {local}"))
}

/// What the provider sends back.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/oidc/callback`: checks what came back, and signs the person in.
pub async fn callback(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    headers: axum::http::HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let response = finish(&state, &client, &session, &headers, back).await;
    forgetting(&state, response)
}

async fn finish(
    state: &AppState,
    client: &Client,
    session: &Session,
    headers: &axum::http::HeaderMap,
    back: Callback,
) -> Response {
    let state = state.clone();
    let Some(oidc) = state.oidc.clone() else { return not_set_up() };
    let bad = |title: &str, said: &str| page(StatusCode::BAD_REQUEST, title, said);
    // Used once, whatever happens next.
    let pending = take(&state, headers).await;
    let Some(pending) = pending else {
        refuse(&state, client, "", "no sign-in started in this browser, or it was used").await;
        return bad(
            "This sign-in was not started here",
            "This answer from the identity provider does not belong to a sign-in this browser started, or it \
             was used already. Start again from the sign-in page.",
        );
    };
    let sent = back.state.as_deref().unwrap_or_default();
    if sent.len() > 512 || !constant_time_eq(sent.as_bytes(), pending.state.as_bytes()) {
        refuse(&state, client, "", "state does not match the sign-in started").await;
        return bad(
            "This sign-in does not match",
            "The answer from the identity provider carries another sign-in's state: it was not started by this \
             browser. Nothing was signed in. Start again from the sign-in page.",
        );
    }
    if now_ms() - pending.started_ms > PENDING_FOR_MS {
        refuse(&state, client, "", "expired").await;
        return bad("This sign-in took too long", "It was started more than 10 minutes ago. Start again.");
    }
    if let Some(error) = back.error {
        let said: String =
            format!("{error}: {}", back.error_description.unwrap_or_default()).chars().take(300).collect();
        refuse(&state, client, "", &format!("the identity provider said {said}")).await;
        return page(StatusCode::FORBIDDEN, "The identity provider did not sign you in", &format!("It said: {said}"));
    }
    let Some(code) = back.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return bad("No sign-in code", "The identity provider sent no (or an over-long) sign-in code back.");
    };
    let identity = match oidc.finish(&pending, code).await {
        Ok(i) => i,
        Err(e @ OidcError::Unavailable { .. }) => {
            tracing::warn!(error = %e, "single sign-on could not finish");
            return unavailable(&state, &e);
        }
        Err(OidcError::Rejected(why)) => {
            refuse(&state, client, "", &why).await;
            return bad("The sign-in does not check out", &format!("{why}. Nothing was signed in."));
        }
    };
    match sign_in(&state, client, session, &identity).await {
        // Not a redirect: the session cookie is SameSite=Strict, and a redirect chain that
        // began at another site would not carry it to "/". A page of this site moving on
        // by itself is a navigation from here, which does.
        Ok(()) => {
            let html = plain_page(
                "Signed in",
                "<meta http-equiv=\"refresh\" content=\"0;url=/\">",
                "page sso-page",
                "<p>Signed in. <a href=\"/\">Continue</a></p>",
            );
            ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
        }
        Err(response) => response,
    }
}

/// Names an account may have (as for local accounts, with `@` for e-mail-like names).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

async fn sign_in(state: &AppState, client: &Client, session: &Session, who: &Identity) -> Result<(), Response> {
    let provider = state.oidc.as_ref().map_or("the identity provider", |o| o.settings().provider_name.as_str());
    let Some(role) = who.role else {
        refuse(state, client, &who.username, &format!("no mapped group (groups: {})", who.groups.join(", "))).await;
        let groups = if who.groups.is_empty() { "none".to_string() } else { who.groups.join(", ") };
        return Err(page(
            StatusCode::FORBIDDEN,
            "No role for you here",
            &format!(
                "{provider} signed you in as {}, but none of your groups ({groups}) is given a role in this console. \
                 Ask an admin to map one of them (--oidc-role-map GROUP=ROLE).",
                who.username
            ),
        ));
    };
    if !valid_name(&who.username) {
        refuse(state, client, &who.username, "unusable account name").await;
        return Err(page(
            StatusCode::FORBIDDEN,
            "Your name cannot be an account name here",
            &format!(
                "{provider} calls you '{}': account names here are 1-64 characters of a-z, A-Z, 0-9, '.', '_', '-', '@'.",
                who.username.chars().take(80).collect::<String>()
            ),
        ));
    }
    let internal = |what: &str| {
        page(StatusCode::SERVICE_UNAVAILABLE, "Sign-in failed", &format!("{what}; try again in a moment."))
    };
    let found = match users::find_by_subject(&state.db, &who.subject).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = ?e, "single sign-on: the account could not be read");
            return Err(internal("The account could not be read"));
        }
    };
    let actor = client.actor(&who.username, role.as_str());
    // Every change to the account is on the record before it is made (fail closed), and
    // one that then fails gets a second entry saying so.
    let record = |entry: NewEntry| async move {
        state.ledger.append(entry).await.map(|stored| stored.id).map_err(|e| {
            tracing::error!(error = ?e, "single sign-on not recorded; refused");
            internal("The sign-in could not be recorded")
        })
    };
    let change = |action: &str, reason: String, params: serde_json::Value| {
        let mut e = NewEntry::new(actor.clone(), Kind::UserChange, Outcome::Succeeded);
        e.action = action.into();
        e.target = who.username.clone();
        e.params = params;
        e.reason = reason;
        e
    };
    let user = match found {
        Some(user) if user.disabled_at_ms.is_some() => {
            refuse(state, client, &user.username, "account disabled").await;
            return Err(page(
                StatusCode::FORBIDDEN,
                "This account is disabled",
                "An admin disabled it: ask one to enable it.",
            ));
        }
        Some(user) if user.role == role => user,
        Some(mut user) => {
            let entry = change(
                "change-role",
                format!("the groups {provider} lists at sign-in map to {role}"),
                serde_json::json!({ "from": user.role, "to": role, "via": "oidc", "groups": who.groups }),
            );
            record(entry).await?;
            if let Err(e) = users::set_sso_role(&state.db, &user, role).await {
                tracing::error!(error = ?e, "single sign-on: the role could not be set");
                return Err(internal("The account's role could not be set"));
            }
            user.role = role;
            user
        }
        None => {
            let taken = match users::exists(&state.db, &who.username).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::error!(error = ?e, "single sign-on: the account could not be read");
                    return Err(internal("The account could not be read"));
                }
            };
            if taken {
                refuse(state, client, &who.username, "the name belongs to another account").await;
                return Err(page(
                    StatusCode::CONFLICT,
                    "That account name is taken",
                    &users::name_taken(&who.username).to_api().message,
                ));
            }
            let entry = change(
                "create-user",
                format!("first sign-in through {provider}"),
                serde_json::json!({ "role": role, "via": "oidc", "groups": who.groups }),
            );
            let intent = record(entry.clone()).await?;
            match users::create_sso(&state.db, &who.subject, &who.username, role).await {
                Ok(user) => user,
                Err(e) => {
                    let mut failed = entry;
                    failed.outcome = Outcome::Failed;
                    failed.intent_id = Some(intent);
                    failed.params["error"] = serde_json::Value::String(e.to_api().message);
                    record(failed).await?;
                    return Err(match e {
                        crate::error::AppError::Conflict(why) => {
                            page(StatusCode::CONFLICT, "That account name is taken", &why)
                        }
                        _ => internal("The account could not be made"),
                    });
                }
            }
        }
    };
    let mut login = NewEntry::new(actor, Kind::Login, Outcome::Succeeded);
    login.params = serde_json::json!({ "via": "oidc" });
    // Fail closed, as for passwords: a sign-in that cannot be recorded does not happen.
    record(login).await?;
    if let Err(e) = super::session::start_session(state, session, &user).await {
        tracing::error!(error = ?e, "single sign-on: the session could not start");
        return Err(internal("The session could not start"));
    }
    tracing::info!(username = %user.username, %role, "signed in through single sign-on");
    Ok(())
}
