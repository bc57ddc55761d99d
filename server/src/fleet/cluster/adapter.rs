//! Gateway policy adapters: the neutral traffic policy (rate limit, timeouts, retries,
//! circuit breaker) and bypass, mapped onto the objects each kind of gateway reads.
//!
//! A gateway Deployment opts in with two annotations:
//! `gatewarden.io/adapter: ingress-nginx | httproute` and
//! `gatewarden.io/routes: name[,name...]` (the Ingresses or HTTPRoutes, in its
//! namespace, that route through it). `gatewarden.io/gateway-service` names the
//! Service of the gateway in HTTPRoute backendRefs (default: the Deployment's name).
//!
//! Every change reads the objects, refuses if they no longer hold what the change was
//! planned against (someone else changed them), and sends a JSON patch whose `test`
//! operations pin the values it replaces, so a concurrent edit fails with 422 instead of
//! being overwritten. Undo restores the recorded values the same way.

use super::ops::{FIELD_MANAGER, error};
use crate::fleet::{BreakerPolicy, Change, FleetError, FleetResult, GatewayState, RateLimitPolicy, TimeoutPolicy};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Annotation choosing the adapter.
pub const ADAPTER: &str = "gatewarden.io/adapter";
/// Annotation listing the objects the adapter edits.
pub const ROUTES: &str = "gatewarden.io/routes";
/// Annotation naming the gateway's Service in HTTPRoute backendRefs.
pub const GATEWAY_SERVICE: &str = "gatewarden.io/gateway-service";

const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// ingress-nginx's defaults when an annotation is absent.
const NGINX_DEFAULT_READ_S: u32 = 60;
const NGINX_DEFAULT_CONNECT_S: u32 = 5;
const NGINX_DEFAULT_TRIES: u32 = 3;
const NGINX_DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// Which objects a gateway's policy lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `networking.k8s.io/v1` Ingress annotations read by ingress-nginx.
    IngressNginx,
    /// Gateway API `HTTPRoute` rules.
    HttpRoute,
}

impl Kind {
    fn resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            Kind::IngressNginx => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Kind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// A gateway's adapter and the objects it edits.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The adapter.
    pub kind: Kind,
    /// Object names, in the Deployment's namespace.
    pub objects: Vec<String>,
    /// The gateway's Service name (HTTPRoute backendRefs).
    pub gateway_service: String,
}

/// The Deployment's binding, if it has one; an error names a bad annotation.
pub fn binding(d: &Deployment) -> Result<Option<Binding>, String> {
    let annotations = d.metadata.annotations.clone().unwrap_or_default();
    let Some(kind) = annotations.get(ADAPTER) else { return Ok(None) };
    let kind = match kind.as_str() {
        "ingress-nginx" => Kind::IngressNginx,
        "httproute" => Kind::HttpRoute,
        other => return Err(format!("{ADAPTER}: unknown adapter '{other}' (expected ingress-nginx or httproute)")),
    };
    let objects: Vec<String> = annotations
        .get(ROUTES)
        .map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    if objects.is_empty() {
        return Err(format!("{ROUTES}: list the objects the {kind:?} adapter edits"));
    }
    let name = d.metadata.name.clone().unwrap_or_default();
    Ok(Some(Binding { kind, objects, gateway_service: annotations.get(GATEWAY_SERVICE).cloned().unwrap_or(name) }))
}

/// The policy fields of a gateway's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Routes a rate limit may be scoped to (object names).
    pub routes: Vec<String>,
    /// Rate limit in force.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Timeouts and retries in force.
    pub timeouts: TimeoutPolicy,
    /// Circuit breaker in force.
    pub circuit_breaker: Option<BreakerPolicy>,
    /// Downstream services behind the routes.
    pub services: Vec<String>,
    /// Services routed around the gateway.
    pub bypassed: Vec<String>,
}

impl Policy {
    /// Copies the policy into `state`.
    pub fn fill(self, state: &mut GatewayState) {
        state.routes = self.routes;
        state.rate_limit = self.rate_limit;
        state.timeouts = self.timeouts;
        state.circuit_breaker = self.circuit_breaker;
        state.services = self.services;
        state.bypassed = self.bypassed;
    }
}

fn api(client: &kube::Client, namespace: &str, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.resource())
}

/// Reads the bound objects (a GET each).
pub async fn fetch(client: &kube::Client, namespace: &str, b: &Binding) -> FleetResult<Vec<DynamicObject>> {
    let api = api(client, namespace, b.kind);
    let mut objects = Vec::with_capacity(b.objects.len());
    for name in &b.objects {
        let what = format!("get {} {name}", b.kind.resource().kind);
        let object = tokio::time::timeout(super::ops::CALL_TIMEOUT, api.get(name))
            .await
            .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
            .map_err(|e| error(&what, e))?;
        objects.push(object);
    }
    Ok(objects)
}

fn annotation<'a>(o: &'a DynamicObject, key: &str) -> Option<&'a str> {
    o.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn nginx_u32(o: &DynamicObject, key: &str) -> Option<u32> {
    annotation(o, &format!("{NGINX}{key}")).and_then(|v| v.trim().parse().ok())
}

fn name(o: &DynamicObject) -> String {
    o.metadata.name.clone().unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The policy the objects express.
pub fn read(b: &Binding, objects: &[DynamicObject]) -> Policy {
    match b.kind {
        Kind::IngressNginx => read_nginx(objects),
        Kind::HttpRoute => read_httproute(b, objects),
    }
}

fn nginx_limit(o: &DynamicObject) -> Option<(u32, u32)> {
    let rps = nginx_u32(o, "limit-rps")?;
    let multiplier = nginx_u32(o, "limit-burst-multiplier").unwrap_or(NGINX_DEFAULT_BURST_MULTIPLIER);
    Some((rps, rps * multiplier))
}

fn read_nginx(objects: &[DynamicObject]) -> Policy {
    let limits: Vec<Option<(u32, u32)>> = objects.iter().map(nginx_limit).collect();
    let rate_limit = match limits.iter().position(Option::is_some) {
        None => None,
        Some(i) => {
            let (rps, burst) = limits[i].unwrap_or_default();
            // The same limit on every route is the gateway's; otherwise the first route's.
            let everywhere = limits.iter().all(|l| *l == limits[i]);
            let route = (!everywhere).then(|| name(&objects[i]));
            Some(RateLimitPolicy { requests_per_second: rps, burst, route })
        }
    };
    let first = objects.first();
    let get = |key: &str, default: u32| first.and_then(|o| nginx_u32(o, key)).unwrap_or(default);
    let services = objects
        .iter()
        .flat_map(|o| {
            o.data["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
                .filter_map(|p| p["backend"]["service"]["name"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    Policy {
        routes: objects.iter().map(name).collect(),
        rate_limit,
        timeouts: TimeoutPolicy {
            request_timeout_ms: get("proxy-read-timeout", NGINX_DEFAULT_READ_S) * 1000,
            connect_timeout_ms: get("proxy-connect-timeout", NGINX_DEFAULT_CONNECT_S) * 1000,
            retries: get("proxy-next-upstream-tries", NGINX_DEFAULT_TRIES).saturating_sub(1),
        },
        circuit_breaker: None,
        services: sorted(services),
        bypassed: vec![],
    }
}

/// `"1500ms"`, `"2s"`, `"1m"` → milliseconds (Gateway API durations).
fn duration_ms(s: &str) -> Option<u32> {
    let (number, unit) = s.find(|c: char| c.is_alphabetic()).map(|i| s.split_at(i))?;
    let n: u32 = number.parse().ok()?;
    Some(match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return None,
    })
}

fn rules(o: &DynamicObject) -> impl Iterator<Item = &Value> {
    o.data["spec"]["rules"].as_array().into_iter().flatten()
}

fn read_httproute(b: &Binding, objects: &[DynamicObject]) -> Policy {
    let first_rule = objects.iter().flat_map(rules).next();
    let request = first_rule.and_then(|r| r["timeouts"]["request"].as_str()).and_then(duration_ms).unwrap_or(0);
    let retries = first_rule.and_then(|r| r["retry"]["attempts"].as_u64()).unwrap_or(0) as u32;
    let (mut services, mut bypassed) = (Vec::new(), Vec::new());
    for rule in objects.iter().flat_map(rules) {
        let refs: Vec<(&str, u64)> = rule["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["name"].as_str()?, r["weight"].as_u64().unwrap_or(1))))
            .collect();
        let gateway_weight = refs.iter().find(|(n, _)| *n == b.gateway_service).map(|(_, w)| *w);
        for (service, weight) in refs.iter().filter(|(n, _)| *n != b.gateway_service) {
            services.push(service.to_string());
            if gateway_weight == Some(0) && *weight > 0 {
                bypassed.push(service.to_string());
            }
        }
    }
    Policy {
        routes: objects.iter().map(name).collect(),
        rate_limit: None,
        timeouts: TimeoutPolicy { request_timeout_ms: request, connect_timeout_ms: 0, retries },
        circuit_breaker: None,
        services: sorted(services),
        bypassed: sorted(bypassed),
    }
}

/// Annotation holding, as JSON, the original value (or `null` for "absent") of every
/// field the console has changed and not yet restored, by JSON pointer.
pub const SNAPSHOT: &str = "gatewarden.io/snapshot";

/// JSON pointer of an annotation (RFC 6901 escapes `~` and `/`).
fn annotation_path(key: &str) -> String {
    format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Sets (or with `None` removes) the value at `pointer`, creating objects on the way.
fn set_pointer(root: &mut Value, pointer: &str, value: Option<&Value>) {
    let parts: Vec<String> = pointer.split('/').skip(1).map(|p| p.replace("~1", "/").replace("~0", "~")).collect();
    let Some((last, path)) = parts.split_last() else { return };
    let mut node = root;
    for part in path {
        node = match node {
            Value::Array(items) => match part.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            Value::Object(map) => map.entry(part.clone()).or_insert_with(|| json!({})),
            _ => return,
        };
    }
    match (node, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.clone(), v.clone());
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(v)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = v.clone();
            }
        }
        _ => {}
    }
}

fn snapshot_of(o: &DynamicObject) -> BTreeMap<String, Option<Value>> {
    annotation(o, SNAPSHOT).and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
}

/// The JSON patch that gives object `o` the `wanted` fields (by JSON pointer; `None`
/// removes), with a `test` of every value it replaces, and keeps the snapshot:
/// - if restoring the snapshot's originals would give what `satisfied` asks for (an
///   undo or a revert), the originals are written back byte for byte and dropped from
///   the snapshot;
/// - otherwise each field changed for the first time has its original recorded.
/// `guards` are values that must still be where they were read (array elements found
/// by name), tested before anything is changed.
fn object_ops(
    b: &Binding,
    o: &DynamicObject,
    guards: Vec<(String, Value)>,
    wanted: Vec<(String, Option<Value>)>,
    satisfied: impl Fn(&Policy) -> bool,
) -> Vec<Value> {
    let current = serde_json::to_value(o).unwrap_or(Value::Null);
    let mut snapshot = snapshot_of(o);
    let original = snapshot.clone();
    let keys: Vec<&String> = wanted.iter().map(|(k, _)| k).collect();
    // What the object would be with the recorded originals of these fields put back.
    let mut restored = current.clone();
    for (k, v) in snapshot.iter().filter(|(k, _)| keys.contains(k)) {
        set_pointer(&mut restored, k, v.as_ref());
    }
    let restores = snapshot.keys().any(|k| keys.contains(&k))
        && serde_json::from_value::<DynamicObject>(restored)
            .is_ok_and(|hypothetical| satisfied(&read(b, std::slice::from_ref(&hypothetical))));
    let fields: Vec<(String, Option<Value>)> = if restores {
        wanted
            .into_iter()
            .map(|(k, v)| match snapshot.remove(&k) {
                Some(original) => (k, original),
                None => (k, v),
            })
            .collect()
    } else {
        for (k, _) in &wanted {
            snapshot.entry(k.clone()).or_insert_with(|| current.pointer(k).cloned());
        }
        wanted
    };
    let mut ops: Vec<Value> =
        guards.into_iter().map(|(path, value)| json!({"op": "test", "path": path, "value": value})).collect();
    let mut changes_anything = false;
    for (path, value) in &fields {
        let now = current.pointer(path);
        if now == value.as_ref() {
            continue;
        }
        changes_anything = true;
        if let Some(now) = now {
            ops.push(json!({"op": "test", "path": path, "value": now}));
        }
        match value {
            Some(v) => ops.push(json!({"op": "add", "path": path, "value": v})),
            None if now.is_some() => ops.push(json!({"op": "remove", "path": path})),
            None => {}
        }
    }
    if !changes_anything {
        return Vec::new();
    }
    if snapshot != original {
        let path = annotation_path(SNAPSHOT);
        if let Some(old) = annotation(o, SNAPSHOT) {
            ops.push(json!({"op": "test", "path": path, "value": old}));
        }
        if snapshot.is_empty() {
            ops.push(json!({"op": "remove", "path": path}));
        } else {
            ops.push(json!({"op": "add", "path": path, "value": serde_json::to_string(&snapshot).unwrap_or_default()}));
        }
    }
    let adds_annotation = ops
        .iter()
        .any(|op| op["op"] == "add" && op["path"].as_str().is_some_and(|p| p.starts_with("/metadata/annotations/")));
    if o.metadata.annotations.is_none() && adds_annotation {
        ops.insert(0, json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    ops
}

/// The patches (object name, JSON patch ops) that make `change` on `objects`, after
/// checking they still hold what `before` says. Pure: tested without a cluster.
pub fn plan(
    b: &Binding,
    objects: &[DynamicObject],
    change: &Change,
    before: &GatewayState,
) -> FleetResult<Vec<(String, Vec<Value>)>> {
    let now = read(b, objects);
    let moved = |what: &str| {
        FleetError::Conflict(format!(
            "the gateway's {what} was changed by someone else since this change was planned; review it and try again"
        ))
    };
    let nginx = |key: &str| annotation_path(&format!("{NGINX}{key}"));
    let patches: Vec<(String, Vec<Value>)> = match (b.kind, change) {
        (Kind::IngressNginx, Change::RateLimit { policy }) => {
            if now.rate_limit != before.rate_limit {
                return Err(moved("rate limit"));
            }
            let scope = policy.as_ref().and_then(|p| p.route.clone()).or_else(|| {
                if policy.is_none() { before.rate_limit.as_ref().and_then(|p| p.route.clone()) } else { None }
            });
            let limit = policy.as_ref().map(|p| (p.requests_per_second, p.burst));
            objects
                .iter()
                .filter(|o| scope.as_ref().is_none_or(|r| *r == name(o)))
                .map(|o| {
                    let wanted = vec![
                        (nginx("limit-rps"), policy.as_ref().map(|p| json!(p.requests_per_second.to_string()))),
                        (
                            nginx("limit-burst-multiplier"),
                            policy
                                .as_ref()
                                .map(|p| json!(p.burst.div_ceil(p.requests_per_second.max(1)).max(1).to_string())),
                        ),
                    ];
                    let satisfied =
                        |p: &Policy| p.rate_limit.as_ref().map(|l| (l.requests_per_second, l.burst)) == limit;
                    (name(o), object_ops(b, o, vec![], wanted, satisfied))
                })
                .collect()
        }
        (Kind::IngressNginx, Change::Timeouts { policy }) => {
            if now.timeouts != before.timeouts {
                return Err(moved("timeouts"));
            }
            if policy.request_timeout_ms % 1000 != 0 || policy.connect_timeout_ms % 1000 != 0 {
                return Err(FleetError::Refused(
                    "ingress-nginx takes timeouts in whole seconds: use multiples of 1000 ms".into(),
                ));
            }
            let s = |v: u32| Some(json!(v.to_string()));
            objects
                .iter()
                .map(|o| {
                    let wanted = vec![
                        (nginx("proxy-connect-timeout"), s(policy.connect_timeout_ms / 1000)),
                        (nginx("proxy-next-upstream-tries"), s(policy.retries + 1)),
                        (nginx("proxy-read-timeout"), s(policy.request_timeout_ms / 1000)),
                        (nginx("proxy-send-timeout"), s(policy.request_timeout_ms / 1000)),
                    ];
                    (name(o), object_ops(b, o, vec![], wanted, |p: &Policy| p.timeouts == *policy))
                })
                .collect()
        }
        (Kind::HttpRoute, Change::Timeouts { policy }) => {
            if now.timeouts != before.timeouts {
                return Err(moved("timeouts"));
            }
            if policy.connect_timeout_ms != now.timeouts.connect_timeout_ms {
                return Err(FleetError::Refused(
                    "an HTTPRoute has no connect timeout; change only request_timeout_ms and retries".into(),
                ));
            }
            objects
                .iter()
                .map(|o| {
                    let (mut guards, mut wanted) = (Vec::new(), Vec::new());
                    for (i, rule) in rules(o).enumerate() {
                        if !rule["matches"].is_null() {
                            guards.push((format!("/spec/rules/{i}/matches"), rule["matches"].clone()));
                        }
                        let mut timeouts = rule["timeouts"].as_object().cloned().unwrap_or_default();
                        timeouts.insert("request".into(), json!(format!("{}ms", policy.request_timeout_ms)));
                        wanted.push((format!("/spec/rules/{i}/timeouts"), Some(Value::Object(timeouts))));
                        let mut retry = rule["retry"].as_object().cloned().unwrap_or_default();
                        retry.insert("attempts".into(), json!(policy.retries));
                        wanted.push((format!("/spec/rules/{i}/retry"), Some(Value::Object(retry))));
                    }
                    (name(o), object_ops(b, o, guards, wanted, |p: &Policy| p.timeouts == *policy))
                })
                .collect()
        }
        (Kind::HttpRoute, Change::Bypass { service, enabled }) => {
            if now.bypassed.contains(service) != before.bypassed.contains(service) {
                return Err(moved("routing"));
            }
            if !now.services.contains(service) {
                return Err(FleetError::Refused(format!(
                    "no bound HTTPRoute has a backendRef to '{service}' next to the gateway's Service '{}'",
                    b.gateway_service
                )));
            }
            objects
                .iter()
                .map(|o| {
                    let (mut guards, mut wanted) = (Vec::new(), Vec::new());
                    for (i, rule) in rules(o).enumerate() {
                        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
                        let gateway = refs.iter().position(|r| r["name"] == b.gateway_service.as_str());
                        let direct = refs.iter().position(|r| r["name"] == service.as_str());
                        let (Some(g), Some(d)) = (gateway, direct) else { continue };
                        let weight = |r: &Value| r["weight"].as_u64().unwrap_or(1);
                        let total = (weight(&refs[g]) + weight(&refs[d])).max(1);
                        let (to_gateway, to_service) = if *enabled { (0, total) } else { (total, 0) };
                        guards.push((format!("/spec/rules/{i}/backendRefs/{g}/name"), json!(b.gateway_service)));
                        guards.push((format!("/spec/rules/{i}/backendRefs/{d}/name"), json!(service)));
                        wanted.push((format!("/spec/rules/{i}/backendRefs/{g}/weight"), Some(json!(to_gateway))));
                        wanted.push((format!("/spec/rules/{i}/backendRefs/{d}/weight"), Some(json!(to_service))));
                    }
                    (name(o), object_ops(b, o, guards, wanted, |p: &Policy| p.bypassed.contains(service) == *enabled))
                })
                .collect()
        }
        (kind, change) => {
            let what = match change {
                Change::RateLimit { .. } => "an emergency rate limit",
                Change::Timeouts { .. } => "timeouts",
                Change::CircuitBreaker { .. } => "a circuit breaker",
                Change::Bypass { .. } => "a bypass",
                _ => "this change",
            };
            return Err(FleetError::Unsupported(format!(
                "the {} adapter cannot set {what}: {}",
                match kind {
                    Kind::IngressNginx => "ingress-nginx",
                    Kind::HttpRoute => "HTTPRoute",
                },
                match kind {
                    Kind::IngressNginx => "ingress-nginx has no circuit breaker or bypass annotation",
                    Kind::HttpRoute => "the Gateway API has no rate limit or circuit breaker in HTTPRoute",
                }
            )));
        }
    };
    Ok(patches.into_iter().filter(|(_, ops)| !ops.is_empty()).collect())
}

/// Reads the objects, plans and sends the patches (dry-run when asked).
pub async fn apply(
    client: &kube::Client,
    namespace: &str,
    b: &Binding,
    change: &Change,
    before: &GatewayState,
    dry_run: bool,
) -> FleetResult<()> {
    let objects = fetch(client, namespace, b).await?;
    let patches = plan(b, &objects, change, before)?;
    let api = api(client, namespace, b.kind);
    let pp = PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    for (name, ops) in patches {
        let patch: json_patch::Patch =
            serde_json::from_value(Value::Array(ops)).map_err(|e| FleetError::Rejected(e.to_string()))?;
        let what = format!("patch {} {name}", b.kind.resource().kind);
        tokio::time::timeout(super::ops::CALL_TIMEOUT, api.patch(&name, &pp, &Patch::Json::<()>(patch)))
            .await
            .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
            .map_err(|e| error(&what, e))?;
    }
    Ok(())
}
