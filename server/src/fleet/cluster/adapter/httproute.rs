//! Gateway API HTTPRoutes (Envoy Gateway): timeouts and retries in each rule, bypass as
//! backendRef weights between the gateway's Service and the upstream one, and the
//! circuit breaker as a BackendTrafficPolicy (passive health checks) the console owns.
//! The Gateway API has no rate limit in HTTPRoute.

use super::{Binding, Cx, Fetched, Planned, Policy, Res, annotation, name, object_ops, rules, sorted, unsupported};
use crate::fleet::{BreakerPolicy, Change, FleetError, FleetResult, TimeoutPolicy};
use kube::api::DynamicObject;
use serde_json::{Value, json};

/// The Envoy Gateway BackendTrafficPolicy the console creates for its circuit breaker.
pub const ENVOY_BREAKER: &str = "gatewarden-circuit-breaker";
/// Annotation on that policy naming the one service it is scoped to.
const BREAKER_SERVICE: &str = "gatewarden.io/service";

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

/// The breaker the console's BackendTrafficPolicy expresses (Envoy Gateway passive
/// health checks: outlier detection).
fn envoy_breaker(owned: Option<&DynamicObject>) -> Option<BreakerPolicy> {
    let passive = &owned?.data["spec"]["healthCheck"]["passive"];
    Some(BreakerPolicy {
        consecutive_errors: passive["consecutive5XxErrors"].as_u64()? as u32,
        ejection_seconds: duration_ms(passive["baseEjectionTime"].as_str()?)? / 1000,
        max_ejection_percent: passive["maxEjectionPercent"].as_u64().unwrap_or(10) as u32,
        service: owned.and_then(|o| annotation(o, BREAKER_SERVICE)).map(str::to_string),
    })
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

/// The policy the bound HTTPRoutes and the console's BackendTrafficPolicy express.
pub(super) fn read(b: &Binding, f: &Fetched) -> Policy {
    Policy { circuit_breaker: envoy_breaker(f.owned.as_ref()), ..read_httproute(b, &f.routes) }
}

/// The writes that make `change` on the bound HTTPRoutes and the breaker policy.
pub(super) fn plan(cx: &Cx, change: &Change) -> FleetResult<Vec<Planned>> {
    Ok(match change {
        Change::CircuitBreaker { policy } => {
            cx.unmoved(cx.now.circuit_breaker == cx.before.circuit_breaker, "circuit breaker")?;
            let owned = |ops: Vec<Value>, create: Option<Value>, delete: bool| Planned {
                res: Res::Plugin,
                name: ENVOY_BREAKER.into(),
                ops,
                create,
                delete,
            };
            match (policy, &cx.f.owned) {
                (None, None) => vec![],
                (None, Some(_)) => vec![owned(vec![], None, true)],
                (Some(p), existing) => {
                    // Scoped to a service: only the routes that reach it.
                    let reaches = |o: &DynamicObject, svc: &str| {
                        rules(o)
                            .flat_map(|r| r["backendRefs"].as_array().into_iter().flatten())
                            .any(|r| r["name"] == svc)
                    };
                    let targets: Vec<Value> = cx
                        .f
                        .routes
                        .iter()
                        .filter(|o| p.service.as_ref().is_none_or(|svc| reaches(o, svc)))
                        .map(|o| json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name(o)}))
                        .collect();
                    if targets.is_empty() {
                        return Err(FleetError::Refused(format!(
                            "no bound HTTPRoute sends traffic to '{}'",
                            p.service.as_deref().unwrap_or_default()
                        )));
                    }
                    let spec = json!({
                        "targetRefs": targets,
                        "healthCheck": {"passive": {
                            "consecutive5XxErrors": p.consecutive_errors,
                            "baseEjectionTime": format!("{}s", p.ejection_seconds),
                            "maxEjectionPercent": p.max_ejection_percent,
                            "interval": "1s",
                        }},
                    });
                    let annotations = match &p.service {
                        Some(svc) => json!({BREAKER_SERVICE: svc}),
                        None => json!({}),
                    };
                    match existing {
                        None => vec![owned(
                            vec![],
                            Some(json!({
                                "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy",
                                "metadata": {"name": ENVOY_BREAKER, "annotations": annotations,
                                             "labels": {"app.kubernetes.io/managed-by": "gatewarden"}},
                                "spec": spec,
                            })),
                            false,
                        )],
                        Some(o) => vec![owned(
                            vec![
                                json!({"op": "test", "path": "/spec", "value": o.data["spec"]}),
                                json!({"op": "replace", "path": "/spec", "value": spec}),
                                json!({"op": "add", "path": "/metadata/annotations", "value": annotations}),
                            ],
                            None,
                            false,
                        )],
                    }
                }
            }
        }
        Change::Timeouts { policy } => {
            cx.unmoved(cx.now.timeouts == cx.before.timeouts, "timeouts")?;
            if policy.connect_timeout_ms != cx.now.timeouts.connect_timeout_ms {
                return Err(FleetError::Refused(
                    "an HTTPRoute has no connect timeout; change only request_timeout_ms and retries".into(),
                ));
            }
            cx.f.routes
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
                    cx.patch(
                        Res::Route,
                        o,
                        object_ops(|o| cx.route_reader(o), o, guards, wanted, |p: &Policy| p.timeouts == *policy),
                    )
                })
                .collect()
        }
        Change::Bypass { service, enabled } => {
            cx.unmoved(cx.now.bypassed.contains(service) == cx.before.bypassed.contains(service), "routing")?;
            if !cx.now.services.contains(service) {
                return Err(FleetError::Refused(format!(
                    "no bound HTTPRoute has a backendRef to '{service}' next to the gateway's Service '{}'",
                    cx.b.gateway_service
                )));
            }
            cx.f.routes
                .iter()
                .map(|o| {
                    let (mut guards, mut wanted) = (Vec::new(), Vec::new());
                    for (i, rule) in rules(o).enumerate() {
                        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
                        let gateway = refs.iter().position(|r| r["name"] == cx.b.gateway_service.as_str());
                        let direct = refs.iter().position(|r| r["name"] == service.as_str());
                        let (Some(g), Some(d)) = (gateway, direct) else { continue };
                        let weight = |r: &Value| r["weight"].as_u64().unwrap_or(1);
                        let total = (weight(&refs[g]) + weight(&refs[d])).max(1);
                        let (to_gateway, to_service) = if *enabled { (0, total) } else { (total, 0) };
                        guards.push((format!("/spec/rules/{i}/backendRefs/{g}/name"), json!(cx.b.gateway_service)));
                        guards.push((format!("/spec/rules/{i}/backendRefs/{d}/name"), json!(service)));
                        wanted.push((format!("/spec/rules/{i}/backendRefs/{g}/weight"), Some(json!(to_gateway))));
                        wanted.push((format!("/spec/rules/{i}/backendRefs/{d}/weight"), Some(json!(to_service))));
                    }
                    let satisfied = |p: &Policy| p.bypassed.contains(service) == *enabled;
                    cx.patch(Res::Route, o, object_ops(|o| cx.route_reader(o), o, guards, wanted, satisfied))
                })
                .collect()
        }
        other => return Err(unsupported("HTTPRoute", "the Gateway API has no rate limit in HTTPRoute", other)),
    })
}
