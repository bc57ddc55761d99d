//! What handlers extract from a request: its id (echoed as `x-request-id`), where it
//! came from (for the audit trail), a JSON body whose rejections are API errors, and the
//! signed-in user.

use crate::audit::Client;
use crate::auth::{ABSOLUTE_TIMEOUT_MS, AuthUser, MaybeAuthUser, SESSION_KEY, SessionData};
use crate::db::now_ms;
use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::users;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::net::SocketAddr;
use tower_sessions::Session;

/// The id of the current request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Gives every request an id and returns it in `x-request-id`.
pub async fn assign_id(mut req: Request, next: Next) -> Response {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Where a request came from, read from its parts: the peer address, the user agent
/// (at most 256 characters) and the request id.
pub fn client_of(parts: &Parts) -> Client {
    Client {
        addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip().to_string())
            .unwrap_or_default(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect())
            .unwrap_or_default(),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, Infallible> {
        Ok(client_of(parts))
    }
}

/// JSON body extractor whose rejections (bad JSON, wrong content type, too large, wrong
/// fields) are the API's JSON errors with axum's explanation.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(AppError::BadRequest { status: rejection.status(), message: rejection.body_text() }),
        }
    }
}

async fn session_of(parts: &mut Parts, state: &AppState) -> Result<Session> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, msg)| AppError::Internal(format!("session layer missing: {msg}")))
}

/// The signed-in user of `session`, if any: ends sessions past their absolute limit or
/// whose account is gone.
async fn resolve(session: &Session, state: &AppState) -> Result<Option<AuthUser>> {
    let data: Option<SessionData> =
        session.get(SESSION_KEY).await.map_err(|e| AppError::Internal(format!("session load: {e}")))?;
    let Some(data) = data else { return Ok(None) };
    if now_ms() - data.login_at_ms > ABSOLUTE_TIMEOUT_MS {
        session.flush().await.map_err(|e| AppError::Internal(format!("session flush: {e}")))?;
        return Ok(None);
    }
    match users::find_by_id(&state.db, data.user_id).await? {
        Some(u) => Ok(Some(AuthUser { id: u.id, username: u.username, role: u.role, csrf: data.csrf })),
        None => {
            // The account was removed: end its sessions as they show up.
            session.flush().await.map_err(|e| AppError::Internal(format!("session flush: {e}")))?;
            Ok(None)
        }
    }
}

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if let Some(cached) = parts.extensions.get::<MaybeAuthUser>() {
            return Ok(cached.clone());
        }
        let session = session_of(parts, state).await?;
        let user = MaybeAuthUser(resolve(&session, state).await?);
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        MaybeAuthUser::from_request_parts(parts, state).await?.0.ok_or(AppError::Unauthorized)
    }
}
