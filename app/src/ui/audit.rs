//! `/audit`: search, page through, inspect, verify and export the audit trail.

use super::format::encode;
use crate::client::operations;
use crate::dto::{AuditEntry, AuditEntryDetail, AuditVerification};
use leptos::prelude::*;

use super::format::time;

const FILTERS: [(&str, &str); 6] = [
    ("actor", "Actor"),
    ("action", "Action"),
    ("target", "Target"),
    ("outcome", "Outcome"),
    ("incident", "Incident"),
    ("q", "Text"),
];

/// The audit trail page.
#[component]
pub fn AuditPage() -> impl IntoView {
    let inputs: Vec<RwSignal<String>> = FILTERS.iter().map(|_| RwSignal::new(String::new())).collect();
    let query = RwSignal::new(String::from("limit=50"));
    let cursor = RwSignal::new(None::<i64>);
    let page = Resource::new(
        move || (query.get(), cursor.get()),
        |(q, c)| {
            let console = operations();
            let q = match c {
                Some(c) => format!("{q}&cursor={c}"),
                None => q,
            };
            async move { console.audit(q).await }
        },
    );
    let verification = RwSignal::new(None::<AuditVerification>);
    // New entries arrive live; the list refreshes when the reviewer asks, so rows do not
    // move under someone reading them.
    let live = super::use_live_audit();
    let seen = RwSignal::new(0u32);
    let fresh = move || live.get().saturating_sub(seen.get());
    // Minutes back from now ("" = any time); the browser's clock sets `since`.
    let window = RwSignal::new(String::new());
    let fields = inputs.clone();
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut q = String::from("limit=50");
        for ((name, _), v) in FILTERS.iter().zip(&fields) {
            let v = v.get_untracked();
            if !v.trim().is_empty() {
                q.push_str(&format!("&{name}={}", encode(v.trim())));
            }
        }
        #[cfg(feature = "hydrate")]
        if let Ok(minutes) = window.get_untracked().parse::<f64>() {
            let since = js_sys::Date::now() - minutes * 60_000.0;
            q.push_str(&format!("&since={}", since as i64));
        }
        cursor.set(None);
        query.set(q);
    };
    let verify = move |_| {
        let c = operations();
        leptos::task::spawn_local(async move {
            if let Ok(v) = c.verify_audit().await {
                verification.set(Some(v));
            }
        });
    };
    let export = move |format: &str| {
        let filters = query.with(|q| q.split('&').filter(|p| !p.starts_with("limit=")).collect::<Vec<_>>().join("&"));
        if filters.is_empty() {
            format!("/api/v1/audit/export?format={format}")
        } else {
            format!("/api/v1/audit/export?format={format}&{filters}")
        }
    };
    // Effects run only in the browser, after hydration: until then the filters are plain
    // HTML and a search would ignore them (tests wait for this).
    let ready = RwSignal::new(false);
    Effect::new(move |_| ready.set(true));
    view! {
        <h1>"Audit trail"</h1>
        <form class="filters" on:submit=search data-testid="audit-filters" data-ready=move || ready.get().to_string()>
            {FILTERS
                .iter()
                .zip(inputs)
                .map(|((name, label), v)| {
                    // The filters match whole values: offer the ones there are.
                    let list = match *name {
                        "action" => Some("audit-actions"),
                        "outcome" => Some("audit-outcomes"),
                        _ => None,
                    };
                    view! { <input name=*name placeholder=*label list=list bind:value=v /> }
                })
                .collect_view()}
            <datalist id="audit-actions">
                {["restart", "scale", "rollback", "rate-limit", "timeouts", "circuit-breaker", "bypass"]
                    .map(|v| view! { <option value=v></option> })
                    .collect_view()}
            </datalist>
            <datalist id="audit-outcomes">
                {["pending", "succeeded", "failed", "denied"].map(|v| view! { <option value=v></option> }).collect_view()}
            </datalist>
            <select
                name="window"
                on:change=move |ev| window.set(event_target_value(&ev))
                data-testid="audit-window"
            >
                <option value="">"Any time"</option>
                <option value="15">"Last 15 minutes"</option>
                <option value="60">"Last hour"</option>
                <option value="1440">"Last 24 hours"</option>
            </select>
            <button class="btn" type="submit">"Search"</button>
            <button class="btn" type="button" on:click=verify data-testid="verify">"Verify chain"</button>
            // A download, not a page: `rel="external"` keeps the router from taking the
            // click (it would show "Not found"), and the export is the whole filtered set,
            // so the page size does not go with it.
            <a class="btn btn-ghost" rel="external" download="gatewarden-audit.csv" href=move || export("csv")>
                "Export CSV"
            </a>
            <a class="btn btn-ghost" rel="external" download="gatewarden-audit.jsonl" href=move || export("jsonl")>
                "Export JSONL"
            </a>
        </form>
        <Show when=move || { fresh() > 0 }>
            <button
                class="btn btn-ghost new-entries"
                data-testid="new-entries"
                on:click=move |_| {
                    seen.set(live.get_untracked());
                    cursor.set(None);
                    page.refetch();
                }
            >
                {move || match fresh() {
                    1 => "1 new entry · show".to_string(),
                    n => format!("{n} new entries · show"),
                }}
            </button>
        </Show>
        {move || {
            verification
                .get()
                .map(|v| {
                    if v.ok {
                        let signed = match v.signed_from {
                            Some(1) => ", every entry signed".to_string(),
                            Some(id) => format!(", signed from #{id}"),
                            None => ", not signed".to_string(),
                        };
                        let checkpoint = match v.checkpoint_head_id {
                            Some(id) => format!(", matches the checkpoint at #{id}"),
                            None => String::new(),
                        };
                        let text = format!(
                            "Ledger intact: {} entries{signed}{checkpoint}; head {}…",
                            v.entries,
                            v.head_hash.get(..12).unwrap_or_default()
                        );
                        view! { <p class="verify-ok" data-testid="verify-result">{text}</p> }.into_any()
                    } else {
                        let summary = format!(
                            "Ledger check failed ({} entries checked): {} {}",
                            v.entries,
                            v.problems.len(),
                            if v.problems.len() == 1 { "problem" } else { "problems" },
                        );
                        view! {
                            <div class="verify-bad" data-testid="verify-result" role="alert">
                                <p>{summary}</p>
                                <ul>
                                    {v
                                        .problems
                                        .iter()
                                        .map(|p| {
                                            let text = format!("{} check, #{}: {}", p.check, p.id, p.message);
                                            view! { <li>{text}</li> }
                                        })
                                        .collect_view()}
                                </ul>
                            </div>
                        }
                            .into_any()
                    }
                })
        }}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) if p.entries.is_empty() && cursor.get_untracked().is_none() => {
                        view! { <p class="muted" data-testid="audit-empty">"No entries match these filters."</p> }
                            .into_any()
                    }
                    Ok(p) => {
                        let next = p.next_cursor;
                        view! {
                            <table class="grid audit" data-testid="audit-table">
                                <thead>
                                    <tr>
                                        <th>"#"</th>
                                        <th>{format!("Time ({})", super::format::zone_label())}</th>
                                        <th>"Actor"</th>
                                        <th>"Kind"</th>
                                        <th>"Action"</th>
                                        <th>"Target"</th>
                                        <th>"Outcome"</th>
                                        <th>"Reason"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {p
                                        .entries
                                        .into_iter()
                                        .map(|e| {
                                            let settled = p.settled.get(&e.id).cloned();
                                            view! { <EntryRow e settled /> }
                                        })
                                        .collect_view()}
                                </tbody>
                            </table>
                            {next.map(|c| view! { <button class="btn" on:click=move |_| cursor.set(Some(c))>"Older entries"</button> })}
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// An entry; an intent shows how it ended (`settled`) rather than the "pending" it was
/// written with, which stays in the entry itself.
#[component]
fn EntryRow(e: AuditEntry, settled: Option<String>) -> impl IntoView {
    let open = RwSignal::new(false);
    let (shown, title) = match settled {
        Some(end) => (end, "written as pending; this is how it ended".to_string()),
        None => (e.outcome.clone(), String::new()),
    };
    let outcome = match shown.as_str() {
        "succeeded" => "healthy",
        "pending" => "degraded",
        _ => "critical",
    };
    let id = e.id;
    view! {
        <tr class="entry" on:click=move |_| open.update(|o| *o = !*o)>
            <td>{e.id}</td>
            <td><code>{time(e.ts_ms)}</code></td>
            <td>{e.actor}</td>
            <td>{e.kind}</td>
            <td>{e.action}</td>
            <td>{e.target}</td>
            <td>
                <span class=format!("badge badge-{outcome}") title=title data-testid="entry-outcome">
                    {shown}
                </span>
            </td>
            <td class="reason">{e.reason}</td>
        </tr>
        <Show when=move || open.get()>
            <tr class="entry-detail">
                <td colspan="8">
                    <EntryDetail id />
                </td>
            </tr>
        </Show>
    }
}

/// Field-by-field differences between two JSON objects (the state before an action and
/// after it): `(field, before, after)` for every top-level field that changed.
pub fn state_diff(before: &str, after: &str) -> Vec<(String, String, String)> {
    use serde_json::{Map, Value};
    let object = |s: &str| match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let (b, a) = (object(before), object(after));
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| v.map_or_else(|| "—".to_string(), Value::to_string);
    keys.into_iter().filter(|k| b.get(*k) != a.get(*k)).map(|k| (k.clone(), show(b.get(k)), show(a.get(k)))).collect()
}

#[component]
fn EntryDetail(id: i64) -> impl IntoView {
    let detail = Resource::new(
        move || id,
        |id| {
            let c = operations();
            async move { c.audit_entry(id).await }
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <EntryView d /> }.into_any(),
                    Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn EntryView(d: AuditEntryDetail) -> impl IntoView {
    let AuditEntryDetail { entry, linked } = d;
    // The state before comes from the intent; the state after from its outcome.
    let all: Vec<&AuditEntry> = std::iter::once(&entry).chain(linked.iter()).collect();
    let before =
        all.iter().find(|e| !e.before_state.is_empty() && e.intent_id.is_none()).map(|e| e.before_state.clone());
    let after =
        all.iter().rev().find(|e| e.intent_id.is_some() && !e.after_state.is_empty()).map(|e| e.after_state.clone());
    let diff = match (&before, &after) {
        (Some(b), Some(a)) => state_diff(b, a),
        _ => Vec::new(),
    };
    let links = linked
        .into_iter()
        .map(|l| format!("#{} {} ({}) by {}", l.id, l.kind, l.outcome, l.actor))
        .collect::<Vec<_>>()
        .join(" · ");
    view! {
        <dl data-testid="entry-detail">
            <dt>"Params"</dt>
            <dd><code>{entry.params}</code></dd>
            <dt>"Changed"</dt>
            <dd>
                {if diff.is_empty() {
                    view! { <span class="muted">"no state change recorded"</span> }.into_any()
                } else {
                    view! {
                        <table class="diff" data-testid="state-diff">
                            <tbody>
                                {diff
                                    .into_iter()
                                    .map(|(k, b, a)| view! { <tr><td>{k}</td><td><code>{b}</code></td><td>"→"</td><td><code>{a}</code></td></tr> })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }}
            </dd>
            <dt>"Linked"</dt>
            <dd>{if links.is_empty() { "—".to_string() } else { links }}</dd>
            <dt>"From"</dt>
            <dd>{format!("{} · {} · request {}", entry.client_addr, entry.user_agent, entry.request_id)}</dd>
            <dt>"Hash"</dt>
            <dd><code>{format!("{} (previous {})", entry.hash, entry.prev_hash)}</code></dd>
        </dl>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::super::format::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::super::format::utc(1_767_261_600_000), "2026-01-01 10:00:00");
        assert_eq!(super::super::format::utc(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn the_state_diff_lists_only_changed_fields() {
        let d = super::state_diff(
            r#"{"replicas":4,"version":"2.14.1","rate_limit":null}"#,
            r#"{"replicas":8,"version":"2.14.1","rate_limit":null}"#,
        );
        assert_eq!(d, vec![("replicas".to_string(), "4".to_string(), "8".to_string())]);
        assert!(super::state_diff("", "{}").is_empty());
    }
}
