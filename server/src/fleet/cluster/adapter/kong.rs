//! Kong: the emergency rate limit is a `rate-limiting` KongPlugin the console owns,
//! attached through each bound Ingress's `konghq.com/plugins`; timeouts and retries are
//! the upstream Services' `konghq.com/*` annotations.

use super::{
    Cx, Fetched, Planned, Policy, Res, SERVICES, annotation, annotation_path, limit_of, name, object_ops,
    rate_limit_scope, sorted, unsupported,
};
use crate::fleet::{Change, FleetError, FleetResult, RateLimitPolicy, TimeoutPolicy};
use kube::api::DynamicObject;
use serde_json::json;

/// The KongPlugin the console creates for its emergency rate limit.
pub const KONG_PLUGIN: &str = "gatewarden-rate-limit";
const KONG_PLUGINS: &str = "konghq.com/plugins";
/// Kong's defaults (ms, retries) when a Service has no annotation.
const KONG_DEFAULT_TIMEOUT_MS: u32 = 60_000;
const KONG_DEFAULT_RETRIES: u32 = 5;

fn kong_plugins(o: &DynamicObject) -> Vec<String> {
    annotation(o, KONG_PLUGINS).map(|v| v.split(',').map(|p| p.trim().to_string()).collect()).unwrap_or_default()
}

/// The policy the plugin, the bound Ingresses and the upstream Services express.
pub(super) fn read(f: &Fetched) -> Policy {
    let rps = f.owned.as_ref().and_then(|p| p.data["config"]["second"].as_u64()).map(|v| v as u32);
    let attached: Vec<bool> = f.routes.iter().map(|o| kong_plugins(o).iter().any(|p| p == KONG_PLUGIN)).collect();
    let rate_limit = match (rps, attached.iter().position(|a| *a)) {
        (Some(rps), Some(i)) => Some(RateLimitPolicy {
            requests_per_second: rps,
            burst: rps,
            route: (!attached.iter().all(|a| *a)).then(|| name(&f.routes[i])),
        }),
        _ => None,
    };
    let first = f.services.first();
    let get = |key: &str, default: u32| {
        first
            .and_then(|o| annotation(o, &format!("konghq.com/{key}")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    Policy {
        routes: f.routes.iter().map(name).collect(),
        rate_limit,
        timeouts: TimeoutPolicy {
            request_timeout_ms: get("read-timeout", KONG_DEFAULT_TIMEOUT_MS),
            connect_timeout_ms: get("connect-timeout", KONG_DEFAULT_TIMEOUT_MS),
            retries: get("retries", KONG_DEFAULT_RETRIES),
        },
        circuit_breaker: None,
        services: sorted(f.services.iter().map(name).collect()),
        bypassed: vec![],
    }
}

/// The writes that make `change` on the plugin, the bound Ingresses and the Services.
pub(super) fn plan(cx: &Cx, change: &Change) -> FleetResult<Vec<Planned>> {
    Ok(match change {
        Change::RateLimit { policy } => {
            cx.unmoved(cx.now.rate_limit == cx.before.rate_limit, "rate limit")?;
            let (targets, limit) = rate_limit_scope(cx, policy);
            let satisfied = |p: &Policy| limit_of(p) == limit;
            if let Some(p) = policy
                && p.burst != p.requests_per_second
            {
                return Err(FleetError::Refused(
                    "Kong's rate-limiting plugin has no burst: leave burst out or equal to requests_per_second".into(),
                ));
            }
            let mut writes = Vec::new();
            // The plugin carries the limit; the Ingress annotation attaches it.
            if let Some(p) = policy {
                let config = json!({"second": p.requests_per_second, "policy": "local"});
                match &cx.f.owned {
                    None => writes.push(Planned {
                        res: Res::Plugin,
                        name: KONG_PLUGIN.into(),
                        ops: vec![],
                        delete: false,
                        create: Some(json!({
                            "apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
                            "metadata": {"name": KONG_PLUGIN, "labels": {"app.kubernetes.io/managed-by": "gatewarden"}},
                            "plugin": "rate-limiting", "config": config
                        })),
                    }),
                    Some(plugin) if plugin.data["config"] != config => writes.push(Planned {
                        res: Res::Plugin,
                        name: KONG_PLUGIN.into(),
                        ops: vec![
                            json!({"op": "test", "path": "/config", "value": plugin.data["config"]}),
                            json!({"op": "replace", "path": "/config", "value": config}),
                        ],
                        create: None,
                        delete: false,
                    }),
                    Some(_) => {}
                }
            }
            let reader = |o: &DynamicObject| {
                // With the plugin as it will be after this change.
                let mut plugin = cx.f.owned.clone();
                if let (Some(p), None) = (policy, &plugin) {
                    plugin = serde_json::from_value(json!({
                        "apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
                        "metadata": {"name": KONG_PLUGIN}, "config": {"second": p.requests_per_second}
                    }))
                    .ok();
                }
                super::read(cx.b, &Fetched { routes: vec![o.clone()], services: vec![], owned: plugin })
            };
            for o in targets {
                let mut plugins: Vec<String> = kong_plugins(o).into_iter().filter(|p| p != KONG_PLUGIN).collect();
                if policy.is_some() {
                    plugins.push(KONG_PLUGIN.into());
                }
                let value = (!plugins.is_empty()).then(|| json!(plugins.join(",")));
                let wanted = vec![(annotation_path(KONG_PLUGINS), value)];
                writes.push(cx.patch(Res::Route, o, object_ops(reader, o, vec![], wanted, satisfied)));
            }
            writes
        }
        Change::Timeouts { policy } => {
            cx.unmoved(cx.now.timeouts == cx.before.timeouts, "timeouts")?;
            let satisfied = |p: &Policy| p.timeouts == *policy;
            if cx.f.services.is_empty() {
                return Err(FleetError::Refused(format!(
                    "list the upstream Services in the gateway's {SERVICES} annotation: Kong reads timeouts there"
                )));
            }
            let s = |v: u32| Some(json!(v.to_string()));
            let kong = |key: &str| annotation_path(&format!("konghq.com/{key}"));
            cx.f.services
                .iter()
                .map(|o| {
                    let wanted = vec![
                        (kong("connect-timeout"), s(policy.connect_timeout_ms)),
                        (kong("read-timeout"), s(policy.request_timeout_ms)),
                        (kong("retries"), s(policy.retries)),
                        (kong("write-timeout"), s(policy.request_timeout_ms)),
                    ];
                    cx.patch(Res::Service, o, object_ops(|o| cx.service_reader(o), o, vec![], wanted, satisfied))
                })
                .collect()
        }
        other => {
            return Err(unsupported(
                "Kong",
                "its circuit breaker (KongUpstreamPolicy health checks) and bypass are not mapped yet",
                other,
            ));
        }
    })
}
