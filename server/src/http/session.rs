//! The `/api/v1/session` endpoints and the sign-in form: cookies, redirects, answers.

use super::extract::{ApiJson, ClientAddr};
use crate::audit::{Client, Kind, NewEntry, Outcome};

use crate::accounts::store as users;
use crate::auth::{AuthUser, SESSION_KEY, SessionData, random_token};
use crate::db::now_ms;
use crate::error::{AppError, Result};
use crate::state::AppState;
use app::dto::{LoginRequest, SessionInfo};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::net::IpAddr;
use tower_sessions::Session;

/// Checks credentials (the accounts' rules) and starts a session.
async fn authenticate(
    state: &AppState,
    client: &Client,
    addr: IpAddr,
    session: &Session,
    req: LoginRequest,
) -> Result<SessionInfo> {
    let user = state.accounts.sign_in_with_password(client, addr, req).await?;
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
    form: std::result::Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return AppError::Forbidden("cross-site sign-in refused".into()).into_response();
    }
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            return super::extract::body_refused(rejection.status(), rejection.body_text()).into_response();
        }
    };
    let next = super::pages::safe_next(&form.next);
    let again = |failed: &str| {
        let back = next.as_deref().map_or(String::new(), |n| {
            format!("&next={}", form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>())
        });
        Redirect::to(&format!("/login?failed={failed}{back}")).into_response()
    };
    let req = LoginRequest { username: form.username, password: form.password };
    match authenticate(&state, &client, addr, &session, req).await {
        Ok(_) => Redirect::to(next.as_deref().unwrap_or("/")).into_response(),
        Err(AppError::InvalidCredentials) => again("credentials"),
        Err(AppError::TooManyRequests { .. }) => again("throttled"),
        Err(AppError::Forbidden(m)) if m == crate::accounts::LOCAL_OFF => again("local-off"),
        Err(AppError::Forbidden(_)) => again("disabled"),
        Err(e) => e.into_response(),
    }
}

/// The sign-in form's fields: the credentials, and the page to go back to.
#[derive(serde::Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
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
