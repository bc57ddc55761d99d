//! The audit trail: search, one entry, verification, export.

use super::super::extract::{ApiPath as Path, ApiQuery as Query, Console};
use super::super::openapi::{Doc, Shape, json};
use super::{Access, Route, read};
use crate::error::Result;
use crate::params::Params;
use app::dto::{self as d, AuditPage, AuditVerification, Role};
use axum::Json;
use axum::body::Body;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use std::collections::HashMap;

/// The rows of this resource.
pub(super) fn routes() -> Vec<Route> {
    let viewer = Access::AtLeast(Role::Viewer);
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
        Route::new(
            Method::GET,
            "/audit",
            viewer,
            get(search),
            read("Search the audit trail", json::<AuditPage>(), AUDIT_QUERY),
        ),
        Route::new(
            Method::GET,
            "/audit/verify",
            viewer,
            get(verify),
            Doc::get("Check the ledger's chain, signatures and checkpoint", json::<AuditVerification>()),
        ),
        Route::new(
            Method::GET,
            "/audit/export",
            viewer,
            get(export),
            read("Export the audit trail", Shape::Text("text/csv"), &[("format", "string")]),
        ),
        Route::new(
            Method::GET,
            "/audit/{id}",
            viewer,
            get(entry),
            Doc::get("One audit entry", json::<d::AuditEntryDetail>()),
        ),
    ]
}

async fn search(console: Console, Query(q): Query<HashMap<String, String>>) -> Result<Json<AuditPage>> {
    Ok(Json(console.audit_page(&Params::from(q)).await?))
}

async fn entry(console: Console, Path(id): Path<i64>) -> Result<Json<d::AuditEntryDetail>> {
    Ok(Json(console.audit_entry(id).await?))
}

async fn verify(console: Console) -> Result<Json<AuditVerification>> {
    Ok(Json(console.verify_audit().await?))
}

/// `GET /api/v1/audit/export?format=csv|jsonl`: every matching entry, oldest first,
/// streamed page by page so memory stays flat however long the ledger is.
async fn export(console: Console, Query(q): Query<HashMap<String, String>>) -> Result<Response> {
    let (format, entries) = console.audit_export(&Params::from(q))?;
    let csv = format == crate::audit::Format::Csv;
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
