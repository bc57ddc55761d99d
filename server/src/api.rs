//! `/api/v1`: the wire format of the console interface. Handlers only parse, bind the
//! caller and serialize; the rules live in [`ServerConsole`] and below.

use crate::audit::Filter;
use crate::auth::{self, AuthUser, MaybeAuthUser};
use crate::console::ServerConsole;
use crate::error::{AppError, Result};
use crate::request::Client;
use crate::state::AppState;
use app::dto::{
    ActionRecord, ActionResponse, AuditPage, AuditVerification, DependencyGraph, GatewayDetail, GatewaySummary,
    NewUser, ProbeRequest, ProbeResult, SyntheticHistory, UserSummary,
};
use axum::body::Body;
use axum::extract::Query;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::convert::Infallible;

/// Largest request body accepted (logins and settings are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The `/api/v1` routes.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/session", get(auth::current).post(auth::login).delete(auth::logout))
        .route("/gateways", get(gateways))
        .route("/gateways/{id}", get(gateway))
        .route("/gateways/{id}/logs", get(gateway_logs))
        .route("/logs", get(search_logs))
        .route("/logs/tail", get(tail_logs))
        .route("/events", get(events))
        .route("/users", get(users).post(create_user))
        .route("/fleet", get(fleet))
        .route("/dependencies", get(dependencies))
        .route("/probe", post(probe))
        .route("/synthetics", get(synthetics))
        .route("/gateways/{id}/actions/{action}", post(run_action))
        .route("/actions", get(list_actions))
        .route("/actions/{id}", get(get_action))
        .route("/actions/{id}/undo", post(undo_action))
        .route("/audit", get(audit_search))
        .route("/audit/verify", get(audit_verify))
        .route("/audit/export", get(audit_export))
        .route("/audit/{id}", get(audit_entry))
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

async fn dependencies(State(state): State<AppState>, user: AuthUser) -> Result<Json<DependencyGraph>> {
    Ok(Json(console(state, user).dependencies().await?))
}

async fn probe(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ProbeRequest>,
) -> Result<Json<ProbeResult>> {
    Ok(Json(console(state, user).probe(&body).await?))
}

async fn synthetics(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<SyntheticHistory>>> {
    Ok(Json(console(state, user).synthetics().await?))
}

async fn gateways(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<GatewaySummary>>> {
    Ok(Json(console(state, user).gateways().await?))
}

async fn gateway(State(state): State<AppState>, user: AuthUser, Path(id): Path<String>) -> Result<Json<GatewayDetail>> {
    Ok(Json(console(state, user).gateway(&id).await?))
}

async fn search_logs(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<app::dto::LogSearch>> {
    Ok(Json(console(state, user).search_logs(&query).await?))
}

/// `GET /api/v1/logs/tail?q=`: server-sent `line` events (a `LogHit` each) for every new
/// line matching `q`, and a `lagged` event (how many batches) when a slow client missed some.
async fn tail_logs(
    State(state): State<AppState>,
    user: AuthUser,
    session: tower_sessions::Session,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let q = query.get("q").map(String::as_str).unwrap_or("");
    let end = session_end(&state, &session);
    let stream = console(state, user).tail_logs(q)?.take_until(end).map(|event| {
        Ok(match event {
            crate::logs::TailEvent::Line(hit) => {
                Event::default().event("line").data(serde_json::to_string(&hit).unwrap_or_default())
            }
            crate::logs::TailEvent::Lagged(n) => Event::default().event("lagged").data(n.to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn gateway_logs(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<app::dto::PodLogs>> {
    let get = |k: &str| query.get(k).map(String::as_str);
    Ok(Json(console(state, user).gateway_logs(&id, get("tail"), get("since_seconds")).await?))
}

async fn users(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<UserSummary>>> {
    Ok(Json(console(state, user).users().await?))
}

async fn create_user(
    State(state): State<AppState>,
    user: MaybeAuthUser,
    client: Client,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserSummary>)> {
    // The role check comes before any validation, so a viewer learns nothing from 422s.
    let console = ServerConsole::new(state, user.0).with_client(client);
    Ok((StatusCode::CREATED, Json(console.create_user(new).await?)))
}

async fn fleet(State(state): State<AppState>, user: AuthUser) -> Result<Json<app::dto::FleetInfo>> {
    Ok(Json(console(state, user).fleet().await?))
}

async fn run_action(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path((gateway, action)): Path<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ActionResponse>)> {
    let response = console(state, user).with_client(client).act(&gateway, &action, body).await?;
    let status = if response.id.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(response)))
}

#[derive(Deserialize)]
struct ActionsQuery {
    gateway: Option<String>,
}

async fn list_actions(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ActionsQuery>,
) -> Result<Json<Vec<ActionRecord>>> {
    Ok(Json(console(state, user).actions(q.gateway.as_deref()).await?))
}

async fn get_action(State(state): State<AppState>, user: AuthUser, Path(id): Path<i64>) -> Result<Json<ActionRecord>> {
    Ok(Json(console(state, user).action(id).await?))
}

async fn undo_action(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ActionResponse>)> {
    Ok((StatusCode::ACCEPTED, Json(console(state, user).with_client(client).undo(id, body).await?)))
}

async fn audit_search(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>> {
    Ok(Json(console(state, user).audit_page(&q).await?))
}

async fn audit_entry(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<app::dto::AuditEntryDetail>> {
    Ok(Json(console(state, user).audit_entry(id).await?))
}

async fn audit_verify(State(state): State<AppState>, user: AuthUser) -> Result<Json<AuditVerification>> {
    Ok(Json(console(state, user).verify_audit().await?))
}

/// `GET /api/v1/audit/export?format=csv|jsonl`: every matching entry, oldest first,
/// streamed page by page so memory stays flat however long the ledger is.
async fn audit_export(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let filter = Filter::from_query(&q)?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("csv") => true,
        Some("jsonl") => false,
        Some(other) => return Err(AppError::invalid("format", format!("'{other}' is not csv or jsonl"))),
    };
    let entries = console(state, user).audit_export(filter)?;
    let lines = entries.map(move |e| {
        e.map(|e| {
            if csv {
                crate::audit::csv_line(&e)
            } else {
                format!("{}\n", serde_json::to_string(&e).unwrap_or_default())
            }
        })
        .map_err(|e| std::io::Error::other(format!("{e:?}")))
    });
    let body = if csv {
        Body::from_stream(futures::stream::once(async { Ok(crate::audit::CSV_HEADER.to_string()) }).chain(lines))
    } else {
        Body::from_stream(lines)
    };
    let (mime, ext) = if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/x-ndjson", "jsonl") };
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"gatewarden-audit.{ext}\"")),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/events`: a `snapshot` event with every gateway's numbers after each
/// fleet change (every simulated second), starting with the current one; an `action`
/// event with an action's record whenever it changes (progress, outcome, impact, undo);
/// an `audit` event with every new audit entry.
/// Resolves when the session signs out, or once it has been open as long as a session may
/// sit idle (the browser then reconnects with its cookie, and is refused if that has
/// expired): an event stream never outlives the session that opened it.
fn session_end(state: &AppState, session: &tower_sessions::Session) -> impl std::future::Future<Output = ()> + use<> {
    let id = session.id().map(|id| id.to_string());
    let mut sign_outs = state.sign_outs.subscribe();
    async move {
        let idle = tokio::time::sleep(std::time::Duration::from_secs(auth::IDLE_TIMEOUT_MINUTES as u64 * 60));
        let signed_out = async {
            loop {
                match sign_outs.recv().await {
                    Ok(s) if Some(&s) == id.as_ref() => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    _ => continue,
                }
            }
        };
        tokio::select! {
            _ = idle => {}
            _ = signed_out => {}
        }
    }
}

async fn events(
    _user: AuthUser,
    session: tower_sessions::Session,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let end = session_end(&state, &session);
    let snapshots = futures::stream::unfold((state.live.clone(), true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let json = rx.borrow_and_update().clone();
        Some((json, (rx, false)))
    })
    .filter_map(|json| async move { json.map(|j| Ok(Event::default().event("snapshot").data(&*j))) });
    let actions = relay(state.engine.subscribe(), "action");
    let audit = relay(state.ledger.subscribe(), "audit");
    let stream = futures::stream::select(snapshots, futures::stream::select(actions, audit)).take_until(end);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// SSE events named `event` from a broadcast of JSON texts. A client too slow to keep
/// up skips what it missed: action events carry whole records, and the audit page
/// re-reads the trail when asked.
fn relay(
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>,
    event: &'static str,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(json) => return Some((Ok(Event::default().event(event).data(&*json)), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
