//! `--fleet kube` end to end: the real server with its KubeFleet watching an in-memory
//! API server (request shapes are asserted exactly in the ApiServerVerifier tests; here
//! the views, actions, audit and the unreachable-cluster path are).

use crate::support::{Backend, Options, TestApp, assert_error};
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::fleet::cluster::fake::{self, FakeApiServer};
use server::startup::InjectedClient;
use std::sync::Arc;
use std::time::Duration;

async fn cluster_app(fake: &Arc<FakeApiServer>) -> TestApp {
    let mut options = Options::new(Backend::Sqlite);
    options.kube = Some(InjectedClient(fake.client("prod")));
    TestApp::spawn_with(options).await
}

fn fleet() -> Arc<FakeApiServer> {
    let fake = FakeApiServer::new();
    for object in fake::gateway("prod", "edge", 3, "1.4.0").into_iter().chain(fake::gateway("prod", "auth", 2, "2.0.0"))
    {
        fake.insert(object);
    }
    let event = |uid: &str, kind: &str, name: &str, reason: &str, at: &str, warning: bool| {
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": format!("{name}.{uid}"), "namespace": "prod", "uid": uid},
               "involvedObject": {"kind": kind, "name": name, "namespace": "prod"},
               "reason": reason, "message": format!("{reason} on {name}"), "count": 3,
               "type": if warning { "Warning" } else { "Normal" }, "lastTimestamp": at})
    };
    fake.insert(event("e1", "Deployment", "edge", "ScalingReplicaSet", "2026-11-24T05:00:00Z", false));
    fake.insert(event("e2", "Pod", "edge-cur2-00001", "BackOff", "2026-11-24T05:10:00Z", true));
    fake.insert(event("e3", "ReplicaSet", "edge-cur2", "SuccessfulCreate", "2026-11-24T04:00:00Z", false));
    // About another gateway: not shown on edge's page.
    fake.insert(event("e4", "Pod", "auth-cur2-00000", "Unhealthy", "2026-11-24T05:20:00Z", true));
    fake
}

/// Polls `check` for up to 15 s (watch backoff after an outage can take a few seconds).
async fn within<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    crate::support::eventually_within(Duration::from_secs(15), what, check).await
}

async fn gateway_ids(viewer: &crate::support::Session) -> Vec<String> {
    let list = viewer.get_json("/api/v1/gateways").await;
    list.as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_health_views_show_the_clusters_deployments_and_their_pods() {
    let fake = fleet();
    let app = cluster_app(&fake).await;
    let viewer = app.signed_in(Role::Viewer).await;
    within("the first list", || async { (gateway_ids(&viewer).await.len() == 2).then_some(()) }).await;

    let list = viewer.get_json("/api/v1/gateways").await;
    let edge = list.as_array().unwrap().iter().find(|g| g["id"] == "prod:edge").unwrap();
    assert_eq!((edge["name"].as_str(), edge["namespace"].as_str()), (Some("edge"), Some("prod")));
    assert_eq!((edge["instances_ready"].as_u64(), edge["instances_desired"].as_u64()), (Some(3), Some(3)));
    assert_eq!(edge["version"], "1.4.0");

    let detail = viewer.get_json("/api/v1/gateways/prod:edge").await;
    let pods: Vec<(&str, &str, u64)> = detail["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["node"].as_str().unwrap(), i["restarts"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        pods,
        vec![("edge-cur2-00000", "node-0", 0), ("edge-cur2-00001", "node-1", 1), ("edge-cur2-00002", "node-2", 2)]
    );
    let events: Vec<(&str, &str, &str)> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["reason"].as_str().unwrap(), e["object"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        vec![
            ("Warning", "BackOff", "Pod/edge-cur2-00001"),
            ("Normal", "ScalingReplicaSet", "Deployment/edge"),
            ("Normal", "SuccessfulCreate", "ReplicaSet/edge-cur2"),
        ],
        "edge's own events, newest first"
    );

    // No Prometheus configured: the numbers are missing, and the console says why.
    let info = viewer.get_json("/api/v1/fleet").await;
    assert_eq!(info["kind"], "kube");
    assert!(info["problem"].as_str().unwrap_or_default().contains("no Prometheus configured"), "{info}");
}

#[tokio::test]
async fn a_restart_is_audited_and_sent_to_the_cluster_and_a_preview_is_a_dry_run() {
    let fake = fleet();
    let app = cluster_app(&fake).await;
    let responder = app.signed_in(Role::Responder).await;
    within("the first list", || async { (gateway_ids(&responder).await.len() == 2).then_some(()) }).await;

    let preview = responder
        .post("/api/v1/gateways/prod:edge/actions/scale", &json!({"reason": "surge", "dry_run": true, "replicas": 6}))
        .await;
    assert_eq!(preview.status(), StatusCode::OK);
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].uri.as_str()),
        ("PUT", "/apis/apps/v1/namespaces/prod/deployments/edge/scale?&dryRun=All&fieldManager=gatewarden")
    );
    assert_eq!(writes[0].body["spec"]["replicas"], 6);

    let response =
        responder.post("/api/v1/gateways/prod:edge/actions/restart", &json!({"reason": "stuck workers"})).await;
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(
        (writes[1].method.as_str(), writes[1].uri.as_str()),
        ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/edge?&fieldManager=gatewarden")
    );
    let stamp = writes[1].body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap();
    assert!(time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(), "{stamp}");

    let audit = responder.get_json("/api/v1/audit?target=prod:edge&action=restart").await;
    let outcomes: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["succeeded", "pending"], "outcome after intent: {audit}");
}

#[tokio::test]
async fn an_unreachable_cluster_degrades_the_console_without_taking_it_down() {
    let fake = fleet();
    fake.set_down(true);
    let app = cluster_app(&fake).await;
    let responder = app.signed_in(Role::Responder).await;

    // It serves, with nothing to show, and says why.
    let problem = within("the backend problem", || async {
        let info = responder.get_json("/api/v1/fleet").await;
        info["problem"].as_str().filter(|p| p.contains("unreachable")).map(str::to_string)
    })
    .await;
    assert!(problem.contains("showing the last known state"), "{problem}");
    assert_eq!(gateway_ids(&responder).await, Vec::<String>::new());

    // It reconnects by itself.
    fake.set_down(false);
    within("the reconnect", || async { (gateway_ids(&responder).await.len() == 2).then_some(()) }).await;

    // Down again: the last known state stays on screen, and a change fails closed (503)
    // with the failure audited after its intent.
    fake.set_down(true);
    assert_eq!(gateway_ids(&responder).await.len(), 2);
    let response =
        responder.post("/api/v1/gateways/prod:edge/actions/scale", &json!({"reason": "surge", "replicas": 6})).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
    let audit = responder.get_json("/api/v1/audit?target=prod:edge&action=scale").await;
    let outcomes: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["failed", "pending"], "{audit}");
}

/// `fleet()` with `prod:edge` bound to the ingress-nginx adapter over Ingress `payments`,
/// and an HPA managing `prod:auth`.
pub(crate) fn fleet_with_policy() -> Arc<FakeApiServer> {
    fake::with_policy()
}

#[tokio::test]
async fn the_dependency_map_follows_the_bound_ingress_to_its_service_and_counts_ready_endpoints() {
    let fake = fleet_with_policy();
    for (name, ready) in [("payments-a", true), ("payments-b", false)] {
        fake.insert(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": "prod", "labels": {"kubernetes.io/service-name": "payments"}},
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}}]
        }));
    }
    fake.insert(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "other", "namespace": "prod", "labels": {"kubernetes.io/service-name": "other"}},
        "endpoints": [{"addresses": ["10.0.0.2"]}]
    }));
    let app = cluster_app(&fake).await;
    let viewer = app.signed_in(Role::Viewer).await;
    within("the first list", || async { (gateway_ids(&viewer).await.len() == 2).then_some(()) }).await;
    let g: app::dto::DependencyGraph = serde_json::from_value(viewer.get_json("/api/v1/dependencies").await).unwrap();
    let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["gateway:prod:auth", "gateway:prod:edge", "route:prod:edge:payments", "service:prod/payments"]);
    let payments = &g.nodes[3];
    // No per-service numbers from a cluster: its endpoints are counted, its health is not
    // guessed ("ok" would be a claim nothing measured).
    assert_eq!(
        (payments.ready_endpoints, payments.endpoints, payments.health.as_str(), payments.error_rate),
        (Some(1), Some(2), "unknown", None)
    );
    let edges: Vec<(&str, &str)> = g.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())).collect();
    assert_eq!(
        edges,
        [("gateway:prod:edge", "route:prod:edge:payments"), ("route:prod:edge:payments", "service:prod/payments")]
    );
    let blast = app::deps::Graph::new(&g).dependents("service:prod/payments").len();
    assert_eq!(blast, 2, "the route and the gateway");

    // Its endpoints go unready: within the cache's ten seconds the map says so.
    fake.edit("EndpointSlice", "prod", "payments-a", |o| o["endpoints"][0]["conditions"]["ready"] = json!(false));
    let down = within("the map to see it", || async {
        let g: app::dto::DependencyGraph =
            serde_json::from_value(viewer.get_json("/api/v1/dependencies").await).unwrap();
        let p = g.nodes.into_iter().find(|n| n.id == "service:prod/payments").unwrap();
        (p.health == "down").then_some(p)
    })
    .await;
    assert_eq!(down.ready_endpoints, Some(0));
}

#[tokio::test]
async fn a_gateway_annotated_with_its_address_can_be_probed_and_is_checked_on_its_key_paths() {
    use axum::routing::get;
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let gateway =
        axum::Router::new().route("/healthz", get(|| async { "ok" })).route("/ready", get(|| async { "ready" }));
    tokio::spawn(async move {
        let _ = axum::serve(socket, gateway).await;
    });
    let fake = FakeApiServer::new();
    for mut object in fake::gateway("prod", "edge", 2, "1.4.0") {
        if object["kind"] == "Deployment" {
            // A cluster name that resolves inside, as a Service's does.
            object["metadata"]["annotations"]["gatewarden.io/probe-url"] = json!(format!("http://localhost:{port}"));
            object["metadata"]["annotations"]["gatewarden.io/probe-paths"] = json!("/healthz, /ready");
        }
        fake.insert(object);
    }
    // An annotation is anyone's word: a loopback address there is refused unless the
    // operator names it.
    let unlisted = cluster_app(&fake).await;
    let viewer = unlisted.signed_in(Role::Viewer).await;
    let refusal = within("the gateway's address to be known", || async {
        let r = viewer.post("/api/v1/probe", &json!({"gateway": "prod:edge", "path": "/ready"})).await;
        (r.status() == StatusCode::FORBIDDEN).then_some(r)
    })
    .await;
    let message = assert_error(refusal, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("console's own host") && message.contains("--probe-allow"), "{message}");

    let mut options = Options::new(Backend::Sqlite).probe_allow(&format!("localhost:{port}"));
    options.kube = Some(InjectedClient(fake.client("prod")));
    let app = TestApp::spawn_with(options).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let result = within("the gateway's address to be known", || async {
        let r = viewer.post("/api/v1/probe", &json!({"gateway": "prod:edge", "path": "/ready"})).await;
        if r.status().is_success() { Some(r.json::<app::dto::ProbeResult>().await.unwrap()) } else { None }
    })
    .await;
    assert_eq!((result.status, result.body_excerpt.as_str()), (Some(200), "ready"), "{result:?}");
    // Its name may resolve inside; its neighbours may not be reached through it.
    let r = viewer.post("/api/v1/probe", &json!({"url": format!("http://localhost:{}/", port + 1)})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.state.probes.check_all(1).await;
    let history: Vec<app::dto::SyntheticHistory> =
        serde_json::from_value(viewer.get_json("/api/v1/synthetics").await).unwrap();
    let checked: Vec<(&str, &str, bool)> =
        history.iter().map(|h| (h.gateway.as_str(), h.path.as_str(), h.results[0].ok)).collect();
    assert_eq!(checked, [("prod:edge", "/healthz", true), ("prod:edge", "/ready", true)]);
}

#[tokio::test]
async fn an_emergency_rate_limit_is_written_to_the_ingress_and_undo_restores_it_exactly() {
    let fake = fleet_with_policy();
    let original = fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"].clone();
    let app = cluster_app(&fake).await;
    let responder = app.signed_in(Role::Responder).await;
    within("the first list", || async { (gateway_ids(&responder).await.len() == 2).then_some(()) }).await;
    // ingress-nginx counts limit-rps per client address, in each pod: the preview says so.
    let preview: Value = responder
        .post(
            "/api/v1/gateways/prod:edge/actions/rate-limit",
            &json!({"reason": "look first", "requests_per_second": 50, "dry_run": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let summary = preview["preview"]["summary"].as_str().unwrap();
    assert!(summary.contains("counting each client address separately, on each ingress-nginx pod"), "{summary}");

    let run = |limit: u32| {
        let responder = &responder;
        async move {
            let response = responder
                .post(
                    "/api/v1/gateways/prod:edge/actions/rate-limit",
                    &json!({"reason": "card-testing bot", "requests_per_second": limit, "burst": limit * 2}),
                )
                .await;
            assert!(response.status().is_success(), "{}", response.text().await.unwrap());
            response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        }
    };
    let id = run(100).await;
    let annotations = fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"].clone();
    assert_eq!(annotations["nginx.ingress.kubernetes.io/limit-rps"], "100");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"], "2");
    assert_eq!(annotations["team"], "payments", "other annotations are left alone");

    let undo =
        responder.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "bot blocked at the WAF"})).await;
    assert!(undo.status().is_success(), "{}", undo.text().await.unwrap());
    let restored = fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"].clone();
    assert_eq!(restored, original, "undo restores the annotations byte for byte");

    // Someone else changes the limit after ours: undo refuses and leaves theirs.
    let id = run(50).await;
    fake.edit("Ingress", "prod", "payments", |o| {
        o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"] = json!("10");
    });
    let undo = responder.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "done"})).await;
    assert_eq!(undo.status(), StatusCode::CONFLICT);
    let body: Value = undo.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("changed since"), "{body}");
    let now = fake.get("Ingress", "prod", "payments").unwrap();
    assert_eq!(now["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"], "10");
}

#[tokio::test]
async fn scaling_a_gateway_an_hpa_manages_is_refused_with_the_way_out_and_its_bounds_can_be_moved() {
    let fake = fleet_with_policy();
    let app = cluster_app(&fake).await;
    let responder = app.signed_in(Role::Responder).await;
    within("the first list", || async { (gateway_ids(&responder).await.len() == 2).then_some(()) }).await;

    let response =
        responder.post("/api/v1/gateways/prod:auth/actions/scale", &json!({"reason": "surge", "replicas": 8})).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("auth-hpa") && message.contains("min 2, max 6") && message.contains("max_replicas"),
        "{message}"
    );
    assert!(fake.writes().is_empty(), "nothing was sent");
    // Refused after the role check: on the record, with the reason (issue 14).
    let refused = responder.get_json("/api/v1/audit?kind=action_intent&outcome=denied").await;
    let entry = &refused["entries"][0];
    assert_eq!(entry["target"], "prod:auth", "{refused}");
    assert!(entry["params"].as_str().unwrap().contains("auth-hpa"), "{entry}");

    let response = responder
        .post(
            "/api/v1/gateways/prod:auth/actions/scale",
            &json!({"reason": "surge", "min_replicas": 6, "max_replicas": 12}),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    let hpa = fake.get("HorizontalPodAutoscaler", "prod", "auth-hpa").unwrap();
    assert_eq!((hpa["spec"]["minReplicas"].as_u64(), hpa["spec"]["maxReplicas"].as_u64()), (Some(6), Some(12)));
    let action: Value = response.json().await.unwrap();
    let record = responder.get_json(&format!("/api/v1/actions/{}", action["id"])).await;
    assert_eq!(record["undo_available"], true, "the old bounds are recorded: {record}");
}

#[tokio::test]
async fn gateway_logs_are_read_like_kubectl_logs_with_a_selector() {
    let fake = fleet();
    fake.set_logs("edge-cur2-00000", &["GET /pay 200 11ms", "GET /pay 200 12ms"]);
    fake.set_logs("edge-cur2-00001", &["GET /pay 502 upstream connect error"]);
    let app = cluster_app(&fake).await;
    let viewer = app.signed_in(Role::Viewer).await;
    within("the first list", || async { (gateway_ids(&viewer).await.len() == 2).then_some(()) }).await;

    let logs = viewer.get_json("/api/v1/gateways/prod:edge/logs?tail=1").await;
    let lines: Vec<(&str, &str, &str)> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["pod"].as_str().unwrap(), l["container"].as_str().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("edge-cur2-00000", "gateway", "GET /pay 200 12ms"),
            ("edge-cur2-00001", "gateway", "GET /pay 502 upstream connect error"),
        ]
    );
    let bad = viewer.get("/api/v1/gateways/prod:edge/logs?tail=0").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("tail:"), "{body}");
}

#[tokio::test]
async fn the_pages_show_a_degraded_backend_and_the_gateways_events_on_first_paint() {
    let fake = fleet();
    let app = cluster_app(&fake).await;
    let viewer = app.signed_in(Role::Viewer).await;
    within("the first list", || async { (gateway_ids(&viewer).await.len() == 2).then_some(()) }).await;

    let health = viewer.get("/").await.text().await.unwrap();
    assert!(health.contains("data-testid=\"backend-problem\""), "the banner is there");
    assert!(health.contains("no Prometheus configured"), "with the reason");
    assert!(health.contains("prod:edge") || health.contains("/gateways/prod:edge"), "and the cluster's gateways");

    let page = viewer.get("/gateways/prod:edge").await.text().await.unwrap();
    for needle in ["data-testid=\"events\"", "BackOff", "Pod/edge-cur2-00001", "node-1"] {
        assert!(page.contains(needle), "gateway page lacks {needle}");
    }
}

#[tokio::test]
async fn an_interrupted_action_is_settled_against_the_clusters_state_once_the_watches_have_listed() {
    use server::audit::{Actor, Kind, NewEntry, Outcome};
    let fake = fleet();
    let app = cluster_app(&fake).await;
    let viewer = app.signed_in(Role::Viewer).await;
    within("the first list", || async { (gateway_ids(&viewer).await.len() == 2).then_some(()) }).await;
    let before = json!({
        "replicas": 3, "revision": 2, "version": "1.4.0", "template": "cur2",
        "revisions": [[1, "0.9.0"], [2, "1.4.0"]], "routes": [], "rate_limit": null,
        "timeouts": {"request_timeout_ms": 0, "connect_timeout_ms": 0, "retries": 0},
        "circuit_breaker": null, "services": [], "bypassed": []
    });
    // A restart whose intent was written when the process died.
    let mut intent = NewEntry::new(Actor::system(), Kind::ActionIntent, Outcome::Pending);
    intent.action = "restart".into();
    intent.target = "prod:edge".into();
    intent.params = json!({"params": {}, "change": {"change": "restart"}});
    intent.before = Some(before);
    app.state.ledger.append(intent).await.unwrap();
    let db = app.stop().await;

    // A slow API server: the caches are still empty when start-up settles the intent,
    // unless it waits for the first list.
    fake.set_delay(Duration::from_millis(500));
    let mut options = Options::new(Backend::Sqlite);
    options.kube = Some(InjectedClient(fake.client("prod")));
    let app = TestApp::spawn_on(db, options).await;
    fake.set_delay(Duration::ZERO);
    let viewer = app.signed_in(Role::Viewer).await;
    let audit = viewer.get_json("/api/v1/audit?kind=reconciliation").await;
    let entry = &audit["entries"][0];
    // The cluster was read (no new revision: the restart was not made), not guessed.
    assert_eq!(entry["outcome"], "failed", "{audit}");
    assert!(entry["reason"].as_str().unwrap().contains("shows it was not made"), "{entry}");
}

#[tokio::test]
async fn pod_logs_feed_log_search_in_kubernetes_mode() {
    // Nine gateway pods under a ceiling of five streams: shared out across the gateways
    // (each one's first pod, then each one's second, ...).
    let fake = FakeApiServer::new();
    for object in fake::gateway("prod", "edge", 7, "1.4.0").into_iter().chain(fake::gateway("prod", "auth", 2, "2.0.0"))
    {
        fake.insert(object);
    }
    fake.set_logs(
        "edge-cur2-00001",
        &[
            r#"10.0.0.1 "GET /api/pay?id=7 HTTP/1.1" 502 3.1ms upstream=payments"#,
            "connect() failed (111: Connection refused) while connecting to upstream",
        ],
    );
    let app = cluster_app(&fake).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let q = |q: &str| format!("/api/v1/logs?q={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
    let found = within("the pod's lines in log search", || async {
        let r = viewer.get_json(&q("gateway:prod:edge")).await;
        (r["total"].as_u64() == Some(2)).then_some(r)
    })
    .await;
    assert!(found["hits"].as_array().unwrap().iter().all(|h| h["instance"] == "edge-cur2-00001"), "{found}");
    let access = viewer.get_json(&q("status:502 route:/api/pay")).await;
    assert_eq!(access["total"], 1, "the access line's status and route are read: {access}");
    assert_eq!(viewer.get_json(&q("gateway:prod:edge level:error")).await["total"], 2);
    // Followed streams reopen without replaying what was read.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(viewer.get_json(&q("gateway:prod:edge")).await["total"], 2);
    assert_eq!(
        fake.followed(),
        vec!["auth-cur2-00000", "auth-cur2-00001", "edge-cur2-00000", "edge-cur2-00001", "edge-cur2-00002"],
        "at most five streams, both gateways followed"
    );
}

#[tokio::test]
async fn in_a_cluster_a_dns_bypass_patches_the_dns_endpoint_waits_for_external_dns_and_undo_restores_it() {
    use axum::routing::get;
    // Payments' own load balancer, where its clients go around the gateway.
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(socket, axum::Router::new().route("/healthz", get(|| async { "ok" }))).await;
    });
    let fake = fleet_with_policy();
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "payments", "namespace": "prod", "annotations": {
            "gatewarden.io/dns-name": "payments.example.com",
            "gatewarden.io/direct-health-url": format!("http://payments.example.com:{port}/healthz"),
            "gatewarden.io/dns-endpoint": "public-records"}},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    }));
    let endpoint = json!({"dnsName": "payments.example.com", "recordType": "A", "targets": ["203.0.113.10"],
                          "recordTTL": 300, "labels": {"owner": "prod-cluster"}});
    fake.insert(json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": "public-records", "namespace": "prod", "resourceVersion": "7", "generation": 1},
        "spec": {"endpoints": [endpoint]},
        "status": {"observedGeneration": 1}
    }));
    let mut options = Options::new(Backend::Sqlite);
    options.kube = Some(InjectedClient(fake.client("prod")));
    options.external_dns = Some((Some("prod-cluster".into()), Duration::from_secs(30)));
    // The direct target is on this host: the probe guard lets it be asked only when listed.
    options.probe_allow = vec![format!("127.0.0.1:{port}")];
    let app = TestApp::spawn_with(options).await;
    let admin = app.signed_in(Role::Admin).await;
    within("the first list", || async { (gateway_ids(&admin).await.len() == 2).then_some(()) }).await;
    let body = json!({"reason": "edge down", "service": "payments", "method": "dns", "confirm": "edge"});
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);

    // The preview: the endpoint before and after, the preflight, and external-dns' sync.
    let preview = admin.post("/api/v1/gateways/prod:edge/actions/bypass", &dry).await;
    assert_eq!(preview.status(), 200, "{}", preview.text().await.unwrap());
    let preview: Value = preview.json().await.unwrap();
    let change = &preview["preview"]["changes"][0];
    assert_eq!(change["before"], "payments.example.com. 300 IN A 203.0.113.10");
    assert_eq!(change["after"], "payments.example.com. 60 IN A 127.0.0.1");
    let warnings = preview["preview"]["warnings"].to_string();
    assert!(
        warnings
            .contains(&format!("Preflight passed: GET http://payments.example.com:{port}/healthz at 127.0.0.1:{port}"))
    );
    assert!(warnings.contains("external-dns publishes it at its next sync"), "{warnings}");
    let writes = fake.writes();
    assert!(writes.last().unwrap().uri.contains("dnsendpoints/public-records?&dryRun=All"), "a dry-run PATCH");
    assert_eq!(fake.get("DNSEndpoint", "prod", "public-records").unwrap()["spec"]["endpoints"][0], endpoint);

    // Run: the endpoint changes; the action waits for external-dns to publish it.
    let response = admin.post("/api/v1/gateways/prod:edge/actions/bypass", &body).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let changed = fake.get("DNSEndpoint", "prod", "public-records").unwrap();
    assert_eq!(changed["spec"]["endpoints"][0]["targets"], json!(["127.0.0.1"]));
    assert_eq!(changed["spec"]["endpoints"][0]["recordTTL"], 60);
    assert_eq!(changed["metadata"]["generation"], 2);
    let waiting = within("the wait", || async {
        let a = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        (a["detail"] == "propagating: waiting for external-dns to publish the new record").then_some(a)
    })
    .await;
    assert_eq!(waiting["status"], "running");
    // external-dns syncs: it records the generation it published.
    fake.edit("DNSEndpoint", "prod", "public-records", |o| o["status"]["observedGeneration"] = json!(2));
    let done = within("the publication", || async {
        let a = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        (a["status"] != "running").then_some(a)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["detail"].as_str().unwrap().starts_with("published by external-dns after"), "{done}");

    // Undo: the endpoint exactly as it was.
    let undo =
        admin.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "edge back", "confirm": "edge"})).await;
    assert_eq!(undo.status(), 202, "{}", undo.text().await.unwrap());
    assert_eq!(fake.get("DNSEndpoint", "prod", "public-records").unwrap()["spec"]["endpoints"][0], endpoint);
}

/// Blind is not healthy: every way the numbers go missing.
mod blind {
    use super::*;
    use app::dto::{DependencyGraph, GatewaySummary, HealthStatus};

    async fn gateways(viewer: &crate::support::Session) -> Vec<GatewaySummary> {
        serde_json::from_value(viewer.get_json("/api/v1/gateways").await).unwrap()
    }

    #[tokio::test]
    async fn with_no_prometheus_every_gateway_and_its_map_node_is_unknown_and_no_impact_is_read() {
        let fake = fleet_with_policy();
        let app = cluster_app(&fake).await;
        let responder = app.signed_in(Role::Responder).await;
        let list = within("the first list", || async {
            let list = gateways(&responder).await;
            (list.len() == 2).then_some(list)
        })
        .await;
        for g in &list {
            assert_eq!(g.status, HealthStatus::Unknown, "{g:?}");
            assert_eq!((g.rps, g.error_rate_5xx, g.throttle_rate_429, g.latency_ms), (None, None, None, None));
            assert!(g.blind.as_deref().is_some_and(|b| b.contains("no Prometheus configured")), "{g:?}");
        }
        let raw = responder.get_json("/api/v1/gateways").await;
        assert_eq!(raw[0]["rps"], Value::Null, "null on the wire, never 0: {raw}");

        let map: DependencyGraph = serde_json::from_value(responder.get_json("/api/v1/dependencies").await).unwrap();
        let judged: Vec<(&str, &str)> = map.nodes.iter().map(|n| (n.id.as_str(), n.health.as_str())).collect();
        // Unknown, except what Kubernetes alone shows: a Service with no ready endpoint is down.
        assert!(judged.iter().all(|(_, h)| *h != "ok"), "nothing on the map is called ok blind: {judged:?}");
        assert!(
            judged.contains(&("gateway:prod:edge", "unknown"))
                && judged.contains(&("route:prod:edge:payments", "unknown"))
        );

        // An action taken blind credits nothing to itself: no reading before (or after).
        let response = responder.post("/api/v1/gateways/prod:edge/actions/restart", &json!({"reason": "stuck"})).await;
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let record = responder.get_json(&format!("/api/v1/actions/{id}")).await;
        assert_eq!(record["impact_before"], Value::Null, "{record}");

        // The pages say unknown where the numbers would be, and why.
        let page = responder.get("/gateways/prod:edge").await.text().await.unwrap();
        assert!(page.contains("data-testid=\"blind\""), "the gateway page says its numbers are unknown");
        assert!(!page.contains(">0 ms<") && !page.contains(">0.0<"), "and shows no zero for them");
        let health = responder.get("/").await.text().await.unwrap();
        assert!(health.contains("badge-unknown"), "the health page's badge is unknown");
        assert!(!health.contains("badge-healthy"), "never healthy");
    }

    #[tokio::test]
    async fn with_prometheus_down_the_gateways_are_unknown_with_the_reason() {
        let fake = fleet();
        // Nothing listens on port 1.
        let mut options = Options::new(Backend::Sqlite);
        options.kube = Some(InjectedClient(fake.client("prod")));
        options.prometheus =
            Some(("http://127.0.0.1:1".into(), server::fleet::prometheus::Queries::flavor("gatewarden").unwrap()));
        let app = TestApp::spawn_with(options).await;
        let viewer = app.signed_in(Role::Viewer).await;
        let list = within("the first list", || async {
            let list = gateways(&viewer).await;
            (list.len() == 2).then_some(list)
        })
        .await;
        for g in &list {
            assert_eq!((g.status, g.rps), (HealthStatus::Unknown, None), "{g:?}");
            assert!(g.blind.as_deref().is_some_and(|b| b.contains("metrics could not be read")), "{g:?}");
        }
    }

    #[tokio::test]
    async fn a_quiet_cluster_still_gets_a_live_snapshot_every_second() {
        use futures::StreamExt;
        let fake = fleet();
        let app = cluster_app(&fake).await;
        let viewer = app.signed_in(Role::Viewer).await;
        within("the first list", || async { (gateway_ids(&viewer).await.len() == 2).then_some(()) }).await;
        let mut stream = viewer.get("/api/v1/events").await.bytes_stream();
        let started = std::time::Instant::now();
        let mut arrivals = Vec::new();
        let mut buffer = String::new();
        // No cluster event for 6 s: the page calls a feed silent for 4 s lost.
        while started.elapsed() < Duration::from_secs(6) {
            let chunk = tokio::time::timeout(Duration::from_secs(3), stream.next())
                .await
                .expect("something within 3 s")
                .expect("open")
                .expect("chunk");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.lines().any(|l| l == "event: snapshot") {
                    arrivals.push(started.elapsed());
                }
            }
        }
        let gaps: Vec<f64> = arrivals.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        assert!(arrivals.len() >= 5, "a snapshot about every second: {arrivals:?}");
        assert!(gaps.iter().all(|g| *g <= 1.6), "never a gap near the page's 4 s: {gaps:?}");
    }
}
