//! What handlers extract from a request: its id (echoed as `x-request-id`), where it
//! came from (for the audit trail), a JSON body whose rejections are API errors, the
//! signed-in user, and the caller's [`Console`].

use crate::accounts::store as users;
use crate::audit::Client;
use crate::auth::{ABSOLUTE_TIMEOUT_MS, AuthUser, MaybeAuthUser, SESSION_KEY, SessionData, TOUCH_EVERY_MS};
use crate::console::ServerConsole;
use crate::db::now_ms;
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use rand::RngCore;
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower_sessions::Session;

/// The id of the current request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The route a response answered, as its template (`/api/v1/gateways/{id}`), set by the
/// route's own layer; other requests are labelled by [`route_label`].
#[derive(Clone, Debug)]
pub struct RouteLabel(pub Arc<str>);

/// Who made the request, once its session was read (for the request log).
#[derive(Clone, Debug, Default)]
pub struct RequestUser(Arc<std::sync::OnceLock<String>>);

/// The label of a request no route named: a few fixed paths, the site's files, an API
/// path that matched no route, or a page. Never the path itself, so the metrics' label
/// values stay few whatever clients ask for.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/sim/metrics" => "/sim/metrics",
        "/login" => "/login",
        p if p.starts_with("/api/") => "/api/v1 (no such route)",
        p if p.starts_with("/pkg/") => "/pkg/*",
        _ => "page",
    }
}

/// Gives every request an id and returns it in `x-request-id`; counts it in the
/// console's metrics by route and status, and logs it (id, user, route, status, latency).
pub async fn assign_id(mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    req.extensions_mut().insert(RequestId(id.clone()));
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let method = req.method().clone();
    let fallback = route_label(req.uri().path());
    let mut response = next.run(req).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let route = response.extensions().get::<RouteLabel>().map(|r| r.0.clone());
    let route = route.as_deref().unwrap_or(fallback);
    crate::metrics::get().request(route, method.as_str(), status, latency.as_secs_f64());
    tracing::info!(
        target: "gatewarden::request",
        request_id = %id,
        user = user.0.get().map_or("", String::as_str),
        method = %method,
        route,
        status,
        latency_ms = (latency.as_secs_f64() * 1e4).round() / 10.0,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy
/// (`--trusted-proxy`), the right-most `X-Forwarded-For` hop that is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The right-most untrusted hop: `peer`, then each `X-Forwarded-For` entry from the
/// right, for as long as the hop so far is a trusted proxy. An entry that is not an
/// address ends the walk (the hop before it stands).
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let mut hop = peer;
    let mut hops = forwarded_for.iter().rev().flat_map(|v| v.rsplit(',')).map(str::trim);
    while trusted.iter().any(|net| net.contains(&hop)) {
        match hops.next().and_then(|h| h.parse::<IpAddr>().ok()) {
            Some(next) => hop = next,
            None => break,
        }
    }
    hop
}

/// Resolves every request's [`ClientAddr`] once, for throttling and the audit trail.
pub async fn resolve_client(State(trusted): State<Arc<[IpNet]>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    if let Some(peer) = peer {
        let forwarded: Vec<&str> =
            req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let addr = client_address(peer, &forwarded, &trusted);
        req.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, Infallible> {
        Ok(client_addr_of(parts))
    }
}

fn client_addr_of(parts: &Parts) -> ClientAddr {
    parts.extensions.get::<ClientAddr>().copied().unwrap_or_else(|| {
        ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(a)| a.ip()),
        )
    })
}

/// Where a request came from, read from its parts: the client address (see
/// [`ClientAddr`]), the user agent (at most 256 characters) and the request id.
pub fn client_of(parts: &Parts) -> Client {
    Client {
        addr: client_addr_of(parts).0.to_string(),
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
            Err(rejection) => Err(body_refused(rejection.status(), rejection.body_text())),
        }
    }
}

/// Largest request body accepted (logins and settings are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest sign-in body (JSON or form), before anyone is known: a name of 64 characters
/// and a password of 1,024 bytes fit with room for escapes.
pub const SIGN_IN_BODY_LIMIT: usize = 8 * 1024;

/// A body the server would not read, saying which bound when it was too large.
pub fn body_refused(status: axum::http::StatusCode, text: String) -> AppError {
    let message = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "request body too large: a sign-in may be at most {} bytes, any other request {} bytes",
            SIGN_IN_BODY_LIMIT, BODY_LIMIT
        )
    } else {
        text
    };
    AppError::BadRequest { status, message }
}

/// Path parameters whose rejections (an id that is not a number) are the API's JSON
/// errors: 400 naming the parameter.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(bad_request(rejection.body_text())),
        }
    }
}

/// A query string whose rejections (bad percent-encoding) are the API's JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(bad_request(rejection.body_text())),
        }
    }
}

/// An extractor's rejection as the API's JSON 400, its text saying what was wrong.
fn bad_request(message: String) -> AppError {
    AppError::BadRequest { status: axum::http::StatusCode::BAD_REQUEST, message }
}

async fn session_of(parts: &mut Parts, state: &AppState) -> Result<Session> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, msg)| AppError::Internal(format!("session layer missing: {msg}")))
}

/// The signed-in user of `session`, if any: ends sessions past their absolute limit,
/// whose account is gone or disabled, or that were ended since they signed in.
async fn resolve(session: &Session, state: &AppState) -> Result<Option<AuthUser>> {
    let data: Option<SessionData> =
        session.get(SESSION_KEY).await.map_err(|e| AppError::Internal(format!("session load: {e}")))?;
    let Some(mut data) = data else { return Ok(None) };
    let now = now_ms();
    if now - data.login_at_ms > ABSOLUTE_TIMEOUT_MS {
        session.flush().await.map_err(|e| AppError::Internal(format!("session flush: {e}")))?;
        return Ok(None);
    }
    if now - data.touched_ms >= TOUCH_EVERY_MS {
        // Changing the session makes the layer save it, which moves its expiry (the idle
        // timeout) to now + IDLE_TIMEOUT_MINUTES; at most one store write a minute.
        data.touched_ms = now;
        session.insert(SESSION_KEY, &data).await.map_err(|e| AppError::Internal(format!("session touch: {e}")))?;
    }
    match users::find_by_id(&state.db, data.user_id).await? {
        Some(u) if u.disabled_at_ms.is_none() && u.session_epoch == data.epoch => {
            Ok(Some(AuthUser { id: u.id, username: u.username, role: u.role, csrf: data.csrf }))
        }
        _ => {
            // The account was removed or disabled, or its sessions were ended (a password
            // reset, a revocation) after this one signed in: end it as it shows up.
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
        if let (Some(u), Some(slot)) = (&user.0, parts.extensions.get::<RequestUser>()) {
            let _ = slot.0.set(u.username.clone());
        }
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

/// The caller's console: the signed-in user (401 without one) and where the request came
/// from, bound to the services. Every `/api/v1` handler takes this and at most one body;
/// the role check is the console's, and a body is parsed only after it.
pub struct Console(pub ServerConsole);

impl FromRequestParts<AppState> for Console {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        Ok(Console(ServerConsole::new(state.clone(), Some(user)).with_client(client_of(parts))))
    }
}

impl std::ops::Deref for Console {
    type Target = ServerConsole;
    fn deref(&self) -> &ServerConsole {
        &self.0
    }
}
