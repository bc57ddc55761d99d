//! Hostile input: no single user or request can crash, exhaust or lock up the console.
//! One test per defect of issue 13; each failed (or crashed the server) before its fix.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;

fn encoded(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// A log query nested or sized to overflow a recursive parser is a 400 naming the bound,
/// through the API, the live tail and the server-rendered page; the server stays up.
#[tokio::test]
async fn log_queries_past_their_bounds_are_400s_and_never_crash_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let cases = [
        ("(".repeat(10_000), "at most 2048 bytes"),
        ("-".repeat(30_000), "at most 2048 bytes"),
        ("(".repeat(1_000), "levels of nesting"),
        ("NOT ".repeat(500) + "x", "levels of nesting"),
        ((0..9).map(|i| format!("/r{i}/")).collect::<Vec<_>>().join(" "), "at most 8 regular expressions"),
        (r"/\w{500}\w{500}/".to_string(), "size limit"),
    ];
    for (q, bound) in &cases {
        let r = viewer.get(&format!("/api/v1/logs?q={}", encoded(q))).await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains(bound) && message.contains("at character"), "{bound}: {message}");

        let tail = viewer.get(&format!("/api/v1/logs/tail?q={}", encoded(q))).await;
        let message = assert_error(tail, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains(bound), "tail, {bound}: {message}");

        let page = viewer.get(&format!("/logs?q={}", encoded(q))).await;
        assert_eq!(page.status(), StatusCode::OK, "the page shows the error");
        let html = page.text().await.unwrap();
        assert!(html.contains(bound), "the page says which bound: {bound}");
    }
    let alive = app.client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
    let ok =
        viewer.get(&format!("/api/v1/logs?q={}", encoded(&format!("{}x{}", "(".repeat(32), ")".repeat(32))))).await;
    assert_eq!(ok.status(), StatusCode::OK, "32 levels are fine");
}
