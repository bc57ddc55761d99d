//! The dependency map, endpoint probes (with the SSRF guard) and synthetic checks,
//! against the simulated fleet and its gateways' real local listeners.

use crate::support::*;
use app::deps::Graph;
use app::dto::{DependencyGraph, ProbeResult, Role, SyntheticHistory};
use reqwest::StatusCode;
use serde_json::json;
use server::fleet::sim::Scenario;

async fn graph(session: &Session) -> DependencyGraph {
    serde_json::from_value(session.get_json("/api/v1/dependencies").await).expect("a DependencyGraph")
}

#[tokio::test]
async fn a_downstream_outage_shows_the_failing_service_and_every_route_and_gateway_it_takes_down() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::DownstreamOutage)).await;
    let viewer = app.signed_in(Role::Viewer).await;
    app.advance(120).await;
    let g = graph(&viewer).await;

    let payments = g.nodes.iter().find(|n| n.id == "service:payments").expect("the payments service");
    assert_eq!(payments.health, "down", "{payments:?}");
    assert!(payments.error_rate.unwrap() >= 0.25 && payments.latency_ms.unwrap() > 1000.0, "{payments:?}");
    let unhealthy: Vec<&str> =
        g.nodes.iter().filter(|n| n.kind == "service" && n.health != "ok").map(|n| n.name.as_str()).collect();
    assert_eq!(unhealthy, ["payments"], "only payments fails");

    let graph = Graph::new(&g);
    let mut radius: Vec<&str> = graph.dependents("service:payments").iter().map(|n| n.id.as_str()).collect();
    radius.sort();
    assert_eq!(radius, ["gateway:edge", "gateway:partner", "route:edge:/api/payments", "route:partner:/v1/payments"]);
    // The payments routes fail; the edge's other routes keep working.
    let route = |id: &str| g.nodes.iter().find(|n| n.id == id).expect(id).clone();
    // The payments routes fail; so, once slow payments calls hold the edge's workers,
    // do its other routes (the map shows the gateway down, not just one route).
    let payments_route = route("route:edge:/api/payments");
    assert!(payments_route.error_rate.unwrap() > 0.1 && payments_route.health != "ok", "{payments_route:?}");
    let actions = app::deps::actions_for(&graph, "service:payments");
    assert!(actions.iter().any(|a| a.gateway == "edge" && a.action == "circuit-breaker" && a.role == Role::Responder));
    assert!(actions.iter().any(|a| a.gateway == "partner" && a.action == "bypass" && a.role == Role::Admin));

    // Gateway numbers are the simulator's own over the same five seconds.
    let raw = app.sim().raw_window("edge", 5).expect("edge");
    let edge = route("gateway:edge");
    assert!((edge.rps.unwrap() - raw.total as f64 / 5.0).abs() < 1e-9, "{} vs {}", edge.rps.unwrap(), raw.total);
    assert!((edge.error_rate.unwrap() - raw.c5xx as f64 / raw.total as f64).abs() < 1e-9);
    let sent: f64 = g.edges.iter().filter(|e| e.to == "service:payments").map(|e| e.rps.unwrap()).sum();
    assert!(sent > 0.0 && g.edges.iter().all(|e| e.error_rate.unwrap() <= 1.0));

    assert_eq!(app.anonymous().get("/api/v1/dependencies").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_healthy_fleet_maps_every_route_to_its_service_and_nothing_is_down() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let g = graph(&app.signed_in(Role::Viewer).await).await;
    let count = |kind: &str| g.nodes.iter().filter(|n| n.kind == kind).count();
    assert_eq!((count("gateway"), count("route"), count("service")), (2, 12, 10));
    assert_eq!(g.edges.len(), 24, "gateway → route and route → service for each route");
    assert!(g.nodes.iter().all(|n| n.health == "ok"), "{:?}", g.nodes.iter().find(|n| n.health != "ok"));
    let edge = g.nodes.iter().find(|n| n.id == "gateway:edge").expect("edge");
    assert_eq!((edge.ready_endpoints, edge.endpoints), (Some(4), Some(4)));
}

async fn probe(session: &Session, body: serde_json::Value) -> reqwest::Response {
    session.post("/api/v1/probe", &body).await
}

#[tokio::test]
async fn a_probe_makes_a_real_request_to_the_gateway_and_times_it() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::DownstreamOutage)).await;
    app.advance(120).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let r = probe(&viewer, json!({"gateway": "edge", "path": "/healthz"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let result: ProbeResult = r.json().await.expect("a ProbeResult");
    assert_eq!(result.status, Some(200));
    assert!(result.address.as_deref().is_some_and(|a| a.starts_with("127.0.0.1:")), "{result:?}");
    assert!(result.headers.iter().any(|(k, v)| k == "x-gateway" && v == "edge"), "{:?}", result.headers);
    let t = result.timings;
    assert!(t.connect_ms > 0.0 && t.ttfb_ms >= t.connect_ms && t.total_ms >= t.ttfb_ms, "{t:?}");
    assert_eq!((t.dns_ms, t.tls_ms), (0.0, 0.0), "an address over http");

    // The payments route answers as the model says: slow, and often failing.
    // (At once: a slow route answers in up to 3 s.)
    let results = futures::future::join_all(
        (0..12).map(|_| async { probe(&viewer, json!({"gateway": "edge", "path": "/api/payments/42"})).await }),
    )
    .await;
    let mut statuses = Vec::new();
    for r in results {
        let r: ProbeResult = r.json().await.expect("a result");
        assert!(r.body_excerpt.contains("\"upstream\":\"payments\""), "{}", r.body_excerpt);
        statuses.push(r.status.expect("a status"));
    }
    assert!(statuses.iter().any(|s| *s >= 500), "{statuses:?}");
    let missing: ProbeResult =
        probe(&viewer, json!({"gateway": "edge", "path": "/no/such/route"})).await.json().await.expect("result");
    assert_eq!(missing.status, Some(404));

    for (body, field) in [
        (json!({"gateway": "edge", "path": "//evil.example/x"}), "path"),
        (json!({"gateway": "edge", "path": "http://evil.example/"}), "path"),
        (json!({"gateway": "edge", "path": "/a\nb"}), "path"),
        (json!({"gateway": "edge"}), "gateway"),
        (json!({"url": "not a url"}), "url"),
    ] {
        let message =
            assert_error(probe(&viewer, body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_eq!(probe(&viewer, json!({"gateway": "nowhere", "path": "/"})).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.anonymous().post("/api/v1/probe", &json!({"gateway": "edge", "path": "/healthz"})).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A server outside the console that redirects wherever it is told (`/to?u=...`) and
/// answers `/ok`.
async fn redirector() -> std::net::SocketAddr {
    use axum::extract::Query;
    use axum::response::Redirect;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/to",
            get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                Redirect::temporary(q.get("u").map(String::as_str).unwrap_or("/"))
            }),
        )
        .route("/ok", get(|| async { "fine" }));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(socket, app).await;
    });
    addr
}

#[tokio::test]
async fn probes_never_reach_metadata_local_ports_or_private_names_not_even_by_redirect() {
    let outside = redirector().await;
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite)
            .probe_allow(&outside.to_string())
            .probe_allow("localhost")
            .probe_allow("*.example.com"),
    )
    .await;
    let viewer = app.signed_in(Role::Viewer).await;
    let console_port = app.addr.port();
    let refused = |u: String| {
        let viewer = &viewer;
        async move { assert_error(probe(viewer, json!({ "url": u })).await, StatusCode::FORBIDDEN, "forbidden").await }
    };
    assert!(refused("http://169.254.169.254/latest/meta-data/".into()).await.contains("link-local"));
    assert!(refused("http://[fd00:ec2::254]/".into()).await.contains("private"));
    assert!(refused(format!("http://127.0.0.1:{console_port}/api/v1/session")).await.contains("loopback"));
    assert!(
        refused(format!("http://127.0.0.1:{}/ok", outside.port() + 1)).await.contains("loopback"),
        "not the next port"
    );
    assert!(refused("http://localhost:5432/".into()).await.contains("resolves to"), "a name that resolves to loopback");
    assert!(refused("http://elsewhere.test/".into()).await.contains("allow-list"));
    assert!(refused("ftp://api.example.com/".into()).await.contains("http"));

    // The listed address itself may be probed, and a redirect within it is followed.
    let ok: ProbeResult =
        probe(&viewer, json!({"url": format!("http://{outside}/to?u=/ok")})).await.json().await.expect("ok");
    assert_eq!((ok.status, ok.body_excerpt.as_str(), ok.redirects.len()), (Some(200), "fine", 1), "{ok:?}");

    // Redirects to anywhere else are refused, whatever the spelling.
    for target in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://127.0.0.1:{console_port}/api/v1/session"),
        "http://localhost:6379/".to_string(),
        format!("http://[::ffff:127.0.0.1]:{console_port}/"),
        "http://10.0.0.1/".to_string(),
    ] {
        let u: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let message = refused(format!("http://{outside}/to?u={u}")).await;
        assert!(message.starts_with("redirect to "), "{target}: {message}");
    }
    // A gateway probe cannot be walked off the gateway by a path either: this one stays
    // on the edge's own address (which has no such route).
    let r: ProbeResult = probe(&viewer, json!({"gateway": "edge", "path": "/..%2F..%2F@169.254.169.254/"}))
        .await
        .json()
        .await
        .expect("a result");
    assert_eq!(r.status, Some(404), "{r:?}");
    let url = reqwest::Url::parse(&r.url).expect("a URL");
    assert_eq!(url.host_str(), Some("127.0.0.1"), "{r:?}");
    assert!(r.address.as_deref().is_some_and(|a| a.starts_with("127.0.0.1:")), "{r:?}");
}

#[tokio::test]
async fn synthetic_checks_record_each_gateways_key_paths() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::DownstreamOutage)).await;
    app.advance(120).await;
    for k in 0..3 {
        app.state.probes.check_all(EPOCH_MS + k * 30_000).await;
    }
    let viewer = app.signed_in(Role::Viewer).await;
    let history: Vec<SyntheticHistory> =
        serde_json::from_value(viewer.get_json("/api/v1/synthetics").await).expect("histories");
    let paths: Vec<(String, String)> = history.iter().map(|h| (h.gateway.clone(), h.path.clone())).collect();
    assert_eq!(
        paths,
        [
            ("edge", "/api/orders"),
            ("edge", "/api/users"),
            ("edge", "/healthz"),
            ("partner", "/healthz"),
            ("partner", "/v1/inventory"),
            ("partner", "/v1/orders"),
        ]
        .map(|(g, p)| (g.to_string(), p.to_string()))
    );
    // The health view's summary carries the latest round: passing of checked.
    for gateway in ["edge", "partner"] {
        let passing = history.iter().filter(|h| h.gateway == gateway && h.results.last().is_some_and(|r| r.ok)).count();
        let list: Vec<app::dto::GatewaySummary> =
            serde_json::from_value(viewer.get_json("/api/v1/gateways").await).expect("gateways");
        let summary = list.into_iter().find(|g| g.id == gateway).expect("listed");
        assert_eq!(summary.checks, Some([passing as u32, 3]), "{gateway}");
    }
    for h in &history {
        assert_eq!(
            h.results.iter().map(|r| r.ts).collect::<Vec<_>>(),
            [EPOCH_MS, EPOCH_MS + 30_000, EPOCH_MS + 60_000]
        );
        if h.path == "/healthz" {
            assert!(h.results.iter().all(|r| r.ok && r.status == Some(200)), "{h:?}");
        }
    }
}
