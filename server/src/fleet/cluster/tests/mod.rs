//! The write side against kube-rs's ApiServerVerifier pattern: a `tower_test` mock
//! stands in for the API server, and each test asserts every request's method, path,
//! query, content type and body exactly, answering as the API server would. A missing
//! call fails by timeout; an extra call finds the mock closed.//!
//! Split by subject: `ops` (restart, scale, rollback), `view` (API objects into the
//! inventory and kubectl's rollout judgement), `adapter` (policy adapters' plans and
//! writes), `logs` (pod logs and the follow feed). This file holds the verifier.

mod adapter;
mod dnsendpoint;
mod logs;
mod ops;
mod view;

use super::ops::Target;
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
