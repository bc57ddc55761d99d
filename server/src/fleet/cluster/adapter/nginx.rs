//! ingress-nginx: the policy lives in each bound Ingress's `nginx.ingress.kubernetes.io/*`
//! annotations (`limit-rps` and its burst multiplier; proxy timeouts and tries, in whole
//! seconds). It has no circuit breaker or bypass annotation.

use super::{
    Cx, Fetched, Planned, Policy, Res, annotation, annotation_path, limit_of, name, object_ops, rate_limit_scope,
    sorted, unsupported,
};
use crate::fleet::{Change, FleetError, FleetResult, RateLimitPolicy, TimeoutPolicy};
use kube::api::DynamicObject;
use serde_json::json;

const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// ingress-nginx's defaults when an annotation is absent.
const NGINX_DEFAULT_READ_S: u32 = 60;
const NGINX_DEFAULT_CONNECT_S: u32 = 5;
const NGINX_DEFAULT_TRIES: u32 = 3;
const NGINX_DEFAULT_BURST_MULTIPLIER: u32 = 5;

fn nginx_u32(o: &DynamicObject, key: &str) -> Option<u32> {
    annotation(o, &format!("{NGINX}{key}")).and_then(|v| v.trim().parse().ok())
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

/// The writes that make `change` on the bound Ingresses.
pub(super) fn plan(cx: &Cx, change: &Change) -> FleetResult<Vec<Planned>> {
    let nginx = |key: &str| annotation_path(&format!("{NGINX}{key}"));
    Ok(match change {
        Change::RateLimit { policy } => {
            cx.unmoved(cx.now.rate_limit == cx.before.rate_limit, "rate limit")?;
            let (targets, limit) = rate_limit_scope(cx, policy);
            let satisfied = |p: &Policy| limit_of(p) == limit;
            targets
                .into_iter()
                .map(|o| {
                    let multiplier = |p: &RateLimitPolicy| p.burst.div_ceil(p.requests_per_second.max(1)).max(1);
                    let wanted = vec![
                        (nginx("limit-rps"), policy.as_ref().map(|p| json!(p.requests_per_second.to_string()))),
                        (nginx("limit-burst-multiplier"), policy.as_ref().map(|p| json!(multiplier(p).to_string()))),
                    ];
                    cx.patch(Res::Route, o, object_ops(|o| cx.route_reader(o), o, vec![], wanted, satisfied))
                })
                .collect()
        }
        Change::Timeouts { policy } => {
            cx.unmoved(cx.now.timeouts == cx.before.timeouts, "timeouts")?;
            let satisfied = |p: &Policy| p.timeouts == *policy;
            if policy.request_timeout_ms % 1000 != 0 || policy.connect_timeout_ms % 1000 != 0 {
                return Err(FleetError::Refused(
                    "ingress-nginx takes timeouts in whole seconds: use multiples of 1000 ms".into(),
                ));
            }
            let s = |v: u32| Some(json!(v.to_string()));
            cx.f.routes
                .iter()
                .map(|o| {
                    let wanted = vec![
                        (nginx("proxy-connect-timeout"), s(policy.connect_timeout_ms / 1000)),
                        (nginx("proxy-next-upstream-tries"), s(policy.retries + 1)),
                        (nginx("proxy-read-timeout"), s(policy.request_timeout_ms / 1000)),
                        (nginx("proxy-send-timeout"), s(policy.request_timeout_ms / 1000)),
                    ];
                    cx.patch(Res::Route, o, object_ops(|o| cx.route_reader(o), o, vec![], wanted, satisfied))
                })
                .collect()
        }
        other => {
            return Err(unsupported(
                "ingress-nginx",
                "ingress-nginx has no circuit breaker or bypass annotation",
                other,
            ));
        }
    })
}

/// The policy the bound Ingresses express.
pub(super) fn read(f: &Fetched) -> Policy {
    read_nginx(&f.routes)
}
