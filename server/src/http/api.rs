//! `/api/v1`: the wire format of the console interface. Handlers only parse, bind the
//! caller and serialize; the rules live in [`ServerConsole`] and below.

use super::extract::ApiJson;
use super::{session, sse};
use crate::audit::{Client, Filter};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::console::ServerConsole;
use crate::error::{AppError, Result};
use crate::params::Params;
use crate::state::AppState;
use app::dto::{
    ActionRecord, ActionResponse, AuditPage, AuditVerification, DependencyGraph, GatewayDetail, GatewaySummary,
    NewUser, ProbeRequest, ProbeResult, SyntheticHistory, UserSummary,
};
use axum::body::Body;
use axum::extract::Query;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;

/// Largest request body accepted (logins and settings are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The `/api/v1` routes.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/session", get(session::current).post(session::login).delete(session::logout))
        .route("/gateways", get(gateways))
        .route("/gateways/{id}", get(gateway))
        .route("/gateways/{id}/logs", get(gateway_logs))
        .route("/logs", get(search_logs))
        .route("/logs/tail", get(sse::tail_logs))
        .route("/events", get(sse::events))
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
        .layer(middleware::from_fn_with_state(state, session::csrf_guard))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Answers are per user and per moment: never kept by a browser or a proxy.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
}

pub(super) fn console(state: AppState, user: AuthUser) -> ServerConsole {
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
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<app::dto::LogSearch>> {
    Ok(Json(console(state, user).search_logs(&Params::from(query)).await?))
}

async fn gateway_logs(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<app::dto::PodLogs>> {
    Ok(Json(console(state, user).gateway_logs(&id, &Params::from(query)).await?))
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
    Ok(Json(console(state, user).audit_page(&Params::from(q)).await?))
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
    let q = Params::from(q);
    let filter = Filter::from_query(&q)?;
    let csv = match q.text("format") {
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
