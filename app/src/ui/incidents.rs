//! Incidents (issue 18): what waits for the signed-in user's approval, declaring an
//! incident, the list, and one incident: its status and roles, the runbook as a
//! checklist, notes, the timeline (refreshed as the ledger grows) and the postmortem.

use super::format::{encode, time};
use super::{on_ledger_change, quote, send};
use crate::client::operations;
use crate::dto::{ApiResult, Approval, ApprovalList, Checklist, Incident, IncidentList, Timeline};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

const STATUSES: [&str; 5] = ["investigating", "identified", "mitigated", "resolved", "closed"];

/// `/incidents`, and `/incidents?id=N` for one.
#[component]
pub fn IncidentsPage() -> impl IntoView {
    let query = use_query_map();
    move || match query.with(|q| q.get("id").and_then(|v| v.parse::<i64>().ok())) {
        Some(id) => view! { <IncidentView id /> }.into_any(),
        None => view! {
            <h1>"Incidents"</h1>
            <Approvals />
            <Declare />
            <IncidentTable />
        }
        .into_any(),
    }
}

/// What waits for the signed-in user: requests to approve or deny, break-glass runs to
/// review.
#[component]
fn Approvals() -> impl IntoView {
    let list = RwSignal::new(None::<ApiResult<ApprovalList>>);
    // What the person just decided stays said here after the request leaves the list.
    let decided = RwSignal::new(None::<String>);
    on_ledger_change(move || {
        leptos::task::spawn_local(async move { list.set(Some(operations().approvals("for=me".into()).await)) })
    });
    view! {
        <div class="approvals-wrap">
        {move || decided.get().map(|d| view! { <p class="run-notice run-notice-ok" role="status" data-testid="decided">{d}</p> })}
        {move || {
            list.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                Ok(l) if l.approvals.is_empty() => ().into_any(),
                Ok(l) => view! {
                    <section class="card approvals" data-testid="approvals">
                        <h2>"Waiting for you"</h2>
                        {l.approvals.into_iter().map(|a| view! { <ApprovalRow a decided /> }).collect_view()}
                    </section>
                }
                .into_any(),
            })
        }}
        </div>
    }
}

#[component]
fn ApprovalRow(a: Approval, decided: RwSignal<Option<String>>) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(None::<String>);
    let id = a.id;
    let summary = StoredValue::new(format!("{} on {} ({}'s request #{id})", a.action, a.gateway, a.requester));
    let decide = move |how: &'static str| {
        let body = format!("{{\"reason\":{}}}", quote(&reason.get_untracked()));
        let summary = summary.get_value();
        leptos::task::spawn_local(async move {
            match send("POST", format!("/approvals/{id}/{how}"), body).await {
                Ok(_) => {
                    let said = match how {
                        "approve" => format!("Approved {summary}: it runs now, as planned."),
                        "deny" => format!("Denied {summary}: nothing changes."),
                        _ => format!("Reviewed {summary}."),
                    };
                    done.set(Some(said.clone()));
                    decided.set(Some(said));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let glass = a.status == "break_glass";
    let what = if glass {
        format!("{} ran by break-glass: {}", a.requester, a.preview.summary)
    } else {
        format!("{} asks: {}", a.requester, a.preview.summary)
    };
    view! {
        <div class="approval" data-testid="approval-row" data-approval=id>
            <p>
                <strong>{what}</strong>
                {(!a.incident.is_empty()).then(|| format!(" · {}", a.incident))}
            </p>
            <p class="muted">{format!("Why: {}", a.reason)}</p>
            {move || match done.get() {
                Some(d) => view! { <p class="ok">{d}</p> }.into_any(),
                None => view! {
                    <div class="approval-buttons">
                        <input aria-label="Your reason" placeholder="your reason" bind:value=reason />
                        {if glass {
                            view! { <button class="btn" on:click=move |_| decide("review")>"Mark reviewed"</button> }
                                .into_any()
                        } else {
                            view! {
                                <button class="btn" data-testid="approve" on:click=move |_| decide("approve")>"Approve"</button>
                                <button class="btn btn-ghost" on:click=move |_| decide("deny")>"Deny"</button>
                            }
                                .into_any()
                        }}
                    </div>
                }
                .into_any(),
            }}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </div>
    }
}

/// Declaring an incident (prefilled from `?gateway=`).
#[component]
fn Declare() -> impl IntoView {
    let query = use_query_map();
    let title = RwSignal::new(String::new());
    let severity = RwSignal::new("sev2".to_string());
    let gateways = RwSignal::new(query.with_untracked(|q| q.get("gateway").unwrap_or_default()));
    // Without a gateway named (declared from the health page or the menu), the gateways
    // critical now, once the live feed has them, unless the person typed already.
    if gateways.with_untracked(String::is_empty) {
        let live = super::use_live();
        Effect::new(move |filled: Option<bool>| {
            if filled == Some(true) {
                return true;
            }
            let critical = live.with(|s| {
                s.as_ref().map(|s| {
                    s.gateways
                        .iter()
                        .filter(|g| g.summary.status == crate::health::HealthStatus::Critical)
                        .map(|g| g.summary.id.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
            });
            match critical {
                Some(ids) => {
                    if gateways.with_untracked(String::is_empty) {
                        gateways.set(ids);
                    }
                    true
                }
                None => false,
            }
        });
    }
    let summary = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let declare = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let list: Vec<String> =
            gateways.get_untracked().split(',').map(|g| quote(g.trim())).filter(|g| g.len() > 2).collect();
        let body = format!(
            "{{\"title\":{},\"severity\":{},\"summary\":{},\"gateways\":[{}]}}",
            quote(&title.get_untracked()),
            quote(&severity.get_untracked()),
            quote(&summary.get_untracked()),
            list.join(",")
        );
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match send("POST", "/incidents".into(), body).await {
                Ok(text) => match serde_json::from_str::<Incident>(&text) {
                    Ok(i) => navigate(&format!("/incidents?id={}", i.id), Default::default()),
                    Err(e) => error.set(Some(format!("The incident was declared, but its answer was unreadable: {e}"))),
                },
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <form class="card declare" on:submit=declare data-testid="declare">
            <h2>"Declare an incident"</h2>
            <label>"Title" <input name="title" bind:value=title /></label>
            <label>
                "Severity"
                <select name="severity" bind:value=severity>
                    <option value="sev1">"sev1 (worst)"</option>
                    <option value="sev2">"sev2"</option>
                    <option value="sev3">"sev3"</option>
                    <option value="sev4">"sev4"</option>
                </select>
            </label>
            <label>"Gateways (ids, comma-separated)" <input name="gateways" bind:value=gateways /></label>
            <label>"What is known" <textarea name="summary" bind:value=summary></textarea></label>
            <button class="btn" type="submit">"Declare incident"</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </form>
    }
}

#[component]
fn IncidentTable() -> impl IntoView {
    let list = RwSignal::new(None::<ApiResult<IncidentList>>);
    on_ledger_change(move || {
        leptos::task::spawn_local(async move { list.set(Some(operations().incidents(String::new()).await)) })
    });
    move || {
        list.get().map(|r| match r {
            Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
            Ok(l) if l.incidents.is_empty() => view! { <p class="muted">"No incident yet."</p> }.into_any(),
            Ok(l) => view! {
                <table class="grid" data-testid="incident-list">
                    <thead>
                        <tr><th>"Incident"</th><th>"Severity"</th><th>"Status"</th><th>"Commander"</th><th>"Declared"</th></tr>
                    </thead>
                    <tbody>
                        {l
                            .incidents
                            .into_iter()
                            .map(|i| view! {
                                <tr>
                                    <td><a href=format!("/incidents?id={}", i.id)>{format!("{} · {}", i.key, i.title)}</a></td>
                                    <td>{i.severity}</td>
                                    <td>{i.status}</td>
                                    <td>{i.commander}</td>
                                    <td>{time(i.declared_at_ms)}</td>
                                </tr>
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
            .into_any(),
        })
    }
}

fn seconds(s: Option<i64>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) => format!("{} min {} s", s / 60, s % 60),
    }
}

/// One incident.
#[component]
fn IncidentView(id: i64) -> impl IntoView {
    let incident = RwSignal::new(None::<ApiResult<Incident>>);
    let timeline = RwSignal::new(None::<ApiResult<Timeline>>);
    let checklist = RwSignal::new(None::<ApiResult<Checklist>>);
    let error = RwSignal::new(None::<String>);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            let ops = operations();
            incident.set(Some(ops.incident(id).await));
            timeline.set(Some(ops.timeline(id).await));
            checklist.set(Some(ops.checklist(id).await));
        })
    };
    on_ledger_change(refresh);
    let write = move |method: &'static str, path: String, body: String| {
        error.set(None);
        leptos::task::spawn_local(async move {
            match send(method, path, body).await {
                Ok(_) => refresh(),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let reason = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let commander = RwSignal::new(String::new());
    let scribe = RwSignal::new(String::new());
    view! {
        <p class="crumbs"><a href="/incidents">"Incidents"</a>" / "</p>
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        {move || incident.get().map(|r| match r {
            Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
            Ok(i) => {
                let status = i.status.clone();
                let next: Vec<&'static str> = STATUSES
                    .into_iter()
                    .filter(|s| *s != status && (*s != "closed" || status == "resolved") && status != "closed")
                    .collect();
                let gateways = i.gateways.iter().map(|g| view! { <a href=format!("/gateways/{}", encode(g))>{g.clone()}</a>" " }).collect_view();
                view! {
                    <div class="gw-header">
                        <h1>
                            {format!("{} · {}", i.key, i.title)}
                            <span class=format!("badge badge-{}", if i.status == "resolved" || i.status == "closed" { "healthy" } else { "critical" }) data-testid="incident-status">{i.status.clone()}</span>
                        </h1>
                        <p class="muted">
                            {format!("{} · commander {} · scribe {} · declared {} by {} · ", i.severity, i.commander, if i.scribe.is_empty() { "—" } else { &i.scribe }, time(i.declared_at_ms), i.declared_by)}
                            {gateways}
                        </p>
                        <p class="muted">
                            {format!("Acknowledged after {} · mitigated after {} · resolved after {}", seconds(i.time_to_acknowledge_s), seconds(i.time_to_mitigate_s), seconds(i.time_to_resolve_s))}
                        </p>
                        {(!i.summary.is_empty()).then(|| view! { <p>{i.summary.clone()}</p> })}
                    </div>
                    <div class="incident-controls">
                        <input aria-label="Why (optional)" placeholder="why (optional)" bind:value=reason />
                        {next
                            .into_iter()
                            .map(|s| view! {
                                <button class="btn" data-status=s on:click=move |_| write("PATCH", format!("/incidents/{id}"), format!("{{\"status\":\"{s}\",\"reason\":{}}}", quote(&reason.get_untracked())))>
                                    {format!("Mark {s}")}
                                </button>
                            })
                            .collect_view()}
                        <a class="btn btn-ghost" href=format!("/api/v1/incidents/{id}/postmortem.md") download="" data-testid="postmortem">"Postmortem (Markdown)"</a>
                    </div>
                    <div class="incident-controls">
                        <input aria-label="Commander" placeholder="hand command to (user)" bind:value=commander />
                        <input aria-label="Scribe" placeholder="scribe (user)" bind:value=scribe />
                        <button class="btn btn-ghost" on:click=move |_| {
                            let (c, s) = (commander.get_untracked(), scribe.get_untracked());
                            let mut fields = Vec::new();
                            if !c.trim().is_empty() { fields.push(format!("\"commander\":{}", quote(c.trim()))); }
                            if !s.trim().is_empty() { fields.push(format!("\"scribe\":{}", quote(s.trim()))); }
                            write("PATCH", format!("/incidents/{id}"), format!("{{{}}}", fields.join(",")));
                        }>"Hand over"</button>
                    </div>
                    {i.training.clone().map(|t| view! {
                        <section class="card training" data-testid="training">
                            <h2>"Training"</h2>
                            <p>{format!("Scenario {}: its known cure is to {} ({}).", t.scenario, t.cure, t.cure_actions.join(" or "))}</p>
                            <p>
                                {format!(
                                    "You used {} — {} — and mitigated it after {}.",
                                    if t.used_actions.is_empty() { "no action".to_string() } else { t.used_actions.join(", ") },
                                    if t.cured_by_a_known_cure { "a known cure" } else { "not a known cure" },
                                    seconds(t.mitigated_after_s)
                                )}
                            </p>
                            {(!t.steps_used.is_empty()).then(|| view! { <p class="muted">{format!("Runbook steps used: {}.", t.steps_used.join("; "))}</p> })}
                        </section>
                    })}
                    {(!i.followups.is_empty()).then(|| view! {
                        <h2>"Follow-ups"</h2>
                        <ul class="followups">
                            {i.followups.iter().map(|f| view! { <li class=if f.open { "open" } else { "done" }>{format!("{}{}", if f.open { "☐ " } else { "☑ " }, f.text)}</li> }).collect_view()}
                        </ul>
                    })}
                }
                .into_any()
            }
        })}
        <div class="incident-columns">
            <section>
                <h2>"Runbook"</h2>
                {move || checklist.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                    Ok(c) => view! {
                        <ol class="checklist" data-testid="checklist">
                            {c.steps.into_iter().map(|s| {
                                let step = s.id.clone();
                                let step2 = s.id.clone();
                                let step_note = RwSignal::new(String::new());
                                let mark = s.mark.as_ref().map(|m| match m.state.as_str() {
                                    "not_applicable" => format!("not applicable ({}, {}): {}", m.by, time(m.at_ms), m.note),
                                    _ => format!("done by {} at {}{}", m.by, time(m.at_ms), if m.note.is_empty() { String::new() } else { format!(": {}", m.note) }),
                                });
                                view! {
                                    <li class=if s.mark.is_some() { "step ticked" } else { "step" } data-step=s.id.clone()>
                                        <span class="step-title">{format!("{} · {}", s.section, s.title)}</span>
                                        " "<a href=s.opens.clone()>"Open"</a>
                                        {mark.map(|m| view! { <span class="muted step-mark">{m}</span> })}
                                        <span class="step-buttons">
                                            <input aria-label="Note" placeholder="note" bind:value=step_note />
                                            <button class="btn btn-ghost" on:click=move |_| write("POST", format!("/incidents/{id}/checklist/{step}"), format!("{{\"state\":\"done\",\"note\":{}}}", quote(&step_note.get_untracked())))>"Done"</button>
                                            <button class="btn btn-ghost" on:click=move |_| write("POST", format!("/incidents/{id}/checklist/{step2}"), format!("{{\"state\":\"not_applicable\",\"note\":{}}}", quote(&step_note.get_untracked())))>"N/A"</button>
                                        </span>
                                    </li>
                                }
                            }).collect_view()}
                        </ol>
                    }
                    .into_any(),
                })}
            </section>
            <section>
                <h2>"Timeline"</h2>
                <form class="note" on:submit=move |ev| {
                    ev.prevent_default();
                    write("POST", format!("/incidents/{id}/notes"), format!("{{\"text\":{}}}", quote(&note.get_untracked())));
                    note.set(String::new());
                }>
                    <input aria-label="Note" placeholder="add a note to the timeline" bind:value=note />
                    <button class="btn" type="submit">"Add note"</button>
                </form>
                {move || timeline.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                    Ok(t) => view! {
                        <ol class="timeline" data-testid="timeline">
                            {t.entries.into_iter().rev().map(|e| {
                                let entry = e.entry.id;
                                let starred = e.starred;
                                view! {
                                    <li class=if starred { "starred" } else { "" }>
                                        <button class="star" aria-label=if starred { "Unstar" } else { "Star for the postmortem" } on:click=move |_| write(if starred { "DELETE" } else { "PUT" }, format!("/incidents/{id}/timeline/{entry}/star"), String::new())>
                                            {if starred { "★" } else { "☆" }}
                                        </button>
                                        <span class="muted">{time(e.entry.ts_ms)}</span>" "{e.text}
                                    </li>
                                }
                            }).collect_view()}
                        </ol>
                    }
                    .into_any(),
                })}
            </section>
        </div>
    }
}
