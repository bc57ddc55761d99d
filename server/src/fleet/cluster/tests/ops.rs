//! Restart, scale and rollback, request by request.

use super::*;
use crate::fleet::cluster::ops::{self, Rollback};

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

pub(super) fn hpa(min: i32, max: i32) -> Value {
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

pub(super) fn history() -> Value {
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
