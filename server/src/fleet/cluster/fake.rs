//! An in-memory Kubernetes API server for integration tests and benchmarks (no real API
//! server can run here). It answers LISTs from its objects, holds WATCH requests open
//! without events, records every write and answers it with the stored object, and can
//! be made unreachable to exercise the degraded path. It checks nothing: request shapes
//! are asserted exactly by the ApiServerVerifier tests in `tests.rs`.

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A write the console sent.
#[derive(Clone, Debug)]
pub struct Write {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// JSON body.
    pub body: Value,
}

/// The fake API server.
#[derive(Default)]
pub struct FakeApiServer {
    /// Objects by collection path (e.g. `/apis/apps/v1/namespaces/prod/deployments`).
    collections: Mutex<BTreeMap<String, Vec<Value>>>,
    writes: Mutex<Vec<Write>>,
    logs: Mutex<BTreeMap<String, Vec<String>>>,
    followed: Mutex<std::collections::BTreeSet<String>>,
    down: AtomicBool,
    /// Milliseconds every request waits before it is answered.
    delay_ms: std::sync::atomic::AtomicU64,
    /// While set, writes wait (before they are recorded) until it is cleared.
    writes_held: AtomicBool,
    writes_released: tokio::sync::Notify,
    /// Bumped by [`FakeApiServer::fail_held_writes`]: writes that waited across a bump fail.
    fail_epoch: std::sync::atomic::AtomicU64,
    /// Lines per second each followed log goes on writing (HTTP only).
    log_rate: std::sync::atomic::AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The collection path of an object of `kind` in `namespace`.
pub fn collection(kind: &str, namespace: &str) -> String {
    match kind {
        "Deployment" => format!("/apis/apps/v1/namespaces/{namespace}/deployments"),
        "ReplicaSet" => format!("/apis/apps/v1/namespaces/{namespace}/replicasets"),
        "Pod" => format!("/api/v1/namespaces/{namespace}/pods"),
        "HorizontalPodAutoscaler" => format!("/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"),
        "Ingress" => format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"),
        "Event" => format!("/api/v1/namespaces/{namespace}/events"),
        "EndpointSlice" => format!("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"),
        "Service" => format!("/api/v1/namespaces/{namespace}/services"),
        "DNSEndpoint" => format!("/apis/externaldns.k8s.io/v1alpha1/namespaces/{namespace}/dnsendpoints"),
        other => format!("/unknown/{other}"),
    }
}

impl FakeApiServer {
    /// An empty, reachable server.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Stores `object` (its `kind` and `metadata.namespace` say where).
    pub fn insert(&self, object: Value) {
        let path = collection(
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str().unwrap_or("default"),
        );
        lock(&self.collections).entry(path).or_default().push(object);
    }

    /// Makes every request fail as a refused connection (`true`) or succeed again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The stored object of `kind` named `name` in `namespace`.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let collections = lock(&self.collections);
        collections.get(&collection(kind, namespace))?.iter().find(|o| o["metadata"]["name"] == name).cloned()
    }

    /// Changes a stored object in place (another actor editing the cluster).
    pub fn edit(&self, kind: &str, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let mut collections = lock(&self.collections);
        if let Some(object) = collections
            .get_mut(&collection(kind, namespace))
            .and_then(|items| items.iter_mut().find(|o| o["metadata"]["name"] == name))
        {
            change(object);
        }
    }

    /// What `GET .../pods/{pod}/log` answers.
    pub fn set_logs(&self, pod: &str, lines: &[&str]) {
        lock(&self.logs).insert(pod.to_string(), lines.iter().map(|l| l.to_string()).collect());
    }

    /// Makes every request wait `delay` before it is answered (a slow API server).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes every write wait, unrecorded and unapplied, until `false` releases them (an
    /// API server that is slow to answer writes while reads stay fast).
    pub fn hold_writes(&self, hold: bool) {
        self.writes_held.store(hold, Ordering::SeqCst);
        if !hold {
            self.writes_released.notify_waiters();
        }
    }

    /// Stops holding writes and fails the ones held so far (a 503 over HTTP, a refused
    /// connection in process), unrecorded and unapplied: the requests of a client that
    /// died while they waited never land.
    pub fn fail_held_writes(&self) {
        self.fail_epoch.fetch_add(1, Ordering::SeqCst);
        self.hold_writes(false);
    }

    /// Over HTTP, each followed log then goes on with `per_second` access lines a
    /// second (0: it stays open and quiet, as a real kubelet's follow does).
    pub fn set_log_rate(&self, per_second: u32) {
        self.log_rate.store(per_second, Ordering::SeqCst);
    }

    /// The pods whose logs were followed (`follow=true`), sorted.
    pub fn followed(&self) -> Vec<String> {
        lock(&self.followed).iter().cloned().collect()
    }

    /// Every write received so far.
    pub fn writes(&self) -> Vec<Write> {
        lock(&self.writes).clone()
    }

    /// A client whose requests this server answers.
    pub fn client(self: &Arc<Self>, namespace: &str) -> kube::Client {
        let server = Arc::clone(self);
        let service = tower::service_fn(move |request: Request<Body>| {
            let server = Arc::clone(&server);
            async move { server.answer(request).await }
        });
        kube::Client::new(service, namespace)
    }

    /// Serves this API server over HTTP on a free loopback port, in the background, and
    /// writes a kubeconfig at `path` that points at it (namespace `prod`).
    pub async fn serve_with_kubeconfig(self: &Arc<Self>, path: &std::path::Path) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(Arc::clone(self).serve(listener));
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    \
                 server: http://{addr}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    \
                 namespace: prod\nusers:\n- name: fake\n  user: {{}}\n"
            ),
        )
    }

    /// Serves this API server over plain HTTP on `listener`, for `gatewarden` processes
    /// given a kubeconfig that points at it. While it is down, requests get a 503. A
    /// followed log stays open after its lines, as a kubelet's does (see
    /// [`Self::set_log_rate`]).
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let handler = move |request: axum::extract::Request| {
            let server = Arc::clone(&self);
            async move {
                let follow = request.uri().path().ends_with("/log")
                    && request.uri().query().unwrap_or_default().split('&').any(|p| p == "follow=true");
                let pod = request.uri().path().rsplit('/').nth(1).unwrap_or_default().to_string();
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
                let request = Request::from_parts(parts, Body::from(bytes));
                let response = match server.answer(request).await {
                    Ok(response) => response,
                    Err(e) => {
                        let mut response = Response::new(axum::body::Body::from(e.to_string()));
                        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        return response;
                    }
                };
                if !follow {
                    return response.map(axum::body::Body::new);
                }
                let (parts, body) = response.into_parts();
                let first = body.collect_bytes().await.unwrap_or_default();
                let rate = server.log_rate.load(Ordering::SeqCst);
                let more = futures::stream::unfold(0u64, move |n| {
                    let pod = pod.clone();
                    async move {
                        if rate == 0 {
                            std::future::pending::<()>().await;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(1) / rate).await;
                        let line = format!(
                            "10.1.{}.{} \"GET /api/orders/{n} HTTP/1.1\" {} {}ms pod={pod}\n",
                            n % 250,
                            n % 200,
                            if n % 50 == 0 { 502 } else { 200 },
                            n % 90
                        );
                        Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(line)), n + 1))
                    }
                });
                let stream = futures::StreamExt::chain(futures::stream::once(async { Ok(first) }), more);
                Response::from_parts(parts, axum::body::Body::from_stream(stream))
            }
        };
        axum::serve(listener, axum::Router::new().fallback(handler)).await
    }

    async fn answer(&self, request: Request<Body>) -> Result<Response<Body>, std::io::Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        if method == "GET" && query.split('&').any(|p| p == "watch=true" || p == "watch=1") {
            // A watch with no events until the client gives up on it.
            std::future::pending::<()>().await;
        }
        let json_patch = request.headers().get("content-type").is_some_and(|v| v == "application/json-patch+json");
        let dry_run = query.split('&').any(|p| p == "dryRun=All");
        if method != "GET" {
            let epoch = self.fail_epoch.load(Ordering::SeqCst);
            let mut waited = false;
            loop {
                let released = self.writes_released.notified();
                if !self.writes_held.load(Ordering::SeqCst) {
                    break;
                }
                waited = true;
                released.await;
            }
            if waited && self.fail_epoch.load(Ordering::SeqCst) != epoch {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "held write failed"));
            }
            let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            lock(&self.writes).push(Write { method: method.clone(), uri, body: body.clone() });
            // JSON patches are applied (a failed `test` is a 422, as on a real API
            // server), unless it is a dry run; other writes are only recorded.
            if method == "PATCH" && json_patch {
                return Ok(self.apply_json_patch(&path, body, dry_run));
            }
        }
        if let Some(pod) = path.strip_suffix("/log").and_then(|p| p.rsplit('/').next()) {
            if query.split('&').any(|p| p == "follow=true") {
                lock(&self.followed).insert(pod.to_string());
            }
            // A reopened follow asks only for what is new since: nothing here.
            let resumed = query.split('&').any(|p| p.starts_with("sinceSeconds="));
            let lines = if resumed { Vec::new() } else { lock(&self.logs).get(pod).cloned().unwrap_or_default() };
            let tail = query.split('&').find_map(|p| p.strip_prefix("tailLines=")).and_then(|n| n.parse().ok());
            let skip = tail.map_or(0, |t: usize| lines.len().saturating_sub(t));
            let text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
            return Ok(Response::new(Body::from(text.into_bytes())));
        }
        let collections = lock(&self.collections);
        let reply = if let Some(items) = collections.get(&path) {
            let kind = items.first().and_then(|o| o["kind"].as_str()).unwrap_or("Object");
            // `labelSelector=key=value` (one equality) is honoured; nothing else is.
            let selector = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "labelSelector")
                .and_then(|(_, v)| v.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())));
            let items: Vec<&Value> = items
                .iter()
                .filter(|o| selector.as_ref().is_none_or(|(k, v)| o["metadata"]["labels"][k.as_str()] == v.as_str()))
                .collect();
            json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
        } else {
            // `<collection>/<name>` or `<collection>/<name>/scale`.
            let mut parts = path.rsplitn(2, '/');
            let (last, parent) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let find = |collection: &str, name: &str| {
                collections.get(collection).and_then(|items| items.iter().find(|o| o["metadata"]["name"] == name))
            };
            if let Some(object) = find(parent, last) {
                object.clone()
            } else if last == "scale"
                && let Some((collection, name)) = parent.rsplit_once('/')
                && let Some(object) = find(collection, name)
            {
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                       "metadata": {"name": name, "resourceVersion": object["metadata"]["resourceVersion"]},
                       "spec": {"replicas": object["spec"]["replicas"]}})
            } else if path.ends_with("/deployments")
                || path.ends_with("/endpointslices")
                || path.ends_with("/replicasets")
                || path.ends_with("/pods")
                || path.ends_with("/horizontalpodautoscalers")
                || path.ends_with("/events")
            {
                json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
            } else {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                    "reason": "NotFound", "message": format!("{path} not found")});
                let mut response = Response::new(Body::from(status.to_string().into_bytes()));
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                return Ok(response);
            }
        };
        Ok(Response::new(Body::from(reply.to_string().into_bytes())))
    }
}

impl FakeApiServer {
    fn apply_json_patch(&self, path: &str, body: Value, dry_run: bool) -> Response<Body> {
        let status = |code: u16, message: String| {
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                              "reason": if code == 404 { "NotFound" } else { "Invalid" }, "message": message});
            let mut response = Response::new(Body::from(body.to_string().into_bytes()));
            *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_REQUEST);
            response
        };
        let Some((collection, name)) = path.rsplit_once('/') else { return status(404, path.into()) };
        let mut collections = lock(&self.collections);
        let Some(object) =
            collections.get_mut(collection).and_then(|items| items.iter_mut().find(|o| o["metadata"]["name"] == name))
        else {
            return status(404, format!("{path} not found"));
        };
        let patch: json_patch::Patch = match serde_json::from_value(body) {
            Ok(p) => p,
            Err(e) => return status(400, e.to_string()),
        };
        let mut updated = object.clone();
        if let Err(e) = json_patch::patch(&mut updated, &patch) {
            return status(422, format!("the server rejected our request due to an error in our request: {e}"));
        }
        let version = updated["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        updated["metadata"]["resourceVersion"] = json!((version + 1).to_string());
        // A change to the spec is a new generation, as the API server counts them.
        if updated["spec"] != object["spec"]
            && let Some(generation) = object["metadata"]["generation"].as_i64()
        {
            updated["metadata"]["generation"] = json!(generation + 1);
        }
        if !dry_run {
            *object = updated.clone();
        }
        Response::new(Body::from(updated.to_string().into_bytes()))
    }
}

/// Objects of a gateway Deployment `name` in `namespace` with `replicas` ready pods of
/// version `version` (revision 2) and one older revision: the shape a real cluster has.
pub fn gateway(namespace: &str, name: &str, replicas: u32, version: &str) -> Vec<Value> {
    let uid = format!("uid-{namespace}-{name}");
    let labels = json!({"app": "api-gateway", "gateway": name});
    let template = |v: &str, hash: Option<&str>| {
        let mut l = labels.clone();
        if let Some(h) = hash {
            l["pod-template-hash"] = json!(h);
        }
        json!({"metadata": {"labels": l},
               "spec": {"containers": [{"name": "gateway", "image": format!("registry.example/gateway:{v}")}]}})
    };
    let owner = |kind: &str, name: &str, uid: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]);
    let mut objects = vec![json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "10", "generation": 2,
                     "labels": labels, "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template(version, None)},
        "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas}
    })];
    for (revision, v, hash) in [(1, "0.9.0", "old1"), (2, version, "cur2")] {
        let mut l = labels.clone();
        l["pod-template-hash"] = json!(hash);
        objects.push(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-{hash}"), "namespace": namespace, "uid": format!("{uid}-{hash}"),
                         "labels": l, "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                         "ownerReferences": owner("Deployment", name, &uid)},
            "spec": {"replicas": if revision == 2 { replicas } else { 0 }, "selector": {"matchLabels": l},
                     "template": template(v, Some(hash))}
        }));
    }
    for i in 0..replicas {
        let mut l = labels.clone();
        l["pod-template-hash"] = json!("cur2");
        objects.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-cur2-{i:05}"), "namespace": namespace, "uid": format!("{uid}-p{i}"),
                         "labels": l, "creationTimestamp": "2026-11-24T00:00:00Z",
                         "ownerReferences": owner("ReplicaSet", &format!("{name}-cur2"), &format!("{uid}-cur2"))},
            "spec": {"nodeName": format!("node-{}", i % 50),
                     "containers": [{"name": "gateway", "image": format!("registry.example/gateway:{version}")}]},
            "status": {"phase": "Running", "startTime": "2026-11-24T00:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "gateway", "ready": true, "restartCount": i % 3,
                                              "image": "gateway", "imageID": "x", "state": {"running": {}}}]}
        }));
    }
    objects
}

/// A cluster in namespace `prod`: gateways `edge` (3 pods, ingress-nginx, routing the
/// `payments` Ingress, so a rate limit is a JSON patch of that Ingress) and `auth`
/// (2 pods, scaled by an HPA).
pub fn with_policy() -> Arc<FakeApiServer> {
    let fake = FakeApiServer::new();
    for mut object in gateway("prod", "edge", 3, "1.4.0").into_iter().chain(gateway("prod", "auth", 2, "2.0.0")) {
        if object["kind"] == "Deployment" && object["metadata"]["name"] == "edge" {
            object["metadata"]["annotations"]["gatewarden.io/adapter"] = json!("ingress-nginx");
            object["metadata"]["annotations"]["gatewarden.io/routes"] = json!("payments");
        }
        fake.insert(object);
    }
    fake.insert(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "payments", "namespace": "prod", "resourceVersion": "5",
                     "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "30", "team": "payments"}},
        "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [{"path": "/payments", "pathType": "Prefix",
                 "backend": {"service": {"name": "payments", "port": {"number": 80}}}}]}}]}
    }));
    fake.insert(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "auth-hpa", "namespace": "prod", "resourceVersion": "3"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "auth"},
                 "minReplicas": 2, "maxReplicas": 6}
    }));
    fake
}
