//! `/api/v1`: the wire format of the console interface. Handlers only parse, bind the
//! caller and serialize; the rules live in [`ServerConsole`] and below.

use super::extract::ApiJson;
use super::{session, sse};
use crate::audit::{Client, Filter};
use crate::auth::AuthUser;
use crate::console::ServerConsole;
use crate::error::{AppError, Result};
use crate::params::Params;
use crate::state::AppState;
use app::dto::Role;
use app::dto::{
    ActionRecord, ActionResponse, AuditPage, AuditVerification, DependencyGraph, GatewayDetail, GatewaySummary,
    ProbeRequest, ProbeResult, SyntheticHistory, UserSummary,
};
use axum::body::Body;
use axum::extract::Query;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router, middleware};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (signing in).
    Anyone,
    /// A signed-in user with at least this role. For a mitigation (and its undo) the
    /// role depends on the action: this is the lowest any action needs.
    AtLeast(Role),
}

/// One route of `/api/v1`: the router is built from this table, and the role test reads
/// it, so a route cannot be added without saying who may call it.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path under `/api/v1`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, access: Access, handler: MethodRouter<AppState>) -> Route {
    Route { method, path, access, handler }
}

/// Every `/api/v1` route.
pub fn table() -> Vec<Route> {
    use Access::{Anyone, AtLeast};
    use Role::{Admin, Responder, Viewer};
    vec![
        route(Method::GET, "/session", AtLeast(Viewer), get(session::current)),
        route(Method::POST, "/session", Anyone, post(session::login)),
        route(Method::DELETE, "/session", AtLeast(Viewer), delete(session::logout)),
        route(Method::GET, "/gateways", AtLeast(Viewer), get(gateways)),
        route(Method::GET, "/gateways/{id}", AtLeast(Viewer), get(gateway)),
        route(Method::GET, "/gateways/{id}/logs", AtLeast(Viewer), get(gateway_logs)),
        route(Method::GET, "/logs", AtLeast(Viewer), get(search_logs)),
        route(Method::GET, "/logs/tail", AtLeast(Viewer), get(sse::tail_logs)),
        route(Method::GET, "/events", AtLeast(Viewer), get(sse::events)),
        route(Method::GET, "/users", AtLeast(Admin), get(users)),
        route(Method::POST, "/users", AtLeast(Admin), post(create_user)),
        route(Method::PATCH, "/users/{username}", AtLeast(Admin), patch(update_user)),
        route(Method::POST, "/users/{username}/password", AtLeast(Admin), post(reset_password)),
        route(Method::POST, "/users/{username}/revoke-sessions", AtLeast(Admin), post(revoke_sessions)),
        route(Method::PUT, "/session/password", AtLeast(Viewer), put(session::change_password)),
        route(Method::GET, "/fleet", AtLeast(Viewer), get(fleet)),
        route(Method::GET, "/replicas", AtLeast(Viewer), get(replicas)),
        route(Method::GET, "/dependencies", AtLeast(Viewer), get(dependencies)),
        route(Method::POST, "/probe", AtLeast(Viewer), post(probe)),
        route(Method::GET, "/synthetics", AtLeast(Viewer), get(synthetics)),
        route(Method::POST, "/gateways/{id}/actions/{action}", AtLeast(Responder), post(run_action)),
        route(Method::GET, "/actions", AtLeast(Viewer), get(list_actions)),
        route(Method::GET, "/actions/{id}", AtLeast(Viewer), get(get_action)),
        route(Method::POST, "/actions/{id}/undo", AtLeast(Responder), post(undo_action)),
        route(Method::GET, "/audit", AtLeast(Viewer), get(audit_search)),
        route(Method::GET, "/audit/verify", AtLeast(Viewer), get(audit_verify)),
        route(Method::GET, "/audit/export", AtLeast(Viewer), get(audit_export)),
        route(Method::GET, "/audit/{id}", AtLeast(Viewer), get(audit_entry)),
        route(Method::GET, "/approvals", AtLeast(Viewer), get(list_approvals)),
        route(Method::GET, "/approvals/{id}", AtLeast(Viewer), get(get_approval)),
        route(Method::POST, "/approvals/{id}/approve", AtLeast(Responder), post(decide("approve"))),
        route(Method::POST, "/approvals/{id}/deny", AtLeast(Responder), post(decide("deny"))),
        route(Method::POST, "/approvals/{id}/review", AtLeast(Responder), post(decide("review"))),
        route(Method::POST, "/incidents", AtLeast(Responder), post(declare_incident)),
        route(Method::GET, "/incidents", AtLeast(Viewer), get(list_incidents)),
        route(Method::GET, "/incidents/{id}", AtLeast(Viewer), get(get_incident)),
        route(Method::PATCH, "/incidents/{id}", AtLeast(Responder), patch(update_incident)),
        route(Method::POST, "/incidents/{id}/notes", AtLeast(Responder), post(note_incident)),
        route(Method::POST, "/incidents/{id}/pins", AtLeast(Responder), post(pin_line)),
        route(Method::GET, "/incidents/{id}/timeline", AtLeast(Viewer), get(incident_timeline)),
        route(Method::GET, "/incidents/{id}/postmortem.json", AtLeast(Viewer), get(postmortem_json)),
        route(Method::GET, "/incidents/{id}/checklist", AtLeast(Viewer), get(checklist)),
        route(Method::POST, "/incidents/{id}/checklist/{step}", AtLeast(Responder), post(mark_step)),
        route(Method::GET, "/incidents/{id}/postmortem.md", AtLeast(Viewer), get(postmortem_md)),
        route(Method::PUT, "/incidents/{id}/timeline/{entry}/star", AtLeast(Responder), put(star_entry)),
        route(Method::DELETE, "/incidents/{id}/timeline/{entry}/star", AtLeast(Responder), delete(unstar_entry)),
    ]
}

/// Largest request body accepted (logins and settings are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Routes whose answers carry a secret (the session's CSRF token): never compressed, so
/// the size of an answer that also reflects a request's input cannot reveal it (BREACH).
pub const SECRET_BEARING: &[&str] = &["/session"];

/// The `/api/v1` routes.
pub fn router(state: AppState) -> Router<AppState> {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in table() {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(route.handler),
            None => by_path.push((route.path, route.handler)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            // Compressed (brotli or gzip, as the client accepts; event streams never),
            // except answers that carry a secret beside what a request sent (BREACH).
            let methods = if SECRET_BEARING.contains(&path) {
                methods
            } else {
                methods.layer(tower_http::compression::CompressionLayer::new())
            };
            // The route's template names it in the metrics and the request log.
            let label = super::extract::RouteLabel(std::sync::Arc::from(format!("/api/v1{path}")));
            let methods = methods.layer(axum::middleware::map_response(move |mut response: Response| {
                let label = label.clone();
                async move {
                    response.extensions_mut().insert(label);
                    response
                }
            }));
            router.route(path, methods)
        })
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
    user: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<UserSummary>)> {
    // Any JSON is read here; its fields only after the role check, so a viewer learns
    // nothing from 422s (and an anonymous caller gets 401 before the body is read).
    let console = ServerConsole::new(state, Some(user)).with_client(client);
    Ok((StatusCode::CREATED, Json(console.create_user(body).await?)))
}

async fn update_user(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<UserSummary>> {
    Ok(Json(console(state, user).with_client(client).update_user(&username, body).await?))
}

async fn reset_password(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<app::dto::PasswordReset>> {
    Ok(Json(console(state, user).with_client(client).reset_password(&username, body).await?))
}

async fn revoke_sessions(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<app::dto::SessionsRevoked>> {
    Ok(Json(console(state, user).with_client(client).revoke_sessions(&username, body).await?))
}

/// The console's replicas running now, oldest first, and which one leads.
async fn replicas(State(state): State<AppState>, _user: AuthUser) -> Result<Json<Vec<crate::replicas::ReplicaInfo>>> {
    Ok(Json(state.replicas.list().await?))
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
    let status =
        if response.id.is_some() || response.approval.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
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
    let response = console(state, user).with_client(client).undo(id, body).await?;
    let status =
        if response.id.is_some() || response.approval.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(response)))
}

async fn audit_search(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>> {
    Ok(Json(console(state, user).audit_page(&Params::from(q)).await?))
}

async fn list_approvals(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<app::dto::ApprovalList>> {
    Ok(Json(console(state, user).approvals(&Params::from(q)).await?))
}

async fn get_approval(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<app::dto::Approval>> {
    Ok(Json(console(state, user).approval(id).await?))
}

/// What deciding an approval answers.
type Decided = futures::future::BoxFuture<'static, Result<Json<app::dto::Approval>>>;

/// `POST /api/v1/approvals/{id}/approve | deny | review`: one handler for the three.
fn decide(
    how: &'static str,
) -> impl Fn(State<AppState>, AuthUser, Client, Path<i64>, ApiJson<serde_json::Value>) -> Decided + Clone + Send + Sync
{
    move |State(state), user, client, Path(id), ApiJson(body)| {
        Box::pin(async move { Ok(Json(console(state, user).with_client(client).decide(id, how, body).await?)) })
    }
}

async fn declare_incident(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<app::dto::Incident>)> {
    Ok((StatusCode::CREATED, Json(console(state, user).with_client(client).declare_incident(body).await?)))
}

async fn list_incidents(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<app::dto::IncidentList>> {
    Ok(Json(console(state, user).incidents(&Params::from(q)).await?))
}

async fn get_incident(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<app::dto::Incident>> {
    Ok(Json(console(state, user).incident(id).await?))
}

async fn update_incident(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<app::dto::Incident>> {
    Ok(Json(console(state, user).with_client(client).update_incident(id, body).await?))
}

async fn note_incident(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<app::dto::AuditEntry>)> {
    Ok((StatusCode::CREATED, Json(console(state, user).with_client(client).note_incident(id, body).await?)))
}

async fn pin_line(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<app::dto::AuditEntry>)> {
    Ok((StatusCode::CREATED, Json(console(state, user).with_client(client).pin_line(id, body).await?)))
}

async fn incident_timeline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<app::dto::Timeline>> {
    Ok(Json(console(state, user).incident_timeline(id).await?))
}

async fn checklist(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<app::dto::Checklist>> {
    Ok(Json(console(state, user).checklist(id).await?))
}

async fn mark_step(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path((id, step)): Path<(i64, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<app::dto::Checklist>> {
    Ok(Json(console(state, user).with_client(client).mark_step(id, &step, body).await?))
}

async fn postmortem_json(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<app::dto::Postmortem>> {
    Ok(Json(console(state, user).postmortem(id).await?))
}

async fn postmortem_md(State(state): State<AppState>, user: AuthUser, Path(id): Path<i64>) -> Result<Response> {
    let postmortem = console(state, user).postmortem(id).await?;
    let name = format!("attachment; filename=\"{}-postmortem.md\"", postmortem.incident.key);
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)],
        crate::incidents::postmortem::markdown(&postmortem),
    )
        .into_response())
}

async fn star_entry(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path((id, entry)): Path<(i64, i64)>,
) -> Result<StatusCode> {
    console(state, user).with_client(client).star_incident_entry(id, entry, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unstar_entry(
    State(state): State<AppState>,
    user: AuthUser,
    client: Client,
    Path((id, entry)): Path<(i64, i64)>,
) -> Result<StatusCode> {
    console(state, user).with_client(client).star_incident_entry(id, entry, false).await?;
    Ok(StatusCode::NO_CONTENT)
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
