//! Pod logs and the follow feed.

use super::view::pod;
use super::*;
use crate::fleet::cluster::logs::{self, Source};
use crate::fleet::cluster::view;
use k8s_openapi::api::core::v1::Pod;

/// Answers each expected log request with plain text (the verifier above answers JSON).
fn log_server(mut handle: Handle, script: Vec<(&'static str, &'static str)>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for (i, (uri, text)) in script.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| panic!("log request {i} never came"));
            assert_eq!(request.method().as_str(), "GET");
            assert_eq!(request.uri().to_string(), uri, "log request {i}");
            send.send_response(Response::new(Body::from(text.as_bytes().to_vec())));
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected extra request {} {}", request.method(), request.uri());
        }
    })
}

#[tokio::test]
async fn a_pod_log_read_asks_for_at_most_its_share_of_the_byte_budget() {
    let budget = logs::Budget { per_pod: 256 * 1024, total: 300 * 1024 };
    assert_eq!(budget.per_pod_of(1), 256 * 1024, "one pod: the per-pod limit");
    assert_eq!(budget.per_pod_of(3), 100 * 1024, "three: an equal share of the total");
    assert_eq!(budget.per_pod_of(10_000), 1024, "never less than 1 KiB");
    assert_eq!(budget.max_pods(), 300, "so at most 300 pods are read, and the total holds");
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api: Api<Pod> = Api::namespaced(Client::new(service, "prod"), "prod");
    let server = log_server(
        handle,
        vec![("/api/v1/namespaces/prod/pods/edge-a/log?&container=gateway&limitBytes=102400&tailLines=10", "x\n")],
    );
    let lines = logs::recent(
        &api,
        &[Source { pod: "edge-a".into(), container: "gateway".into() }],
        10,
        None,
        Some(budget.per_pod_of(3)),
    )
    .await
    .unwrap();
    drop(api);
    finish(server).await;
    assert_eq!(lines.len(), 1);
}

#[tokio::test]
async fn recent_logs_read_each_pods_default_container_with_kubectls_tail() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api: Api<Pod> = Api::namespaced(Client::new(service, "prod"), "prod");
    let server = log_server(
        handle,
        vec![
            (
                "/api/v1/namespaces/prod/pods/edge-a/log?&container=gateway&tailLines=10",
                "GET /pay 200 12ms\nGET /pay 502 upstream connect error\n",
            ),
            ("/api/v1/namespaces/prod/pods/edge-b/log?&container=proxy&sinceSeconds=300&tailLines=10", "boot\n"),
        ],
    );
    // Sequential script: one source at a time keeps the verifier's order.
    let a = logs::recent(&api, &[Source { pod: "edge-a".into(), container: "gateway".into() }], 10, None, None)
        .await
        .unwrap();
    let b = logs::recent(&api, &[Source { pod: "edge-b".into(), container: "proxy".into() }], 10, Some(300), None)
        .await
        .unwrap();
    drop(api);
    finish(server).await;
    assert_eq!(
        a.iter().map(|l| (l.pod.as_str(), l.line.as_str())).collect::<Vec<_>>(),
        vec![("edge-a", "GET /pay 200 12ms"), ("edge-a", "GET /pay 502 upstream connect error")]
    );
    assert_eq!(b.len(), 1);
}

#[test]
fn the_default_container_is_the_annotated_one_else_the_first() {
    let mut p: Pod = serde_json::from_value(pod("edge-a", "rs-1", true, 0)).unwrap();
    assert_eq!(view::pod_row(&p).container, "gateway");
    let spec = p.spec.as_mut().unwrap();
    spec.containers
        .insert(0, k8s_openapi::api::core::v1::Container { name: "istio-proxy".into(), ..Default::default() });
    assert_eq!(view::pod_row(&p).container, "istio-proxy");
    p.metadata.annotations = Some([(view::DEFAULT_CONTAINER.to_string(), "gateway".to_string())].into());
    assert_eq!(view::pod_row(&p).container, "gateway");
}

#[tokio::test(start_paused = true)]
async fn a_followed_log_is_reopened_a_second_after_it_ends_without_replaying_the_tail() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api: Api<Pod> = Api::namespaced(Client::new(service, "prod"), "prod");
    let server = log_server(
        handle,
        vec![
            ("/api/v1/namespaces/prod/pods/edge-a/log?&container=gateway&follow=true&tailLines=10", "a\nb\n"),
            ("/api/v1/namespaces/prod/pods/edge-a/log?&container=gateway&follow=true&sinceSeconds=1", "c\n"),
        ],
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let started = tokio::time::Instant::now();
    let follower =
        tokio::spawn(logs::follow(api.clone(), Source { pod: "edge-a".into(), container: "gateway".into() }, tx));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.recv().await.expect("a line").line);
    }
    assert_eq!(got, vec!["a", "b", "c"]);
    assert_eq!(started.elapsed(), logs::FOLLOW_RETRY, "reopened after kubectl's one-second pause");
    drop(rx);
    drop(api);
    tokio::time::timeout(Duration::from_secs(5), follower).await.expect("follow stops").unwrap();
    finish(server).await;
}
