//! The catalogue of mitigations: each action's name, label, role, approval policy and
//! fields with their bounds. The planner reads its numbers through the same bounds, and
//! the pages build their forms from the catalogue the server serves, so the two cannot
//! disagree (a test checks that every field listed here is one the planner reads).

use crate::fleet::Change;
use app::dto::{ActionSpec, Catalogue, Choice, FieldSpec, Role};
use std::ops::RangeInclusive;

/// The runbook's actions, by API name: the words are `app::dto::ActionName`'s.
pub use app::dto::ActionName;

/// The action that makes `change`.
pub fn action_of(change: &Change) -> ActionName {
    match change {
        Change::Restart => ActionName::Restart,
        Change::Scale { .. } | Change::Autoscale { .. } => ActionName::Scale,
        Change::Rollback { .. } => ActionName::Rollback,
        Change::RateLimit { .. } => ActionName::RateLimit,
        Change::Timeouts { .. } => ActionName::Timeouts,
        Change::CircuitBreaker { .. } => ActionName::CircuitBreaker,
        Change::Bypass { .. } | Change::DnsRecord { .. } => ActionName::Bypass,
    }
}

/// A change that reverts by itself: after this many seconds.
pub const TTL_SECONDS: RangeInclusive<u64> = 60..=86_400;
/// A revision to roll back to.
pub const REVISION: RangeInclusive<u64> = 1..=u32::MAX as u64;
/// An emergency rate limit.
pub const REQUESTS_PER_SECOND: RangeInclusive<u64> = 1..=1_000_000;
/// Its burst.
pub const BURST: RangeInclusive<u64> = 1..=10_000_000;
/// A request's timeout.
pub const REQUEST_TIMEOUT_MS: RangeInclusive<u64> = 100..=60_000;
/// A connection's timeout.
pub const CONNECT_TIMEOUT_MS: RangeInclusive<u64> = 50..=10_000;
/// Retries of a failed request.
pub const RETRIES: RangeInclusive<u64> = 0..=10;
/// Errors in a row that eject a host.
pub const CONSECUTIVE_ERRORS: RangeInclusive<u64> = 1..=100;
/// How long a host stays ejected.
pub const EJECTION_SECONDS: RangeInclusive<u64> = 1..=3600;
/// The most of a service's hosts ejected at once.
pub const MAX_EJECTION_PERCENT: RangeInclusive<u64> = 1..=100;

/// Replicas `scale` may set: 1 to `--max-replicas`.
pub fn replicas(max_replicas: u32) -> RangeInclusive<u64> {
    1..=u64::from(max_replicas)
}

fn number(name: &str, label: &str, range: RangeInclusive<u64>) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        label: label.into(),
        min: Some(*range.start()),
        max: Some(*range.end()),
        choices: Vec::new(),
    }
}

fn text(name: &str, label: &str) -> FieldSpec {
    FieldSpec { name: name.into(), label: label.into(), min: None, max: None, choices: Vec::new() }
}

fn ttl() -> FieldSpec {
    number("ttl_seconds", "Revert after, s (blank: never)", TTL_SECONDS)
}

/// `action`'s label and fields, with `scale` bounded by `max_replicas`.
fn spec(action: ActionName, max_replicas: u32) -> (&'static str, Vec<FieldSpec>) {
    match action {
        ActionName::Restart => ("Restart", vec![]),
        ActionName::Scale => (
            "Scale",
            vec![
                number("replicas", "Replicas", replicas(max_replicas)),
                // An autoscaler would undo a manual scale: move its bounds instead.
                number(
                    "min_replicas",
                    "Autoscaler min (instead of replicas, if an HPA manages it)",
                    replicas(max_replicas),
                ),
                number(
                    "max_replicas",
                    "Autoscaler max (instead of replicas, if an HPA manages it)",
                    replicas(max_replicas),
                ),
                ttl(),
            ],
        ),
        ActionName::Rollback => ("Roll back", vec![number("revision", "Revision (blank: previous)", REVISION)]),
        ActionName::RateLimit => (
            "Rate limit",
            vec![
                number("requests_per_second", "Requests per second", REQUESTS_PER_SECOND),
                number("burst", "Burst (blank: same)", BURST),
                text("route", "Route (blank: all)"),
                ttl(),
            ],
        ),
        ActionName::Timeouts => (
            "Timeouts & retries",
            vec![
                number("request_timeout_ms", "Request timeout, ms", REQUEST_TIMEOUT_MS),
                number("connect_timeout_ms", "Connect timeout, ms", CONNECT_TIMEOUT_MS),
                number("retries", "Retries", RETRIES),
                ttl(),
            ],
        ),
        ActionName::CircuitBreaker => (
            "Circuit breaker",
            vec![
                number("consecutive_errors", "Consecutive errors (blank: 5)", CONSECUTIVE_ERRORS),
                number("ejection_seconds", "Ejection, s (blank: 30)", EJECTION_SECONDS),
                number("max_ejection_percent", "Max ejected % (blank: 100)", MAX_EJECTION_PERCENT),
                text("service", "Service (blank: all)"),
                ttl(),
            ],
        ),
        ActionName::Bypass => (
            "Bypass gateway",
            vec![
                text("service", "Service"),
                FieldSpec {
                    choices: vec![
                        Choice { value: String::new(), label: "Route around it inside the gateway".into() },
                        Choice { value: "dns".into(), label: "Point the service's DNS record at it".into() },
                    ],
                    ..text("method", "How")
                },
                text("force", "If its direct target fails the preflight, go ahead anyway because (DNS only)"),
                ttl(),
            ],
        ),
    }
}

/// The catalogue as this console runs: `scale` up to `max_replicas`, and `approval` on
/// for the kinds `--require-approval` names (`requester` and up may then ask for an
/// action they may not run: someone who may approves, and it runs).
pub fn catalogue(max_replicas: u32, approval: impl Fn(ActionName) -> bool, requester: Role) -> Catalogue {
    // In the runbook's order, as the page offers them.
    let actions = ActionName::ALL
        .iter()
        .map(|&action| {
            let (label, fields) = spec(action, max_replicas);
            let approval = approval(action);
            let role = if approval { action.role().min(requester) } else { action.role() };
            ActionSpec { action: action.as_str().into(), label: label.into(), role, approval, fields }
        })
        .collect();
    Catalogue { actions }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_offered_once() {
        let catalogue = catalogue(50, |_| false, Role::Responder);
        let names: Vec<&str> = catalogue.actions.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(names, ["restart", "scale", "rollback", "rate-limit", "timeouts", "circuit-breaker", "bypass"]);
        assert!(names.iter().all(|n| ActionName::parse(n).is_some()));
    }

    #[test]
    fn every_field_offered_is_one_the_planner_reads() {
        let planner = [include_str!("plan.rs"), include_str!("request.rs")].concat();
        for spec in catalogue(50, |_| false, Role::Responder).actions {
            for field in spec.fields {
                assert!(
                    planner.contains(&format!("\"{}\"", field.name)),
                    "{}: the planner never reads {}",
                    spec.action,
                    field.name
                );
            }
        }
    }

    #[test]
    fn the_scale_bound_is_the_consoles_own_and_approval_lets_a_responder_ask() {
        let catalogue = catalogue(200, |a| a == ActionName::Rollback, Role::Responder);
        let scale = catalogue.get("scale").unwrap();
        assert_eq!((scale.fields[0].min, scale.fields[0].max), (Some(1), Some(200)));
        assert_eq!(scale.fields[0].shown(), "Replicas (1–200)");
        let rollback = catalogue.get("rollback").unwrap();
        assert_eq!((rollback.role, rollback.approval), (Role::Responder, true));
        assert_eq!(catalogue.get("bypass").unwrap().role, Role::Admin);
    }
}
