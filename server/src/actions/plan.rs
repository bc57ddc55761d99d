//! Pure planning: a request body and a gateway's state in, a validated change, its
//! preview and its inverse out. Nothing here reads or writes anything.

use crate::error::{AppError, Result};
use crate::fleet::{BreakerPolicy, Change, GatewayState, RateLimitPolicy, ServiceRecord, TimeoutPolicy};
use app::dto::{ActionRecord, FieldChange, Preview};
use serde_json::{Map, Value};

use super::catalogue;
pub use super::catalogue::ActionName;
pub use super::request::{Envelope, envelope, no_more};
use super::request::{number, one_of};

/// A validated plan: the change, what it looks like, and how to undo it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What to do.
    pub change: Change,
    /// What it changes.
    pub preview: Preview,
    /// The change that undoes it, if any.
    pub inverse: Option<Change>,
    /// Revert by itself after this many backend seconds.
    pub ttl_s: Option<i64>,
}

fn describe_limit(p: &Option<RateLimitPolicy>) -> String {
    match p {
        None => "none".into(),
        Some(p) => format!(
            "{} req/s, burst {}{}",
            p.requests_per_second,
            p.burst,
            p.route.as_ref().map(|r| format!(" on {r}")).unwrap_or_default()
        ),
    }
}

/// Validates `params` for `name` against the gateway's `state` and plans the change.
/// `max_replicas` bounds `scale` (the `--max-replicas` setting).
pub fn plan(
    name: ActionName,
    gateway: &str,
    mut params: Map<String, Value>,
    state: &GatewayState,
    max_replicas: u32,
) -> Result<Plan> {
    let change_of = |field: &str, before: String, after: String| FieldChange { field: field.into(), before, after };
    let plan = match name {
        ActionName::Restart => {
            no_more(&params)?;
            refuse_paused(gateway, state, "restart")?;
            Plan {
                change: Change::Restart,
                preview: Preview {
                    summary: format!("Restart every {gateway} instance, one batch at a time (rolling)"),
                    changes: vec![change_of(
                        "spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]",
                        "unchanged".into(),
                        "now".into(),
                    )],
                    confirm_required: false,
                    undo: None,
                    warnings: vec!["Capacity dips while new instances become ready.".into()],
                },
                inverse: None,
                ttl_s: None,
            }
        }
        ActionName::Scale if params.contains_key("min_replicas") || params.contains_key("max_replicas") => {
            return plan_autoscale(gateway, params, state, max_replicas);
        }
        ActionName::Scale => {
            let replicas = number(&mut params, "replicas", catalogue::replicas(max_replicas))?
                .ok_or_else(|| AppError::invalid("replicas", "is required"))? as u32;
            // A surge fix is often temporary: back to today's count after this long,
            // unless the count was changed since.
            let ttl_s = number(&mut params, "ttl_seconds", catalogue::TTL_SECONDS)?.map(|t| t as i64);
            no_more(&params)?;
            if let Some(hpa) = &state.autoscaler {
                return Err(AppError::Conflict(format!(
                    "the HorizontalPodAutoscaler {} manages {gateway}'s replicas (min {}, max {}) and would undo a \
                     manual scale within about 15 s; send min_replicas and/or max_replicas to change its bounds instead",
                    hpa.name, hpa.min_replicas, hpa.max_replicas
                )));
            }
            if replicas == state.replicas {
                return Err(AppError::invalid("replicas", format!("{gateway} already has {replicas} replicas")));
            }
            Plan {
                change: Change::Scale { replicas },
                preview: Preview {
                    summary: format!("Scale {gateway} from {} to {replicas} replicas", state.replicas),
                    changes: vec![change_of("spec.replicas", state.replicas.to_string(), replicas.to_string())],
                    // Removing more than half the capacity at once needs a deliberate yes.
                    confirm_required: replicas * 2 < state.replicas,
                    undo: Some(format!("scale back to {}", state.replicas)),
                    warnings: ttl_s
                        .map(|t| {
                            format!(
                                "Scales back to {} by itself after {t} s, unless the count was changed since.",
                                state.replicas
                            )
                        })
                        .into_iter()
                        .collect(),
                },
                inverse: Some(Change::Scale { replicas: state.replicas }),
                ttl_s,
            }
        }
        ActionName::Rollback => {
            let requested = number(&mut params, "revision", catalogue::REVISION)?.map(|v| v as u32);
            no_more(&params)?;
            refuse_paused(gateway, state, "roll back")?;
            let (target, mut notes) = rollback_target(state, requested)?;
            let version =
                state.revisions.iter().find(|(n, _)| *n == target).map(|(_, v)| v.clone()).unwrap_or_default();
            let mut changes = vec![
                change_of("spec.template (revision)", state.revision.to_string(), target.to_string()),
                change_of("version", state.version.clone(), version.clone()),
            ];
            // What actually changes in the pods: the template, field by field.
            if let (Some(now), Some(then)) = (state.templates.get(&state.revision), state.templates.get(&target)) {
                let keys: std::collections::BTreeSet<&String> = now.keys().chain(then.keys()).collect();
                for k in keys {
                    let (a, b) = (now.get(k), then.get(k));
                    if a != b {
                        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(none)".into());
                        changes.push(change_of(k, show(a), show(b)));
                    }
                }
            }
            notes.push("Instances are replaced in a rolling update.".into());
            Plan {
                change: Change::Rollback { revision: target },
                preview: Preview {
                    summary: format!(
                        "Roll {gateway} back from revision {} ({}) to revision {target} ({version})",
                        state.revision, state.version
                    ),
                    changes,
                    confirm_required: true,
                    undo: Some(format!("roll forward to revision {} ({})", state.revision, state.version)),
                    warnings: notes,
                },
                inverse: Some(Change::Rollback { revision: state.revision }),
                ttl_s: None,
            }
        }
        ActionName::RateLimit => {
            let rps = number(&mut params, "requests_per_second", catalogue::REQUESTS_PER_SECOND)?
                .ok_or_else(|| AppError::invalid("requests_per_second", "is required"))? as u32;
            let burst = number(&mut params, "burst", catalogue::BURST)?.map_or(rps, |b| b as u32);
            let route = one_of(&mut params, "route", &state.routes, "route", gateway)?;
            let ttl_s = number(&mut params, "ttl_seconds", catalogue::TTL_SECONDS)?.map(|t| t as i64);
            no_more(&params)?;
            let policy = Some(RateLimitPolicy { requests_per_second: rps, burst, route });
            Plan {
                preview: Preview {
                    summary: match state.rate_limit_scope.as_str() {
                        "" => format!("Limit {gateway} to {}", describe_limit(&policy)),
                        scope => format!("Limit {gateway} to {}, counting {scope}", describe_limit(&policy)),
                    },
                    changes: vec![change_of("rate limit", describe_limit(&state.rate_limit), describe_limit(&policy))],
                    confirm_required: false,
                    undo: Some(format!("restore the previous limit ({})", describe_limit(&state.rate_limit))),
                    warnings: vec!["Clients over the limit get 429 Too Many Requests.".into()],
                },
                change: Change::RateLimit { policy },
                inverse: Some(Change::RateLimit { policy: state.rate_limit.clone() }),
                ttl_s,
            }
        }
        ActionName::Timeouts => {
            let now = &state.timeouts;
            let request = number(&mut params, "request_timeout_ms", catalogue::REQUEST_TIMEOUT_MS)?;
            let connect = number(&mut params, "connect_timeout_ms", catalogue::CONNECT_TIMEOUT_MS)?;
            let retries = number(&mut params, "retries", catalogue::RETRIES)?;
            let ttl_s = number(&mut params, "ttl_seconds", catalogue::TTL_SECONDS)?.map(|t| t as i64);
            no_more(&params)?;
            if request.is_none() && connect.is_none() && retries.is_none() {
                return Err(AppError::invalid(
                    "request_timeout_ms",
                    "give at least one of request_timeout_ms, connect_timeout_ms, retries",
                ));
            }
            let policy = TimeoutPolicy {
                request_timeout_ms: request.map_or(now.request_timeout_ms, |v| v as u32),
                connect_timeout_ms: connect.map_or(now.connect_timeout_ms, |v| v as u32),
                retries: retries.map_or(now.retries, |v| v as u32),
            };
            if &policy == now {
                return Err(AppError::invalid("request_timeout_ms", "these are the values in force already"));
            }
            let changes = [
                ("request timeout (ms)", now.request_timeout_ms, policy.request_timeout_ms),
                ("connect timeout (ms)", now.connect_timeout_ms, policy.connect_timeout_ms),
                ("retries", now.retries, policy.retries),
            ]
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(f, a, b)| change_of(f, a.to_string(), b.to_string()))
            .collect();
            Plan {
                preview: Preview {
                    summary: format!("Set {gateway}'s upstream timeouts and retries"),
                    changes,
                    confirm_required: false,
                    undo: Some("restore the previous timeouts and retries".into()),
                    warnings: vec![
                        "Shorter timeouts fail slow requests sooner; fewer retries surface more errors.".into(),
                    ],
                },
                change: Change::Timeouts { policy },
                inverse: Some(Change::Timeouts { policy: now.clone() }),
                ttl_s,
            }
        }
        ActionName::CircuitBreaker => {
            let consecutive_errors =
                number(&mut params, "consecutive_errors", catalogue::CONSECUTIVE_ERRORS)?.unwrap_or(5) as u32;
            let ejection_seconds =
                number(&mut params, "ejection_seconds", catalogue::EJECTION_SECONDS)?.unwrap_or(30) as u32;
            let max_ejection_percent =
                number(&mut params, "max_ejection_percent", catalogue::MAX_EJECTION_PERCENT)?.unwrap_or(100) as u32;
            let service = one_of(&mut params, "service", &state.services, "service", gateway)?;
            let ttl_s = number(&mut params, "ttl_seconds", catalogue::TTL_SECONDS)?.map(|t| t as i64);
            no_more(&params)?;
            let policy = Some(BreakerPolicy { consecutive_errors, ejection_seconds, max_ejection_percent, service });
            let describe = |p: &Option<BreakerPolicy>| match p {
                None => "none".to_string(),
                Some(p) => format!(
                    "eject after {} errors for {} s, at most {}% of hosts{}",
                    p.consecutive_errors,
                    p.ejection_seconds,
                    p.max_ejection_percent,
                    p.service.as_ref().map(|x| format!(", {x} only")).unwrap_or_default()
                ),
            };
            Plan {
                preview: Preview {
                    summary: format!("Circuit breaker on {gateway}: {}", describe(&policy)),
                    changes: vec![change_of("circuit breaker", describe(&state.circuit_breaker), describe(&policy))],
                    confirm_required: false,
                    undo: Some(format!("restore the previous breaker ({})", describe(&state.circuit_breaker))),
                    warnings: vec!["Requests to ejected hosts fail at once with 503.".into()],
                },
                change: Change::CircuitBreaker { policy },
                inverse: Some(Change::CircuitBreaker { policy: state.circuit_breaker.clone() }),
                ttl_s,
            }
        }
        ActionName::Bypass => {
            let service = one_of(&mut params, "service", &state.services, "service", gateway)?
                .ok_or_else(|| AppError::invalid("service", "is required"))?;
            let ttl_s = number(&mut params, "ttl_seconds", catalogue::TTL_SECONDS)?.map(|t| t as i64);
            let methods = ["route".to_string(), "dns".to_string()];
            let method = one_of(&mut params, "method", &methods, "bypass method", gateway)?;
            // Why to go ahead although the direct target failed its preflight (read by the
            // engine, which runs the preflight).
            match params.remove("force") {
                None | Some(Value::Null) => {}
                Some(Value::String(why))
                    if method.as_deref() == Some("dns") && (3..=500).contains(&why.trim().len()) => {}
                Some(Value::String(_)) if method.as_deref() == Some("dns") => {
                    return Err(AppError::invalid("force", "must say why, in 3 to 500 characters"));
                }
                Some(Value::String(_)) => {
                    return Err(AppError::invalid("force", "only a DNS bypass has a preflight to override"));
                }
                Some(_) => return Err(AppError::invalid("force", "must be a string: why to go ahead anyway")),
            }
            no_more(&params)?;
            if method.as_deref() == Some("dns") {
                return dns_bypass(gateway, state, service, ttl_s);
            }
            if state.bypassed.contains(&service) {
                return Err(AppError::invalid("service", format!("{service} already bypasses {gateway}")));
            }
            Plan {
                preview: Preview {
                    summary: format!("Route {service}'s clients around {gateway}, straight to {service}"),
                    changes: vec![change_of(&format!("route to {service}"), format!("via {gateway}"), "direct".into())],
                    confirm_required: true,
                    undo: Some(format!("route {service} through {gateway} again")),
                    warnings: vec![format!(
                        "While bypassed, {service} gets no authentication, WAF or rate limiting from the gateway."
                    )],
                },
                change: Change::Bypass { service: service.clone(), enabled: true },
                inverse: Some(Change::Bypass { service, enabled: false }),
                ttl_s,
            }
        }
    };
    Ok(plan)
}

/// A bypass through DNS: `<service>.<zone>` changes from what it serves now (the
/// gateway's address) to the service's own, with the RRset read now as the update's
/// prerequisite.
fn dns_bypass(gateway: &str, state: &GatewayState, service: String, ttl_s: Option<i64>) -> Result<Plan> {
    let Some(record) = state.dns.iter().find(|r| r.service == service) else {
        return Err(AppError::invalid(
            "method",
            if state.dns.is_empty() {
                "dns needs the console to manage DNS (--dns-server and --dns-zone)".to_string()
            } else {
                format!("{service} has no direct target to point its DNS record at")
            },
        ));
    };
    let direct = record.direct.clone();
    let Some(current) = record.current.clone() else {
        return Err(AppError::Conflict(match &record.problem {
            Some(problem) => format!("{} cannot be read: {problem}", direct.name),
            None => format!("{} has no A, AAAA or CNAME record on the DNS server to change", direct.name),
        }));
    };
    if current.values == direct.values && current.rtype == direct.rtype {
        return Err(AppError::invalid("service", format!("{} already points at {service} directly", current.name)));
    }
    if current.rtype != direct.rtype {
        return Err(AppError::Conflict(format!(
            "{} is a {} record and {service}'s direct target is a {} record; one update swaps records of one type",
            current.name, current.rtype, direct.rtype
        )));
    }
    let lines = |set: &crate::dns::RecordSet| set.lines().join("; ");
    Ok(Plan {
        preview: Preview {
            summary: format!("Point {} at {service} directly, around {gateway}", current.name),
            changes: vec![FieldChange {
                field: format!("DNS {} {}", current.name, current.rtype),
                before: lines(&current),
                after: lines(&direct),
            }],
            confirm_required: true,
            undo: Some(format!("restore {} exactly ({})", current.name, lines(&current))),
            warnings: vec![
                format!(
                    "Clients move as their resolvers' caches expire: all within {} s (the old record's TTL); \
                     until then some still go through {gateway}.",
                    current.ttl
                ),
                format!("While bypassed, {service} gets no authentication, WAF or rate limiting from the gateway."),
            ]
            .into_iter()
            .chain(record.note.clone())
            .collect(),
        },
        change: Change::DnsRecord { service: service.clone(), from: current.clone(), to: direct.clone() },
        inverse: Some(Change::DnsRecord { service, from: direct, to: current }),
        ttl_s,
    })
}

/// kubectl refuses to restart or roll back a paused Deployment; so do we, before any
/// record is written.
/// The revision a rollback goes to, and what the preview must say about the choice.
///
/// By default: the newest earlier revision whose pod template differs from what runs. A
/// restart makes a revision with the same template (only its restart annotation differs),
/// and rolling back to it would change nothing but the pods' names. An explicit
/// `revision` always wins.
fn rollback_target(state: &GatewayState, requested: Option<u32>) -> Result<(u32, Vec<String>)> {
    let current = state.templates.get(&state.revision);
    // Without templates (a backend that cannot say), every revision counts as different.
    let same = |n: u32| current.is_some() && state.templates.get(&n) == current;
    let mut earlier: Vec<u32> = state.revisions.iter().map(|(n, _)| *n).filter(|n| *n != state.revision).collect();
    earlier.sort_unstable_by(|a, b| b.cmp(a));
    match requested {
        Some(r) if r == state.revision => {
            Err(AppError::invalid("revision", format!("revision {r} is already current")))
        }
        Some(r) if earlier.contains(&r) => {
            let note = same(r).then(|| {
                format!(
                    "Revision {r} runs the same pod template as revision {} (they differ only by a restart): \
                     this replaces the pods and changes nothing else.",
                    state.revision
                )
            });
            Ok((r, note.into_iter().collect()))
        }
        Some(r) => Err(AppError::invalid("revision", format!("no revision {r} in the rollout history"))),
        None => {
            let Some(&newest) = earlier.first() else {
                return Err(AppError::invalid("revision", "no rollout history found"));
            };
            match earlier.iter().copied().find(|n| !same(*n)) {
                Some(target) if target == newest => Ok((target, Vec::new())),
                Some(target) => {
                    let skipped: Vec<String> =
                        earlier.iter().take_while(|n| **n != target).map(|n| format!("#{n}")).collect();
                    Ok((
                        target,
                        vec![format!(
                            "Revision {target} is the newest earlier revision whose pod template differs from what \
                             runs: {} {} {} the same template as revision {} (a restart), so rolling back to {} would \
                             change nothing. Name a revision to choose another.",
                            if skipped.len() == 1 { "revision" } else { "revisions" },
                            skipped.join(", "),
                            if skipped.len() == 1 { "runs" } else { "run" },
                            state.revision,
                            if skipped.len() == 1 { "it" } else { "them" },
                        )],
                    ))
                }
                None => Err(AppError::invalid(
                    "revision",
                    format!(
                        "every earlier revision runs the same pod template as revision {} (they differ only by \
                         restarts), so a rollback would change nothing; name a revision to roll back to anyway",
                        state.revision
                    ),
                )),
            }
        }
    }
}

fn refuse_paused(gateway: &str, state: &GatewayState, what: &str) -> Result<()> {
    if state.paused {
        return Err(AppError::Conflict(format!(
            "{gateway} is paused (spec.paused); it cannot {what} until its rollout is resumed"
        )));
    }
    Ok(())
}

/// `scale` of a gateway an autoscaler manages: move the autoscaler's bounds, remembering
/// the old ones for undo.
fn plan_autoscale(
    gateway: &str,
    mut params: Map<String, Value>,
    state: &GatewayState,
    max_replicas: u32,
) -> Result<Plan> {
    let Some(hpa) = &state.autoscaler else {
        return Err(AppError::invalid(
            "min_replicas",
            format!("no HorizontalPodAutoscaler manages {gateway}; send replicas instead"),
        ));
    };
    let bound = catalogue::replicas(max_replicas);
    let min = number(&mut params, "min_replicas", bound.clone())?.map_or(hpa.min_replicas, |v| v as u32);
    let max = number(&mut params, "max_replicas", bound)?.map_or(hpa.max_replicas, |v| v as u32);
    no_more(&params)?;
    if min > max {
        return Err(AppError::invalid("min_replicas", format!("{min} is above max_replicas {max}")));
    }
    if (min, max) == (hpa.min_replicas, hpa.max_replicas) {
        return Err(AppError::invalid("min_replicas", format!("{} already has min {min}, max {max}", hpa.name)));
    }
    let describe = |a: u32, b: u32| format!("min {a}, max {b}");
    Ok(Plan {
        change: Change::Autoscale { min_replicas: min, max_replicas: max },
        preview: Preview {
            summary: format!(
                "Change the autoscaler {} of {gateway} from {} to {}",
                hpa.name,
                describe(hpa.min_replicas, hpa.max_replicas),
                describe(min, max)
            ),
            changes: vec![
                FieldChange {
                    field: format!("HorizontalPodAutoscaler {} spec.minReplicas", hpa.name),
                    before: hpa.min_replicas.to_string(),
                    after: min.to_string(),
                },
                FieldChange {
                    field: format!("HorizontalPodAutoscaler {} spec.maxReplicas", hpa.name),
                    before: hpa.max_replicas.to_string(),
                    after: max.to_string(),
                },
            ],
            confirm_required: max * 2 < hpa.max_replicas,
            undo: Some(format!("restore {}", describe(hpa.min_replicas, hpa.max_replicas))),
            warnings: vec!["The autoscaler moves the replica count within the new bounds over the next minute.".into()],
        },
        inverse: Some(Change::Autoscale { min_replicas: hpa.min_replicas, max_replicas: hpa.max_replicas }),
        ttl_s: None,
    })
}

/// Whether `change` is visible in `state` (used to settle interrupted intents); `Err` as
/// for [`in_force`].
pub fn took_effect(change: &Change, before: &GatewayState, now: &GatewayState) -> std::result::Result<bool, String> {
    match change {
        // These make a new revision; the others set a value that is simply in force or not.
        Change::Restart => Ok(now.revision > before.revision),
        Change::Rollback { revision } => {
            let version = before.revisions.iter().find(|(n, _)| n == revision).map(|(_, v)| v);
            Ok(now.revision > before.revision && Some(&now.version) == version)
        }
        _ => in_force(change, now),
    }
}

/// Whether `change` sets what the gateway runs now (a time-limited change is ours to
/// revert only then). Revision changes are never "in force" this way: see `took_effect`.
/// `Err(why)` when `state` cannot show it (a DNS record the server did not give): then
/// nothing may be concluded, least of all "changed since".
pub fn in_force(change: &Change, state: &GatewayState) -> std::result::Result<bool, String> {
    Ok(match change {
        Change::Scale { replicas } => state.replicas == *replicas,
        Change::Autoscale { min_replicas, max_replicas } => state
            .autoscaler
            .as_ref()
            .is_some_and(|a| (a.min_replicas, a.max_replicas) == (*min_replicas, *max_replicas)),
        Change::RateLimit { policy } => &state.rate_limit == policy,
        Change::Timeouts { policy } => &state.timeouts == policy,
        Change::CircuitBreaker { policy } => &state.circuit_breaker == policy,
        Change::Bypass { service, enabled } => state.bypassed.contains(service) == *enabled,
        Change::DnsRecord { service, to, .. } => match state.dns.iter().find(|r| &r.service == service) {
            Some(ServiceRecord { problem: Some(why), .. }) => return Err(why.clone()),
            Some(record) => record.current.as_ref() == Some(to),
            None => false,
        },
        Change::Restart | Change::Rollback { .. } => false,
    })
}

/// The plan that undoes `record` (an action whose recorded inverse is `inverse`): its
/// preview is the original's, each field's before and after swapped.
pub fn inverse_plan(record: &ActionRecord, inverse: Change) -> Plan {
    Plan {
        preview: Preview {
            summary: format!(
                "Undo action {} on {}: {}",
                record.id,
                record.gateway,
                record.preview.undo.clone().unwrap_or_default()
            ),
            changes: record
                .preview
                .changes
                .iter()
                .map(|c| FieldChange { field: c.field.clone(), before: c.after.clone(), after: c.before.clone() })
                .collect(),
            confirm_required: false,
            undo: None,
            warnings: vec![],
        },
        change: inverse,
        inverse: None,
        ttl_s: None,
    }
}
