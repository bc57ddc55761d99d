//! The write side against kube-rs's ApiServerVerifier pattern: a `tower_test` mock
//! stands in for the API server, and each test asserts every request's method, path,
//! query, content type and body exactly, answering as the API server would. A missing
//! call fails by timeout; an extra call finds the mock closed.

use super::ops::{self, Rollback, Target};
use super::view;
use crate::fleet::FleetError;
use http::{Request, Response};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer to give.
struct Expect {
    method: &'static str,
    uri: &'static str,
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    reply: Value,
}

fn expect(method: &'static str, uri: &'static str) -> Expect {
    Expect { method, uri, content_type: None, body: None, status: 200, reply: json!({}) }
}

impl Expect {
    fn body(mut self, content_type: &'static str, body: Value) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }
    fn reply(mut self, status: u16, reply: Value) -> Self {
        self.status = status;
        self.reply = reply;
        self
    }
}

/// Answers `script` in order, asserting each request, then checks nothing else arrives.
fn verifier(mut handle: Handle, script: Vec<Expect>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for (i, e) in script.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| panic!("request {i} never came"));
            assert_eq!(request.method().as_str(), e.method, "request {i} method");
            assert_eq!(request.uri().to_string(), e.uri, "request {i} path and query");
            let content_type = request.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(content_type.as_deref(), e.content_type, "request {i} content type");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            match e.body {
                Some(expected) => {
                    let got: Value = serde_json::from_slice(&bytes).expect("JSON body");
                    assert_eq!(got, expected, "request {i} body");
                }
                None => assert!(bytes.is_empty(), "request {i} has no body"),
            }
            let response =
                Response::builder().status(e.status).body(Body::from(serde_json::to_vec(&e.reply).unwrap())).unwrap();
            send.send_response(response);
        }
        // The caller has dropped its client once its call returns: nothing more may come.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected extra request {} {}", request.method(), request.uri());
        }
    })
}

async fn finish(server: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("verifier finished").expect("script matched");
}

fn target() -> (Target, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "prod");
    let t = Target {
        deployments: Api::namespaced(client.clone(), "prod"),
        replicasets: Api::namespaced(client.clone(), "prod"),
        hpas: Api::namespaced(client, "prod"),
        name: "edge".into(),
    };
    (t, handle)
}

fn template(version: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "api-gateway"});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    json!({
        "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {"containers": [{"name": "gateway", "image": format!("registry.example/gw:{version}")}]}
    })
}

fn deployment(paused: bool, version: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "edge", "namespace": "prod", "uid": "d-uid", "resourceVersion": "812", "generation": 7,
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
                "team": "edge-sre"
            }
        },
        "spec": {
            "replicas": 4, "paused": paused,
            "selector": {"matchLabels": {"app": "api-gateway"}},
            "template": template(version, None)
        },
        "status": {"observedGeneration": 7, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}
    })
}

fn replicaset(revision: u32, version: &str, hash: &str, owner: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("edge-{hash}"), "namespace": "prod", "uid": format!("rs-{hash}"),
            "labels": {"app": "api-gateway", "pod-template-hash": hash},
            "annotations": {
                "deployment.kubernetes.io/revision": revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": "4",
                "deployment.kubernetes.io/max-replicas": "5",
                "change-cause": format!("deploy {version}")
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "edge", "uid": owner, "controller": true}]
        },
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api-gateway", "pod-template-hash": hash}},
                 "template": template(version, Some(hash))}
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "900"}, "items": items})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

const DEPLOY: &str = "/apis/apps/v1/namespaces/prod/deployments/edge";
const HPAS: &str = "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers?";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

#[tokio::test]
async fn restart_patches_the_template_annotation_exactly_as_kubectl() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")),
            expect("PATCH", "/apis/apps/v1/namespaces/prod/deployments/edge?&fieldManager=gatewarden")
                .body(
                    STRATEGIC,
                    json!({"spec": {"template": {"metadata": {"annotations": {
                        "kubectl.kubernetes.io/restartedAt": "2026-11-24T06:30:00Z"}}}}}),
                )
                .reply(200, deployment(false, "1.4.0")),
        ],
    );
    ops::restart(&t, "2026-11-24T06:30:00Z", false).await.expect("restarted");
    drop(t);
    finish(server).await;
}

#[tokio::test]
async fn a_restart_preview_is_a_server_side_dry_run() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")),
            expect("PATCH", "/apis/apps/v1/namespaces/prod/deployments/edge?&dryRun=All&fieldManager=gatewarden")
                .body(
                    STRATEGIC,
                    json!({"spec": {"template": {"metadata": {"annotations": {
                        "kubectl.kubernetes.io/restartedAt": "2026-11-24T06:30:00Z"}}}}}),
                )
                .reply(200, deployment(false, "1.4.0")),
        ],
    );
    ops::restart(&t, "2026-11-24T06:30:00Z", true).await.expect("validated");
    drop(t);
    finish(server).await;
}

#[tokio::test]
async fn restart_refuses_a_paused_deployment_and_sends_no_patch() {
    let (t, handle) = target();
    let server = verifier(handle, vec![expect("GET", DEPLOY).reply(200, deployment(true, "1.4.0"))]);
    let err = ops::restart(&t, "2026-11-24T06:30:00Z", false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Refused(m) if m.contains("paused")), "{err:?}");
    drop(t);
    finish(server).await;
}

#[tokio::test]
async fn a_missing_deployment_is_not_found_and_a_forbidden_call_says_so() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            expect("GET", DEPLOY).reply(404, status(404, "NotFound", "deployments.apps \"edge\" not found")),
            expect("GET", DEPLOY).reply(
                403,
                status(
                    403,
                    "Forbidden",
                    "deployments.apps \"edge\" is forbidden: User \"system:serviceaccount:ops:gatewarden\" cannot get",
                ),
            ),
        ],
    );
    assert!(matches!(ops::restart(&t, "x", false).await, Err(FleetError::NotFound(_))));
    let err = ops::restart(&t, "x", false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Forbidden(m) if m.contains("cannot get")), "{err:?}");
    drop(t);
    finish(server).await;
}

#[tokio::test(start_paused = true)]
async fn an_api_server_that_never_answers_fails_the_call_after_the_timeout() {
    let (t, mut handle) = target();
    let silent = tokio::spawn(async move {
        // Take the request and never answer it.
        let (_request, send) = handle.next_request().await.expect("a request");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(send);
    });
    let started = tokio::time::Instant::now();
    let err = ops::restart(&t, "x", false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Unavailable(m) if m.contains("no answer")), "{err:?}");
    assert_eq!(started.elapsed(), ops::CALL_TIMEOUT);
    silent.abort();
}

fn scale(replicas: i32, rv: &str) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
           "metadata": {"name": "edge", "namespace": "prod", "resourceVersion": rv},
           "spec": {"replicas": replicas}, "status": {"replicas": replicas, "selector": "app=api-gateway"}})
}

/// The Scale object read with `replicas` running, sent back asking for `wanted`: only
/// `spec.replicas` differs, and the resourceVersion is the one read.
fn scale_request(replicas: i32, wanted: i32, rv: &str) -> Value {
    let mut s = scale(replicas, rv);
    s["spec"]["replicas"] = json!(wanted);
    s
}

#[tokio::test]
async fn scale_reads_the_scale_subresource_and_writes_it_back_with_its_resource_version() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            expect("GET", HPAS).reply(200, list("HorizontalPodAutoscalerList", vec![])),
            expect("GET", "/apis/apps/v1/namespaces/prod/deployments/edge/scale").reply(200, scale(4, "812")),
            expect("PUT", "/apis/apps/v1/namespaces/prod/deployments/edge/scale?&fieldManager=gatewarden")
                .body("application/json", scale_request(4, 8, "812"))
                .reply(200, scale(8, "813")),
        ],
    );
    let done = ops::scale(&t, 8, 4, false).await.expect("scaled");
    assert_eq!(done.spec.and_then(|s| s.replicas), Some(8));
    drop(t);
    finish(server).await;
}

#[tokio::test]
async fn scale_refuses_when_the_count_moved_since_the_preview_and_on_a_write_race() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            // Someone scaled to 5 after our preview said 4: no write.
            expect("GET", HPAS).reply(200, list("HorizontalPodAutoscalerList", vec![])),
            expect("GET", "/apis/apps/v1/namespaces/prod/deployments/edge/scale").reply(200, scale(5, "820")),
            // Between our GET and PUT: the API server answers 409.
            expect("GET", HPAS).reply(200, list("HorizontalPodAutoscalerList", vec![])),
            expect("GET", "/apis/apps/v1/namespaces/prod/deployments/edge/scale").reply(200, scale(4, "812")),
            expect("PUT", "/apis/apps/v1/namespaces/prod/deployments/edge/scale?&fieldManager=gatewarden")
                .body("application/json", scale_request(4, 8, "812"))
                .reply(
                    409,
                    status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on deployments.apps \"edge\": the object has been modified",
                    ),
                ),
        ],
    );
    let err = ops::scale(&t, 8, 4, false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Conflict(m) if m.contains("has 5 replicas")), "{err:?}");
    let err = ops::scale(&t, 8, 4, false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Conflict(m) if m.contains("modified")), "{err:?}");
    drop(t);
    finish(server).await;
}

fn hpa(min: i32, max: i32) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "edge-hpa", "namespace": "prod", "resourceVersion": "77"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "edge"},
                    "minReplicas": min, "maxReplicas": max}})
}

#[tokio::test]
async fn scale_refuses_a_deployment_an_hpa_manages_and_changes_the_hpa_bounds_instead() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            expect("GET", HPAS).reply(200, list("HorizontalPodAutoscalerList", vec![hpa(2, 10)])),
            expect(
                "PATCH",
                "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers/edge-hpa?&fieldManager=gatewarden",
            )
            .body(
                JSON_PATCH,
                json!([
                    {"op": "test", "path": "/spec/minReplicas", "value": 2},
                    {"op": "test", "path": "/spec/maxReplicas", "value": 10},
                    {"op": "replace", "path": "/spec/minReplicas", "value": 6},
                    {"op": "replace", "path": "/spec/maxReplicas", "value": 20},
                ]),
            )
            .reply(200, hpa(6, 20)),
            // Undo after someone else moved the bounds: the test op fails with 422.
            expect(
                "PATCH",
                "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers/edge-hpa?&fieldManager=gatewarden",
            )
            .body(
                JSON_PATCH,
                json!([
                    {"op": "test", "path": "/spec/minReplicas", "value": 6},
                    {"op": "test", "path": "/spec/maxReplicas", "value": 20},
                    {"op": "replace", "path": "/spec/minReplicas", "value": 2},
                    {"op": "replace", "path": "/spec/maxReplicas", "value": 10},
                ]),
            )
            .reply(
                422,
                status(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request: test operation failed",
                ),
            ),
        ],
    );
    let err = ops::scale(&t, 8, 4, false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Refused(m) if m.contains("edge-hpa") && m.contains("min 2, max 10")), "{err:?}");
    let hpa = ops::autoscale(&t, "edge-hpa", (2, 10), (6, 20), false).await.expect("bounds changed");
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(6), 20));
    let err = ops::autoscale(&t, "edge-hpa", (6, 20), (2, 10), false).await.unwrap_err();
    assert!(matches!(err, FleetError::Conflict(_)), "{err:?}");
    drop(t);
    finish(server).await;
}

const RS_LIST: &str = "/apis/apps/v1/namespaces/prod/replicasets?&labelSelector=app%3Dapi-gateway";

fn history() -> Value {
    list(
        "ReplicaSetList",
        vec![
            replicaset(1, "1.2.0", "aaa111", "d-uid"),
            replicaset(3, "1.4.0", "ccc333", "d-uid"),
            replicaset(2, "1.3.0", "bbb222", "d-uid"),
            // Same labels, another owner: not part of this Deployment's history.
            replicaset(9, "9.9.9", "zzz999", "other-uid"),
        ],
    )
}

fn rollback_patch(version: &str, hash: &str) -> Value {
    let _ = hash;
    json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": "812"},
        {"op": "replace", "path": "/spec/template", "value": template(version, None)},
        {"op": "replace", "path": "/metadata/annotations", "value": {
            // Kept from the Deployment.
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
            // Taken from the ReplicaSet (the Deployment's own "team" is replaced, as kubectl does).
            "change-cause": format!("deploy {version}")
        }},
    ])
}

#[tokio::test]
async fn rollback_copies_the_previous_revision_template_behind_a_resource_version_test() {
    let (t, handle) = target();
    let server = verifier(
        handle,
        vec![
            expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")),
            expect("GET", RS_LIST).reply(200, history()),
            expect("PATCH", "/apis/apps/v1/namespaces/prod/deployments/edge?&fieldManager=gatewarden")
                .body(JSON_PATCH, rollback_patch("1.3.0", "bbb222"))
                .reply(200, deployment(false, "1.3.0")),
            // --to-revision=1
            expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")),
            expect("GET", RS_LIST).reply(200, history()),
            expect("PATCH", "/apis/apps/v1/namespaces/prod/deployments/edge?&fieldManager=gatewarden")
                .body(JSON_PATCH, rollback_patch("1.2.0", "aaa111"))
                .reply(
                    422,
                    status(422, "Invalid", "the server rejected our request: testing value /metadata/resourceVersion failed: test operation"),
                ),
        ],
    );
    assert_eq!(ops::rollback(&t, 0, false).await.expect("rolled back"), Rollback::Patched { revision: 2 });
    let err = ops::rollback(&t, 1, false).await.unwrap_err();
    assert!(matches!(err, FleetError::Conflict(_)), "a concurrent change is a conflict: {err:?}");
    drop(t);
    finish(server).await;
}

#[tokio::test]
async fn rollback_refuses_without_history_for_a_paused_deployment_and_for_an_unknown_revision() {
    let (t, handle) = target();
    let only_current = list("ReplicaSetList", vec![replicaset(3, "1.4.0", "ccc333", "d-uid")]);
    let server = verifier(
        handle,
        vec![
            expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")),
            expect("GET", RS_LIST).reply(200, only_current),
            expect("GET", DEPLOY).reply(200, deployment(true, "1.4.0")),
            expect("GET", RS_LIST).reply(200, history()),
            expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")),
            expect("GET", RS_LIST).reply(200, history()),
        ],
    );
    let err = ops::rollback(&t, 0, false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Refused(m) if m.contains("no rollout history found")), "{err:?}");
    let err = ops::rollback(&t, 0, false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Refused(m) if m.contains("paused")), "{err:?}");
    let err = ops::rollback(&t, 7, false).await.unwrap_err();
    assert!(matches!(&err, FleetError::Refused(m) if m.contains("revision 7")), "{err:?}");
    drop(t);
    finish(server).await;
}

#[tokio::test]
async fn rollback_to_the_template_already_running_is_skipped_without_a_patch() {
    let (t, handle) = target();
    // Revision 2's template is the same as the current one (a rollback was made before).
    let same = list(
        "ReplicaSetList",
        vec![replicaset(2, "1.4.0", "bbb222", "d-uid"), replicaset(3, "1.4.0", "ccc333", "d-uid")],
    );
    let server = verifier(
        handle,
        vec![expect("GET", DEPLOY).reply(200, deployment(false, "1.4.0")), expect("GET", RS_LIST).reply(200, same)],
    );
    assert_eq!(ops::rollback(&t, 0, false).await.unwrap(), Rollback::Skipped { revision: 2 });
    drop(t);
    finish(server).await;
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("valid object"))
}

fn pod(name: &str, rs_uid: &str, ready: bool, restarts: i32) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "prod", "uid": format!("p-{name}"),
                        "labels": {"app": "api-gateway", "app.kubernetes.io/version": "1.4.0"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": rs_uid, "controller": true}],
                        "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
           "spec": {"nodeName": "node-a", "containers": [{"name": "gateway", "image": "registry.example/gw:1.4.0",
                     "args": ["--config", "/etc/gw.yaml"], "env": [{"name": "A", "value": "B"}]}]},
           "status": {"startTime": "2026-11-24T06:00:00Z",
                      "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }},
                                     {"type": "PodScheduled", "status": "True"}],
                      "containerStatuses": [{"name": "gateway", "ready": ready, "restartCount": restarts,
                                             "image": "gw", "imageID": "sha", "state": {"running": {}}}]}})
}

#[test]
fn api_objects_become_the_gateway_inventory_and_state() {
    let deployments: Vec<Arc<Deployment>> = vec![typed(deployment(false, "1.4.0"))];
    let replicasets: Vec<Arc<ReplicaSet>> = history()["items"].as_array().unwrap().iter().cloned().map(typed).collect();
    let pods: std::collections::HashMap<String, view::PodRow> = [
        pod("edge-ccc333-b", "rs-ccc333", true, 2),
        pod("edge-ccc333-a", "rs-ccc333", false, 0),
        // A pod of a ReplicaSet owned by another Deployment.
        pod("other-zzz999-a", "rs-zzz999", true, 0),
    ]
    .into_iter()
    .map(|p| {
        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(p).unwrap();
        (p.metadata.uid.clone().unwrap(), view::pod_row(&p))
    })
    .collect();
    let hpas = vec![typed(hpa(2, 10))];
    let objects = view::Objects { deployments: &deployments, replicasets: &replicasets, pods: &pods, hpas: &hpas };
    let now = 1_795_500_000 + 600; // 2026-11-24T06:10:00Z
    let inventory = objects.inventory(now);
    assert_eq!(inventory.len(), 1);
    let gw = &inventory[0];
    assert_eq!((gw.id.as_str(), gw.name.as_str(), gw.namespace.as_str()), ("prod:edge", "edge", "prod"));
    assert_eq!((gw.desired, gw.version.as_str()), (4, "1.4.0"));
    let rows: Vec<(&str, bool, u32, u64, &str, &str)> = gw
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i.ready, i.restarts, i.age_s, i.version.as_str(), i.node.as_str()))
        .collect();
    assert_eq!(
        rows,
        vec![("edge-ccc333-a", false, 0, 600, "1.4.0", "node-a"), ("edge-ccc333-b", true, 2, 600, "1.4.0", "node-a")]
    );
    let state = objects.state(&deployments[0]);
    assert_eq!((state.replicas, state.revision, state.template.as_str()), (4, 3, "ccc333"));
    assert_eq!(state.revisions, vec![(1, "1.2.0".into()), (2, "1.3.0".into()), (3, "1.4.0".into())]);
    let a = state.autoscaler.expect("the HPA targets edge");
    assert_eq!((a.name.as_str(), a.min_replicas, a.max_replicas), ("edge-hpa", 2, 10));
    assert!(!state.paused);
}

#[test]
fn a_pod_is_kept_as_a_small_row_with_what_the_instance_table_shows() {
    let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod("edge-a", "rs-1", true, 3)).unwrap();
    let row = view::pod_row(&p);
    assert_eq!(row.owner.as_deref(), Some("rs-1"));
    assert_eq!(row.started_s, Some(1_795_500_000));
    let i = &row.instance;
    assert_eq!(
        (i.name.as_str(), i.ready, i.restarts, i.version.as_str(), i.node.as_str()),
        ("edge-a", true, 3, "1.4.0", "node-a")
    );
    assert_eq!(view::instance(&p, 1_795_500_000 + 60).age_s, 60);
}

fn rollout_of(generation: i64, observed: i64, status: Value) -> crate::fleet::RolloutState {
    let mut d = deployment(false, "1.4.0");
    d["metadata"]["generation"] = json!(generation);
    d["status"] = status;
    d["status"]["observedGeneration"] = json!(observed);
    view::rollout(&serde_json::from_value(d).unwrap())
}

#[test]
fn rollout_status_is_judged_as_kubectl_judges_it() {
    let done = json!({"replicas": 4, "updatedReplicas": 4, "availableReplicas": 4});
    assert!(rollout_of(7, 7, done.clone()).done);
    // The controller has not seen the new spec yet: not done, whatever the counts say.
    let r = rollout_of(8, 7, done);
    assert!(!r.done && r.failed.is_none());
    // Old pods still running, new ones not yet available.
    assert!(!rollout_of(7, 7, json!({"replicas": 5, "updatedReplicas": 4, "availableReplicas": 4})).done);
    assert!(!rollout_of(7, 7, json!({"replicas": 4, "updatedReplicas": 2, "availableReplicas": 4})).done);
    assert!(!rollout_of(7, 7, json!({"replicas": 4, "updatedReplicas": 4, "availableReplicas": 3})).done);
    let stuck = rollout_of(
        7,
        7,
        json!({"replicas": 5, "updatedReplicas": 2, "availableReplicas": 3,
               "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
    );
    assert!(!stuck.done && stuck.failed.as_deref().is_some_and(|m| m.contains("progress deadline")));
}

#[test]
fn selectors_and_ids_are_spelled_as_kubectl_and_urls_need() {
    let s: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"tier": "edge", "app": "api-gateway"},
        "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]
    }))
    .unwrap();
    assert_eq!(view::selector_string(&s), "app=api-gateway,tier=edge,track in (stable,canary),!legacy");
    assert_eq!(view::split_id(&view::gateway_id("prod", "edge")), Some(("prod", "edge")));
    assert_eq!(view::split_id("edge"), None);
}

mod adapters {
    use super::*;
    use crate::fleet::cluster::adapter::{self, Binding, Fetched, Kind};
    use crate::fleet::{Change, GatewayState, RateLimitPolicy, TimeoutPolicy};
    use kube::api::DynamicObject;

    fn ingress(name: &str, annotations: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "prod", "annotations": annotations},
            "spec": {"rules": [{"http": {"paths": [{"path": format!("/{name}"), "pathType": "Prefix",
                      "backend": {"service": {"name": format!("{name}-svc"), "port": {"number": 80}}}}]}}]}
        }))
        .unwrap()
    }

    const RPS: &str = "/metadata/annotations/nginx.ingress.kubernetes.io~1limit-rps";
    const MUL: &str = "/metadata/annotations/nginx.ingress.kubernetes.io~1limit-burst-multiplier";
    const SNAP: &str = "/metadata/annotations/gatewarden.io~1snapshot";
    const RPS_KEY: &str = "nginx.ingress.kubernetes.io/limit-rps";
    const MUL_KEY: &str = "nginx.ingress.kubernetes.io/limit-burst-multiplier";
    const SNAP_KEY: &str = "gatewarden.io/snapshot";

    fn nginx() -> Binding {
        Binding {
            kind: Kind::IngressNginx,
            objects: vec!["payments".into(), "orders".into()],
            gateway_service: "edge".into(),
            services: vec![],
        }
    }

    fn state_of(b: &Binding, objects: &[DynamicObject]) -> GatewayState {
        let mut state: GatewayState = serde_json::from_value(json!({
            "replicas": 4, "revision": 3, "version": "1.4.0", "template": "ccc333", "revisions": [],
            "routes": [], "rate_limit": null,
            "timeouts": {"request_timeout_ms": 0, "connect_timeout_ms": 0, "retries": 0},
            "circuit_breaker": null, "services": [], "bypassed": []
        }))
        .unwrap();
        adapter::read(b, &Fetched::routes(objects.to_vec())).fill(&mut state);
        state
    }

    #[test]
    fn the_adapter_is_chosen_by_the_deployments_annotations() {
        let mut d: Deployment = serde_json::from_value(deployment(false, "1.4.0")).unwrap();
        assert_eq!(adapter::binding(&d), Ok(None));
        let a = d.metadata.annotations.as_mut().unwrap();
        a.insert(adapter::ADAPTER.into(), "ingress-nginx".into());
        a.insert(adapter::ROUTES.into(), "payments, orders".into());
        assert_eq!(
            adapter::binding(&d),
            Ok(Some(Binding {
                kind: Kind::IngressNginx,
                objects: vec!["payments".into(), "orders".into()],
                gateway_service: "edge".into(),
                services: vec![]
            }))
        );
        d.metadata.annotations.as_mut().unwrap().insert(adapter::ADAPTER.into(), "haproxy".into());
        assert!(adapter::binding(&d).unwrap_err().contains("unknown adapter 'haproxy'"));
    }

    #[test]
    fn ingress_nginx_annotations_read_as_the_neutral_policy() {
        let objects = [
            ingress(
                "payments",
                json!({"nginx.ingress.kubernetes.io/limit-rps": "50",
                                       "nginx.ingress.kubernetes.io/proxy-read-timeout": "10",
                                       "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "1"}),
            ),
            ingress("orders", json!({})),
        ];
        let p = adapter::read(&nginx(), &Fetched::routes(objects.to_vec()));
        assert_eq!(p.routes, vec!["payments".to_string(), "orders".to_string()]);
        assert_eq!(
            p.rate_limit,
            Some(RateLimitPolicy { requests_per_second: 50, burst: 250, route: Some("payments".into()) })
        );
        assert_eq!(p.timeouts, TimeoutPolicy { request_timeout_ms: 10_000, connect_timeout_ms: 5_000, retries: 0 });
        assert_eq!(p.services, vec!["orders-svc".to_string(), "payments-svc".to_string()]);
    }

    #[test]
    fn an_ingress_nginx_rate_limit_is_set_with_tests_of_what_it_replaces_and_undone_exactly() {
        let b = nginx();
        let objects = [
            ingress("payments", json!({"nginx.ingress.kubernetes.io/limit-rps": "500", "team": "payments"})),
            ingress("orders", json!({"nginx.ingress.kubernetes.io/limit-rps": "500"})),
        ];
        let before = state_of(&b, &objects);
        let limit = RateLimitPolicy { requests_per_second: 100, burst: 300, route: None };
        let patches = adapter::plan(
            &b,
            &Fetched::routes(objects.to_vec()),
            &Change::RateLimit { policy: Some(limit.clone()) },
            &before,
        )
        .unwrap();
        let snapshot = json!({MUL: null, RPS: "500"}).to_string();
        let expected = json!([
            {"op": "test", "path": RPS, "value": "500"},
            {"op": "add", "path": RPS, "value": "100"},
            {"op": "add", "path": MUL, "value": "3"},
            {"op": "add", "path": SNAP, "value": snapshot},
        ]);
        assert_eq!(patches.len(), 2);
        for p in &patches {
            assert_eq!(Value::Array(p.ops.clone()), expected, "{}", p.name);
        }

        // After the change: undo puts back exactly what was there (the multiplier was
        // absent, so it is removed, not set to its default) and drops the snapshot.
        let after = [
            ingress("payments", json!({RPS_KEY: "100", MUL_KEY: "3", SNAP_KEY: snapshot, "team": "payments"})),
            ingress("orders", json!({RPS_KEY: "100", MUL_KEY: "3", SNAP_KEY: snapshot})),
        ];
        let now = state_of(&b, &after);
        assert_eq!(now.rate_limit, Some(limit));
        let undo = adapter::plan(
            &b,
            &Fetched::routes(after.to_vec()),
            &Change::RateLimit { policy: before.rate_limit.clone() },
            &now,
        )
        .unwrap();
        assert_eq!(
            Value::Array(undo[0].ops.clone()),
            json!([
                {"op": "test", "path": RPS, "value": "100"},
                {"op": "add", "path": RPS, "value": "500"},
                {"op": "test", "path": MUL, "value": "3"},
                {"op": "remove", "path": MUL},
                {"op": "test", "path": SNAP, "value": snapshot},
                {"op": "remove", "path": SNAP},
            ])
        );

        // Someone edited the limit after the preview: refused, nothing planned.
        let edited = [
            ingress("payments", json!({"nginx.ingress.kubernetes.io/limit-rps": "20"})),
            ingress("orders", json!({"nginx.ingress.kubernetes.io/limit-rps": "20"})),
        ];
        let err = adapter::plan(&b, &Fetched::routes(edited.to_vec()), &Change::RateLimit { policy: None }, &now)
            .unwrap_err();
        assert!(matches!(&err, FleetError::Conflict(m) if m.contains("changed by someone else")), "{err:?}");
    }

    #[test]
    fn ingress_nginx_refuses_what_it_cannot_express() {
        let b = nginx();
        let objects = [ingress("payments", json!({})), ingress("orders", json!({}))];
        let before = state_of(&b, &objects);
        let odd = TimeoutPolicy { request_timeout_ms: 1_500, connect_timeout_ms: 1_000, retries: 1 };
        let err = adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::Timeouts { policy: odd }, &before)
            .unwrap_err();
        assert!(matches!(&err, FleetError::Refused(m) if m.contains("whole seconds")), "{err:?}");
        let err =
            adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::CircuitBreaker { policy: None }, &before)
                .unwrap_err();
        assert!(matches!(&err, FleetError::Unsupported(m) if m.contains("circuit breaker")), "{err:?}");
        let ok = TimeoutPolicy { request_timeout_ms: 2_000, connect_timeout_ms: 1_000, retries: 1 };
        let patches =
            adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::Timeouts { policy: ok }, &before).unwrap();
        let keys: Vec<(&str, &str)> = patches[0]
            .ops
            .iter()
            .filter(|op| op["path"] != SNAP)
            .map(|op| (op["path"].as_str().unwrap().rsplit('~').next().unwrap(), op["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("1proxy-connect-timeout", "1"),
                ("1proxy-next-upstream-tries", "2"),
                ("1proxy-read-timeout", "2"),
                ("1proxy-send-timeout", "2")
            ]
        );
    }

    fn route(gateway_weight: u64, direct_weight: u64) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "payments-edge", "namespace": "prod"},
            "spec": {"rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/payments"}}],
                "timeouts": {"request": "30s"},
                "backendRefs": [{"name": "edge", "port": 80, "weight": gateway_weight},
                                {"name": "payments", "port": 8080, "weight": direct_weight}]
            }]}
        }))
        .unwrap()
    }

    fn httproute() -> Binding {
        Binding {
            kind: Kind::HttpRoute,
            objects: vec!["payments-edge".into()],
            gateway_service: "edge".into(),
            services: vec![],
        }
    }

    #[test]
    fn an_httproute_bypass_moves_the_weight_from_the_gateway_to_the_service_and_back() {
        let b = httproute();
        let objects = [route(100, 0)];
        let before = state_of(&b, &objects);
        assert_eq!((before.services.clone(), before.bypassed.clone()), (vec!["payments".to_string()], vec![]));
        assert_eq!(before.timeouts.request_timeout_ms, 30_000);
        let on = Change::Bypass { service: "payments".into(), enabled: true };
        let patches = adapter::plan(&b, &Fetched::routes(objects.to_vec()), &on, &before).unwrap();
        let snapshot =
            json!({"/spec/rules/0/backendRefs/0/weight": 100, "/spec/rules/0/backendRefs/1/weight": 0}).to_string();
        assert_eq!(
            Value::Array(patches[0].ops.clone()),
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "edge"},
                {"op": "test", "path": "/spec/rules/0/backendRefs/1/name", "value": "payments"},
                {"op": "test", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100},
                {"op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 0},
                {"op": "test", "path": "/spec/rules/0/backendRefs/1/weight", "value": 0},
                {"op": "add", "path": "/spec/rules/0/backendRefs/1/weight", "value": 100},
                {"op": "add", "path": SNAP, "value": snapshot},
            ])
        );
        let mut bypassed = route(0, 100);
        bypassed.metadata.annotations = Some([(SNAP_KEY.to_string(), snapshot.clone())].into());
        let bypassed = [bypassed];
        let now = state_of(&b, &bypassed);
        assert_eq!(now.bypassed, vec!["payments".to_string()]);
        let off = Change::Bypass { service: "payments".into(), enabled: false };
        let back = adapter::plan(&b, &Fetched::routes(bypassed.to_vec()), &off, &now).unwrap();
        assert_eq!(
            Value::Array(back[0].ops[2..].to_vec()),
            json!([
                {"op": "test", "path": "/spec/rules/0/backendRefs/0/weight", "value": 0},
                {"op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100},
                {"op": "test", "path": "/spec/rules/0/backendRefs/1/weight", "value": 100},
                {"op": "add", "path": "/spec/rules/0/backendRefs/1/weight", "value": 0},
                {"op": "test", "path": SNAP, "value": snapshot},
                {"op": "remove", "path": SNAP},
            ])
        );
        let err = adapter::plan(
            &b,
            &Fetched::routes(objects.to_vec()),
            &Change::Bypass { service: "orders".into(), enabled: true },
            &before,
        )
        .unwrap_err();
        assert!(matches!(&err, FleetError::Refused(m) if m.contains("'orders'")), "{err:?}");
        let err = adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::RateLimit { policy: None }, &before)
            .unwrap_err();
        assert!(matches!(err, FleetError::Unsupported(_)));
    }

    #[test]
    fn httproute_timeouts_and_retries_are_set_per_rule() {
        let b = httproute();
        let objects = [route(100, 0)];
        let before = state_of(&b, &objects);
        let policy = TimeoutPolicy { request_timeout_ms: 2_500, connect_timeout_ms: 0, retries: 1 };
        let patches =
            adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::Timeouts { policy }, &before).unwrap();
        assert_eq!(
            Value::Array(patches[0].ops.clone()),
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "test", "path": "/spec/rules/0/matches", "value": [{"path": {"type": "PathPrefix", "value": "/payments"}}]},
                {"op": "test", "path": "/spec/rules/0/timeouts", "value": {"request": "30s"}},
                {"op": "add", "path": "/spec/rules/0/timeouts", "value": {"request": "2500ms"}},
                {"op": "add", "path": "/spec/rules/0/retry", "value": {"attempts": 1}},
                {"op": "add", "path": SNAP, "value": json!({"/spec/rules/0/retry": null, "/spec/rules/0/timeouts": {"request": "30s"}}).to_string()},
            ])
        );
        let connect = TimeoutPolicy { request_timeout_ms: 2_500, connect_timeout_ms: 500, retries: 1 };
        let err = adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::Timeouts { policy: connect }, &before)
            .unwrap_err();
        assert!(matches!(&err, FleetError::Refused(m) if m.contains("no connect timeout")), "{err:?}");
    }

    #[tokio::test]
    async fn the_adapter_reads_and_patches_the_bound_objects_on_the_api_server() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "prod");
        let b = Binding {
            kind: Kind::IngressNginx,
            objects: vec!["payments".into()],
            gateway_service: "edge".into(),
            services: vec![],
        };
        let current = ingress("payments", json!({}));
        let before = state_of(&b, std::slice::from_ref(&current));
        let server = verifier(
            handle,
            vec![
                expect("GET", "/apis/networking.k8s.io/v1/namespaces/prod/ingresses/payments")
                    .reply(200, serde_json::to_value(&current).unwrap()),
                expect(
                    "PATCH",
                    "/apis/networking.k8s.io/v1/namespaces/prod/ingresses/payments?&dryRun=All&fieldManager=gatewarden",
                )
                .body(
                    JSON_PATCH,
                    json!([
                        {"op": "add", "path": RPS, "value": "40"},
                        {"op": "add", "path": MUL, "value": "1"},
                        {"op": "add", "path": SNAP, "value": json!({MUL: null, RPS: null}).to_string()},
                    ]),
                )
                .reply(200, serde_json::to_value(&current).unwrap()),
            ],
        );
        let policy = Some(RateLimitPolicy { requests_per_second: 40, burst: 40, route: None });
        adapter::apply(&client, "prod", &b, &Change::RateLimit { policy }, &before, true).await.expect("validated");
        drop(client);
        finish(server).await;
    }

    fn kong() -> Binding {
        Binding {
            kind: Kind::Kong,
            objects: vec!["payments".into()],
            gateway_service: "edge".into(),
            services: vec!["payments-svc".into()],
        }
    }

    fn service(annotations: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "payments-svc", "namespace": "prod", "annotations": annotations},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    fn kong_state(b: &Binding, f: &Fetched) -> GatewayState {
        let mut state = state_of(b, &[]);
        adapter::read(b, f).fill(&mut state);
        state
    }

    #[test]
    fn a_kong_rate_limit_creates_its_plugin_attaches_it_and_undo_detaches_it_exactly() {
        let b = kong();
        let f = Fetched {
            routes: vec![ingress("payments", json!({"konghq.com/plugins": "cors"}))],
            services: vec![service(json!({}))],
            owned: None,
        };
        let before = kong_state(&b, &f);
        assert_eq!(before.rate_limit, None);
        assert_eq!(
            before.timeouts,
            TimeoutPolicy { request_timeout_ms: 60_000, connect_timeout_ms: 60_000, retries: 5 }
        );
        let limit = RateLimitPolicy { requests_per_second: 30, burst: 30, route: None };
        let writes = adapter::plan(&b, &f, &Change::RateLimit { policy: Some(limit.clone()) }, &before).unwrap();
        assert_eq!(writes.len(), 2);
        assert_eq!(
            writes[0].create,
            Some(json!({
                "apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
                "metadata": {"name": "gatewarden-rate-limit", "labels": {"app.kubernetes.io/managed-by": "gatewarden"}},
                "plugin": "rate-limiting", "config": {"second": 30, "policy": "local"}
            }))
        );
        let plugins = "/metadata/annotations/konghq.com~1plugins";
        let snapshot = json!({plugins: "cors"}).to_string();
        assert_eq!(
            Value::Array(writes[1].ops.clone()),
            json!([
                {"op": "test", "path": plugins, "value": "cors"},
                {"op": "add", "path": plugins, "value": "cors,gatewarden-rate-limit"},
                {"op": "add", "path": SNAP, "value": snapshot},
            ])
        );

        let plugin: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
            "metadata": {"name": "gatewarden-rate-limit", "namespace": "prod"},
            "plugin": "rate-limiting", "config": {"second": 30, "policy": "local"}
        }))
        .unwrap();
        let after = Fetched {
            routes: vec![ingress(
                "payments",
                json!({"konghq.com/plugins": "cors,gatewarden-rate-limit", SNAP_KEY: snapshot}),
            )],
            services: vec![service(json!({}))],
            owned: Some(plugin),
        };
        let now = kong_state(&b, &after);
        assert_eq!(now.rate_limit, Some(limit));
        let undo = adapter::plan(&b, &after, &Change::RateLimit { policy: None }, &now).unwrap();
        assert_eq!(undo.len(), 1, "the plugin stays, detached: {undo:?}");
        assert_eq!(
            Value::Array(undo[0].ops.clone()),
            json!([
                {"op": "test", "path": plugins, "value": "cors,gatewarden-rate-limit"},
                {"op": "add", "path": plugins, "value": "cors"},
                {"op": "test", "path": SNAP, "value": snapshot},
                {"op": "remove", "path": SNAP},
            ])
        );
        let bursty = RateLimitPolicy { requests_per_second: 30, burst: 90, route: None };
        let err = adapter::plan(&b, &f, &Change::RateLimit { policy: Some(bursty) }, &before).unwrap_err();
        assert!(matches!(&err, FleetError::Refused(m) if m.contains("no burst")), "{err:?}");
    }

    #[test]
    fn kong_timeouts_and_retries_go_to_the_upstream_service_annotations() {
        let b = kong();
        let f = Fetched {
            routes: vec![ingress("payments", json!({}))],
            services: vec![service(json!({"konghq.com/read-timeout": "30000"}))],
            owned: None,
        };
        let before = kong_state(&b, &f);
        assert_eq!(before.timeouts.request_timeout_ms, 30_000);
        let policy = TimeoutPolicy { request_timeout_ms: 2_500, connect_timeout_ms: 500, retries: 1 };
        let writes = adapter::plan(&b, &f, &Change::Timeouts { policy }, &before).unwrap();
        assert_eq!((writes.len(), writes[0].res, writes[0].name.as_str()), (1, adapter::Res::Service, "payments-svc"));
        let set: Vec<(String, Value)> = writes[0]
            .ops
            .iter()
            .filter(|op| op["op"] == "add" && op["path"] != SNAP)
            .map(|op| {
                (op["path"].as_str().unwrap().replace("/metadata/annotations/konghq.com~1", ""), op["value"].clone())
            })
            .collect();
        assert_eq!(
            set,
            vec![
                ("connect-timeout".into(), json!("500")),
                ("read-timeout".into(), json!("2500")),
                ("retries".into(), json!("1")),
                ("write-timeout".into(), json!("2500")),
            ]
        );
        let err =
            adapter::plan(&b, &f, &Change::Bypass { service: "payments".into(), enabled: true }, &before).unwrap_err();
        assert!(matches!(err, FleetError::Unsupported(_)));
    }

    #[tokio::test]
    async fn the_kong_adapter_creates_its_plugin_through_the_api_server() {
        let (service_mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service_mock, "prod");
        let b = kong();
        let route = ingress("payments", json!({}));
        let svc = service(json!({}));
        let before = kong_state(&b, &Fetched { routes: vec![route.clone()], services: vec![svc.clone()], owned: None });
        let plugin = json!({
            "apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
            "metadata": {"name": "gatewarden-rate-limit", "labels": {"app.kubernetes.io/managed-by": "gatewarden"}},
            "plugin": "rate-limiting", "config": {"second": 30, "policy": "local"}
        });
        let server = verifier(
            handle,
            vec![
                expect("GET", "/apis/networking.k8s.io/v1/namespaces/prod/ingresses/payments")
                    .reply(200, serde_json::to_value(&route).unwrap()),
                expect("GET", "/api/v1/namespaces/prod/services/payments-svc").reply(200, serde_json::to_value(&svc).unwrap()),
                expect("GET", "/apis/configuration.konghq.com/v1/namespaces/prod/kongplugins/gatewarden-rate-limit")
                    .reply(404, status(404, "NotFound", "kongplugins.configuration.konghq.com \"gatewarden-rate-limit\" not found")),
                expect("POST", "/apis/configuration.konghq.com/v1/namespaces/prod/kongplugins?&fieldManager=gatewarden")
                    .body("application/json", plugin.clone())
                    .reply(201, plugin),
                expect("PATCH", "/apis/networking.k8s.io/v1/namespaces/prod/ingresses/payments?&fieldManager=gatewarden")
                    .body(
                        JSON_PATCH,
                        json!([
                            {"op": "add", "path": "/metadata/annotations/konghq.com~1plugins", "value": "gatewarden-rate-limit"},
                            {"op": "add", "path": SNAP, "value": json!({"/metadata/annotations/konghq.com~1plugins": null}).to_string()},
                        ]),
                    )
                    .reply(200, serde_json::to_value(&route).unwrap()),
            ],
        );
        let policy = Some(RateLimitPolicy { requests_per_second: 30, burst: 30, route: None });
        adapter::apply(&client, "prod", &b, &Change::RateLimit { policy }, &before, false).await.expect("applied");
        drop(client);
        finish(server).await;
    }

    #[tokio::test]
    async fn a_bypass_to_a_service_without_ready_endpoints_is_refused_before_any_write() {
        let (service_mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service_mock, "prod");
        let b = httproute();
        let current = route(100, 0);
        let before = state_of(&b, std::slice::from_ref(&current));
        let slice = |ready: bool| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                   "metadata": {"name": "payments-abc", "namespace": "prod",
                                "labels": {"kubernetes.io/service-name": "payments"}},
                   "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": ready}}]})
        };
        let server = verifier(
            handle,
            vec![
                expect("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/prod/httproutes/payments-edge")
                    .reply(200, serde_json::to_value(&current).unwrap()),
                // No breaker of ours yet (or Envoy Gateway not installed).
                expect(
                    "GET",
                    "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/prod/backendtrafficpolicies/gatewarden-circuit-breaker",
                )
                .reply(404, status(404, "NotFound", "not found")),
                expect(
                    "GET",
                    "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices?&labelSelector=kubernetes.io%2Fservice-name%3Dpayments",
                )
                .reply(200, list("EndpointSliceList", vec![slice(false)])),
            ],
        );
        let change = Change::Bypass { service: "payments".into(), enabled: true };
        let err = adapter::apply(&client, "prod", &b, &change, &before, false).await.unwrap_err();
        assert!(matches!(&err, FleetError::Refused(m) if m.contains("no ready endpoints")), "{err:?}");
        drop(client);
        finish(server).await;
        let ready: Vec<k8s_openapi::api::discovery::v1::EndpointSlice> =
            vec![serde_json::from_value(slice(true)).unwrap(), serde_json::from_value(slice(false)).unwrap()];
        assert_eq!(adapter::ready_endpoints(&ready), 1);
    }

    #[tokio::test]
    async fn the_dependency_map_reads_each_bound_route_and_each_services_endpoint_slices() {
        let (service_mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service_mock, "prod");
        let b = httproute();
        let slice = |name: &str, ready: &[bool]| {
            let endpoints: Vec<Value> = ready
                .iter()
                .enumerate()
                .map(|(i, r)| json!({"addresses": [format!("10.0.0.{i}")], "conditions": {"ready": r}}))
                .collect();
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                   "metadata": {"name": format!("{name}-abc"), "namespace": "prod",
                                "labels": {"kubernetes.io/service-name": name}},
                   "endpoints": endpoints})
        };
        let server = verifier(
            handle,
            vec![
                expect("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/prod/httproutes/payments-edge")
                    .reply(200, serde_json::to_value(route(100, 0)).unwrap()),
                expect(
                    "GET",
                    "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices?&labelSelector=kubernetes.io%2Fservice-name%3Dpayments",
                )
                .reply(200, list("EndpointSliceList", vec![slice("payments", &[true, false, true])])),
            ],
        );
        let routes = adapter::fetch_routes(&client, "prod", &b).await.expect("routes");
        assert_eq!(routes.len(), 1);
        assert_eq!(adapter::backends(&b, &routes[0]), vec!["payments".to_string()], "not the gateway's own Service");
        assert_eq!(adapter::endpoints(&client, "prod", "payments").await.expect("slices"), (2, 3));
        drop(client);
        finish(server).await;

        // An Ingress's backends: every path's and the default's, once each.
        let ingress: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "api", "namespace": "prod"},
            "spec": {"defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                     "rules": [{"http": {"paths": [
                         {"path": "/a", "pathType": "Prefix", "backend": {"service": {"name": "orders", "port": {"number": 80}}}},
                         {"path": "/b", "pathType": "Prefix", "backend": {"service": {"name": "orders", "port": {"number": 80}}}}]}}]}
        }))
        .unwrap();
        let nginx = Binding {
            kind: Kind::IngressNginx,
            objects: vec!["api".into()],
            gateway_service: "edge".into(),
            services: vec![],
        };
        assert_eq!(adapter::backends(&nginx, &ingress), vec!["fallback".to_string(), "orders".to_string()]);
    }

    #[test]
    fn an_httproute_gateways_circuit_breaker_is_an_envoy_gateway_policy_it_creates_and_deletes() {
        use crate::fleet::BreakerPolicy;
        let b = httproute();
        let mut other = route(100, 0);
        other.metadata.name = Some("catalog-edge".into());
        other.data["spec"]["rules"][0]["backendRefs"][1]["name"] = json!("catalog");
        let f = Fetched { routes: vec![route(100, 0), other], services: vec![], owned: None };
        let before = state_of(&b, &f.routes);
        assert_eq!(before.circuit_breaker, None);
        let breaker = BreakerPolicy {
            consecutive_errors: 5,
            ejection_seconds: 30,
            max_ejection_percent: 50,
            service: Some("payments".into()),
        };
        let writes = adapter::plan(&b, &f, &Change::CircuitBreaker { policy: Some(breaker.clone()) }, &before).unwrap();
        let created = json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": "gatewarden-circuit-breaker", "annotations": {"gatewarden.io/service": "payments"},
                         "labels": {"app.kubernetes.io/managed-by": "gatewarden"}},
            "spec": {
                // Only the route that reaches payments.
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "payments-edge"}],
                "healthCheck": {"passive": {"consecutive5XxErrors": 5, "baseEjectionTime": "30s",
                                            "maxEjectionPercent": 50, "interval": "1s"}}
            }
        });
        assert_eq!((writes.len(), writes[0].res, writes[0].create.as_ref()), (1, adapter::Res::Plugin, Some(&created)));

        let mut owned = created.clone();
        owned["metadata"]["namespace"] = json!("prod");
        let after = Fetched { owned: Some(serde_json::from_value(owned).unwrap()), ..f.clone() };
        let mut now = state_of(&b, &after.routes);
        adapter::read(&b, &after).fill(&mut now);
        assert_eq!(now.circuit_breaker, Some(breaker.clone()), "reads back as set");

        // Tightening it replaces the spec it read; removing it deletes the policy.
        let tighter = BreakerPolicy { consecutive_errors: 3, ..breaker };
        let update = adapter::plan(&b, &after, &Change::CircuitBreaker { policy: Some(tighter) }, &now).unwrap();
        assert_eq!(update[0].ops[0], json!({"op": "test", "path": "/spec", "value": created["spec"]}));
        let undo = adapter::plan(&b, &after, &Change::CircuitBreaker { policy: None }, &now).unwrap();
        assert_eq!((undo.len(), undo[0].delete, undo[0].name.as_str()), (1, true, "gatewarden-circuit-breaker"));
        let err = adapter::plan(&b, &f, &Change::CircuitBreaker { policy: None }, &now).unwrap_err();
        assert!(matches!(err, FleetError::Conflict(_)), "someone removed it since: {err:?}");
    }

    #[tokio::test]
    async fn the_envoy_gateway_breaker_is_created_and_deleted_on_the_api_server() {
        use crate::fleet::BreakerPolicy;
        let (service_mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service_mock, "prod");
        let b = httproute();
        let current = route(100, 0);
        let before = state_of(&b, std::slice::from_ref(&current));
        let policy = json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": "gatewarden-circuit-breaker", "annotations": {},
                         "labels": {"app.kubernetes.io/managed-by": "gatewarden"}},
            "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "payments-edge"}],
                     "healthCheck": {"passive": {"consecutive5XxErrors": 5, "baseEjectionTime": "30s",
                                                 "maxEjectionPercent": 50, "interval": "1s"}}}
        });
        let mut stored = policy.clone();
        stored["metadata"]["namespace"] = json!("prod");
        let route_path = "/apis/gateway.networking.k8s.io/v1/namespaces/prod/httproutes/payments-edge";
        let server = verifier(
            handle,
            vec![
                expect("GET", route_path).reply(200, serde_json::to_value(&current).unwrap()),
                expect("GET", "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/prod/backendtrafficpolicies/gatewarden-circuit-breaker")
                    .reply(404, status(404, "NotFound", "not found")),
                expect("POST", "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/prod/backendtrafficpolicies?&fieldManager=gatewarden")
                    .body("application/json", policy)
                    .reply(201, stored.clone()),
                expect("GET", route_path).reply(200, serde_json::to_value(&current).unwrap()),
                expect("GET", "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/prod/backendtrafficpolicies/gatewarden-circuit-breaker")
                    .reply(200, stored.clone()),
                expect("DELETE", "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/prod/backendtrafficpolicies/gatewarden-circuit-breaker?")
                    .body("application/json", json!({}))
                    .reply(200, stored.clone()),
            ],
        );
        let breaker =
            BreakerPolicy { consecutive_errors: 5, ejection_seconds: 30, max_ejection_percent: 50, service: None };
        adapter::apply(&client, "prod", &b, &Change::CircuitBreaker { policy: Some(breaker.clone()) }, &before, false)
            .await
            .expect("created");
        let mut now = before.clone();
        now.circuit_breaker = Some(breaker);
        adapter::apply(&client, "prod", &b, &Change::CircuitBreaker { policy: None }, &now, false)
            .await
            .expect("deleted");
        drop(client);
        finish(server).await;
    }
}

mod logs {
    use super::*;
    use crate::fleet::cluster::logs::{self, Source};
    use k8s_openapi::api::core::v1::Pod;

    /// Answers each expected log request with plain text (the verifier above answers JSON).
    fn log_server(mut handle: Handle, script: Vec<(&'static str, &'static str)>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            for (i, (uri, text)) in script.into_iter().enumerate() {
                let (request, send) =
                    handle.next_request().await.unwrap_or_else(|| panic!("log request {i} never came"));
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
        let a = logs::recent(&api, &[Source { pod: "edge-a".into(), container: "gateway".into() }], 10, None)
            .await
            .unwrap();
        let b = logs::recent(&api, &[Source { pod: "edge-b".into(), container: "proxy".into() }], 10, Some(300))
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
}
