//! `/api/v1`: the wire format of the console interface, one file per resource. Each file
//! holds its rows of the route table and their handlers; this one glues them into the
//! router and the OpenAPI document. Handlers take the caller's [`Console`] and at most
//! one body, and only parse, call and serialize: the rules live in the console and below.
//!
//! [`Console`]: super::extract::Console

mod actions;
mod audit;
mod gateways;
mod incidents;
mod users;

use super::openapi::{Doc, Shape};
use crate::audit::{Kind, NewEntry, Outcome};
use crate::auth::MaybeAuthUser;
use crate::error::AppError;
use crate::state::AppState;
use app::dto::Role;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router, middleware};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (signing in, the API's own description).
    Anyone,
    /// A signed-in user with at least this role. For a mitigation (and its undo) the
    /// role depends on the action: this is the lowest any action needs.
    AtLeast(Role),
}

/// What a change is recorded as in the audit trail: the kind and action name its handler
/// writes, and where its target comes from. A change refused at the door (its CSRF token
/// missing) is recorded under the same names, read from its own row, never guessed from
/// the URL.
#[derive(Clone, Copy, Debug)]
pub struct Records {
    /// The entry's kind.
    pub kind: Kind,
    /// The entry's action: a fixed name, or the path parameter that names it.
    pub action: Name,
    /// The path parameter naming the target, if any.
    pub target: Name,
}

/// A name in an audit entry, fixed or taken from the route's path.
#[derive(Clone, Copy, Debug)]
pub enum Name {
    /// Empty.
    None,
    /// This text.
    Is(&'static str),
    /// The value of this path parameter.
    Param(&'static str),
    /// The incident key (`INC-7`) of this numeric path parameter.
    Incident(&'static str),
}

/// One route of `/api/v1`: the router is built from this table, and the role test and
/// the OpenAPI document read it, so a route cannot be added without saying who may call
/// it, what it takes and answers, and what a change is recorded as.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path under `/api/v1`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it takes and answers.
    pub doc: Doc,
    /// What a change through it is recorded as (none for reads).
    pub records: Option<Records>,
    handler: MethodRouter<AppState>,
}

impl Route {
    /// A read, or a change that writes no audit entry of its own kind.
    fn new(method: Method, path: &'static str, access: Access, handler: MethodRouter<AppState>, doc: Doc) -> Route {
        Route { method, path, access, doc, records: None, handler }
    }

    /// This change is recorded as `kind`, `action`, on `target`.
    fn records(mut self, kind: Kind, action: Name, target: Name) -> Route {
        self.records = Some(Records { kind, action, target });
        self
    }
}

/// A change: takes `body`, answers `status` with `answer`.
const fn change(summary: &'static str, body: Shape, status: &'static str, answer: Shape) -> Doc {
    Doc { summary, body, status, answer, query: &[] }
}

/// A read with query parameters.
const fn read(summary: &'static str, answer: Shape, query: &'static [(&'static str, &'static str)]) -> Doc {
    Doc { summary, body: Shape::Empty, status: "200", answer, query }
}

/// Every `/api/v1` route, resource by resource.
pub fn table() -> Vec<Route> {
    let mut rows = users::routes();
    rows.extend(gateways::routes());
    rows.extend(actions::routes());
    rows.extend(audit::routes());
    rows.extend(incidents::routes());
    rows.extend(described_routes());
    rows
}

/// The API's own description.
fn described_routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/openapi.json",
            Access::Anyone,
            get(openapi),
            Doc::get("This document", Shape::Object),
        ),
        Route::new(
            Method::GET,
            "/reference",
            Access::Anyone,
            get(reference),
            Doc::get("This document as a page", Shape::Text("text/html")),
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

pub use super::extract::{BODY_LIMIT, SIGN_IN_BODY_LIMIT};

/// Reads that stream for as long as they are open (event streams, the live tail) or as
/// long as the ledger is (the export): no deadline.
pub const LONG_READS: &[&str] = &["/events", "/logs/tail", "/audit/export"];

/// Answers 503 for a read still running at the deadline (`Limits::read_deadline`).
async fn read_deadline(State(deadline): State<std::time::Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Unavailable(format!(
            "this read took longer than {} ms and was stopped: narrow it (a shorter time range, a smaller page)",
            deadline.as_millis()
        ))
        .into_response(),
    }
}

/// Routes whose answers carry a secret (the session's CSRF token): never compressed, so
/// the size of an answer that also reflects a request's input cannot reveal it (BREACH).
pub const SECRET_BEARING: &[&str] = &["/session"];

/// The `/api/v1` routes.
pub fn router(state: AppState) -> Router<AppState> {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in table() {
        let mut handler = guarded(&state, &route);
        // A read that runs too long is stopped (its database work with it), so slow
        // queries cannot hold the pool that sign-ins and actions need. Streams and exports
        // are long by design; changes are never cut off half-way.
        if route.method == Method::GET && !LONG_READS.contains(&route.path) {
            handler = handler.layer(middleware::from_fn_with_state(state.caps.limits().read_deadline, read_deadline));
        }
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(handler),
            None => by_path.push((route.path, handler)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            // Compressed (brotli or gzip, as the client accepts; event streams never),
            // except answers that carry a secret beside what a request sent (BREACH).
            let methods = if SECRET_BEARING.contains(&path) {
                // Signing in reads a body from anyone: the smallest bound.
                methods.layer(DefaultBodyLimit::max(SIGN_IN_BODY_LIMIT))
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
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Answers are per user and per moment: never kept by a browser or a proxy.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
}

/// A route's handler behind the CSRF guard, unless it is safe (a read) or open to anyone
/// (signing in has no session yet, and its JSON content type cannot be sent cross-site
/// without a CORS preflight).
fn guarded(state: &AppState, route: &Route) -> MethodRouter<AppState> {
    let safe = matches!(route.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || route.access == Access::Anyone {
        return route.handler.clone();
    }
    let records = route.records.unwrap_or(Records { kind: Kind::ActionIntent, action: Name::None, target: Name::None });
    route.handler.clone().layer(middleware::from_fn_with_state((state.clone(), records), csrf_guard))
}

/// Refuses a state-changing request of a signed-in session that lacks its CSRF token in
/// `X-CSRF-Token`, on the record under the route's own names. Anonymous requests go on,
/// so the handler answers 401.
async fn csrf_guard(State((state, records)): State<(AppState, Records)>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let user = match MaybeAuthUser::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if let Some(user) = &user.0 {
        let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !crate::auth::constant_time_eq(sent.as_bytes(), user.csrf.as_bytes()) {
            let params = RawPathParams::from_request_parts(&mut parts, &state).await.ok();
            let param = |name: &str| {
                params.iter().flat_map(|p| p.iter()).find(|(k, _)| *k == name).map_or("", |(_, v)| v).to_string()
            };
            let name = |n: Name| match n {
                Name::None => String::new(),
                Name::Is(text) => text.to_string(),
                Name::Param(p) => param(p),
                Name::Incident(p) => param(p).parse().map(crate::incidents::key).unwrap_or_default(),
            };
            let client = super::extract::client_of(&parts);
            let mut entry =
                NewEntry::new(client.actor(&user.username, user.role.as_str()), records.kind, Outcome::Denied);
            entry.action = name(records.action).chars().take(64).collect();
            entry.target = name(records.target).chars().take(64).collect();
            entry.params = serde_json::json!({ "refused": "missing or invalid CSRF token", "path": parts.uri.path() });
            if let Err(e) = state.ledger.refuse(entry).await {
                tracing::error!(error = ?e, "could not audit a refused request");
            }
            return AppError::Csrf.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_past_its_deadline_is_stopped_with_a_503_that_says_so() {
        use tower::ServiceExt;
        let slow = || async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            "done"
        };
        let router = Router::new()
            .route("/slow", get(slow))
            .layer(middleware::from_fn_with_state(std::time::Duration::from_millis(20), read_deadline));
        let started = std::time::Instant::now();
        let request = axum::http::Request::get("/slow").body(axum::body::Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < std::time::Duration::from_millis(400), "stopped, not waited for");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("took longer than 20 ms"));
        // Within it, the answer is the handler's.
        let router = Router::new()
            .route("/slow", get(|| async { "quick" }))
            .layer(middleware::from_fn_with_state(std::time::Duration::from_millis(200), read_deadline));
        let request = axum::http::Request::get("/slow").body(axum::body::Body::empty()).unwrap();
        assert_eq!(router.oneshot(request).await.unwrap().status(), axum::http::StatusCode::OK);
    }

    #[test]
    fn every_change_a_signed_in_user_makes_says_what_it_is_recorded_as() {
        for route in table() {
            let change = !matches!(route.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if change && route.access != Access::Anyone {
                assert!(route.records.is_some(), "{} {} names no audit entry", route.method, route.path);
            }
        }
    }

    #[test]
    fn no_route_is_in_the_table_twice() {
        let mut seen = std::collections::HashSet::new();
        for route in table() {
            assert!(seen.insert((route.method.clone(), route.path)), "{} {} twice", route.method, route.path);
        }
    }
}
