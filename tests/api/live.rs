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
    let second = next_snapshot(&mut stream, &mut buffer).await;

    assert_eq!(first.gateways.len(), 2);
    assert_eq!(second.ts_ms - first.ts_ms, 1000, "one simulated second later");
    let list: Vec<app::dto::GatewaySummary> =
        serde_json::from_value(viewer.get_json("/api/v1/gateways").await).unwrap();
    let live: Vec<_> = second.gateways.iter().map(|g| g.summary.clone()).collect();
    assert_eq!(live, list, "the stream and the API agree");
    assert_eq!(second.gateways[0].point.rps, list[0].rps);
}
