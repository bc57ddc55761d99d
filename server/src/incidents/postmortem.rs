//! The postmortem of an incident: what a team pastes into its wiki afterwards, built from
//! the same records as everything else (the incident, its timeline in the ledger, the
//! actions that named it, the gateways' series over its window).

use super::Incidents;
use crate::error::Result;
use app::dto::{ActionRecord, ImpactReading, Incident, Postmortem, TimelineEntry, WindowImpact};
use std::fmt::Write;

impl Incidents {
    /// Incident `id`'s postmortem.
    pub async fn postmortem(&self, id: i64) -> Result<Postmortem> {
        let incident = self.get(id).await?;
        // The window on the charts' clock: from the declaration to the first
        // resolution (or now).
        let start = incident.milestones.first().and_then(|m| m.chart_ms).unwrap_or(i64::MIN);
        let end = incident
            .milestones
            .iter()
            .find(|m| m.status == "resolved")
            .and_then(|m| m.chart_ms)
            .unwrap_or_else(|| self.health.chart_now_ms());
        let mut impact = Vec::new();
        for gateway in &incident.gateways {
            let series = self.health.series(gateway).await.unwrap_or_default();
            let inside: Vec<_> = series.iter().filter(|p| p.ts_ms >= start && p.ts_ms <= end).collect();
            let stats = |f: &dyn Fn(&app::dto::SeriesPoint) -> f64| {
                let values: Vec<f64> = inside.iter().map(|p| f(p)).filter(|v| v.is_finite()).collect();
                let mean = if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 };
                (mean, values.iter().copied().fold(0.0, f64::max))
            };
            impact.push(WindowImpact {
                gateway: gateway.clone(),
                points: inside.len(),
                rps: stats(&|p| p.rps),
                error_rate_5xx: stats(&|p| p.error_rate_5xx),
                p99_ms: stats(&|p| p.latency_ms.p99),
            });
        }
        let actions = crate::actions::store::for_incident(&self.db, &incident.key).await?;
        let timeline = self.timeline(id).await?.entries;
        let starred_only = timeline.iter().any(|e| e.starred);
        let timeline = timeline.into_iter().filter(|e| e.starred || !starred_only).collect();
        let break_glass = crate::actions::approval::for_incident(&self.db, &incident.key)
            .await?
            .into_iter()
            .filter(|a| a.status == "break_glass" || a.status == "reviewed")
            .collect();
        Ok(Postmortem { incident, impact, actions, timeline, starred_only, break_glass })
    }
}

/// `ms` Unix milliseconds as `2026-11-30 10:02:11 UTC`.
fn at(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

/// `seconds` as `1 h 2 min 5 s`.
fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    }
}

fn percent(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// Text for a Markdown table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

fn reading(r: &Option<ImpactReading>) -> String {
    match r {
        Some(r) => {
            format!("5xx {} · 429 {} · p99 {:.0} ms", percent(r.error_rate_5xx), percent(r.throttle_rate_429), r.p99_ms)
        }
        None => "—".into(),
    }
}

fn action_outcome(a: &ActionRecord) -> String {
    let mut out = a.status.clone();
    if let Some(by) = a.undone_by {
        out.push_str(&format!(", undone by #{by}"));
    }
    if a.detail.contains("reverted when its time limit") {
        out.push_str(", reverted at its time limit");
    }
    out
}

/// The postmortem as Markdown.
pub fn markdown(p: &Postmortem) -> String {
    let i: &Incident = &p.incident;
    let mut md = String::new();
    let _ = writeln!(md, "# Postmortem: {} — {}\n", i.key, i.title);
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| Severity | {} |", i.severity);
    let _ = writeln!(md, "| Status | {} |", i.status);
    let _ = writeln!(md, "| Gateways | {} |", if i.gateways.is_empty() { "—".into() } else { i.gateways.join(", ") });
    let _ = writeln!(md, "| Declared | {} by {} |", at(i.declared_at_ms), i.declared_by);
    let _ = writeln!(md, "| Commander | {} |", i.commander);
    let _ = writeln!(md, "| Scribe | {} |", if i.scribe.is_empty() { "—" } else { &i.scribe });
    for (label, value) in [
        ("Time to acknowledge", i.time_to_acknowledge_s),
        ("Time to mitigate", i.time_to_mitigate_s),
        ("Time to resolve", i.time_to_resolve_s),
    ] {
        let _ = writeln!(md, "| {label} | {} |", value.map(duration).unwrap_or_else(|| "—".into()));
    }
    let _ = writeln!(md, "\n## Summary\n\n{}\n", if i.summary.is_empty() { "_To fill in._" } else { &i.summary });

    let _ = writeln!(md, "## Impact\n");
    if p.impact.is_empty() {
        let _ = writeln!(md, "No gateway was named by the incident.\n");
    } else {
        let _ = writeln!(md, "Over the incident's window (declared to resolved), each gateway's mean and peak:\n");
        let _ = writeln!(md, "| Gateway | Requests/s | 5xx | p99 | Points |\n|---|---|---|---|---|");
        for g in &p.impact {
            let _ = writeln!(
                md,
                "| {} | {:.0} (peak {:.0}) | {} (peak {}) | {:.0} ms (peak {:.0} ms) | {} |",
                g.gateway,
                g.rps.0,
                g.rps.1,
                percent(g.error_rate_5xx.0),
                percent(g.error_rate_5xx.1),
                g.p99_ms.0,
                g.p99_ms.1,
                g.points
            );
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## Milestones\n\n| Status | When | By | After the previous |\n|---|---|---|---|");
    let mut previous = None;
    for m in &i.milestones {
        let since = previous.map(|p: i64| duration((m.at_ms - p) / 1000)).unwrap_or_else(|| "—".into());
        let _ = writeln!(md, "| {} | {} | {} | {since} |", m.status, at(m.at_ms), m.by);
        previous = Some(m.at_ms);
    }

    let _ = writeln!(md, "\n## Actions\n");
    if p.actions.is_empty() {
        let _ = writeln!(md, "None was taken for this incident.");
    } else {
        let _ = writeln!(
            md,
            "| # | Action | On | By | Why | Outcome | Before | 60 s after |\n|---|---|---|---|---|---|---|---|"
        );
        for a in &p.actions {
            let name = match a.undo_of {
                Some(o) => format!("{} (undo of #{o})", a.action),
                None => a.action.clone(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                a.id,
                cell(&name),
                cell(&a.gateway),
                cell(&a.actor),
                cell(&a.reason),
                cell(&action_outcome(a)),
                reading(&a.impact_before),
                reading(&a.impact_after)
            );
        }
    }

    let _ = writeln!(md, "\n## Break-glass\n");
    if p.break_glass.is_empty() {
        let _ = writeln!(md, "No action ran without its approval.");
    }
    for a in &p.break_glass {
        let review = match a.status.as_str() {
            "reviewed" => format!("reviewed by {}: {}", a.decided_by, a.decision_reason),
            _ => "**not reviewed yet**".to_string(),
        };
        let _ = writeln!(
            md,
            "- action #{} ({} on {}) by {}: {} — {review}",
            a.action_id.unwrap_or_default(),
            a.action,
            a.gateway,
            a.requester,
            a.reason.replace('\n', " ")
        );
    }
    let _ = writeln!(md, "\n## Follow-ups\n");
    if i.followups.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for f in &i.followups {
        let done = if f.open { " ".to_string() } else { "x".to_string() };
        let by = if f.open { String::new() } else { format!(" (done by {})", f.closed_by) };
        let _ = writeln!(md, "- [{done}] {}{by}", f.text.replace('\n', " "));
    }

    let _ = writeln!(md, "\n## Timeline{}\n", if p.starred_only { " (starred entries)" } else { "" });
    for e in &p.timeline {
        let TimelineEntry { entry, text, .. } = e;
        let _ = writeln!(md, "- {} — {}", at(entry.ts_ms), text.replace('\n', " "));
    }
    if let Some(t) = &i.training {
        let _ = writeln!(md, "\n## Training\n");
        let _ =
            writeln!(md, "Scenario `{}`. Its known cure: {} ({}).", t.scenario, t.cure, t.cure_actions.join(" or "));
        let used = if t.used_actions.is_empty() { "no action".to_string() } else { t.used_actions.join(", ") };
        let verdict = if t.cured_by_a_known_cure { "a known cure" } else { "not a known cure" };
        let after = t.mitigated_after_s.map(duration).unwrap_or_else(|| "—".into());
        let _ = writeln!(md, "This response used {used} ({verdict}), mitigated after {after}.");
        if !t.steps_used.is_empty() {
            let _ = writeln!(md, "Runbook steps used: {}.", t.steps_used.join("; "));
        }
    }
    let _ = writeln!(md, "\n## Causes\n\n_To fill in: what broke, and why it could._\n");
    let _ = writeln!(
        md,
        "## Action items\n\n- [ ] _To fill in: what changes so this does not happen again, and who owns it._"
    );
    md
}
