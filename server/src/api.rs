//! `/api/v1`: the wire format of the console interface. Handlers only parse, bind the
//! caller and serialize; the rules live in [`ServerConsole`] and below.

use crate::auth::{self, AuthUser, MaybeAuthUser};
use crate::console::ServerConsole;
use crate::error::{AppError, Result};
use crate::state::AppState;
use app::dto::{GatewayDetail, GatewaySummary, NewUser, UserSummary};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router, middleware};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::convert::Infallible;

/// Largest request body accepted (logins and settings are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The `/api/v1` routes.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/session", get(auth::current).post(auth::login).delete(auth::logout))
        .route("/gateways", get(gateways))
        .route("/gateways/{id}", get(gateway))
        .route("/events", get(events))
        .route("/users", get(users).post(create_user))
        .fallback(|| async { AppError::NotFound("no such API endpoint".into()) })
        .layer(middleware::from_fn_with_state(state, auth::csrf_guard))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
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

fn console(state: AppState, user: AuthUser) -> ServerConsole {
    ServerConsole::new(state, Some(user))
}

async fn gateways(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<GatewaySummary>>> {
    Ok(Json(console(state, user).gateways().await?))
}

async fn gateway(State(state): State<AppState>, user: AuthUser, Path(id): Path<String>) -> Result<Json<GatewayDetail>> {
    Ok(Json(console(state, user).gateway(&id).await?))
}

async fn users(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<UserSummary>>> {
    Ok(Json(console(state, user).users().await?))
}

async fn create_user(
    State(state): State<AppState>,
    user: MaybeAuthUser,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserSummary>)> {
    // The role check comes before any validation, so a viewer learns nothing from 422s.
    let console = ServerConsole::new(state, user.0);
    Ok((StatusCode::CREATED, Json(console.create_user(new).await?)))
}

/// `GET /api/v1/events`: a `snapshot` event with every gateway's numbers after each
/// fleet change (every simulated second), starting with the current one.
async fn events(_user: AuthUser, State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((state.live.clone(), true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let json = rx.borrow_and_update().clone();
        Some((json, (rx, false)))
    })
    .filter_map(|json| async move { json.map(|j| Ok(Event::default().event("snapshot").data(&*j))) });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
