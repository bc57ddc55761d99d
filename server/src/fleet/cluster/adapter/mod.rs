//! Gateway policy adapters: the neutral traffic policy (rate limit, timeouts, retries,
//! circuit breaker) and bypass, mapped onto the objects each kind of gateway reads.
//!
//! A gateway Deployment opts in with annotations:
//! `gatewarden.io/adapter: ingress-nginx | httproute | kong` and
//! `gatewarden.io/routes: name[,name...]` (the Ingresses or HTTPRoutes, in its
//! namespace, that route through it). `gatewarden.io/gateway-service` names the
//! Service of the gateway in HTTPRoute backendRefs (default: the Deployment's name);
//! `gatewarden.io/services` lists the upstream Services whose `konghq.com/*` timeout
//! annotations Kong reads.
//!
//! Every change reads the objects, refuses if they no longer hold what the change was
//! planned against (someone else changed them), and sends a JSON patch whose `test`
//! operations pin the values it replaces, so a concurrent edit fails with 422 instead of
//! being overwritten. Undo restores the recorded values the same way.

//!
//! `nginx`, `kong` and `httproute` each read and plan one kind; this module holds what
//! they share: bindings, fetching, the snapshot annotation and the JSON patch builder.

mod httproute;
mod kong;
mod nginx;

use super::ops::{FIELD_MANAGER, error};
use crate::fleet::{BreakerPolicy, Change, FleetError, FleetResult, GatewayState, RateLimitPolicy, TimeoutPolicy};
pub use httproute::ENVOY_BREAKER;
use k8s_openapi::api::apps::v1::Deployment;
pub use kong::KONG_PLUGIN;
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
/// Annotation listing the upstream Services (Kong timeouts and retries).
pub const SERVICES: &str = "gatewarden.io/services";

/// Which objects a gateway's policy lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `networking.k8s.io/v1` Ingress annotations read by ingress-nginx.
    IngressNginx,
    /// Gateway API `HTTPRoute` rules.
    HttpRoute,
    /// Kong Ingress Controller: a `KongPlugin` attached by Ingress annotation, and
    /// `konghq.com/*` annotations on upstream Services.
    Kong,
}

/// The kinds of object an adapter edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Res {
    /// The bound route objects (Ingress or HTTPRoute).
    Route,
    /// Upstream Services.
    Service,
    /// The console's own object: Kong's plugin, Envoy Gateway's BackendTrafficPolicy.
    Plugin,
}

impl Res {
    fn resource(self, kind: Kind) -> ApiResource {
        let (group, version, k, plural) = match (self, kind) {
            (Res::Route, Kind::HttpRoute) => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            (Res::Route, _) => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            (Res::Service, _) => ("", "v1", "Service", "services"),
            (Res::Plugin, Kind::HttpRoute) => {
                ("gateway.envoyproxy.io", "v1alpha1", "BackendTrafficPolicy", "backendtrafficpolicies")
            }
            (Res::Plugin, _) => ("configuration.konghq.com", "v1", "KongPlugin", "kongplugins"),
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() { version.into() } else { format!("{group}/{version}") },
            kind: k.into(),
            plural: plural.into(),
        }
    }
}

/// The objects an adapter reads.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// The bound routes.
    pub routes: Vec<DynamicObject>,
    /// The upstream Services (Kong).
    pub services: Vec<DynamicObject>,
    /// The object the console owns, if it exists: its KongPlugin (Kong) or its Envoy
    /// Gateway BackendTrafficPolicy (HTTPRoute).
    pub owned: Option<DynamicObject>,
}

impl Fetched {
    /// Only route objects.
    pub fn routes(routes: Vec<DynamicObject>) -> Self {
        Fetched { routes, ..Default::default() }
    }
}

/// One write an adapter plans.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Which kind of object.
    pub res: Res,
    /// Its name.
    pub name: String,
    /// JSON patch operations (empty with `create`).
    pub ops: Vec<Value>,
    /// An object to create instead of patching.
    pub create: Option<Value>,
    /// Delete the object instead (the console's own, when its policy is removed).
    pub delete: bool,
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
    /// Upstream Services (Kong).
    pub services: Vec<String>,
}

/// The Deployment's binding, if it has one; an error names a bad annotation.
pub fn binding(d: &Deployment) -> Result<Option<Binding>, String> {
    let annotations = d.metadata.annotations.clone().unwrap_or_default();
    let Some(kind) = annotations.get(ADAPTER) else { return Ok(None) };
    let kind = match kind.as_str() {
        "ingress-nginx" => Kind::IngressNginx,
        "httproute" => Kind::HttpRoute,
        "kong" => Kind::Kong,
        other => {
            return Err(format!("{ADAPTER}: unknown adapter '{other}' (expected ingress-nginx, httproute or kong)"));
        }
    };
    let list = |key: &str| -> Vec<String> {
        annotations
            .get(key)
            .map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let objects = list(ROUTES);
    if objects.is_empty() {
        return Err(format!("{ROUTES}: list the objects the {kind:?} adapter edits"));
    }
    let name = d.metadata.name.clone().unwrap_or_default();
    Ok(Some(Binding {
        kind,
        objects,
        gateway_service: annotations.get(GATEWAY_SERVICE).cloned().unwrap_or(name),
        services: list(SERVICES),
    }))
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

fn api(client: &kube::Client, namespace: &str, kind: Kind, res: Res) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &res.resource(kind))
}

async fn get(api: &Api<DynamicObject>, what: String, name: &str) -> FleetResult<Option<DynamicObject>> {
    tokio::time::timeout(super::ops::CALL_TIMEOUT, api.get_opt(name))
        .await
        .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
        .map_err(|e| error(&what, e))
}

/// Reads the bound objects (a GET each); a missing route or Service is an error that
/// names it, a missing KongPlugin just means no limit is in force.
pub async fn fetch(client: &kube::Client, namespace: &str, b: &Binding) -> FleetResult<Fetched> {
    let mut fetched = Fetched::default();
    for (res, names) in [(Res::Route, &b.objects), (Res::Service, &b.services)] {
        let api = api(client, namespace, b.kind, res);
        for name in names {
            let what = format!("get {} {namespace}/{name}", res.resource(b.kind).kind);
            let object = get(&api, what.clone(), name).await?.ok_or_else(|| {
                FleetError::Refused(format!("{what}: not found (named by the gateway's {ADAPTER} binding)"))
            })?;
            match res {
                Res::Route => fetched.routes.push(object),
                _ => fetched.services.push(object),
            }
        }
    }
    let owned = match b.kind {
        Kind::Kong => Some(KONG_PLUGIN),
        Kind::HttpRoute => Some(ENVOY_BREAKER),
        Kind::IngressNginx => None,
    };
    if let Some(owned) = owned {
        let api = api(client, namespace, b.kind, Res::Plugin);
        let what = format!("get {} {namespace}/{owned}", Res::Plugin.resource(b.kind).kind);
        fetched.owned = match get(&api, what, owned).await {
            // Envoy Gateway's CRD may not be installed: then there is no breaker in force.
            Err(FleetError::NotFound(_)) => None,
            other => other?,
        };
    }
    Ok(fetched)
}

fn annotation<'a>(o: &'a DynamicObject, key: &str) -> Option<&'a str> {
    o.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
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
pub fn read(b: &Binding, f: &Fetched) -> Policy {
    match b.kind {
        Kind::IngressNginx => nginx::read(f),
        Kind::HttpRoute => httproute::read(b, f),
        Kind::Kong => kong::read(f),
    }
}

fn rules(o: &DynamicObject) -> impl Iterator<Item = &Value> {
    o.data["spec"]["rules"].as_array().into_iter().flatten()
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
///
/// `guards` are values that must still be where they were read (array elements found
/// by name), tested before anything is changed.
fn object_ops(
    reader: impl Fn(&DynamicObject) -> Policy,
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
            .is_ok_and(|hypothetical| satisfied(&reader(&hypothetical)));
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

/// What every planner needs: the binding, the fetched objects, the policy they express
/// now, and the gateway state the change was planned against.
pub(super) struct Cx<'a> {
    b: &'a Binding,
    f: &'a Fetched,
    now: Policy,
    before: &'a GatewayState,
}

impl Cx<'_> {
    /// Refuses when what the change was planned against has moved since.
    fn unmoved(&self, same: bool, what: &str) -> FleetResult<()> {
        if same { Ok(()) } else { Err(self.moved(what)) }
    }

    fn moved(&self, what: &str) -> FleetError {
        FleetError::Conflict(format!(
            "the gateway's {what} was changed by someone else since this change was planned; review it and try again"
        ))
    }

    fn patch(&self, res: Res, o: &DynamicObject, ops: Vec<Value>) -> Planned {
        Planned { res, name: name(o), ops, create: None, delete: false }
    }

    /// How one route object alone reads (what a restored snapshot would give).
    fn route_reader(&self, o: &DynamicObject) -> Policy {
        read(self.b, &Fetched { routes: vec![o.clone()], ..self.f.clone() })
    }

    /// How one upstream Service alone reads.
    fn service_reader(&self, o: &DynamicObject) -> Policy {
        read(self.b, &Fetched { services: vec![o.clone()], ..self.f.clone() })
    }
}

/// The route objects an emergency rate limit goes on (all, or the one it is scoped to,
/// and when lifting a scoped limit, the route it was on) and the (rps, burst) it sets.
fn rate_limit_scope<'a>(cx: &Cx<'a>, policy: &Option<RateLimitPolicy>) -> (Vec<&'a DynamicObject>, Option<(u32, u32)>) {
    let scope = policy
        .as_ref()
        .and_then(|p| p.route.clone())
        .or_else(|| if policy.is_none() { cx.before.rate_limit.as_ref().and_then(|p| p.route.clone()) } else { None });
    let targets = cx.f.routes.iter().filter(|o| scope.as_ref().is_none_or(|r| *r == name(o))).collect();
    (targets, policy.as_ref().map(|p| (p.requests_per_second, p.burst)))
}

/// The (rps, burst) of a policy's rate limit.
fn limit_of(p: &Policy) -> Option<(u32, u32)> {
    p.rate_limit.as_ref().map(|l| (l.requests_per_second, l.burst))
}

/// The refusal for a change an adapter has no mapping for.
fn unsupported(adapter: &str, why: &str, change: &Change) -> FleetError {
    let what = match change {
        Change::RateLimit { .. } => "an emergency rate limit",
        Change::Timeouts { .. } => "timeouts",
        Change::CircuitBreaker { .. } => "a circuit breaker",
        Change::Bypass { .. } => "a bypass",
        _ => "this change",
    };
    FleetError::Unsupported(format!("the {adapter} adapter cannot set {what}: {why}"))
}

/// Whom an emergency rate limit counts with this kind of gateway.
pub fn limit_counts(kind: Kind) -> &'static str {
    match kind {
        // limit-rps is a limit_req zone keyed by $binary_remote_addr, kept by each pod.
        Kind::IngressNginx => "each client address separately, on each ingress-nginx pod",
        // The rate-limiting plugin with policy local counts in each node's memory.
        Kind::Kong => "all clients together, on each Kong node separately",
        Kind::HttpRoute => "",
    }
}

/// The writes that make `change` on the fetched objects, after checking they still
/// hold what `before` says. Pure: tested without a cluster.
pub fn plan(b: &Binding, f: &Fetched, change: &Change, before: &GatewayState) -> FleetResult<Vec<Planned>> {
    let cx = Cx { b, f, now: read(b, f), before };
    let planned = match b.kind {
        Kind::IngressNginx => nginx::plan(&cx, change)?,
        Kind::Kong => kong::plan(&cx, change)?,
        Kind::HttpRoute => httproute::plan(&cx, change)?,
    };
    Ok(planned.into_iter().filter(|p| p.create.is_some() || p.delete || !p.ops.is_empty()).collect())
}

/// (ready, all) endpoints of `service`, from its EndpointSlices.
pub async fn endpoints(client: &kube::Client, namespace: &str, service: &str) -> FleetResult<(usize, usize)> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let lp = kube::api::ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let what = format!("list endpointslices of {namespace}/{service}");
    let slices = tokio::time::timeout(super::ops::CALL_TIMEOUT, api.list(&lp))
        .await
        .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
        .map_err(|e| error(&what, e))?;
    let all = slices.items.iter().flat_map(|s| s.endpoints.iter().flatten()).count();
    Ok((ready_endpoints(&slices.items), all))
}

/// The bound route objects alone (a GET each; a missing one is left out and logged).
pub async fn fetch_routes(client: &kube::Client, namespace: &str, b: &Binding) -> FleetResult<Vec<DynamicObject>> {
    let api = api(client, namespace, b.kind, Res::Route);
    let mut routes = Vec::new();
    for name in &b.objects {
        let what = format!("get {} {namespace}/{name}", Res::Route.resource(b.kind).kind);
        match get(&api, what.clone(), name).await? {
            Some(o) => routes.push(o),
            None => tracing::warn!("{what}: not found (named by the gateway's {ADAPTER} binding)"),
        }
    }
    Ok(routes)
}

/// The Services a bound route object sends to: an HTTPRoute's backendRefs other than the
/// gateway's own Service, an Ingress's backends (rules and default).
pub fn backends(b: &Binding, o: &DynamicObject) -> Vec<String> {
    let mut out: Vec<String> = match b.kind {
        Kind::HttpRoute => rules(o)
            .flat_map(|r| r["backendRefs"].as_array().into_iter().flatten())
            .filter_map(|r| r["name"].as_str())
            .filter(|n| *n != b.gateway_service)
            .map(str::to_string)
            .collect(),
        _ => rules(o)
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
            .filter_map(|p| p["backend"]["service"]["name"].as_str())
            .chain(o.data["spec"]["defaultBackend"]["service"]["name"].as_str())
            .map(str::to_string)
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

/// Before routing clients straight to `service`: it must have a ready endpoint, or the
/// bypass would turn a degraded gateway into a total outage.
async fn preflight(client: &kube::Client, namespace: &str, service: &str) -> FleetResult<()> {
    let (ready, _) = endpoints(client, namespace, service).await?;
    if ready == 0 {
        return Err(FleetError::Refused(format!(
            "'{service}' has no ready endpoints: sending its clients to it directly would fail every request"
        )));
    }
    Ok(())
}

/// Endpoints not marked unready (an absent `ready` condition counts as ready).
pub fn ready_endpoints(slices: &[k8s_openapi::api::discovery::v1::EndpointSlice]) -> usize {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .count()
}

/// Reads the objects, plans and sends the writes (dry-run when asked).
pub async fn apply(
    client: &kube::Client,
    namespace: &str,
    b: &Binding,
    change: &Change,
    before: &GatewayState,
    dry_run: bool,
) -> FleetResult<()> {
    let fetched = fetch(client, namespace, b).await?;
    let planned = plan(b, &fetched, change, before)?;
    if let Change::Bypass { service, enabled: true } = change {
        preflight(client, namespace, service).await?;
    }
    let pp = PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let post = kube::api::PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    for write in planned {
        let api = api(client, namespace, b.kind, write.res);
        let kind = write.res.resource(b.kind).kind;
        let verb = match (&write.create, write.delete) {
            (Some(_), _) => "create",
            (None, true) => "delete",
            (None, false) => "patch",
        };
        let what = format!("{verb} {kind} {namespace}/{}", write.name);
        let call = async {
            match (write.create, write.delete) {
                (Some(object), _) => {
                    let object: DynamicObject =
                        serde_json::from_value(object).map_err(|e| FleetError::Rejected(e.to_string()))?;
                    api.create(&post, &object).await.map(|_| ()).map_err(|e| error(&what, e))
                }
                (None, true) => {
                    let dp = kube::api::DeleteParams { dry_run, ..Default::default() };
                    api.delete(&write.name, &dp).await.map(|_| ()).map_err(|e| error(&what, e))
                }
                (None, false) => {
                    let patch: json_patch::Patch = serde_json::from_value(Value::Array(write.ops))
                        .map_err(|e| FleetError::Rejected(e.to_string()))?;
                    api.patch(&write.name, &pp, &Patch::Json::<()>(patch))
                        .await
                        .map(|_| ())
                        .map_err(|e| error(&what, e))
                }
            }
        };
        tokio::time::timeout(super::ops::CALL_TIMEOUT, call)
            .await
            .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))??;
    }
    Ok(())
}
