//! The `/api/v1/session` endpoints and the sign-in form: cookies, redirects, answers.

use super::extract::{ApiJson, ClientAddr};
use crate::audit::{Client, Kind, NewEntry, Outcome};
use crate::auth::throttle::Verdict;
use crate::auth::{AuthUser, SESSION_KEY, SessionData, password, random_token};
use crate::db::now_ms;
use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::users;
use app::dto::{LoginRequest, SessionInfo, UserSource};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::net::IpAddr;
use tower_sessions::Session;

/// The refusal of a password sign-in when only single sign-on is on.
pub const LOCAL_OFF: &str = "password sign-in is off here: sign in with single sign-on";

/// Checks credentials and starts a session. Unknown user and wrong password fail the
/// same way, after the same hashing work; both count towards throttling, and they count
/// before the password is hashed, so parallel attempts cannot pass the limit together.
async fn authenticate(
    state: &AppState,
    client: &Client,
    addr: IpAddr,
    session: &Session,
    req: LoginRequest,
) -> Result<SessionInfo> {
    let refusal = |why: &str| {
        let mut e = NewEntry::new(client.actor("", ""), Kind::LoginFailure, Outcome::Denied);
        // The submitted name, never the password.
        e.target = req.username.chars().take(64).collect();
        e.params = serde_json::json!({ "refused": why });
        e
    };
    match state.throttle.begin(&req.username, addr).await {
        Verdict::Wait(retry_after_s) => {
            tracing::info!(username = %req.username, %addr, "sign-in throttled");
            refuse_best_effort(state, refusal("throttled")).await;
            return Err(AppError::TooManyRequests {
                reason: "too many failed sign-in attempts from here".into(),
                retry_after_s,
            });
        }
        Verdict::Go(slowdown) if !slowdown.is_zero() => tokio::time::sleep(slowdown).await,
        Verdict::Go(_) => {}
    }
    // With single sign-on only, a password signs in the break-glass admin, no one else
    // (refused before any hashing; a wrong name learns only what the sign-in page says).
    if !state.local_accounts && req.username != *state.break_glass_admin {
        state.throttle.abandon(&req.username, addr).await;
        refuse_best_effort(state, refusal("local accounts are off")).await;
        return Err(AppError::Forbidden(LOCAL_OFF.into()));
    }
    let Some(turn) = state.verifies.enter().await else {
        state.throttle.abandon(&req.username, addr).await;
        refuse_best_effort(state, refusal("busy")).await;
        return Err(AppError::TooManyRequests {
            reason: "too many sign-ins are being checked at once".into(),
            retry_after_s: 1,
        });
    };
    // Over-long inputs are refused like a wrong password, after the same work.
    let sane = !req.username.is_empty() && req.username.len() <= 64 && req.password.len() <= 1024;
    let user = if sane { users::find_by_username(&state.db, &req.username).await? } else { None };
    // An account the identity provider vouches for has no password here: it fails like
    // an unknown name, after the same work.
    let user = user.filter(|u| u.source == UserSource::Local);
    let stored = user.as_ref().map_or_else(|| state.dummy_hash.to_string(), |u| u.password_hash.clone());
    let password = if sane { req.password } else { String::new() };
    let ok = password::verify(password, stored).await? && user.is_some();
    drop(turn);
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(username = %req.username, %addr, "failed sign-in");
        refuse_best_effort(state, refusal("invalid credentials")).await;
        return Err(AppError::InvalidCredentials);
    };
    state.throttle.success(&req.username, addr).await;
    // Said only to someone who knows the password.
    if user.disabled_at_ms.is_some() {
        tracing::info!(username = %req.username, %addr, "sign-in to a disabled account");
        refuse_best_effort(state, refusal("account disabled")).await;
        return Err(AppError::Forbidden("this account is disabled: ask an admin to enable it".into()));
    }
    // Fail closed: a sign-in that cannot be recorded does not happen.
    state
        .ledger
        .append(NewEntry::new(client.actor(&user.username, user.role.as_str()), Kind::Login, Outcome::Succeeded))
        .await?;
    let csrf_token = start_session(state, session, &user).await?;
    tracing::info!(username = %user.username, %addr, "signed in");
    Ok(SessionInfo { username: user.username, role: user.role, csrf_token })
}

/// Signs `user` in on `session` (its sign-in already on the record): a new session id
/// (which defeats session fixation), the session's data under the account's current
/// epoch, the account's last sign-in. Returns the session's CSRF token. Password and
/// single sign-on alike.
pub(super) async fn start_session(state: &AppState, session: &Session, user: &users::UserRow) -> Result<String> {
    session.cycle_id().await.map_err(|e| AppError::Internal(format!("cycle id: {e}")))?;
    let now = now_ms();
    let data = SessionData {
        user_id: user.id,
        csrf: random_token(),
        login_at_ms: now,
        touched_ms: now,
        epoch: user.session_epoch,
    };
    session.insert(SESSION_KEY, &data).await.map_err(|e| AppError::Internal(format!("session insert: {e}")))?;
    users::record_sign_in(&state.db, user.id, now).await?;
    Ok(data.csrf)
}

/// Records a refusal (folded with its repeats); a ledger failure is logged, and the
/// refusal stands either way.
async fn refuse_best_effort(state: &AppState, entry: NewEntry) {
    if let Err(e) = state.ledger.refuse(entry).await {
        tracing::error!(error = ?e, "could not audit a refused request");
    }
}

/// Records an event; a ledger failure is logged.
async fn audit_best_effort(state: &AppState, entry: NewEntry) {
    if let Err(e) = state.ledger.append(entry).await {
        tracing::error!(error = ?e, "could not audit a request");
    }
}

/// `POST /api/v1/session`: signs in with JSON.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    client: Client,
    session: Session,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<axum::Json<SessionInfo>> {
    Ok(axum::Json(authenticate(&state, &client, addr, &session, req).await?))
}

/// `POST /login`: the sign-in form before (or without) the wasm bundle, so credentials
/// are never sent in a URL. Same rules as the JSON login; answers with redirects.
pub async fn login_form(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    client: Client,
    headers: HeaderMap,
    session: Session,
    Form(req): Form<LoginRequest>,
) -> Response {
    if !same_origin(&headers) {
        return AppError::Forbidden("cross-site sign-in refused".into()).into_response();
    }
    match authenticate(&state, &client, addr, &session, req).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(AppError::InvalidCredentials) => Redirect::to("/login?failed=credentials").into_response(),
        Err(AppError::TooManyRequests { .. }) => Redirect::to("/login?failed=throttled").into_response(),
        Err(AppError::Forbidden(m)) if m == LOCAL_OFF => Redirect::to("/login?failed=local-off").into_response(),
        Err(AppError::Forbidden(_)) => Redirect::to("/login?failed=disabled").into_response(),
        Err(e) => e.into_response(),
    }
}

/// A form post's `Origin`, when the browser sends one, must be this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// `GET /api/v1/session`: who is signed in.
pub async fn current(user: AuthUser) -> axum::Json<SessionInfo> {
    axum::Json(user.info())
}

/// `PUT /api/v1/session/password`: the signed-in person changes their own password; their
/// other sessions end, this one continues.
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    session: Session,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<axum::http::StatusCode> {
    let id = session.id().map(|id| id.to_string());
    let console = crate::console::ServerConsole::new(state, Some(user)).with_client(client);
    let epoch = console.change_own_password(body, id.as_deref()).await?;
    let data: Option<SessionData> =
        session.get(SESSION_KEY).await.map_err(|e| AppError::Internal(format!("session load: {e}")))?;
    if let Some(mut data) = data {
        data.epoch = epoch;
        session.insert(SESSION_KEY, &data).await.map_err(|e| AppError::Internal(format!("session insert: {e}")))?;
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/session`: signs out and deletes the session server-side.
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    session: Session,
) -> Result<axum::http::StatusCode> {
    let id = session.id().map(|id| id.to_string());
    session.flush().await.map_err(|e| AppError::Internal(format!("session flush: {e}")))?;
    if let Some(id) = id {
        // The session's open event streams end now, on every replica.
        state.bus.publish("sign_out", &crate::bus::session_tag(&id)).await;
    }
    let entry = NewEntry::new(client.actor(&user.username, user.role.as_str()), Kind::Logout, Outcome::Succeeded);
    audit_best_effort(&state, entry).await;
    tracing::info!(username = %user.username, "signed out");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
