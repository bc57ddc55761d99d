//! The policy adapters: what each reads, the patches it plans, and the writes it sends.

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
    let err =
        adapter::plan(&b, &Fetched::routes(edited.to_vec()), &Change::RateLimit { policy: None }, &now).unwrap_err();
    assert!(matches!(&err, FleetError::Conflict(m) if m.contains("changed by someone else")), "{err:?}");
}

#[test]
fn ingress_nginx_refuses_what_it_cannot_express() {
    let b = nginx();
    let objects = [ingress("payments", json!({})), ingress("orders", json!({}))];
    let before = state_of(&b, &objects);
    let odd = TimeoutPolicy { request_timeout_ms: 1_500, connect_timeout_ms: 1_000, retries: 1 };
    let err =
        adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::Timeouts { policy: odd }, &before).unwrap_err();
    assert!(matches!(&err, FleetError::Refused(m) if m.contains("whole seconds")), "{err:?}");
    let err = adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::CircuitBreaker { policy: None }, &before)
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
    let patches = adapter::plan(&b, &Fetched::routes(objects.to_vec()), &Change::Timeouts { policy }, &before).unwrap();
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
    assert_eq!(before.timeouts, TimeoutPolicy { request_timeout_ms: 60_000, connect_timeout_ms: 60_000, retries: 5 });
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
        .map(|op| (op["path"].as_str().unwrap().replace("/metadata/annotations/konghq.com~1", ""), op["value"].clone()))
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
    adapter::apply(&client, "prod", &b, &Change::CircuitBreaker { policy: None }, &now, false).await.expect("deleted");
    drop(client);
    finish(server).await;
}
