//! Log search over the simulated gateways' logs: the lines follow the scenario and the
//! metrics, the query language works end to end, bad queries are 400s that say where.

use crate::support::*;
use app::dto::{LogSearch, Role};
use reqwest::StatusCode;
use server::fleet::sim::Scenario;

fn url(q: &str, extra: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    format!("/api/v1/logs?q={q}{extra}")
}

async fn search(session: &Session, q: &str, extra: &str) -> LogSearch {
    serde_json::from_value(session.get_json(&url(q, extra)).await).expect("a LogSearch")
}

#[tokio::test]
async fn a_bad_deploy_shows_as_panics_from_the_new_version_on_the_edge_only() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    app.advance(30).await;
    let viewer = app.signed_in(Role::Viewer).await;

    let errors = search(&viewer, "level:error panic", "&limit=1000").await;
    assert!(errors.total > 20, "{}", errors.total);
    assert_eq!(errors.dropped, 0, "nothing has aged out in 15 minutes");
    assert!(errors.oldest_kept.is_some_and(|t| t <= errors.hits.last().map_or(i64::MAX, |h| h.ts)));
    for hit in &errors.hits {
        assert_eq!((hit.gateway.as_str(), hit.level.as_str()), ("edge", "error"), "{hit:?}");
        assert!(hit.message.contains("(gateway 2.15.0)") && hit.message.contains("goroutine"), "{}", hit.message);
        let (a, b) = hit.highlights[0];
        assert_eq!(&hit.message[a..b], "panic");
    }
    // The partner gateway only has the few upstream failures every gateway has.
    let partner = search(&viewer, "gateway:partner panic", "").await;
    assert_eq!(partner.total, 0, "{:?}", partner.hits.first());
    let partner_errors = search(&viewer, "gateway:partner level:error", "").await.total;
    let edge_errors = search(&viewer, "gateway:edge level:error", "").await.total;
    assert!(edge_errors > 10 * partner_errors.max(1), "edge {edge_errors}, partner {partner_errors}");
}

#[tokio::test]
async fn the_share_of_5xx_access_lines_follows_the_gateways_error_rate() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    app.advance(120).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let truth = app.sim().raw_window("edge", 120).unwrap();
    let rate = truth.c5xx as f64 / truth.total as f64;
    // The simulated clock is not the wall clock in tests: take the window from the lines.
    let newest = search(&viewer, "", "&limit=1").await.hits[0].ts;
    let since = format!("&limit=1&since={}", newest - 120_000);
    let access = "gateway:edge (status:1xx OR status:2xx OR status:3xx OR status:4xx OR status:5xx)";
    let all = search(&viewer, access, &since).await;
    let failed = search(&viewer, "gateway:edge status:5xx", &since).await;
    let sampled = failed.total as f64 / all.total as f64;
    assert!(all.total > 2000, "{}", all.total);
    assert!((sampled - rate).abs() < 0.04, "5xx in the logs {sampled:.3}, in the metrics {rate:.3}");
}

#[tokio::test]
async fn pages_time_windows_and_bad_input() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;

    let first = search(&viewer, "gateway:edge", "&limit=50").await;
    assert_eq!(first.hits.len(), 50);
    assert!(first.hits.windows(2).all(|w| w[0].ts >= w[1].ts), "newest first");
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = search(&viewer, "gateway:edge", &format!("&limit=50&cursor={cursor}")).await;
    assert_eq!(second.total, first.total);
    assert!(second.hits[0].ts <= first.hits[49].ts);
    assert_ne!(second.hits[0], first.hits[49]);

    assert_eq!(first.histogram.iter().map(|b| b.count).sum::<u64>(), first.total, "the histogram counts every match");
    assert!(first.histogram.len() > 30 && first.histogram.len() <= 61, "{}", first.histogram.len());
    let newest = first.hits[0].ts;
    let window = search(&viewer, "", &format!("&since={}&until={}", newest - 10_000, newest)).await;
    assert!(window.total > 0 && window.hits.iter().all(|h| h.ts >= newest - 10_000 && h.ts <= newest));

    let bad = viewer.get(&url("level:error AND (", "")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(
        body["message"],
        "q: at character 17: expected a word, \"phrase\", /regex/, field:value, NOT or '(', found the end of the query"
    );
    for (extra, field) in [("&limit=0", "limit"), ("&since=yesterday", "since"), ("&cursor=x", "cursor")] {
        let r = viewer.get(&url("", extra)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{body}");
    }
    assert_eq!(app.anonymous().get("/api/v1/logs").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_search_page_is_server_rendered_with_the_matches_marked() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let html = viewer.get("/logs?q=panic%20gateway%3Aedge").await.text().await.unwrap();
    assert!(html.contains("matching lines"), "{html}");
    let at = html.find("<mark").expect("a mark");
    assert!(html[at..].starts_with("<mark>panic"), "matches are marked: {}", &html[at..at + 80]);
    assert!(html.contains("goroutine"), "stack traces are kept");
    assert!(html.contains("data-testid=\"log-histogram\""), "with the histogram");
}

#[tokio::test]
async fn a_live_tail_sends_the_new_lines_that_match_as_they_are_written() {
    use futures::StreamExt;
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let q: String = form_urlencoded::byte_serialize(b"gateway:edge status:429").collect();
    let response = viewer.get(&format!("/api/v1/logs/tail?q={q}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let newest_before = search(&viewer, "", "&limit=1").await.hits[0].ts;
    app.advance(3).await;

    let mut buffer = String::new();
    let mut lines = Vec::new();
    while lines.len() < 5 {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: line") {
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                lines.push(serde_json::from_str::<app::dto::LogHit>(&data).expect("a LogHit"));
            }
            continue;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("a line within 5 s")
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    for hit in &lines {
        assert_eq!(hit.gateway, "edge");
        assert!(hit.message.contains("\" 429 "), "{}", hit.message);
        assert!(hit.ts > newest_before - 1000, "only new lines: {} vs {newest_before}", hit.ts);
    }
    let bad = viewer.get("/api/v1/logs/tail?q=%28").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
