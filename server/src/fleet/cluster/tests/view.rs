//! API objects into the inventory and state; kubectl's rollout judgement; ids.

use super::ops::{history, hpa};
use super::*;
use crate::fleet::cluster::view;

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("valid object"))
}

pub(super) fn pod(name: &str, rs_uid: &str, ready: bool, restarts: i32) -> Value {
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

/// What a rollback preview compares: a restart's annotation and `pod-template-hash` are
/// not part of what runs; images, args, env names, resources, probes and the rest are.
#[test]
fn template_fields_leave_out_only_what_a_restart_changes() {
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    let template = |restarted: Option<&str>, hash: &str, image: &str, env: &[&str]| -> PodTemplateSpec {
        let mut annotations = serde_json::Map::new();
        annotations.insert("prometheus.io/scrape".into(), json!("true"));
        if let Some(t) = restarted {
            annotations.insert("kubectl.kubernetes.io/restartedAt".into(), json!(t));
        }
        let env: Vec<Value> = env.iter().map(|n| json!({"name": n, "value": "secret value"})).collect();
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "api-gateway", "pod-template-hash": hash}, "annotations": annotations},
            "spec": {"serviceAccountName": "gw", "containers": [{"name": "gateway", "image": image,
                "args": ["--config", "/etc/gw.yaml"], "env": env,
                "resources": {"limits": {"memory": "512Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]}
        }))
        .unwrap()
    };
    let before = view::template_fields(&template(None, "aaa111", "gw:1.4.0", &["B", "A"]));
    let restarted = view::template_fields(&template(Some("2026-11-29T10:00:00Z"), "bbb222", "gw:1.4.0", &["A", "B"]));
    assert_eq!(before, restarted, "a restart changes nothing that runs");
    assert_eq!(before["gateway: image"], "gw:1.4.0");
    assert_eq!(before["gateway: args"], "--config /etc/gw.yaml");
    assert_eq!(before["gateway: env"], "A, B", "env names only, never values");
    assert_eq!(before["gateway: resources"], r#"{"limits":{"memory":"512Mi"}}"#);
    assert!(before["gateway: readinessProbe"].contains("/healthz"));
    assert_eq!(before["annotation prometheus.io/scrape"], "true");
    assert!(before["pod spec"].contains("serviceAccountName"));
    assert!(!before.values().any(|v| v.contains("secret value")));
    let upgraded = view::template_fields(&template(None, "ccc333", "gw:1.5.0", &["A", "B", "C"]));
    let differ: Vec<&str> = before.keys().filter(|k| before.get(*k) != upgraded.get(*k)).map(String::as_str).collect();
    assert_eq!(differ, ["gateway: env", "gateway: image"]);
}
