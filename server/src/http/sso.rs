//! Single sign-on's browser side: `GET /auth/oidc/login` sends the browser to the
//! identity provider, `GET /auth/oidc/callback` takes it back and signs the person in.
//! The state, nonce and PKCE verifier wait in the browser's session (so any replica can
//! take the callback) and are used once. Every refusal is a page that says why, and is
//! on the record.

use super::extract::ClientAddr;
use super::pages::{escape, plain_page};
use crate::accounts::SsoRefusal;
use crate::audit::Client;
use crate::auth::constant_time_eq;
use crate::auth::oidc::{Identity, OidcError, PENDING_FOR_MS, Pending};
use crate::db::now_ms;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

/// Where a started sign-in waits: a record of its own in the session store, named by a
/// cookie of its own. Not the session's cookie: that one is `SameSite=Strict`, so a
/// browser does not send it on the provider's redirect back from another site; this one
/// is `Lax` (sent on that top-level GET), lives ten minutes and only under `/auth/oidc`.
/// The started sign-in's cookie; over https `__Secure-` (its path is `/auth/oidc`, so not
/// `__Host-`).
fn pending_name(secure: bool) -> &'static str {
    if secure { "__Secure-gatewarden_sso" } else { "gatewarden_sso" }
}
const PENDING_KEY: &str = "oidc";

fn pending_cookie(value: &str, max_age_s: i64, secure: bool) -> String {
    tower_sessions::cookie::Cookie::build((pending_name(secure), value.to_string()))
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
        .find(|(name, _)| *name == pending_name(secure(state)))
        .and_then(|(_, value)| value.parse::<tower_sessions::session::Id>().ok())?;
    let store = crate::auth::store::DbSessionStore::new(state.db.clone());
    let record = store.load(&id).await.ok().flatten();
    let _ = store.delete(&id).await;
    serde_json::from_value(record?.data.get(PENDING_KEY)?.clone()).ok()
}

fn secure(state: &AppState) -> bool {
    state.accounts.oidc.as_ref().is_some_and(|o| o.settings().redirect_url.starts_with("https://"))
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
    state.accounts.refuse(client, username, why, Some("oidc")).await;
}

/// `GET /auth/oidc/login`: to the identity provider.
pub async fn start(State(state): State<AppState>, ClientAddr(addr): ClientAddr, client: Client) -> Response {
    let Some(oidc) = state.accounts.oidc.clone() else { return not_set_up() };
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
    let local = if state.accounts.local_accounts {
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
    let Some(oidc) = state.accounts.oidc.clone() else { return not_set_up() };
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

/// Signs in the person the provider vouched for, or says on a page why not.
async fn sign_in(state: &AppState, client: &Client, session: &Session, who: &Identity) -> Result<(), Response> {
    let user = state.accounts.sign_in_with_identity(client, who).await.map_err(|refusal| refused(state, refusal))?;
    if let Err(e) = super::session::start_session(state, session, &user).await {
        tracing::error!(error = ?e, "single sign-on: the session could not start");
        return Err(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "The session could not start; try again in a moment.",
        ));
    }
    tracing::info!(username = %user.username, role = %user.role, "signed in through single sign-on");
    Ok(())
}

/// The page that says why single sign-on did not sign someone in.
fn refused(state: &AppState, refusal: SsoRefusal) -> Response {
    let provider = state.accounts.provider_name();
    match refusal {
        SsoRefusal::NoRole { username, groups } => {
            let groups = if groups.is_empty() { "none".to_string() } else { groups.join(", ") };
            page(
                StatusCode::FORBIDDEN,
                "No role for you here",
                &format!(
                    "{provider} signed you in as {username}, but none of your groups ({groups}) is given a role in \
                     this console. Ask an admin to map one of them (--oidc-role-map GROUP=ROLE)."
                ),
            )
        }
        SsoRefusal::UnusableName(name) => page(
            StatusCode::FORBIDDEN,
            "Your name cannot be an account name here",
            &format!(
                "{provider} calls you '{name}': account names here are 1-64 characters of a-z, A-Z, 0-9, '.', '_', '-', '@'."
            ),
        ),
        SsoRefusal::Disabled => {
            page(StatusCode::FORBIDDEN, "This account is disabled", "An admin disabled it: ask one to enable it.")
        }
        SsoRefusal::Taken(why) => page(StatusCode::CONFLICT, "That account name is taken", &why),
        SsoRefusal::Unavailable(what) => {
            page(StatusCode::SERVICE_UNAVAILABLE, "Sign-in failed", &format!("{what}; try again in a moment."))
        }
    }
}
