//! `/api/v1`: the wire format of the console interface. Handlers only parse, bind the
//! caller and serialize; the rules live in [`ServerConsole`] and below.

use super::extract::ApiJson;
// Path parameters' rejections are JSON errors like every other.
use super::extract::ApiPath as Path;
use super::extract::ApiQuery as Query;
use super::openapi::{Doc, Shape, json};
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
use axum::extract::{DefaultBodyLimit, State};
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

/// One route of `/api/v1`: the router is built from this table, and the role test and
/// the OpenAPI document read it, so a route cannot be added without saying who may call
/// it and what it takes and answers.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path under `/api/v1`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it takes and answers.
    pub doc: Doc,
    handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, access: Access, handler: MethodRouter<AppState>, doc: Doc) -> Route {
    Route { method, path, access, doc, handler }
}

/// A change: takes `body`, answers `status` with `answer`.
const fn change(summary: &'static str, body: Shape, status: &'static str, answer: Shape) -> Doc {
    Doc { summary, body, status, answer, query: &[] }
}

/// A read with query parameters.
const fn read(summary: &'static str, answer: Shape, query: &'static [(&'static str, &'static str)]) -> Doc {
    Doc { summary, body: Shape::Empty, status: "200", answer, query }
}

/// Every `/api/v1` route.
pub fn table() -> Vec<Route> {
    use Access::{Anyone, AtLeast};
    use Role::{Admin, Responder, Viewer};
    use Shape::{Empty, Events, Object, Text};
    use app::dto as d;
    const AUDIT_QUERY: &[(&str, &str)] = &[
        ("actor", "string"),
        ("action", "string"),
        ("target", "string"),
        ("outcome", "string"),
        ("incident", "string"),
        ("kind", "string"),
        ("since", "string"),
        ("until", "string"),
        ("q", "string"),
        ("limit", "integer"),
        ("cursor", "string"),
    ];
    vec![
        route(
            Method::GET,
            "/session",
            AtLeast(Viewer),
            get(session::current),
            Doc::get("Who is signed in", json::<d::SessionInfo>()),
        ),
        route(
            Method::POST,
            "/session",
            Anyone,
            post(session::login),
            change("Sign in", json::<d::LoginRequest>(), "200", json::<d::SessionInfo>()),
        ),
        route(
            Method::DELETE,
            "/session",
            AtLeast(Viewer),
            delete(session::logout),
            change("Sign out", Empty, "204", Empty),
        ),
        route(
            Method::GET,
            "/gateways",
            AtLeast(Viewer),
            get(gateways),
            Doc::get("Every gateway's health", json::<Vec<GatewaySummary>>()),
        ),
        route(
            Method::GET,
            "/gateways/{id}",
            AtLeast(Viewer),
            get(gateway),
            Doc::get("One gateway: series, instances, policy", json::<GatewayDetail>()),
        ),
        route(
            Method::GET,
            "/gateways/{id}/logs",
            AtLeast(Viewer),
            get(gateway_logs),
            read(
                "A gateway's pods' logs (Kubernetes)",
                json::<d::PodLogs>(),
                &[("tail", "integer"), ("since_seconds", "integer")],
            ),
        ),
        route(
            Method::GET,
            "/logs",
            AtLeast(Viewer),
            get(search_logs),
            read(
                "Log search across every instance",
                json::<d::LogSearch>(),
                &[
                    ("q", "string"),
                    ("since", "string"),
                    ("until", "string"),
                    ("limit", "integer"),
                    ("cursor", "string"),
                ],
            ),
        ),
        route(
            Method::GET,
            "/logs/tail",
            AtLeast(Viewer),
            get(sse::tail_logs),
            read("New matching log lines (server-sent events)", Events, &[("q", "string")]),
        ),
        route(
            Method::GET,
            "/events",
            AtLeast(Viewer),
            get(sse::events),
            Doc::get("The live feed (server-sent events)", Events),
        ),
        route(Method::GET, "/users", AtLeast(Admin), get(users), Doc::get("Every account", json::<Vec<UserSummary>>())),
        route(
            Method::POST,
            "/users",
            AtLeast(Admin),
            post(create_user),
            change("Create an account", json::<d::NewUser>(), "201", json::<UserSummary>()),
        ),
        route(
            Method::PATCH,
            "/users/{username}",
            AtLeast(Admin),
            patch(update_user),
            change(
                "Change an account's role, or disable or enable it",
                json::<d::UserUpdate>(),
                "200",
                json::<UserSummary>(),
            ),
        ),
        route(
            Method::POST,
            "/users/{username}/password",
            AtLeast(Admin),
            post(reset_password),
            change(
                "Reset a local account's password (shown once)",
                json::<d::ReasonBody>(),
                "200",
                json::<d::PasswordReset>(),
            ),
        ),
        route(
            Method::POST,
            "/users/{username}/revoke-sessions",
            AtLeast(Admin),
            post(revoke_sessions),
            change("End an account's sessions", json::<d::ReasonBody>(), "200", json::<d::SessionsRevoked>()),
        ),
        route(
            Method::PUT,
            "/session/password",
            AtLeast(Viewer),
            put(session::change_password),
            change("Change your own password", json::<d::PasswordChange>(), "204", Empty),
        ),
        route(
            Method::GET,
            "/fleet",
            AtLeast(Viewer),
            get(fleet),
            Doc::get("Which backend, and the training scenario", json::<d::FleetInfo>()),
        ),
        route(
            Method::GET,
            "/replicas",
            AtLeast(Viewer),
            get(replicas),
            Doc::get("The console's replicas, and which leads", json::<Vec<crate::replicas::ReplicaInfo>>()),
        ),
        route(
            Method::GET,
            "/dependencies",
            AtLeast(Viewer),
            get(dependencies),
            Doc::get("Gateways, routes and services, with health", json::<DependencyGraph>()),
        ),
        route(
            Method::POST,
            "/probe",
            AtLeast(Viewer),
            post(probe),
            change(
                "One timed request to a gateway path or an allowed URL",
                json::<ProbeRequest>(),
                "200",
                json::<ProbeResult>(),
            ),
        ),
        route(
            Method::GET,
            "/synthetics",
            AtLeast(Viewer),
            get(synthetics),
            Doc::get("Recent scheduled checks", json::<Vec<SyntheticHistory>>()),
        ),
        route(
            Method::POST,
            "/gateways/{id}/actions/{action}",
            AtLeast(Responder),
            post(run_action),
            change("Run (or preview) a mitigation", Object, "2XX", json::<ActionResponse>()),
        ),
        route(
            Method::GET,
            "/actions",
            AtLeast(Viewer),
            get(list_actions),
            read("Recent actions", json::<Vec<ActionRecord>>(), &[("gateway", "string")]),
        ),
        route(
            Method::GET,
            "/actions/{id}",
            AtLeast(Viewer),
            get(get_action),
            Doc::get("One action", json::<ActionRecord>()),
        ),
        route(
            Method::POST,
            "/actions/{id}/undo",
            AtLeast(Responder),
            post(undo_action),
            change("Undo an action", Object, "2XX", json::<ActionResponse>()),
        ),
        route(
            Method::GET,
            "/audit",
            AtLeast(Viewer),
            get(audit_search),
            read("Search the audit trail", json::<AuditPage>(), AUDIT_QUERY),
        ),
        route(
            Method::GET,
            "/audit/verify",
            AtLeast(Viewer),
            get(audit_verify),
            Doc::get("Check the ledger's chain, signatures and checkpoint", json::<AuditVerification>()),
        ),
        route(
            Method::GET,
            "/audit/export",
            AtLeast(Viewer),
            get(audit_export),
            read("Export the audit trail", Text("text/csv"), &[("format", "string")]),
        ),
        route(
            Method::GET,
            "/audit/{id}",
            AtLeast(Viewer),
            get(audit_entry),
            Doc::get("One audit entry", json::<d::AuditEntryDetail>()),
        ),
        route(
            Method::GET,
            "/approvals",
            AtLeast(Viewer),
            get(list_approvals),
            read("Approval requests", json::<d::ApprovalList>(), &[("status", "string"), ("for", "string")]),
        ),
        route(
            Method::GET,
            "/approvals/{id}",
            AtLeast(Viewer),
            get(get_approval),
            Doc::get("One approval request", json::<d::Approval>()),
        ),
        route(
            Method::POST,
            "/approvals/{id}/approve",
            AtLeast(Responder),
            post(decide("approve")),
            change("Approve (and run) a request", Object, "200", json::<d::Approval>()),
        ),
        route(
            Method::POST,
            "/approvals/{id}/deny",
            AtLeast(Responder),
            post(decide("deny")),
            change("Deny a request", Object, "200", json::<d::Approval>()),
        ),
        route(
            Method::POST,
            "/approvals/{id}/review",
            AtLeast(Responder),
            post(decide("review")),
            change("Review a break-glass run", Object, "200", json::<d::Approval>()),
        ),
        route(
            Method::POST,
            "/incidents",
            AtLeast(Responder),
            post(declare_incident),
            change("Declare an incident", Object, "201", json::<d::Incident>()),
        ),
        route(
            Method::GET,
            "/incidents",
            AtLeast(Viewer),
            get(list_incidents),
            read(
                "Incidents",
                json::<d::IncidentList>(),
                &[("status", "string"), ("severity", "string"), ("gateway", "string"), ("open", "boolean")],
            ),
        ),
        route(
            Method::GET,
            "/incidents/{id}",
            AtLeast(Viewer),
            get(get_incident),
            Doc::get("One incident", json::<d::Incident>()),
        ),
        route(
            Method::PATCH,
            "/incidents/{id}",
            AtLeast(Responder),
            patch(update_incident),
            change("Change an incident's status, severity, summary or roles", Object, "200", json::<d::Incident>()),
        ),
        route(
            Method::POST,
            "/incidents/{id}/notes",
            AtLeast(Responder),
            post(note_incident),
            change("Add a note to the timeline", Object, "201", json::<d::AuditEntry>()),
        ),
        route(
            Method::POST,
            "/incidents/{id}/pins",
            AtLeast(Responder),
            post(pin_line),
            change("Pin a log line to the timeline", Object, "201", json::<d::AuditEntry>()),
        ),
        route(
            Method::GET,
            "/incidents/{id}/timeline",
            AtLeast(Viewer),
            get(incident_timeline),
            Doc::get("An incident's timeline", json::<d::Timeline>()),
        ),
        route(
            Method::GET,
            "/incidents/{id}/postmortem.json",
            AtLeast(Viewer),
            get(postmortem_json),
            Doc::get("The postmortem", json::<d::Postmortem>()),
        ),
        route(
            Method::GET,
            "/incidents/{id}/checklist",
            AtLeast(Viewer),
            get(checklist),
            Doc::get("The runbook checklist", json::<d::Checklist>()),
        ),
        route(
            Method::POST,
            "/incidents/{id}/checklist/{step}",
            AtLeast(Responder),
            post(mark_step),
            change("Tick a runbook step", Object, "200", json::<d::Checklist>()),
        ),
        route(
            Method::GET,
            "/incidents/{id}/postmortem.md",
            AtLeast(Viewer),
            get(postmortem_md),
            Doc::get("The postmortem in Markdown", Text("text/markdown")),
        ),
        route(
            Method::PUT,
            "/incidents/{id}/timeline/{entry}/star",
            AtLeast(Responder),
            put(star_entry),
            change("Star a timeline entry", Empty, "204", Empty),
        ),
        route(
            Method::DELETE,
            "/incidents/{id}/timeline/{entry}/star",
            AtLeast(Responder),
            delete(unstar_entry),
            change("Unstar a timeline entry", Empty, "204", Empty),
        ),
        route(Method::GET, "/openapi.json", Anyone, get(openapi), Doc::get("This document", Object)),
        route(
            Method::GET,
            "/reference",
            Anyone,
            get(reference),
            Doc::get("This document as a page", Text("text/html")),
        ),
    ]
}

/// `GET /api/v1/reference`: the API described, for people.
async fn reference() -> axum::response::Html<&'static str> {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    axum::response::Html(PAGE.get_or_init(|| super::openapi::reference_page(described())))
}

/// The table as the OpenAPI document describes it.
pub fn operations() -> Vec<super::openapi::Operation> {
    table()
        .into_iter()
        .map(|r| super::openapi::Operation {
            method: r.method.to_string(),
            path: r.path,
            role: match r.access {
                Access::Anyone => None,
                Access::AtLeast(role) => Some(role),
            },
            doc: r.doc,
        })
        .collect()
}

/// The document: the same for the life of the process, so made once (with the route
/// table and every schema) rather than for each request.
fn described() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| super::openapi::document(&operations()))
}

/// `GET /api/v1/openapi.json`: the API described (public: it holds no data).
async fn openapi() -> Json<&'static serde_json::Value> {
    Json(described())
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
