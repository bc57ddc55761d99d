//! The runbook (`shared/seed/api-gateway-failures-runbook.md`) as each incident's
//! checklist: Diagnosis 1-5, then the immediate and short-term mitigations. A step an
//! action performs is ticked when such an action succeeds for the incident (read from
//! the actions table, so it cannot disagree with it); any step can be ticked by hand with
//! a note, or marked not applicable with a reason, and that is on the timeline too.

use super::Incidents;
use crate::audit::{Actor, Kind, NewEntry, Outcome};
use crate::db::now_ms;
use crate::error::{AppError, Result};
use crate::params::Body;
use app::dto::{Checklist, ChecklistStep, Incident, StepMark};
use serde_json::{Value, json};
use sqlx::Row;

/// (id, section, title, the runbook's command, the mitigation that performs it).
const STEPS: [(&str, &str, &str, &str, Option<&str>); 12] = [
    (
        "diagnosis-1",
        "Diagnosis",
        "Check API gateway status and metrics",
        "review error rates, latency and request volume",
        None,
    ),
    (
        "diagnosis-2",
        "Diagnosis",
        "Verify gateway instance health",
        "kubectl get pods -l app=api-gateway -n <namespace>",
        None,
    ),
    (
        "diagnosis-3",
        "Diagnosis",
        "Check gateway logs for errors",
        "kubectl logs -l app=api-gateway -n <namespace> | grep -i \"error\\|exception\\|failed\"",
        None,
    ),
    ("diagnosis-4", "Diagnosis", "Verify downstream service health", "kubectl get pods -n <namespace>", None),
    ("diagnosis-5", "Diagnosis", "Test gateway endpoints directly", "curl -v https://<gateway-url>/health", None),
    (
        "immediate-1",
        "Immediate actions",
        "Restart unhealthy gateway instances",
        "kubectl rollout restart deployment/api-gateway -n <namespace>",
        Some("restart"),
    ),
    (
        "immediate-2",
        "Immediate actions",
        "Scale up gateway instances to handle load",
        "kubectl scale deployment/api-gateway --replicas=<increased-number> -n <namespace>",
        Some("scale"),
    ),
    (
        "immediate-3",
        "Immediate actions",
        "Implement emergency rate limiting",
        "update gateway configuration to limit incoming requests",
        Some("rate-limit"),
    ),
    (
        "immediate-4",
        "Immediate actions",
        "Roll back a recent deployment that caused it",
        "kubectl rollout undo deployment/api-gateway -n <namespace>",
        Some("rollback"),
    ),
    (
        "short-term-1",
        "Short-term fixes",
        "Bypass the gateway for critical services",
        "update DNS or load balancer to route traffic directly",
        Some("bypass"),
    ),
    (
        "short-term-2",
        "Short-term fixes",
        "Adjust timeout and retry settings",
        "update gateway configuration with appropriate values",
        Some("timeouts"),
    ),
    (
        "short-term-3",
        "Short-term fixes",
        "Implement or adjust circuit breakers",
        "configure circuit breakers to prevent cascading failures",
        Some("circuit-breaker"),
    ),
];

/// Where the console performs `step` for `incident` (its first gateway, its window).
fn opens(step: &str, action: Option<&str>, incident: &Incident) -> String {
    let gateway = incident.gateways.first().cloned().unwrap_or_default();
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    match (step, action) {
        (_, Some(action)) if !gateway.is_empty() => {
            format!("/gateways/{}?action={action}&incident={}", enc(&gateway), incident.key)
        }
        ("diagnosis-3", _) => {
            let scope = if gateway.is_empty() { String::new() } else { format!("gateway:{gateway} ") };
            let since = incident.declared_at_ms - 15 * 60 * 1000;
            format!(
                "/logs?q={}&since={since}&incident={}",
                enc(&format!("{scope}(error OR exception OR failed)")),
                incident.key
            )
        }
        ("diagnosis-4", _) => "/dependencies".into(),
        // The gateway's node on the map, whose probe form then records for the incident.
        ("diagnosis-5", _) if !gateway.is_empty() => {
            format!("/dependencies?node={}&incident={}", enc(&format!("gateway:{gateway}")), incident.key)
        }
        _ if !gateway.is_empty() => format!("/gateways/{}", enc(&gateway)),
        _ => "/".into(),
    }
}

impl Incidents {
    /// Incident `id`'s checklist.
    pub async fn checklist(&self, id: i64) -> Result<Checklist> {
        let incident = self.plain(id).await?;
        let actions = crate::actions::store::for_incident(&self.db, &incident.key).await?;
        self.steps(&incident, &actions).await
    }

    /// `incident`'s checklist, given the actions taken for it.
    pub(super) async fn steps(&self, incident: &Incident, actions: &[app::dto::ActionRecord]) -> Result<Checklist> {
        let rows = sqlx::query("select step, state, note, by_user, at_ms from incident_steps where incident_id = $1")
            .bind(incident.id)
            .fetch_all(&self.db)
            .await?;
        let mut steps = Vec::with_capacity(STEPS.len());
        for (step, section, title, command, action) in STEPS {
            let by_hand = rows.iter().find(|r| r.try_get::<String, _>("step").ok().as_deref() == Some(step));
            let by_action = action.and_then(|name| {
                actions.iter().find(|a| a.action == name && a.undo_of.is_none() && a.status == "succeeded")
            });
            let mark = match (by_hand, by_action) {
                (Some(r), _) => Some(StepMark {
                    state: r.try_get("state")?,
                    by: r.try_get("by_user")?,
                    at_ms: r.try_get("at_ms")?,
                    note: r.try_get("note")?,
                    action_id: None,
                }),
                (None, Some(a)) => Some(StepMark {
                    state: "done".into(),
                    by: a.actor.clone(),
                    at_ms: a.created_at_ms,
                    note: format!("{} #{} on {}: {}", a.action, a.id, a.gateway, a.reason),
                    action_id: Some(a.id),
                }),
                (None, None) => None,
            };
            steps.push(ChecklistStep {
                id: step.into(),
                section: section.into(),
                title: title.into(),
                command: command.into(),
                opens: opens(step, action, incident),
                action: action.map(String::from),
                mark,
            });
        }
        Ok(Checklist { steps })
    }

    /// `POST /api/v1/incidents/{id}/checklist/{step}`: `{state: done | not_applicable |
    /// open, note}`; not applicable needs a reason (the note).
    pub async fn mark_step(&self, actor: Actor, id: i64, step: &str, body: Value) -> Result<Checklist> {
        let Some((step, ..)) = STEPS.iter().find(|s| s.0 == step) else {
            return Err(AppError::NotFound(format!("no runbook step '{}'", step.chars().take(32).collect::<String>())));
        };
        let mut map = Body::parse(body)?;
        let state = map.text("state", 16)?.unwrap_or_default();
        let note = map.text("note", super::TEXT_MAX)?.unwrap_or_default();
        map.done()?;
        if !["done", "not_applicable", "open"].contains(&state.as_str()) {
            return Err(AppError::invalid("state", "must be done, not_applicable or open"));
        }
        if state == "not_applicable" && note.is_empty() {
            return Err(AppError::invalid("note", "say why the step does not apply"));
        }
        let incident = self.plain(id).await?;
        if incident.status == "closed" {
            return Err(AppError::Conflict(format!("{} is closed; it changes no more", incident.key)));
        }
        let now = now_ms();
        let mut entry = NewEntry::new(actor.clone(), Kind::Incident, Outcome::Succeeded);
        entry.action = "step".into();
        entry.target = incident.key.clone();
        entry.incident = incident.key.clone();
        entry.reason = note.clone();
        entry.params = json!({"step": step, "state": state});
        let mark = || async {
            let query = if state == "open" {
                sqlx::query("delete from incident_steps where incident_id = $1 and step = $2").bind(id).bind(step)
            } else {
                sqlx::query(
                    "insert into incident_steps (incident_id, step, state, note, by_user, at_ms) \
                     values ($1, $2, $3, $4, $5, $6) on conflict (incident_id, step) \
                     do update set state = $3, note = $4, by_user = $5, at_ms = $6",
                )
                .bind(id)
                .bind(step)
                .bind(&state)
                .bind(&note)
                .bind(&actor.name)
                .bind(now)
            };
            query.execute(&self.db).await?;
            Ok(())
        };
        self.ledger.recorded(entry, "the step was not ticked", mark).await?;
        self.acknowledge(&incident.key, now).await?;
        self.checklist(id).await
    }
}

/// The title of runbook step `id`.
pub fn title_of(id: &str) -> Option<&'static str> {
    STEPS.iter().find(|s| s.0 == id).map(|s| s.2)
}
