//! The console's own metrics at `/metrics` (issue 19): requests by route template and
//! status, actions by outcome, live gauges; a token when one is configured; the
//! simulator's traffic moved to `/sim/metrics`.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// The value of the sample `name{labels}` (labels as the exposition writes them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let response = reqwest::get(format!("http://{}/metrics", app.addr)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    response.text().await.unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_never_by_raw_path() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let before = scrape(&app).await;
    let series = r#"gatewarden_http_requests_total{route="/api/v1/gateways/{id}",method="GET",status="200"}"#;
    let missing = r#"gatewarden_http_requests_total{route="/api/v1/gateways/{id}",method="GET",status="404"}"#;
    let (ok_before, missing_before) = (sample(&before, series).unwrap_or(0.0), sample(&before, missing).unwrap_or(0.0));

    for _ in 0..3 {
        assert_eq!(viewer.get("/api/v1/gateways/edge").await.status(), StatusCode::OK);
    }
    assert_eq!(viewer.get("/api/v1/gateways/no-such-gateway-q7").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(viewer.get("/api/v1/no-such-route-z9").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(viewer.get("/some-page-x3").await.status(), StatusCode::NOT_FOUND, "the not-found page");

    let after = scrape(&app).await;
    // Other tests in this process count too: at least ours.
    assert!(sample(&after, series).unwrap() >= ok_before + 3.0, "{after}");
    assert!(sample(&after, missing).unwrap() >= missing_before + 1.0, "{after}");
    assert!(after.contains(r#"route="/api/v1 (no such route)""#), "{after}");
    assert!(
        after.contains(r#"gatewarden_http_request_duration_seconds_bucket{le="0.001",route="/api/v1/gateways/{id}"}"#)
            || after.contains(
                r#"gatewarden_http_request_duration_seconds_bucket{route="/api/v1/gateways/{id}",le="0.001"}"#
            ),
        "{after}"
    );
    for raw in ["no-such-gateway-q7", "no-such-route-z9", "some-page-x3"] {
        assert!(!after.contains(raw), "a path a client chose never becomes a label: {raw}");
    }
    assert!(sample(&after, "gatewarden_leader").is_some_and(|v| v == 1.0), "SQLite: the one replica leads");
    assert!(sample(&after, r#"gatewarden_backend_healthy{part="fleet"}"#) == Some(1.0), "{after}");
    assert!(after.ends_with("# EOF\n"));

    // An open event stream is counted while it is open.
    let stream = viewer.get("/api/v1/events").await;
    assert_eq!(stream.status(), StatusCode::OK);
    let open = sample(&scrape(&app).await, "gatewarden_event_streams_open").unwrap();
    assert!(open >= 1.0, "{open}");
}

#[tokio::test]
async fn finished_actions_and_ledger_appends_are_counted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let series = r#"gatewarden_actions_total{action="restart",outcome="succeeded"}"#;
    let before = sample(&scrape(&app).await, series).unwrap_or(0.0);
    let ran = responder
        .post("/api/v1/gateways/edge/actions/restart", &json!({"reason": "pods wedged", "confirm": "edge"}))
        .await;
    assert_eq!(ran.status(), StatusCode::ACCEPTED, "{:?}", ran.text().await);
    let text = eventually_within(Duration::from_secs(60), "the restart's outcome counted", || async {
        app.advance(5).await;
        let text = scrape(&app).await;
        (sample(&text, series).unwrap_or(0.0) > before).then_some(text)
    })
    .await;
    assert!(sample(&text, "gatewarden_ledger_append_duration_seconds_count").unwrap() >= 2.0, "intent and outcome");
}

#[tokio::test]
async fn with_a_token_the_metrics_are_only_for_whoever_sends_it() {
    let mut options = Options::new(Backend::Sqlite);
    options.metrics_token = Some("a-scrape-token-0123456789".into());
    let app = TestApp::spawn_with(options).await;
    let url = format!("http://{}/metrics", app.addr);
    let http = reqwest::Client::new();

    let none = http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"gatewarden metrics\"");
    assert!(none.text().await.unwrap().contains("bearer token"));
    let wrong = http.get(&url).bearer_auth("a-scrape-token-012345678X").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = http.get(&url).bearer_auth("a-scrape-token-0123456789").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.text().await.unwrap().contains("gatewarden_http_requests_total"));
    // The simulator's exposition is not the console's secret.
    assert_eq!(http.get(format!("http://{}/sim/metrics", app.addr)).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_simulators_traffic_has_its_own_path_and_a_cluster_console_serves_its_metrics_too() {
    let sim = TestApp::spawn(Backend::Sqlite).await;
    let text = reqwest::get(format!("http://{}/sim/metrics", sim.addr)).await.unwrap().text().await.unwrap();
    assert!(text.contains("# TYPE gatewarden_requests_total counter"), "{text}");
    assert!(!scrape(&sim).await.contains("gatewarden_requests_total{"), "the console's metrics are its own");

    let fake = server::fleet::cluster::fake::FakeApiServer::new();
    for object in server::fleet::cluster::fake::gateway("prod", "edge", 2, "1.0.0") {
        fake.insert(object);
    }
    let mut options = Options::new(Backend::Sqlite);
    options.kube = Some(server::startup::InjectedClient(fake.client("prod")));
    let cluster = TestApp::spawn_with(options).await;
    assert!(scrape(&cluster).await.contains("gatewarden_http_requests_total"));
    let sim_path = reqwest::get(format!("http://{}/sim/metrics", cluster.addr)).await.unwrap();
    assert_eq!(sim_path.status(), StatusCode::NOT_FOUND, "no simulator in a cluster");
}
