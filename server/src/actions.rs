//! The mitigation engine: every runbook button goes through [`Engine::run`].
//!
//! Order, always: role check (refusals are audited) → validate (422, nothing changes) →
//! preview → confirmation → audit intent (fail closed) → apply → audit outcome → track
//! progress and impact. Inverses are recorded for undo; time-limited changes revert by
//! themselves, audited as `system`. At start-up, intents left without an outcome (a
//! crash between the two) are reconciled against the fleet's actual state.

use crate::audit::{Actor, Kind, Ledger, NewEntry, Outcome};
use crate::auth::AuthUser;
use crate::db::{Db, now_ms};
use crate::error::{AppError, Result};
use crate::fleet::{BreakerPolicy, Change, Fleet, GatewayState, RateLimitPolicy, TimeoutPolicy};
use crate::health::HealthService;
use app::dto::{ActionRecord, ActionResponse, FieldChange, ImpactReading, Preview, Progress, Role};
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for the backend's first full read before settling interrupted
/// actions (after that, what cannot be read is settled as unknown).
const RECONCILE_SYNC_LIMIT: Duration = Duration::from_secs(15);

/// Backend seconds between the two impact readings.
pub const IMPACT_AFTER_S: i64 = 60;

/// The runbook's actions, by API name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionName {
    /// `kubectl rollout restart`.
    Restart,
    /// `kubectl scale`.
    Scale,
    /// `kubectl rollout undo`.
    Rollback,
    /// Emergency rate limit.
    RateLimit,
    /// Timeouts and retries.
    Timeouts,
    /// Circuit breaker.
    CircuitBreaker,
    /// Route a service around the gateway.
    Bypass,
}

impl ActionName {
    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "restart" => ActionName::Restart,
            "scale" => ActionName::Scale,
            "rollback" => ActionName::Rollback,
            "rate-limit" => ActionName::RateLimit,
            "timeouts" => ActionName::Timeouts,
            "circuit-breaker" => ActionName::CircuitBreaker,
            "bypass" => ActionName::Bypass,
            _ => return None,
        })
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Restart => "restart",
            ActionName::Scale => "scale",
            ActionName::Rollback => "rollback",
            ActionName::RateLimit => "rate-limit",
            ActionName::Timeouts => "timeouts",
            ActionName::CircuitBreaker => "circuit-breaker",
            ActionName::Bypass => "bypass",
        }
    }

    /// The lowest role allowed to run it.
    pub fn role(self) -> Role {
        match self {
            ActionName::Rollback | ActionName::Bypass => Role::Admin,
            _ => Role::Responder,
        }
    }

    fn of_change(change: &Change) -> Self {
        match change {
            Change::Restart => ActionName::Restart,
            Change::Scale { .. } | Change::Autoscale { .. } => ActionName::Scale,
            Change::Rollback { .. } => ActionName::Rollback,
            Change::RateLimit { .. } => ActionName::RateLimit,
            Change::Timeouts { .. } => ActionName::Timeouts,
            Change::CircuitBreaker { .. } => ActionName::CircuitBreaker,
            Change::Bypass { .. } => ActionName::Bypass,
        }
    }
}

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

/// The common fields of an action request; the rest are the action's parameters.
#[derive(Debug)]
struct Envelope {
    reason: String,
    incident: String,
    dry_run: bool,
    confirm: Option<String>,
    params: Map<String, Value>,
}

fn envelope(body: Value) -> Result<Envelope> {
    let Value::Object(mut map) = body else {
        return Err(AppError::invalid("body", "must be a JSON object"));
    };
    let text = |map: &mut Map<String, Value>, field: &'static str| -> Result<Option<String>> {
        match map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AppError::invalid(field, "must be a string")),
        }
    };
    let reason = text(&mut map, "reason")?.map(|s| s.trim().to_string()).unwrap_or_default();
    if reason.is_empty() {
        return Err(AppError::invalid("reason", "is required: say why, for the audit trail"));
    }
    if reason.chars().count() > 1000 {
        return Err(AppError::invalid("reason", "must be at most 1000 characters"));
    }
    let incident = text(&mut map, "incident")?.unwrap_or_default();
    if incident.len() > 128 {
        return Err(AppError::invalid("incident", "must be at most 128 characters"));
    }
    let dry_run = match map.remove("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(AppError::invalid("dry_run", "must be true or false")),
    };
    let confirm = text(&mut map, "confirm")?;
    Ok(Envelope { reason, incident, dry_run, confirm, params: map })
}

/// Reads an optional whole number within `range`.
fn number(
    params: &mut Map<String, Value>,
    field: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>> {
    match params.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(AppError::invalid(
                field,
                format!("must be a whole number from {} to {}", range.start(), range.end()),
            )),
        },
        Some(_) => Err(AppError::invalid(field, "must be a number")),
    }
}

/// Reads an optional string that must be one of `allowed` (a route or a service of the
/// gateway); `what` names the kind for the message.
fn one_of(
    params: &mut Map<String, Value>,
    field: &'static str,
    allowed: &[String],
    what: &str,
    gateway: &str,
) -> Result<Option<String>> {
    match params.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(x)) if allowed.contains(&x) => Ok(Some(x)),
        Some(Value::String(x)) => Err(AppError::invalid(field, format!("'{x}' is not a {what} of {gateway}"))),
        Some(_) => Err(AppError::invalid(field, "must be a string")),
    }
}

fn no_more(params: &Map<String, Value>) -> Result<()> {
    match params.keys().next() {
        Some(k) => Err(AppError::Validation { field: "params", message: format!("unknown parameter '{k}'") }),
        None => Ok(()),
    }
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
            let replicas = number(&mut params, "replicas", 1..=u64::from(max_replicas))?
                .ok_or_else(|| AppError::invalid("replicas", "is required"))? as u32;
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
                    warnings: vec![],
                },
                inverse: Some(Change::Scale { replicas: state.replicas }),
                ttl_s: None,
            }
        }
        ActionName::Rollback => {
            let requested = number(&mut params, "revision", 1..=u64::from(u32::MAX))?.map(|v| v as u32);
            no_more(&params)?;
            refuse_paused(gateway, state, "roll back")?;
            let previous = state.revisions.iter().map(|(n, _)| *n).filter(|n| *n != state.revision).max();
            let target = match requested {
                Some(r) if r == state.revision => {
                    return Err(AppError::invalid("revision", format!("revision {r} is already current")));
                }
                Some(r) if state.revisions.iter().any(|(n, _)| *n == r) => r,
                Some(r) => {
                    return Err(AppError::invalid("revision", format!("no revision {r} in the rollout history")));
                }
                None => previous.ok_or_else(|| AppError::invalid("revision", "no rollout history found"))?,
            };
            let version =
                state.revisions.iter().find(|(n, _)| *n == target).map(|(_, v)| v.clone()).unwrap_or_default();
            Plan {
                change: Change::Rollback { revision: target },
                preview: Preview {
                    summary: format!(
                        "Roll {gateway} back from revision {} ({}) to revision {target} ({version})",
                        state.revision, state.version
                    ),
                    changes: vec![
                        change_of("spec.template (revision)", state.revision.to_string(), target.to_string()),
                        change_of("version", state.version.clone(), version),
                    ],
                    confirm_required: true,
                    undo: Some(format!("roll forward to revision {} ({})", state.revision, state.version)),
                    warnings: vec!["Instances are replaced in a rolling update.".into()],
                },
                inverse: Some(Change::Rollback { revision: state.revision }),
                ttl_s: None,
            }
        }
        ActionName::RateLimit => {
            let rps = number(&mut params, "requests_per_second", 1..=1_000_000)?
                .ok_or_else(|| AppError::invalid("requests_per_second", "is required"))? as u32;
            let burst = number(&mut params, "burst", 1..=10_000_000)?.map_or(rps, |b| b as u32);
            let route = one_of(&mut params, "route", &state.routes, "route", gateway)?;
            let ttl_s = number(&mut params, "ttl_seconds", 60..=86_400)?.map(|t| t as i64);
            no_more(&params)?;
            let policy = Some(RateLimitPolicy { requests_per_second: rps, burst, route });
            Plan {
                preview: Preview {
                    summary: format!("Limit {gateway} to {}", describe_limit(&policy)),
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
            let request = number(&mut params, "request_timeout_ms", 100..=60_000)?;
            let connect = number(&mut params, "connect_timeout_ms", 50..=10_000)?;
            let retries = number(&mut params, "retries", 0..=10)?;
            let ttl_s = number(&mut params, "ttl_seconds", 60..=86_400)?.map(|t| t as i64);
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
            let consecutive_errors = number(&mut params, "consecutive_errors", 1..=100)?.unwrap_or(5) as u32;
            let ejection_seconds = number(&mut params, "ejection_seconds", 1..=3600)?.unwrap_or(30) as u32;
            let max_ejection_percent = number(&mut params, "max_ejection_percent", 1..=100)?.unwrap_or(100) as u32;
            let service = one_of(&mut params, "service", &state.services, "service", gateway)?;
            let ttl_s = number(&mut params, "ttl_seconds", 60..=86_400)?.map(|t| t as i64);
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
            let ttl_s = number(&mut params, "ttl_seconds", 60..=86_400)?.map(|t| t as i64);
            no_more(&params)?;
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

/// kubectl refuses to restart or roll back a paused Deployment; so do we, before any
/// record is written.
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
    let bound = 1..=u64::from(max_replicas);
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

/// Whether `change` is visible in `state` (used to settle interrupted intents).
fn took_effect(change: &Change, before: &GatewayState, now: &GatewayState) -> bool {
    match change {
        // These make a new revision; the others set a value that is simply in force or not.
        Change::Restart => now.revision > before.revision,
        Change::Rollback { revision } => {
            let version = before.revisions.iter().find(|(n, _)| n == revision).map(|(_, v)| v);
            now.revision > before.revision && Some(&now.version) == version
        }
        _ => in_force(change, now),
    }
}

/// Whether `change` sets what the gateway runs now (a time-limited change is ours to
/// revert only then). Revision changes are never "in force" this way: see `took_effect`.
fn in_force(change: &Change, state: &GatewayState) -> bool {
    match change {
        Change::Scale { replicas } => state.replicas == *replicas,
        Change::Autoscale { min_replicas, max_replicas } => state
            .autoscaler
            .as_ref()
            .is_some_and(|a| (a.min_replicas, a.max_replicas) == (*min_replicas, *max_replicas)),
        Change::RateLimit { policy } => &state.rate_limit == policy,
        Change::Timeouts { policy } => &state.timeouts == policy,
        Change::CircuitBreaker { policy } => &state.circuit_breaker == policy,
        Change::Bypass { service, enabled } => state.bypassed.contains(service) == *enabled,
        Change::Restart | Change::Rollback { .. } => false,
    }
}

/// The `actions` columns in the order `Engine::from_row` reads them.
const ACTION_COLUMNS: &str = "id, gateway, action, params, change, inverse, actor, actor_role, reason, incident, \
     status, detail, preview, progress, impact_before, impact_after, undone_by, undo_of, expires_at_s, reverted, \
     intent_id, created_at_ms";

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| AppError::Internal(format!("stored action: {e}")))
}

/// Runs, tracks, undoes and reverts mitigations.
pub struct Engine {
    db: Db,
    /// Every change to an action, as JSON, for `GET /api/v1/events`.
    events: tokio::sync::broadcast::Sender<Arc<str>>,
    ledger: Arc<Ledger>,
    fleet: Arc<dyn Fleet>,
    health: Arc<HealthService>,
    /// Test hook: pause between the audit intent and the change (crash-safety tests).
    pause_after_intent: Option<Duration>,
    /// Largest replica count `scale` may set.
    max_replicas: u32,
}

/// Who asks, for the audit trail.
pub struct Caller<'a> {
    /// The signed-in user, or `None` for the system.
    pub user: Option<&'a AuthUser>,
    /// Where from.
    pub actor: Actor,
}

struct Stored {
    record: ActionRecord,
    change: Change,
    inverse: Option<Change>,
}

impl Engine {
    /// An engine over these services.
    pub fn new(
        db: Db,
        ledger: Arc<Ledger>,
        fleet: Arc<dyn Fleet>,
        health: Arc<HealthService>,
        max_replicas: u32,
    ) -> Self {
        let pause_after_intent = std::env::var("GATEWARDEN_FAULT_PAUSE_AFTER_INTENT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let (events, _) = tokio::sync::broadcast::channel(256);
        Engine { db, events, ledger, fleet, health, pause_after_intent, max_replicas }
    }

    /// Action updates as they happen (status, progress, impact, undo).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// Tells subscribers about action `id`'s current record.
    async fn publish(&self, id: i64) {
        if self.events.receiver_count() == 0 {
            return;
        }
        match self.get(id).await {
            Ok(record) => {
                if let Ok(json) = serde_json::to_string(&record) {
                    let _ = self.events.send(Arc::from(json));
                }
            }
            Err(e) => tracing::warn!(error = ?e, action = id, "could not publish an action update"),
        }
    }

    async fn reading(&self, gateway: &str) -> Option<ImpactReading> {
        let list = self.health.gateways().await.ok()?;
        let g = list.into_iter().find(|g| g.id == gateway)?;
        Some(ImpactReading {
            clock_s: self.fleet.clock_s(),
            rps: g.rps,
            error_rate_5xx: g.error_rate_5xx,
            throttle_rate_429: g.throttle_rate_429,
            p99_ms: g.latency_ms.p99,
        })
    }

    /// `POST /api/v1/gateways/{gateway}/actions/{name}`.
    pub async fn run(
        self: &Arc<Self>,
        caller: Caller<'_>,
        gateway: &str,
        name: &str,
        body: Value,
    ) -> Result<ActionResponse> {
        let action = ActionName::parse(name).ok_or_else(|| AppError::NotFound(format!("no action '{name}'")))?;
        let user = caller.user.ok_or(AppError::Unauthorized)?;
        if let Err(refused) = user.require(action.role()) {
            let mut entry = NewEntry::new(caller.actor.clone(), Kind::ActionIntent, Outcome::Denied);
            entry.action = action.as_str().into();
            entry.target = gateway.into();
            entry.reason = body.get("reason").and_then(Value::as_str).unwrap_or("").chars().take(1000).collect();
            entry.params = json!({ "refused": format!("role {} below {}", user.role, action.role()) });
            self.ledger.append(entry).await?;
            return Err(refused);
        }
        let request = envelope(body)?;
        let state = self.fleet.state(gateway).await?;
        let plan = plan(action, gateway, request.params.clone(), &state, self.max_replicas)?;
        if request.dry_run {
            // The backend validates the change too (Kubernetes: dryRun=All), so a preview
            // fails the way the real change would.
            self.fleet.check(gateway, &plan.change, &state).await?;
            return Ok(ActionResponse { id: None, status: "preview".into(), preview: plan.preview });
        }
        if plan.preview.confirm_required && request.confirm.as_deref() != Some(gateway) {
            return Err(AppError::invalid(
                "confirm",
                format!("type the gateway's id ('{gateway}') to confirm this change"),
            ));
        }
        let params = Value::Object(request.params);
        let id = self
            .execute(
                caller.actor,
                Kind::ActionIntent,
                gateway,
                action,
                &params,
                &request.reason,
                &request.incident,
                plan.clone(),
                None,
                &state,
            )
            .await?;
        let record = self.get(id).await?;
        Ok(ActionResponse { id: Some(id), status: record.status, preview: plan.preview })
    }

    /// Audits the intent, applies the change, audits the outcome, stores the action and
    /// starts tracking it. Returns the action id.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        self: &Arc<Self>,
        actor: Actor,
        kind: Kind,
        gateway: &str,
        action: ActionName,
        params: &Value,
        reason: &str,
        incident: &str,
        plan: Plan,
        undo_of: Option<i64>,
        before: &GatewayState,
    ) -> Result<i64> {
        let mut intent = NewEntry::new(actor.clone(), kind, Outcome::Pending);
        intent.action = action.as_str().into();
        intent.target = gateway.into();
        intent.params = json!({ "params": params, "change": plan.change });
        intent.reason = reason.into();
        intent.incident = incident.into();
        intent.before = Some(json!(before));
        intent.after = Some(json!(plan.preview));
        // Fail closed: no record, no change.
        let intent = self.ledger.append(intent).await.map_err(|e| {
            tracing::error!(error = ?e, "audit intent not written; action not run");
            AppError::Unavailable("the audit ledger is unavailable, so nothing was changed".into())
        })?;
        let impact_before = self.reading(gateway).await;
        let expires_at_s = plan.ttl_s.map(|t| self.fleet.clock_s() + t);
        let inserted = sqlx::query(
            "insert into actions (gateway, action, params, change, inverse, actor, actor_role, reason, incident, status, \
             detail, preview, impact_before, undo_of, expires_at_s, reverted, intent_id, created_at_ms) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', '', $10, $11, $12, $13, 0, $14, $15) returning id",
        )
        .bind(gateway)
        .bind(action.as_str())
        .bind(params.to_string())
        .bind(json!(plan.change).to_string())
        .bind(plan.inverse.as_ref().map(|c| json!(c).to_string()))
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(reason)
        .bind(incident)
        .bind(json!(plan.preview).to_string())
        .bind(impact_before.map(|r| json!(r).to_string()))
        .bind(undo_of)
        .bind(expires_at_s)
        .bind(intent.id)
        .bind(now_ms())
        .fetch_one(&self.db)
        .await?;
        let id: i64 = inserted.try_get(0)?;
        if let Some(pause) = self.pause_after_intent {
            tokio::time::sleep(pause).await;
        }
        let mut outcome = NewEntry::new(actor, Kind::ActionOutcome, Outcome::Succeeded);
        outcome.action = action.as_str().into();
        outcome.target = gateway.into();
        outcome.intent_id = Some(intent.id);
        outcome.incident = incident.into();
        match self.fleet.apply(gateway, &plan.change, before).await {
            Ok(after) => {
                outcome.after = Some(json!(after));
                self.ledger.append(outcome).await?;
                let replaces_pods =
                    matches!(plan.change, Change::Restart | Change::Rollback { .. } | Change::Scale { .. });
                let status = if replaces_pods { "running" } else { "succeeded" };
                sqlx::query("update actions set status = $1 where id = $2")
                    .bind(status)
                    .bind(id)
                    .execute(&self.db)
                    .await?;
                self.publish(id).await;
                self.track(id, gateway.to_string(), replaces_pods);
                Ok(id)
            }
            Err(e) => {
                let err = AppError::from(e);
                outcome.outcome = Outcome::Failed;
                outcome.params = json!({ "error": err.to_string() });
                self.ledger.append(outcome).await?;
                sqlx::query("update actions set status = 'failed', detail = $1 where id = $2")
                    .bind(err.to_string())
                    .bind(id)
                    .execute(&self.db)
                    .await?;
                self.publish(id).await;
                Err(err)
            }
        }
    }

    /// Follows a running action: rollout progress until done, then the impact reading
    /// `IMPACT_AFTER_S` backend seconds after it started.
    fn track(self: &Arc<Self>, id: i64, gateway: String, rollout: bool) {
        let engine = Arc::clone(self);
        let started = self.fleet.clock_s();
        tokio::spawn(async move {
            let mut updates = engine.fleet.updates();
            let mut rollout_done = !rollout;
            let mut impact_taken = false;
            let mut last_progress = None;
            while !(rollout_done && impact_taken) {
                if !rollout_done && let Ok(r) = engine.fleet.rollout(&gateway).await {
                    let progress = Progress { desired: r.desired, updated: r.updated, ready: r.ready, total: r.total };
                    rollout_done = r.done || r.failed.is_some();
                    // Written and announced only when it moves, not on every tick.
                    if last_progress != Some(progress) || rollout_done {
                        last_progress = Some(progress);
                        let status = match (&r.failed, r.done) {
                            (Some(_), _) => "failed",
                            (None, true) => "succeeded",
                            (None, false) => "running",
                        };
                        let _ = sqlx::query("update actions set progress = $1, status = $2, detail = $3 where id = $4")
                            .bind(json!(progress).to_string())
                            .bind(status)
                            .bind(r.failed.clone().unwrap_or_default())
                            .bind(id)
                            .execute(&engine.db)
                            .await;
                        engine.publish(id).await;
                    }
                }
                // One reading, IMPACT_AFTER_S after the change, however long the rollout runs.
                if !impact_taken && engine.fleet.clock_s() >= started + IMPACT_AFTER_S {
                    impact_taken = true;
                    if let Some(after) = engine.reading(&gateway).await {
                        let _ = sqlx::query("update actions set impact_after = $1 where id = $2")
                            .bind(json!(after).to_string())
                            .bind(id)
                            .execute(&engine.db)
                            .await;
                        engine.publish(id).await;
                    }
                }
                if updates.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    async fn load(&self, id: i64) -> Result<Stored> {
        let row = sqlx::query(&format!("select {ACTION_COLUMNS} from actions where id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no action {id}")))?;
        Self::from_row(&row)
    }

    fn from_row(row: &sqlx::any::AnyRow) -> Result<Stored> {
        let json_col = |i: usize| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(i)?) };
        let change: Change = parse_json(&row.try_get::<String, _>(4)?)?;
        let inverse: Option<Change> = json_col(5)?.map(|s| parse_json(&s)).transpose()?;
        let undone_by: Option<i64> = row.try_get(16)?;
        let reverted: i64 = row.try_get(19)?;
        let status: String = row.try_get(10)?;
        let record = ActionRecord {
            id: row.try_get(0)?,
            gateway: row.try_get(1)?,
            action: row.try_get(2)?,
            params: row.try_get(3)?,
            actor: row.try_get(6)?,
            reason: row.try_get(8)?,
            incident: row.try_get(9)?,
            undo_available: inverse.is_some() && undone_by.is_none() && reverted == 0 && status != "failed",
            status,
            detail: row.try_get(11)?,
            preview: parse_json(&row.try_get::<String, _>(12)?)?,
            progress: json_col(13)?.map(|s| parse_json(&s)).transpose()?,
            impact_before: json_col(14)?.map(|s| parse_json(&s)).transpose()?,
            impact_after: json_col(15)?.map(|s| parse_json(&s)).transpose()?,
            undone_by,
            undo_of: row.try_get(17)?,
            expires_at_s: row.try_get(18)?,
            intent_id: row.try_get(20)?,
            created_at_ms: row.try_get(21)?,
        };
        Ok(Stored { record, change, inverse })
    }

    /// One action.
    pub async fn get(&self, id: i64) -> Result<ActionRecord> {
        Ok(self.load(id).await?.record)
    }

    /// Recent actions, newest first, optionally for one gateway.
    pub async fn list(&self, gateway: Option<&str>, limit: i64) -> Result<Vec<ActionRecord>> {
        let rows = sqlx::query(&format!(
            "select {ACTION_COLUMNS} from actions where ($1 = '' or gateway = $1) order by id desc limit $2"
        ))
        .bind(gateway.unwrap_or(""))
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(|r| Self::from_row(r).map(|s| s.record)).collect()
    }

    /// `POST /api/v1/actions/{id}/undo`: runs the recorded inverse as a new action.
    pub async fn undo(self: &Arc<Self>, caller: Caller<'_>, id: i64, body: Value) -> Result<ActionResponse> {
        let user = caller.user.ok_or(AppError::Unauthorized)?;
        let stored = self.load(id).await?;
        let action = ActionName::of_change(&stored.change);
        if let Err(refused) = user.require(action.role()) {
            let mut entry = NewEntry::new(caller.actor.clone(), Kind::Undo, Outcome::Denied);
            entry.action = action.as_str().into();
            entry.target = stored.record.gateway.clone();
            entry.params = json!({ "undo_of": id, "refused": format!("role {} below {}", user.role, action.role()) });
            self.ledger.append(entry).await?;
            return Err(refused);
        }
        let request = envelope(body)?;
        no_more(&request.params)?;
        if !stored.record.undo_available {
            return Err(AppError::Conflict(format!(
                "action {id} cannot be undone (no inverse, already undone or reverted)"
            )));
        }
        let inverse = stored.inverse.clone().expect("undo_available implies an inverse");
        let gateway = stored.record.gateway.clone();
        let state = self.fleet.state(&gateway).await?;
        // Undo restores what was there before only if what the action set is still there:
        // otherwise it would silently overwrite someone else's later change.
        if !matches!(stored.change, Change::Restart | Change::Rollback { .. }) && !in_force(&stored.change, &state) {
            return Err(AppError::Conflict(format!(
                "{gateway} no longer has what action {id} set: it was changed since, and undoing would overwrite \
                 that change; nothing was done"
            )));
        }
        let plan = self.inverse_plan(&gateway, &stored, inverse);
        let new_id = self
            .execute(
                caller.actor,
                Kind::Undo,
                &gateway,
                action,
                &json!({ "undo_of": id }),
                &request.reason,
                &stored.record.incident,
                plan.clone(),
                Some(id),
                &state,
            )
            .await?;
        sqlx::query("update actions set undone_by = $1 where id = $2").bind(new_id).bind(id).execute(&self.db).await?;
        self.publish(id).await;
        let record = self.get(new_id).await?;
        Ok(ActionResponse { id: Some(new_id), status: record.status, preview: plan.preview })
    }

    fn inverse_plan(&self, gateway: &str, stored: &Stored, inverse: Change) -> Plan {
        Plan {
            preview: Preview {
                summary: format!(
                    "Undo action {} on {gateway}: {}",
                    stored.record.id,
                    stored.record.preview.undo.clone().unwrap_or_default()
                ),
                changes: stored
                    .record
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

    /// Reverts time-limited changes whose TTL has passed, as the system, but only if
    /// the change is still in force (someone may have changed it since).
    pub async fn revert_expired(self: &Arc<Self>) -> Result<()> {
        let now = self.fleet.clock_s();
        let due: Vec<i64> = sqlx::query_as::<_, (i64,)>(
            "select id from actions where expires_at_s is not null and expires_at_s <= $1 and reverted = 0 \
             and undone_by is null and status = 'succeeded'",
        )
        .bind(now)
        .fetch_all(&self.db)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
        for id in due {
            let stored = self.load(id).await?;
            let gateway = stored.record.gateway.clone();
            let state = self.fleet.state(&gateway).await?;
            sqlx::query("update actions set reverted = 1 where id = $1").bind(id).execute(&self.db).await?;
            self.publish(id).await;
            if !in_force(&stored.change, &state) {
                tracing::info!(action = id, "TTL passed but the change was replaced since; not reverting");
                continue;
            }
            let Some(inverse) = stored.inverse.clone() else { continue };
            let plan = self.inverse_plan(&gateway, &stored, inverse);
            let action = ActionName::of_change(&stored.change);
            self.execute(
                Actor::system(),
                Kind::TtlRevert,
                &gateway,
                action,
                &json!({ "revert_of": id }),
                "time limit reached",
                &stored.record.incident,
                plan,
                Some(id),
                &state,
            )
            .await?;
        }
        Ok(())
    }

    /// Watches the backend clock and reverts expired changes.
    pub fn spawn_ttl_reverter(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let mut updates = engine.fleet.updates();
            loop {
                if let Err(e) = engine.revert_expired().await {
                    tracing::warn!(error = ?e, "reverting expired changes failed; will retry");
                }
                if updates.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// Settles intents that have no outcome (the process died between the two):
    /// compares the fleet's actual state with the intent's and records a
    /// `reconciliation` entry; the action is marked accordingly.
    pub async fn reconcile(&self) -> Result<usize> {
        let pending: Vec<(i64, String, String, String)> = sqlx::query_as(
            "select i.id, i.target, i.params, i.before_state from audit_log i \
             where i.kind in ('action_intent', 'undo', 'ttl_revert') and i.outcome = 'pending' \
             and not exists (select 1 from audit_log o where o.intent_id = i.id)",
        )
        .fetch_all(&self.db)
        .await?;
        if !pending.is_empty() {
            // Judge on the backend's actual state: a cluster's watches list first.
            self.fleet.synced(RECONCILE_SYNC_LIMIT).await;
        }
        for (intent_id, gateway, params, before) in &pending {
            let change: Option<Change> = serde_json::from_str::<Value>(params)
                .ok()
                .and_then(|p| serde_json::from_value(p["change"].clone()).ok());
            let before: Option<GatewayState> = serde_json::from_str(before).ok();
            let now = self.fleet.state(gateway).await.ok();
            let applied = match (&change, &before, &now) {
                (Some(c), Some(b), Some(n)) => took_effect(c, b, n),
                _ => false,
            };
            let detail = match (&now, applied) {
                (_, true) => "interrupted after the change was made; the fleet shows it in force",
                (Some(_), false) => "interrupted before the change took effect; the fleet shows it was not made",
                // Never claim "not made" without having looked.
                (None, false) => {
                    "interrupted; the gateway could not be read at start-up, so whether the change was made is \
                     unknown: check it before acting again"
                }
            };
            let mut entry = NewEntry::new(
                Actor::system(),
                Kind::Reconciliation,
                if applied { Outcome::Succeeded } else { Outcome::Failed },
            );
            entry.target = gateway.clone();
            entry.intent_id = Some(*intent_id);
            entry.reason = detail.into();
            entry.after = now.as_ref().map(|n| json!(n));
            self.ledger.append(entry).await?;
            sqlx::query("update actions set status = $1, detail = $2 where intent_id = $3 and status = 'running'")
                .bind(if applied { "succeeded" } else { "failed" })
                .bind(detail)
                .bind(intent_id)
                .execute(&self.db)
                .await?;
        }
        Ok(pending.len())
    }
}
