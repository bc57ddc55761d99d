//! Incidents: declared, changed, noted; their timeline, runbook checklist and postmortem.

use super::super::extract::{ApiJson, ApiPath as Path, ApiQuery as Query, Console};
use super::super::openapi::{Doc, Shape, json};
use super::{Access, Name, Route, change, read};
use crate::audit::Kind;
use crate::error::Result;
use crate::params::Params;
use app::dto::{self as d, Role};
use axum::Json;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use std::collections::HashMap;

/// Every change to an incident is an `incident` entry on that incident.
const INCIDENT: Name = Name::Incident("id");

/// The rows of this resource.
pub(super) fn routes() -> Vec<Route> {
    use Access::AtLeast;
    use Role::{Responder, Viewer};
    vec![
        Route::new(
            Method::POST,
            "/incidents",
            AtLeast(Responder),
            post(declare),
            change("Declare an incident", Shape::Object, "201", json::<d::Incident>()),
        )
        .records(Kind::Incident, Name::Is("declare"), Name::Is("incident")),
        Route::new(
            Method::GET,
            "/incidents",
            AtLeast(Viewer),
            get(list),
            read(
                "Incidents",
                json::<d::IncidentList>(),
                &[("status", "string"), ("severity", "string"), ("gateway", "string"), ("open", "boolean")],
            ),
        ),
        Route::new(
            Method::GET,
            "/incidents/{id}",
            AtLeast(Viewer),
            get(one),
            Doc::get("One incident", json::<d::Incident>()),
        ),
        Route::new(
            Method::PATCH,
            "/incidents/{id}",
            AtLeast(Responder),
            patch(update),
            change(
                "Change an incident's status, severity, summary or roles",
                Shape::Object,
                "200",
                json::<d::Incident>(),
            ),
        )
        .records(Kind::Incident, Name::Is("update"), INCIDENT),
        Route::new(
            Method::POST,
            "/incidents/{id}/notes",
            AtLeast(Responder),
            post(note),
            change("Add a note to the timeline", Shape::Object, "201", json::<d::AuditEntry>()),
        )
        .records(Kind::Incident, Name::Is("note"), INCIDENT),
        Route::new(
            Method::POST,
            "/incidents/{id}/pins",
            AtLeast(Responder),
            post(pin_line),
            change("Pin a log line to the timeline", Shape::Object, "201", json::<d::AuditEntry>()),
        )
        .records(Kind::Incident, Name::Is("pin"), INCIDENT),
        Route::new(
            Method::GET,
            "/incidents/{id}/timeline",
            AtLeast(Viewer),
            get(timeline),
            Doc::get("An incident's timeline", json::<d::Timeline>()),
        ),
        Route::new(
            Method::GET,
            "/incidents/{id}/postmortem.json",
            AtLeast(Viewer),
            get(postmortem_json),
            Doc::get("The postmortem", json::<d::Postmortem>()),
        ),
        Route::new(
            Method::GET,
            "/incidents/{id}/checklist",
            AtLeast(Viewer),
            get(checklist),
            Doc::get("The runbook checklist", json::<d::Checklist>()),
        ),
        Route::new(
            Method::POST,
            "/incidents/{id}/checklist/{step}",
            AtLeast(Responder),
            post(mark_step),
            change("Tick a runbook step", Shape::Object, "200", json::<d::Checklist>()),
        )
        .records(Kind::Incident, Name::Is("step"), INCIDENT),
        Route::new(
            Method::GET,
            "/incidents/{id}/postmortem.md",
            AtLeast(Viewer),
            get(postmortem_md),
            Doc::get("The postmortem in Markdown", Shape::Text("text/markdown")),
        ),
        Route::new(
            Method::PUT,
            "/incidents/{id}/timeline/{entry}/star",
            AtLeast(Responder),
            put(|console: Console, Path((id, entry)): Path<(i64, i64)>| star(console, id, entry, true)),
            change("Star a timeline entry", Shape::Empty, "204", Shape::Empty),
        )
        .records(Kind::Incident, Name::Is("star"), INCIDENT),
        Route::new(
            Method::DELETE,
            "/incidents/{id}/timeline/{entry}/star",
            AtLeast(Responder),
            delete(|console: Console, Path((id, entry)): Path<(i64, i64)>| star(console, id, entry, false)),
            change("Unstar a timeline entry", Shape::Empty, "204", Shape::Empty),
        )
        .records(Kind::Incident, Name::Is("unstar"), INCIDENT),
    ]
}

async fn declare(
    console: Console,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<d::Incident>)> {
    Ok((StatusCode::CREATED, Json(console.declare_incident(body).await?)))
}

async fn list(console: Console, Query(q): Query<HashMap<String, String>>) -> Result<Json<d::IncidentList>> {
    Ok(Json(console.incidents(&Params::from(q)).await?))
}

async fn one(console: Console, Path(id): Path<i64>) -> Result<Json<d::Incident>> {
    Ok(Json(console.incident(id).await?))
}

async fn update(
    console: Console,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<d::Incident>> {
    Ok(Json(console.update_incident(id, body).await?))
}

async fn note(
    console: Console,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<d::AuditEntry>)> {
    Ok((StatusCode::CREATED, Json(console.note_incident(id, body).await?)))
}

async fn pin_line(
    console: Console,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<d::AuditEntry>)> {
    Ok((StatusCode::CREATED, Json(console.pin_line(id, body).await?)))
}

async fn timeline(console: Console, Path(id): Path<i64>) -> Result<Json<d::Timeline>> {
    Ok(Json(console.incident_timeline(id).await?))
}

async fn checklist(console: Console, Path(id): Path<i64>) -> Result<Json<d::Checklist>> {
    Ok(Json(console.checklist(id).await?))
}

async fn mark_step(
    console: Console,
    Path((id, step)): Path<(i64, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<d::Checklist>> {
    Ok(Json(console.mark_step(id, &step, body).await?))
}

async fn postmortem_json(console: Console, Path(id): Path<i64>) -> Result<Json<d::Postmortem>> {
    Ok(Json(console.postmortem(id).await?))
}

async fn postmortem_md(console: Console, Path(id): Path<i64>) -> Result<Response> {
    let postmortem = console.postmortem(id).await?;
    let name = format!("attachment; filename=\"{}-postmortem.md\"", postmortem.incident.key);
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)],
        crate::incidents::postmortem::markdown(&postmortem),
    )
        .into_response())
}

async fn star(console: Console, id: i64, entry: i64, starred: bool) -> Result<StatusCode> {
    console.star_incident_entry(id, entry, starred).await?;
    Ok(StatusCode::NO_CONTENT)
}
