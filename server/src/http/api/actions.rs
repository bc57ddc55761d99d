//! Mitigations: run (or preview) one, list and read them, undo one; and the two-person
//! approvals that stand between a request and its run.

use super::super::extract::{ApiJson, ApiPath as Path, ApiQuery as Query, Console};
use super::super::openapi::{Doc, Shape, json};
use super::{Access, Name, Route, change, read};
use crate::audit::Kind;
use crate::error::Result;
use crate::params::Params;
use app::dto::{self as d, ActionRecord, ActionResponse, Role};
use axum::Json;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;

/// The rows of this resource.
pub(super) fn routes() -> Vec<Route> {
    use Access::AtLeast;
    use Role::{Responder, Viewer};
    // Approve, deny and review: one handler for the three steps.
    let decide = |path: &'static str, step: &'static str, summary: &'static str| {
        Route::new(
            Method::POST,
            path,
            AtLeast(Responder),
            post(move |console: Console, Path(id): Path<i64>, ApiJson(body): ApiJson<serde_json::Value>| async move {
                Ok::<_, crate::error::AppError>(Json(console.decide(id, step, body).await?))
            }),
            change(summary, Shape::Object, "200", json::<d::Approval>()),
        )
        // An approval's entries name the step; the action and gateway are the request's.
        .records(Kind::Approval, Name::Is(step), Name::None)
    };
    vec![
        Route::new(
            Method::POST,
            "/gateways/{id}/actions/{action}",
            AtLeast(Responder),
            post(run_action),
            change("Run (or preview) a mitigation", Shape::Object, "2XX", json::<ActionResponse>()),
        )
        .records(Kind::ActionIntent, Name::Param("action"), Name::Param("id")),
        Route::new(
            Method::GET,
            "/catalogue",
            AtLeast(Viewer),
            get(catalogue),
            Doc::get("The mitigations offered: fields, bounds, roles, approval", json::<d::Catalogue>()),
        ),
        Route::new(
            Method::GET,
            "/actions",
            AtLeast(Viewer),
            get(list_actions),
            read("Recent actions", json::<Vec<ActionRecord>>(), &[("gateway", "string")]),
        ),
        Route::new(
            Method::GET,
            "/actions/{id}",
            AtLeast(Viewer),
            get(get_action),
            Doc::get("One action", json::<ActionRecord>()),
        ),
        Route::new(
            Method::POST,
            "/actions/{id}/undo",
            AtLeast(Responder),
            post(undo_action),
            change("Undo an action", Shape::Object, "2XX", json::<ActionResponse>()),
        )
        .records(Kind::Undo, Name::Is("undo"), Name::Param("id")),
        Route::new(
            Method::GET,
            "/approvals",
            AtLeast(Viewer),
            get(list_approvals),
            read("Approval requests", json::<d::ApprovalList>(), &[("status", "string"), ("for", "string")]),
        ),
        Route::new(
            Method::GET,
            "/approvals/{id}",
            AtLeast(Viewer),
            get(get_approval),
            Doc::get("One approval request", json::<d::Approval>()),
        ),
        decide("/approvals/{id}/approve", "approve", "Approve (and run) a request"),
        decide("/approvals/{id}/deny", "deny", "Deny a request"),
        decide("/approvals/{id}/review", "review", "Review a break-glass run"),
    ]
}

/// 202 when something was started or asked for (an action, an approval request), 200
/// for a preview.
fn accepted(response: ActionResponse) -> (StatusCode, Json<ActionResponse>) {
    let started = response.id.is_some() || response.approval.is_some();
    (if started { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(response))
}

async fn run_action(
    console: Console,
    Path((gateway, action)): Path<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ActionResponse>)> {
    Ok(accepted(console.act(&gateway, &action, body).await?))
}

#[derive(Deserialize)]
struct ActionsQuery {
    gateway: Option<String>,
}

async fn catalogue(console: Console) -> Result<Json<d::Catalogue>> {
    Ok(Json(console.catalogue()?))
}

async fn list_actions(console: Console, Query(q): Query<ActionsQuery>) -> Result<Json<Vec<ActionRecord>>> {
    Ok(Json(console.actions(q.gateway.as_deref()).await?))
}

async fn get_action(console: Console, Path(id): Path<i64>) -> Result<Json<ActionRecord>> {
    Ok(Json(console.action(id).await?))
}

async fn undo_action(
    console: Console,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ActionResponse>)> {
    Ok(accepted(console.undo(id, body).await?))
}

async fn list_approvals(console: Console, Query(q): Query<HashMap<String, String>>) -> Result<Json<d::ApprovalList>> {
    Ok(Json(console.approvals(&Params::from(q)).await?))
}

async fn get_approval(console: Console, Path(id): Path<i64>) -> Result<Json<d::Approval>> {
    Ok(Json(console.approval(id).await?))
}
