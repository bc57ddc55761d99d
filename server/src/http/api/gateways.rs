//! Gateways and what is seen of them: health, logs (searched and tailed), the live feed,
//! the dependency map, probes and synthetic checks, the backend and the replicas.

use super::super::extract::{ApiJson, ApiPath as Path, ApiQuery as Query, Console};
use super::super::openapi::{Doc, Shape, json};
use super::super::sse;
use super::{Access, Name, Route, change, read};
use crate::audit::Kind;
use crate::error::Result;
use crate::params::Params;
use app::dto::{self as d, DependencyGraph, GatewayDetail, GatewaySummary, ProbeRequest, ProbeResult, Role};
use axum::Json;
use axum::http::Method;
use axum::routing::{get, post};
use std::collections::HashMap;

/// The rows of this resource.
pub(super) fn routes() -> Vec<Route> {
    let viewer = Access::AtLeast(Role::Viewer);
    vec![
        Route::new(
            Method::GET,
            "/gateways",
            viewer,
            get(gateways),
            Doc::get("Every gateway's health", json::<Vec<GatewaySummary>>()),
        ),
        Route::new(
            Method::GET,
            "/gateways/{id}",
            viewer,
            get(gateway),
            Doc::get("One gateway: series, instances, policy", json::<GatewayDetail>()),
        ),
        Route::new(
            Method::GET,
            "/gateways/{id}/logs",
            viewer,
            get(gateway_logs),
            read(
                "A gateway's pods' logs (Kubernetes)",
                json::<d::PodLogs>(),
                &[("tail", "integer"), ("since_seconds", "integer")],
            ),
        ),
        Route::new(
            Method::GET,
            "/logs",
            viewer,
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
        Route::new(
            Method::GET,
            "/logs/tail",
            viewer,
            get(sse::tail_logs),
            read("New matching log lines (server-sent events)", Shape::Events, &[("q", "string")]),
        ),
        Route::new(
            Method::GET,
            "/events",
            viewer,
            get(sse::events),
            Doc::get("The live feed (server-sent events)", Shape::Events),
        ),
        Route::new(
            Method::GET,
            "/fleet",
            viewer,
            get(fleet),
            Doc::get("Which backend, and the training scenario", json::<d::FleetInfo>()),
        ),
        Route::new(
            Method::GET,
            "/replicas",
            viewer,
            get(replicas),
            Doc::get("The console's replicas, and which leads", json::<Vec<crate::replicas::ReplicaInfo>>()),
        ),
        Route::new(
            Method::GET,
            "/dependencies",
            viewer,
            get(dependencies),
            Doc::get("Gateways, routes and services, with health", json::<DependencyGraph>()),
        ),
        // A probe changes nothing (it is a POST for its body); a probe tagged with an
        // incident is recorded on that incident's timeline by the console.
        Route::new(
            Method::POST,
            "/probe",
            viewer,
            post(probe),
            change(
                "One timed request to a gateway path or an allowed URL",
                json::<ProbeRequest>(),
                "200",
                json::<ProbeResult>(),
            ),
        )
        .records(Kind::Incident, Name::Is("probe"), Name::None),
        Route::new(
            Method::GET,
            "/synthetics",
            viewer,
            get(synthetics),
            Doc::get("Recent scheduled checks", json::<Vec<d::SyntheticHistory>>()),
        ),
    ]
}

async fn gateways(console: Console) -> Result<Json<Vec<GatewaySummary>>> {
    Ok(Json(console.gateways().await?))
}

async fn gateway(console: Console, Path(id): Path<String>) -> Result<Json<GatewayDetail>> {
    Ok(Json(console.gateway(&id).await?))
}

async fn gateway_logs(
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<d::PodLogs>> {
    Ok(Json(console.gateway_logs(&id, &Params::from(query)).await?))
}

async fn search_logs(console: Console, Query(query): Query<HashMap<String, String>>) -> Result<Json<d::LogSearch>> {
    Ok(Json(console.search_logs(&Params::from(query)).await?))
}

async fn fleet(console: Console) -> Result<Json<d::FleetInfo>> {
    Ok(Json(console.fleet().await?))
}

/// The console's replicas running now, oldest first, and which one leads.
async fn replicas(console: Console) -> Result<Json<Vec<crate::replicas::ReplicaInfo>>> {
    Ok(Json(console.replicas().await?))
}

async fn dependencies(console: Console) -> Result<Json<DependencyGraph>> {
    Ok(Json(console.dependencies().await?))
}

async fn probe(console: Console, ApiJson(body): ApiJson<ProbeRequest>) -> Result<Json<ProbeResult>> {
    Ok(Json(console.probe(&body).await?))
}

async fn synthetics(console: Console) -> Result<Json<Vec<d::SyntheticHistory>>> {
    Ok(Json(console.synthetics().await?))
}
