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

/// JSON pointer of an annotation (RFC 6901 escapes `~` and `/`).
fn annotation_path(key: &str) -> String {
    format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Ops that set (`Some`) or remove (`None`) annotations, with a `test` of every value
/// they replace or remove.
fn annotation_ops(o: &DynamicObject, wanted: &BTreeMap<String, Option<String>>) -> Vec<Value> {
    let mut ops = Vec::new();
    if o.metadata.annotations.is_none() && wanted.values().any(Option::is_some) {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    for (key, value) in wanted {
        let path = annotation_path(key);
        let current = annotation(o, key);
        if current == value.as_deref() {
            continue;
        }
        if let Some(current) = current {
            ops.push(json!({"op": "test", "path": path, "value": current}));
        }
        match value {
            Some(v) => ops.push(json!({"op": "add", "path": path, "value": v})),
            None => ops.push(json!({"op": "remove", "path": path})),
        }
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
    let patches: Vec<(String, Vec<Value>)> = match (b.kind, change) {
        (Kind::IngressNginx, Change::RateLimit { policy }) => {
            if now.rate_limit != before.rate_limit {
                return Err(moved("rate limit"));
            }
            let scope = policy.as_ref().and_then(|p| p.route.clone()).or_else(|| {
                if policy.is_none() { before.rate_limit.as_ref().and_then(|p| p.route.clone()) } else { None }
            });
            objects
                .iter()
                .filter(|o| scope.as_ref().is_none_or(|r| *r == name(o)))
                .map(|o| {
                    let wanted: BTreeMap<String, Option<String>> = [
                        (format!("{NGINX}limit-rps"), policy.as_ref().map(|p| p.requests_per_second.to_string())),
                        (
                            format!("{NGINX}limit-burst-multiplier"),
                            policy.as_ref().map(|p| p.burst.div_ceil(p.requests_per_second.max(1)).max(1).to_string()),
                        ),
                    ]
                    .into();
                    (name(o), annotation_ops(o, &wanted))
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
            let wanted: BTreeMap<String, Option<String>> = [
                (format!("{NGINX}proxy-read-timeout"), Some((policy.request_timeout_ms / 1000).to_string())),
                (format!("{NGINX}proxy-send-timeout"), Some((policy.request_timeout_ms / 1000).to_string())),
                (format!("{NGINX}proxy-connect-timeout"), Some((policy.connect_timeout_ms / 1000).to_string())),
                (format!("{NGINX}proxy-next-upstream-tries"), Some((policy.retries + 1).to_string())),
            ]
            .into();
            objects.iter().map(|o| (name(o), annotation_ops(o, &wanted))).collect()
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
                    let mut ops = vec![];
                    for (i, rule) in rules(o).enumerate() {
                        if !rule["timeouts"].is_null() {
                            ops.push(json!({"op": "test", "path": format!("/spec/rules/{i}/timeouts"), "value": rule["timeouts"]}));
                        }
                        let mut timeouts = rule["timeouts"].as_object().cloned().unwrap_or_default();
                        timeouts.insert("request".into(), json!(format!("{}ms", policy.request_timeout_ms)));
                        ops.push(json!({"op": "add", "path": format!("/spec/rules/{i}/timeouts"), "value": timeouts}));
                        if !rule["retry"].is_null() {
                            ops.push(json!({"op": "test", "path": format!("/spec/rules/{i}/retry"), "value": rule["retry"]}));
                        }
                        let mut retry = rule["retry"].as_object().cloned().unwrap_or_default();
                        retry.insert("attempts".into(), json!(policy.retries));
                        ops.push(json!({"op": "add", "path": format!("/spec/rules/{i}/retry"), "value": retry}));
                    }
                    (name(o), ops)
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
                    let mut ops = vec![];
                    for (i, rule) in rules(o).enumerate() {
                        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
                        let gateway = refs.iter().position(|r| r["name"] == b.gateway_service.as_str());
                        let direct = refs.iter().position(|r| r["name"] == service.as_str());
                        let (Some(g), Some(d)) = (gateway, direct) else { continue };
                        let weight = |r: &Value| r["weight"].as_u64().unwrap_or(1);
                        let total = weight(&refs[g]) + weight(&refs[d]);
                        let (gw_weight, direct_weight) = if *enabled { (0, total.max(1)) } else { (total.max(1), 0) };
                        for (index, value) in [(g, gw_weight), (d, direct_weight)] {
                            let path = format!("/spec/rules/{i}/backendRefs/{index}");
                            ops.push(json!({"op": "test", "path": format!("{path}/name"), "value": refs[index]["name"]}));
                            if !refs[index]["weight"].is_null() {
                                ops.push(json!({"op": "test", "path": format!("{path}/weight"), "value": refs[index]["weight"]}));
                            }
                            ops.push(json!({"op": "add", "path": format!("{path}/weight"), "value": value}));
                        }
                    }
                    (name(o), ops)
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
