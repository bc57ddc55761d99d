//! Live updates over server-sent events.

use crate::support::*;
use app::dto::{LiveSnapshot, Role};
use futures::StreamExt;
use std::time::Duration;

/// Reads the next `snapshot` event from an SSE byte stream.
async fn next_snapshot(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> LiveSnapshot {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: snapshot") {
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                return serde_json::from_str(&data).expect("snapshot JSON");
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

#[tokio::test]
async fn the_event_stream_sends_the_current_numbers_then_every_change() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let response = viewer.get("/api/v1/events").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();

    let first = next_snapshot(&mut stream, &mut buffer).await;
    app.advance(1).await;
    // The hub also resends the same numbers every second with nothing changed.
    let second = loop {
        let next = next_snapshot(&mut stream, &mut buffer).await;
        if next.ts_ms != first.ts_ms {
            break next;
        }
    };

    assert_eq!(first.gateways.len(), 2);
    assert_eq!(second.ts_ms - first.ts_ms, 1000, "one simulated second later");
    let list: Vec<app::dto::GatewaySummary> =
        serde_json::from_value(viewer.get_json("/api/v1/gateways").await).unwrap();
    let live: Vec<_> = second.gateways.iter().map(|g| g.summary.clone()).collect();
    assert_eq!(live, list, "the stream and the API agree");
    assert_eq!(second.gateways[0].point.unwrap().rps, list[0].rps.unwrap());
}

/// Reads until the stream ends; false if it is still open after 5 s.
async fn ends(stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin)) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = stream.next().await {} }).await.is_ok()
}

#[tokio::test]
async fn signing_out_ends_the_sessions_open_event_streams_and_only_those() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let other = app.signed_in(Role::Viewer).await;
    let mut events = viewer.get("/api/v1/events").await.bytes_stream();
    let mut tail = viewer.get("/api/v1/logs/tail?q=").await.bytes_stream();
    let mut others = other.get("/api/v1/events").await.bytes_stream();
    let mut buffer = String::new();
    next_snapshot(&mut events, &mut buffer).await;
    let mut other_buffer = String::new();
    next_snapshot(&mut others, &mut other_buffer).await;

    assert!(viewer.delete("/api/v1/session").await.status().is_success());
    assert!(ends(&mut events).await, "the event stream ends with the session");
    assert!(ends(&mut tail).await, "so does the live tail");
    app.advance(1).await;
    next_snapshot(&mut others, &mut other_buffer).await;
    assert_eq!(viewer.get("/api/v1/events").await.status(), 401, "and cannot be reopened");
}

#[tokio::test]
async fn action_progress_arrives_on_the_event_stream_until_the_rollout_is_done() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let response = responder.get("/api/v1/events").await;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    next_snapshot(&mut stream, &mut buffer).await;

    let started = responder
        .post("/api/v1/gateways/partner/actions/restart", &serde_json::json!({"reason": "watch it roll"}))
        .await;
    assert_eq!(started.status(), 202);
    let mut seen: Vec<app::dto::ActionRecord> = Vec::new();
    let drain = |buffer: &mut String, seen: &mut Vec<app::dto::ActionRecord>| {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: action") {
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                seen.push(serde_json::from_str(&data).unwrap());
            }
        }
    };
    // Simulated seconds pass one at a time; read whatever the stream says meanwhile.
    for _ in 0..40 {
        app.advance(1).await;
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        drain(&mut buffer, &mut seen);
        if seen.last().is_some_and(|r| r.status == "succeeded") {
            break;
        }
    }

    assert!(
        seen.iter().any(|r| r.status == "running" && r.progress.is_some_and(|p| p.updated < p.desired)),
        "partial progress seen"
    );
    let last = seen.last().expect("action events");
    assert_eq!(last.status, "succeeded");
    assert_eq!(last.progress.map(|p| (p.updated, p.ready)), Some((3, 3)));
}

#[tokio::test]
async fn new_audit_entries_arrive_on_the_event_stream() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let mut stream = viewer.get("/api/v1/events").await.bytes_stream();
    let mut buffer = String::new();
    next_snapshot(&mut stream, &mut buffer).await;

    let _ = app.login(&app.client(), "admin", "not the password").await;

    let entry: app::dto::AuditEntry = loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: audit") {
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                break serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    };
    assert_eq!((entry.kind.as_str(), entry.target.as_str()), ("login_failure", "admin"));
}

#[tokio::test]
async fn an_action_that_completes_at_once_is_announced_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let mut stream = responder.get("/api/v1/events").await.bytes_stream();
    let mut buffer = String::new();
    next_snapshot(&mut stream, &mut buffer).await;

    let r = responder
        .post(
            "/api/v1/gateways/edge/actions/rate-limit",
            &serde_json::json!({"reason": "cap", "requests_per_second": 900}),
        )
        .await;
    assert_eq!(r.status(), 202);

    // No simulated time passes: the record must arrive from the change itself.
    let record: app::dto::ActionRecord = loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: action") {
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                break serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    };
    assert_eq!((record.action.as_str(), record.status.as_str()), ("rate-limit", "succeeded"));
}

/// A stop (SIGTERM, as Kubernetes sends it) ends open event streams, so the console exits
/// at once (writing its audit checkpoint) instead of waiting for browsers that never hang up.
#[tokio::test]
async fn a_stop_ends_open_event_streams_and_the_console_exits_at_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let console = crate::ledger::Console::start(&db);
    let admin = console.admin().await;
    let mut stream = admin.get("/api/v1/events").await.bytes_stream();
    let mut buffer = String::new();
    next_snapshot(&mut stream, &mut buffer).await;

    let asked = std::time::Instant::now();
    console.stop();
    assert!(asked.elapsed() < Duration::from_secs(5), "stopped in {:?}", asked.elapsed());
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = stream.next().await {} }).await;
    assert!(ended.is_ok(), "the event stream ended with the console");
}
