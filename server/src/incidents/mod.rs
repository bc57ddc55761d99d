//! Incidents (issue 18): declared, led, worked and closed by a team.
//!
//! The `incidents` table holds what lists and filters need (status, severity, roles,
//! milestones); every change is also a ledger entry whose `incident` is the incident's
//! key (`INC-<id>`), as are the actions, undos, reverts and notes that name it. The
//! timeline is read from the ledger, so it cannot tell a different story than the audit
//! trail. Milestones are the status changes, timed and attributed; "acknowledged" is the
//! first thing anyone does about the incident after declaring it.

use crate::audit::{Actor, Kind, Ledger, NewEntry, Outcome};
use crate::db::{Db, now_ms};
use crate::error::{AppError, Result};
use crate::params::Body;
use app::dto::{AuditEntry, Incident, Milestone, Timeline, TimelineEntry};
use serde_json::{Value, json};
use sqlx::Row;

pub mod checklist;
pub mod postmortem;
pub mod watch;
use std::sync::Arc;

/// Severities, worst first (the words are `app::dto::Severity`'s).
pub const SEVERITIES: &[&str] = app::dto::Severity::NAMES;
/// Statuses, in the order an incident usually goes through them (`app::dto::IncidentStatus`).
pub const STATUSES: &[&str] = app::dto::IncidentStatus::NAMES;
/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest summary or note, in characters.
pub const TEXT_MAX: usize = 5000;
/// Most gateways one incident is about.
pub const GATEWAYS_MAX: usize = 20;
/// Longest user name in a role.
const NAME_MAX: usize = 64;
/// Most timeline entries returned (the newest, in order).
pub const TIMELINE_MAX: i64 = 2000;

pub use crate::incident_keys::{id_of, key, open_named};

/// List filters (`GET /api/v1/incidents`).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Exact status.
    pub status: Option<String>,
    /// Exact severity.
    pub severity: Option<String>,
    /// About this gateway.
    pub gateway: Option<String>,
    /// Open (not resolved or closed) or not.
    pub open: Option<bool>,
}

/// The incidents service.
pub struct Incidents {
    db: Db,
    ledger: Arc<Ledger>,
    bus: Arc<crate::bus::Bus>,
    health: Arc<crate::health::HealthService>,
    /// The simulator's scenario, for the training summary (`None` against a cluster).
    scenario: Option<crate::fleet::sim::Scenario>,
}

/// One of `allowed`, or 422 listing them.
fn one_of(value: Option<String>, field: &'static str, allowed: &[&str]) -> Result<Option<String>> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(AppError::invalid(field, format!("must be one of {}", allowed.join(", "))))
        }
        other => Ok(other),
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Incident> {
    let id: i64 = row.try_get("id")?;
    let declared_at_ms: i64 = row.try_get("declared_at_ms")?;
    let milestones: Vec<Milestone> = serde_json::from_str(&row.try_get::<String, _>("milestones")?)
        .map_err(|e| AppError::Internal(format!("incident {id}: milestones: {e}")))?;
    let gateways: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("gateways")?)
        .map_err(|e| AppError::Internal(format!("incident {id}: gateways: {e}")))?;
    let acknowledged_at_ms: Option<i64> = row.try_get("acknowledged_at_ms")?;
    let first =
        |status: &str| milestones.iter().find(|m| m.status == status).map(|m| (m.at_ms - declared_at_ms) / 1000);
    Ok(Incident {
        id,
        key: key(id),
        title: row.try_get("title")?,
        severity: row.try_get("severity")?,
        summary: row.try_get("summary")?,
        status: row.try_get("status")?,
        gateways,
        commander: row.try_get("commander")?,
        scribe: row.try_get("scribe")?,
        declared_by: row.try_get("declared_by")?,
        declared_at_ms,
        acknowledged_at_ms,
        time_to_acknowledge_s: acknowledged_at_ms.map(|at| (at - declared_at_ms) / 1000),
        time_to_mitigate_s: first("mitigated"),
        time_to_resolve_s: first("resolved"),
        milestones,
        followups: Vec::new(),
        training: None,
    })
}

const COLUMNS: &str = "id, title, severity, summary, status, gateways, commander, scribe, declared_by, declared_at_ms, \
                       acknowledged_at_ms, milestones";

impl Incidents {
    /// Incidents in `db`, their changes on `ledger`, announced on `bus`.
    pub fn new(
        db: Db,
        ledger: Arc<Ledger>,
        bus: Arc<crate::bus::Bus>,
        health: Arc<crate::health::HealthService>,
    ) -> Self {
        Incidents { db, ledger, bus, health, scenario: None }
    }

    /// In the simulator: incidents end with a comparison against `scenario`'s known cure.
    pub fn with_scenario(mut self, scenario: crate::fleet::sim::Scenario) -> Self {
        self.scenario = Some(scenario);
        self
    }

    async fn publish(&self, incident: &Incident) {
        if self.bus.wanted()
            && let Ok(json) = serde_json::to_string(incident)
        {
            self.bus.publish("incident", &json).await;
        }
    }

    /// `POST /api/v1/incidents`: `{title, severity, summary?, gateways?}`; `gateways`
    /// must be gateways the console knows. The declarer commands it.
    pub async fn declare(&self, actor: Actor, body: Value) -> Result<Incident> {
        let known: Vec<String> = self.health.gateways().await?.into_iter().map(|g| g.id).collect();
        let mut map = Body::parse(body)?;
        let title = map.text("title", TITLE_MAX)?.filter(|t| !t.is_empty());
        let title = title.ok_or_else(|| AppError::invalid("title", "is required: one line that says what is wrong"))?;
        let severity = one_of(map.text("severity", 8)?, "severity", SEVERITIES)?
            .ok_or_else(|| AppError::invalid("severity", "is required: sev1 (worst) to sev4"))?;
        let summary = map.text("summary", TEXT_MAX)?.unwrap_or_default();
        let gateways = match map.take("gateways") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) if list.len() > GATEWAYS_MAX => {
                return Err(AppError::invalid("gateways", format!("at most {GATEWAYS_MAX} gateways")));
            }
            Some(Value::Array(list)) => {
                let mut ids = Vec::new();
                for v in list {
                    let id = v.as_str().ok_or_else(|| AppError::invalid("gateways", "must be gateway ids"))?;
                    if !known.iter().any(|k| k == id) {
                        return Err(AppError::invalid(
                            "gateways",
                            format!("no gateway '{}'", id.chars().take(64).collect::<String>()),
                        ));
                    }
                    if !ids.iter().any(|i| i == id) {
                        ids.push(id.to_string());
                    }
                }
                ids
            }
            Some(_) => return Err(AppError::invalid("gateways", "must be a list of gateway ids")),
        };
        map.done()?;
        let now = now_ms();
        let milestones = vec![Milestone {
            status: app::dto::IncidentStatus::Investigating.as_str().into(),
            at_ms: now,
            by: actor.name.clone(),
            chart_ms: Some(self.health.chart_now_ms()),
        }];
        // The row is reserved first, as `declaring` (no read shows it), and shown only once
        // its declaration is on the record: no record, no incident (its number is skipped).
        let row = sqlx::query(
            "insert into incidents (title, severity, summary, status, gateways, commander, scribe, declared_by, \
             declared_at_ms, acknowledged_at_ms, milestones) \
             values ($1, $2, $3, 'declaring', $4, $5, '', $5, $6, null, $7) returning id",
        )
        .bind(&title)
        .bind(&severity)
        .bind(&summary)
        .bind(json!(gateways).to_string())
        .bind(&actor.name)
        .bind(now)
        .bind(json!(milestones).to_string())
        .fetch_one(&self.db)
        .await?;
        let id: i64 = row.try_get("id")?;
        let mut entry = NewEntry::new(actor, Kind::Incident, Outcome::Succeeded);
        entry.action = "declare".into();
        entry.target = key(id);
        entry.incident = key(id);
        entry.reason = title.clone();
        entry.params = json!({"severity": severity, "gateways": gateways, "summary": summary});
        let show = || async {
            sqlx::query("update incidents set status = 'investigating' where id = $1 and status = 'declaring'")
                .bind(id)
                .execute(&self.db)
                .await?;
            Ok(())
        };
        if let Err(e) = self.ledger.recorded(entry, "no incident was declared", show).await {
            // Unseen either way; gone if the database lets it go.
            let _ = sqlx::query("delete from incidents where id = $1 and status = 'declaring'")
                .bind(id)
                .execute(&self.db)
                .await;
            return Err(e);
        }
        let incident = self.get(id).await?;
        self.publish(&incident).await;
        Ok(incident)
    }

    /// One incident as its row holds it (no follow-ups, no training summary), or 404.
    pub async fn plain(&self, id: i64) -> Result<Incident> {
        let row = sqlx::query(&format!("select {COLUMNS} from incidents where id = $1 and status <> 'declaring'"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no incident {}", key(id))))?;
        from_row(&row)
    }

    /// One incident, with its follow-ups and (in the simulator, once resolved) the
    /// training summary, or 404.
    pub async fn get(&self, id: i64) -> Result<Incident> {
        let mut incident = self.plain(id).await?;
        incident.followups = crate::actions::approval::followups(&self.db, &incident.key).await?;
        if let Some(scenario) = self.scenario
            && let Some((cure_actions, cure)) = scenario.cure()
            && (incident.status == "resolved" || incident.status == "closed")
        {
            let actions = crate::actions::store::for_incident(&self.db, &incident.key).await?;
            let steps = self.steps(&incident, &actions).await?.steps;
            let used: Vec<String> = actions
                .into_iter()
                .filter(|a| a.undo_of.is_none() && a.status == "succeeded")
                .map(|a| a.action)
                .collect();
            incident.training = Some(app::dto::Training {
                scenario: scenario.as_str().into(),
                cure: cure.into(),
                cure_actions: cure_actions.iter().map(|a| a.to_string()).collect(),
                cured_by_a_known_cure: used.iter().any(|u| cure_actions.contains(&u.as_str())),
                used_actions: used,
                mitigated_after_s: incident.time_to_mitigate_s.or(incident.time_to_resolve_s),
                steps_used: steps
                    .into_iter()
                    .filter(|s| s.mark.as_ref().is_some_and(|m| m.state == "done"))
                    .map(|s| s.title)
                    .collect(),
            });
        }
        Ok(incident)
    }

    /// The newest incidents (at most 200) that pass `filter`.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Incident>> {
        // The gateway is looked for in the stored JSON list (as `"id"`) before the limit, so
        // an older incident about it is not cut off by newer ones about others; the exact
        // comparison below decides (LIKE ignores ASCII case in SQLite).
        let gateway = filter.gateway.as_deref().map_or_else(String::new, |g| {
            let quoted = serde_json::to_string(g).unwrap_or_default();
            format!("%{}%", quoted.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
        });
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from incidents where status <> 'declaring' and ($1 = '' or status = $1) \
             and ($2 = '' or severity = $2) \
             and ($3 = 0 or ($3 = 1 and status not in ('resolved', 'closed')) or ($3 = 2 and status in ('resolved', 'closed'))) \
             and ($4 = '' or gateways like $4 escape '\\') order by id desc limit 200"
        ))
        .bind(filter.status.as_deref().unwrap_or(""))
        .bind(filter.severity.as_deref().unwrap_or(""))
        .bind(match filter.open {
            None => 0i64,
            Some(true) => 1,
            Some(false) => 2,
        })
        .bind(gateway)
        .fetch_all(&self.db)
        .await?;
        let mut list = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        if let Some(g) = &filter.gateway {
            list.retain(|i| i.gateways.iter().any(|x| x == g));
        }
        Ok(list)
    }

    /// Records that someone acted on incident `key` (`INC-<id>`) at `at_ms`, if nobody had.
    pub async fn acknowledge(&self, key: &str, at_ms: i64) -> Result<()> {
        let Some(id) = id_of(key) else { return Ok(()) };
        sqlx::query("update incidents set acknowledged_at_ms = $1 where id = $2 and acknowledged_at_ms is null")
            .bind(at_ms)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// `PATCH /api/v1/incidents/{id}`: any of `status`, `severity`, `summary`,
    /// `commander`, `scribe`, with an optional `reason`. Each change is a ledger entry;
    /// a closed incident changes no more.
    pub async fn update(&self, actor: Actor, id: i64, body: Value) -> Result<Incident> {
        let mut map = Body::parse(body)?;
        let status = one_of(map.text("status", 16)?, "status", STATUSES)?;
        let severity = one_of(map.text("severity", 8)?, "severity", SEVERITIES)?;
        let summary = map.text("summary", TEXT_MAX)?;
        let commander = map.text("commander", NAME_MAX)?;
        let scribe = map.text("scribe", NAME_MAX)?;
        let reason = map.text("reason", app::dto::Reason::MAX_CHARS)?.unwrap_or_default();
        let reason = app::dto::Reason::optional(&reason).map_err(|why| AppError::invalid("reason", why))?;
        map.done()?;
        if commander.as_deref() == Some("") {
            return Err(AppError::invalid("commander", "an incident always has a commander"));
        }
        for (field, name) in [("commander", &commander), ("scribe", &scribe)] {
            if let Some(name) = name.as_deref().filter(|n| !n.is_empty())
                && !crate::accounts::store::exists(&self.db, name).await?
            {
                return Err(AppError::invalid(field, format!("no user '{name}'")));
            }
        }
        let before = self.plain(id).await?;
        if before.status == "closed" {
            return Err(AppError::Conflict(format!("{} is closed; it changes no more", before.key)));
        }
        if status.as_deref() == Some("closed") && before.status != "resolved" {
            return Err(AppError::Conflict(format!("{} can be closed only once it is resolved", before.key)));
        }
        let now = now_ms();
        let mut changes: Vec<(&str, String, String)> = Vec::new();
        let mut milestones = before.milestones.clone();
        if let Some(s) = status.filter(|s| *s != before.status) {
            milestones.push(Milestone {
                status: s.clone(),
                at_ms: now,
                by: actor.name.clone(),
                chart_ms: Some(self.health.chart_now_ms()),
            });
            changes.push(("status", before.status.clone(), s));
        }
        for (field, old, new) in [
            ("severity", &before.severity, severity),
            ("summary", &before.summary, summary),
            ("commander", &before.commander, commander),
            ("scribe", &before.scribe, scribe),
        ] {
            if let Some(new) = new.filter(|n| n != old) {
                changes.push((field, old.clone(), new));
            }
        }
        if changes.is_empty() {
            return Ok(before);
        }
        let entries: Vec<NewEntry> = changes
            .iter()
            .map(|(field, from, to)| {
                let mut entry = NewEntry::new(actor.clone(), Kind::Incident, Outcome::Succeeded);
                entry.action = (*field).into();
                entry.target = before.key.clone();
                entry.incident = before.key.clone();
                entry.reason = reason.clone();
                entry.params = json!({"from": from, "to": to});
                entry
            })
            .collect();
        let recorded = self.ledger.record_all_first(entries.clone(), "nothing was changed").await?;
        let value = |field: &str| changes.iter().find(|c| c.0 == field).map(|c| c.2.clone());
        let updated = sqlx::query(
            "update incidents set status = coalesce($1, status), severity = coalesce($2, severity), \
             summary = coalesce($3, summary), commander = coalesce($4, commander), scribe = coalesce($5, scribe), \
             milestones = $6, acknowledged_at_ms = coalesce(acknowledged_at_ms, $7) \
             where id = $8 and status = $9",
        )
        .bind(value("status"))
        .bind(value("severity"))
        .bind(value("summary"))
        .bind(value("commander"))
        .bind(value("scribe"))
        .bind(json!(milestones).to_string())
        .bind(now)
        .bind(id)
        .bind(&before.status)
        .execute(&self.db)
        .await
        .map_err(AppError::from)
        .and_then(|done| match done.rows_affected() {
            0 => Err(AppError::Conflict(format!("{} changed at the same moment; try again", before.key))),
            _ => Ok(()),
        });
        if let Err(error) = updated {
            for (entry, stored) in entries.into_iter().zip(&recorded) {
                self.ledger.record_failure(entry, stored.id, &error).await?;
            }
            return Err(error);
        }
        let incident = self.get(id).await?;
        self.publish(&incident).await;
        Ok(incident)
    }

    /// `POST /api/v1/incidents/{id}/notes`: `{text}` on the timeline.
    pub async fn note(&self, actor: Actor, id: i64, body: Value) -> Result<AuditEntry> {
        let mut map = Body::parse(body)?;
        let note = map.text("text", TEXT_MAX)?.filter(|t| !t.is_empty());
        let note = note.ok_or_else(|| AppError::invalid("text", "is required"))?;
        map.done()?;
        let incident = self.plain(id).await?;
        let mut entry = NewEntry::new(actor, Kind::Incident, Outcome::Succeeded);
        entry.action = "note".into();
        entry.target = incident.key.clone();
        entry.incident = incident.key.clone();
        entry.reason = note;
        // The entry is the note: nothing else changes.
        let appended = self.ledger.record_first(entry, "the note was not added").await?;
        self.acknowledge(&incident.key, appended.ts_ms).await?;
        Ok(appended)
    }

    /// Puts a probe's result on incident `key`'s timeline (404 for an incident that does
    /// not exist; the console checks that before probing).
    pub async fn record_probe(&self, actor: Actor, key: &str, probed: &app::dto::ProbeResult) -> Result<()> {
        let id = id_of(key).ok_or_else(|| AppError::invalid("incident", "must be an incident key, INC-<id>"))?;
        let incident = self.plain(id).await?;
        let mut entry = NewEntry::new(actor, Kind::Incident, Outcome::Succeeded);
        entry.action = "probe".into();
        entry.target = probed.url.chars().take(2048).collect();
        entry.incident = incident.key.clone();
        entry.params = json!({
            "status": probed.status, "total_ms": probed.timings.total_ms, "error": probed.error,
            "address": probed.address,
        });
        let appended = self.ledger.record_first(entry, "the probe is not on the timeline").await?;
        self.acknowledge(&incident.key, appended.ts_ms).await
    }

    /// `POST /api/v1/incidents/{id}/pins`: `{line, source?}` (a log line, as search shows
    /// it, and where it came from) on the timeline.
    pub async fn pin(&self, actor: Actor, id: i64, body: Value) -> Result<AuditEntry> {
        let mut map = Body::parse(body)?;
        let line = map.text("line", 4096)?.filter(|l| !l.is_empty());
        let line = line.ok_or_else(|| AppError::invalid("line", "is required: the log line to pin"))?;
        let source = map.text("source", 256)?.unwrap_or_default();
        map.done()?;
        let incident = self.plain(id).await?;
        if incident.status == "closed" {
            return Err(AppError::Conflict(format!("{} is closed; it changes no more", incident.key)));
        }
        let mut entry = NewEntry::new(actor, Kind::Incident, Outcome::Succeeded);
        entry.action = "pin".into();
        entry.target = source;
        entry.incident = incident.key.clone();
        entry.reason = line;
        let appended = self.ledger.record_first(entry, "the line was not pinned").await?;
        self.acknowledge(&incident.key, appended.ts_ms).await?;
        Ok(appended)
    }

    /// Stars (or unstars) ledger entry `entry` on incident `id`'s timeline. The change is
    /// on the record, but not on the timeline itself (its `incident` is left empty).
    pub async fn star(&self, actor: &Actor, id: i64, entry: i64, starred: bool) -> Result<()> {
        let incident = self.plain(id).await?;
        let on_timeline: Option<(i64,)> = sqlx::query_as("select id from audit_log where id = $1 and incident = $2")
            .bind(entry)
            .bind(&incident.key)
            .fetch_optional(&self.db)
            .await?;
        if on_timeline.is_none() {
            return Err(AppError::NotFound(format!("no entry {entry} on {}'s timeline", incident.key)));
        }
        let mut audit = NewEntry::new(actor.clone(), Kind::Incident, Outcome::Succeeded);
        audit.action = if starred { "star" } else { "unstar" }.into();
        audit.target = incident.key;
        audit.params = json!({ "entry": entry });
        let mark = || async {
            let query = if starred {
                sqlx::query(
                    "insert into incident_stars (incident_id, entry_id, starred_by, starred_at_ms) \
                     values ($1, $2, $3, $4) on conflict (incident_id, entry_id) do nothing",
                )
                .bind(id)
                .bind(entry)
                .bind(&actor.name)
                .bind(now_ms())
            } else {
                sqlx::query("delete from incident_stars where incident_id = $1 and entry_id = $2").bind(id).bind(entry)
            };
            query.execute(&self.db).await?;
            Ok(())
        };
        self.ledger.recorded(audit, "nothing was changed", mark).await?;
        Ok(())
    }

    /// Incident `id`'s timeline: every ledger entry that names it, oldest first (at most
    /// the newest [`TIMELINE_MAX`]).
    pub async fn timeline(&self, id: i64) -> Result<Timeline> {
        let incident = self.plain(id).await?;
        let rows = sqlx::query(&format!(
            "select {} from audit_log where incident = $1 order by id desc limit $2",
            crate::audit::COLUMNS
        ))
        .bind(&incident.key)
        .bind(TIMELINE_MAX)
        .fetch_all(&self.db)
        .await?;
        let starred: Vec<(i64,)> = sqlx::query_as("select entry_id from incident_stars where incident_id = $1")
            .bind(id)
            .fetch_all(&self.db)
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows.iter().rev() {
            let entry = crate::audit::from_row(row)?;
            entries.push(TimelineEntry {
                text: describe(&entry),
                starred: starred.iter().any(|(s,)| *s == entry.id),
                entry,
            });
        }
        Ok(Timeline { entries })
    }
}

/// One ledger entry as a sentence on a timeline.
pub fn describe(e: &AuditEntry) -> String {
    let params: Value = serde_json::from_str(&e.params).unwrap_or_default();
    let p = |k: &str| params[k].as_str().unwrap_or_default().to_string();
    let because = if e.reason.is_empty() { String::new() } else { format!(": {}", e.reason) };
    if e.outcome == "failed" && e.kind == "incident" {
        // The change was on the record first and then did not happen.
        return format!("{}'s {} did not happen: {}", e.actor, e.action, p("error"));
    }
    match (e.kind.as_str(), e.action.as_str()) {
        ("incident", "declare") => format!("{} declared {} ({}){because}", e.actor, e.target, p("severity")),
        ("incident", "note") => format!("{} noted: {}", e.actor, e.reason),
        ("incident", "status") => format!("{} moved it from {} to {}{because}", e.actor, p("from"), p("to")),
        ("incident", "commander") => format!("{} handed command from {} to {}{because}", e.actor, p("from"), p("to")),
        ("incident", "scribe") if p("to").is_empty() => format!("{} left nobody as scribe{because}", e.actor),
        ("incident", "scribe") => format!("{} made {} the scribe{because}", e.actor, p("to")),
        ("incident", "severity") => {
            format!("{} changed the severity from {} to {}{because}", e.actor, p("from"), p("to"))
        }
        ("incident", "summary") => format!("{} rewrote the summary", e.actor),
        ("incident", "probe") => match (params["status"].as_u64(), params["error"].as_str()) {
            (Some(status), _) => {
                format!(
                    "{} probed {}: HTTP {status} in {:.0} ms",
                    e.actor,
                    e.target,
                    params["total_ms"].as_f64().unwrap_or(0.0)
                )
            }
            (None, error) => format!("{} probed {}: {}", e.actor, e.target, error.unwrap_or("no answer")),
        },
        ("incident", "pin") if e.target.is_empty() => format!("{} pinned a log line: {}", e.actor, e.reason),
        ("incident", "pin") => format!("{} pinned a log line from {}: {}", e.actor, e.target, e.reason),
        ("incident", "step") => {
            let title = checklist::title_of(&p("step")).unwrap_or("a runbook step");
            match p("state").as_str() {
                "done" => format!("{} ticked \"{title}\"{because}", e.actor),
                "not_applicable" => format!("{} marked \"{title}\" not applicable{because}", e.actor),
                _ => format!("{} reopened \"{title}\"", e.actor),
            }
        }
        ("action_intent", _) if e.outcome == "denied" => {
            format!("{} was refused {} on {}", e.actor, e.action, e.target)
        }
        ("action_intent", _) => format!("{} ran {} on {}{because}", e.actor, e.action, e.target),
        ("action_outcome", _) => format!("{} on {} {}", e.action, e.target, e.outcome),
        ("undo", _) => format!("{} undid {} on {}{because}", e.actor, e.action, e.target),
        ("ttl_revert", _) => {
            format!("{} on {} reverted when its time limit passed ({})", e.action, e.target, e.outcome)
        }
        ("propagation", _) => format!("{} on {}: {}", e.action, e.target, e.reason),
        ("approval", _) => {
            let (who, what) = (p("requester"), format!("{} on {}", e.action, e.target));
            match p("step").as_str() {
                "request" => format!("{} asked for a second person's approval of {what}{because}", e.actor),
                "approve" => format!("{} approved {who}'s {what}{because}", e.actor),
                "deny" => format!("{} denied {who}'s {what}{because}", e.actor),
                "refuse" => format!("{who}'s {what} was not run{because}"),
                "expire" => format!("{who}'s request for {what} lapsed unanswered"),
                "break_glass" => format!("{} ran {what} by break-glass, without approval{because}", e.actor),
                "review" => format!("{} reviewed the break-glass {what}{because}", e.actor),
                _ => format!("{} {what}: {}", e.actor, p("step")),
            }
        }
        ("gateway_status", _) => format!("{} went from {} to {}{because}", e.target, p("from"), p("to")),
        (kind, _) => format!("{} {kind} {} {}{because}", e.actor, e.action, e.target),
    }
}
