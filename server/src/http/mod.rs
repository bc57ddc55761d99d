//! Everything HTTP: the router and its layers, the `/api/v1` handlers, the event
//! streams, server-rendered pages, sign-in and sign-out, and the extractors. Handlers
//! parse, bind the caller and serialize; every rule lives in `ServerConsole` and below.

pub mod api;
pub mod assets;
pub mod extract;
pub mod openapi;
pub mod pages;
pub mod session;
mod sse;
pub mod sso;

use crate::auth::IDLE_TIMEOUT_MINUTES;
use crate::auth::store::DbSessionStore;
use crate::error::AppError;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos_axum::LeptosRoutes;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// The whole application's routes: liveness, the console's and the simulator's metrics, the sign-in form,
/// `/api/v1`, the pages and the static site, behind sessions, request ids and the
/// security headers. `secure_cookies` marks the session cookie Secure (https).
pub fn router(state: AppState, secure_cookies: bool) -> Router {
    let https_only = secure_cookies;
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        // Over https the `__Host-` prefix: the browser then takes the cookie only from this
        // exact host, Secure, for every path (no sibling subdomain can plant one).
        .with_name(if secure_cookies { "__Host-gatewarden_session" } else { "gatewarden_session" })
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(IDLE_TIMEOUT_MINUTES)));

    let routes = leptos_axum::generate_route_list(app::App);
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value))
    };
    // Which replica answered (issue 16): behind a load balancer, the one to look at.
    let replica = HeaderValue::from_str(&state.replicas.id).expect("replica ids are ASCII");
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(console_metrics))
        .route("/sim/metrics", get(sim_metrics))
        .route(
            "/login",
            get(pages::sign_in)
                .post(session::login_form)
                .layer(axum::extract::DefaultBodyLimit::max(api::SIGN_IN_BODY_LIMIT)),
        )
        .route("/auth/oidc/login", get(sso::start))
        .route("/auth/oidc/callback", get(sso::callback))
        .nest("/api/v1", api::router(state.clone()))
        .nest_service("/pkg", {
            let assets =
                assets::Assets::new(std::path::Path::new(&*state.leptos.site_root).join(&*state.leptos.site_pkg_dir));
            tower::service_fn(move |request: axum::extract::Request| {
                let assets = assets.clone();
                async move { Ok::<_, std::convert::Infallible>(assets.serve(request).await) }
            })
        })
        // Compressed: a page carries no secret (the CSRF token stays out of it, and the
        // session cookie is SameSite=Strict, so no other site can have a signed-in page
        // rendered with its input in it to measure).
        .leptos_routes_with_handler(
            routes,
            // Brotli 5: a quarter smaller than tower-http's default (4) for well under a
            // millisecond more per page; 11 would cost ~15 ms a page.
            get(pages::page).layer(
                tower_http::compression::CompressionLayer::new()
                    .quality(tower_http::compression::CompressionLevel::Precise(5)),
            ),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(
            pages::anonymous_context(&state),
            app::shell,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(state.trusted_proxies.clone(), extract::resolve_client))
        .layer(axum::middleware::from_fn(extract::assign_id))
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("x-gatewarden-replica"), replica))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("referrer-policy", "same-origin"))
        .layer(axum::middleware::from_fn(document_headers))
        // Served over https (the public URL says so): browsers keep to https for a year.
        .layer(tower::util::option_layer(https_only.then(|| {
            SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            )
        })))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Headers that govern a document (framing, powerful features): on every answer but the
/// site's files under `/pkg`, where they mean nothing and cost each download ~130 bytes.
async fn document_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let site_file = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    if !site_file {
        let headers = response.headers_mut();
        // Every HTML answer without a policy of its own (404s, single sign-on's pages, the
        // API reference) gets the plain pages' strict one, and none is kept by a cache:
        // a rendered page holds what one person may see.
        let html =
            headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
        if html {
            headers
                .entry(header::CONTENT_SECURITY_POLICY)
                .or_insert(HeaderValue::from_static(pages::PLAIN_PAGE_POLICY));
            headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
        }
        headers.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
        headers.entry(HeaderName::from_static("permissions-policy")).or_insert(HeaderValue::from_static(
            "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
        ));
    }
    response
}

/// Readiness, for a load balancer: 200 only while the database answers, the fleet's
/// watches have listed and the replica is not stopping; otherwise 503 saying which.
/// (`/healthz` stays liveness: the process serves.)
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> (axum::http::StatusCode, &'static str) {
    use axum::http::StatusCode;
    if *state.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping: new streams go to another replica\n");
    }
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), sqlx::query("select 1").execute(&state.db)).await;
    if !matches!(db, Ok(Ok(_))) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n");
    }
    if !state.health.fleet_listed() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the fleet's watches have not listed yet\n");
    }
    (StatusCode::OK, "ready\n")
}

/// Every page's path: the app's routes and the plain sign-in page (for the role test).
pub fn page_paths() -> Vec<String> {
    let mut paths: Vec<String> =
        leptos_axum::generate_route_list(app::App).iter().map(|r| r.path().to_string()).collect();
    paths.push("/login".into());
    paths
}

/// `GET /metrics`: this replica's own metrics (see [`crate::metrics`]). With
/// `--metrics-token-file`, only for `Authorization: Bearer <token>` (401 otherwise).
async fn console_metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::auth::constant_time_eq(sent.trim().as_bytes(), token.as_bytes()) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"gatewarden metrics\"")],
                "the console's metrics need the bearer token of --metrics-token-file\n",
            )
                .into_response();
        }
    }
    let (fleet_healthy, metrics_healthy) = state.health.backends_healthy();
    let now = crate::metrics::Now {
        streams_open: state.caps.running(crate::limits::Work::Stream),
        approvals_waiting: state.open_approvals.borrow().len(),
        leader: state.replicas.is_leader(),
        fleet_healthy,
        metrics_healthy,
    };
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], crate::metrics::get().encode(&now)).into_response()
}

/// `GET /sim/metrics`: the simulated fleet's traffic in the Prometheus text format, so a
/// real Prometheus can scrape it. Not served with a real cluster (404): gateways there
/// export their own metrics. Unauthenticated, like any scrape target; it holds only
/// simulated numbers.
async fn sim_metrics(State(state): State<AppState>) -> Response {
    match &state.sim {
        Some(sim) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], sim.exposition()).into_response()
        }
        None => AppError::NotFound("no simulated fleet".into()).into_response(),
    }
}
