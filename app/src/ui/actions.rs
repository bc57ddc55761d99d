//! The runbook's buttons on a gateway page: role-gated, previewed, reasoned, confirmed,
//! and the live list of what was done, with impact and undo. The server decides every
//! rule; this only collects input and shows answers.

use super::use_live_actions;
use super::{format, quote};
use crate::client::operations;
use crate::dto::{ActionRecord, ApiResult, Preview, Role, SessionInfo};
use leptos::prelude::*;

/// One input of an action's form.
struct Field {
    name: &'static str,
    label: &'static str,
    /// Sent as a number (else as text).
    number: bool,
    /// A choice of these (value, label), instead of free input; the first is the default.
    choices: &'static [(&'static str, &'static str)],
}

/// A runbook action as the UI offers it.
struct Spec {
    action: &'static str,
    label: &'static str,
    role: Role,
    fields: &'static [Field],
}

const fn num(name: &'static str, label: &'static str) -> Field {
    Field { name, label, number: true, choices: &[] }
}

const fn text(name: &'static str, label: &'static str) -> Field {
    Field { name, label, number: false, choices: &[] }
}

const TTL: Field = num("ttl_seconds", "Revert after (s, optional)");

const SPECS: &[Spec] = &[
    Spec { action: "restart", label: "Restart", role: Role::Responder, fields: &[] },
    Spec {
        action: "scale",
        label: "Scale",
        role: Role::Responder,
        fields: &[
            num("replicas", "Replicas (1–50)"),
            // An HPA would undo a manual scale: move its bounds instead (leave replicas blank).
            num("min_replicas", "Autoscaler min (instead of replicas, if an HPA manages it)"),
            num("max_replicas", "Autoscaler max (instead of replicas, if an HPA manages it)"),
        ],
    },
    // A responder may ask for a rollback or a bypass where they need a second person's
    // approval (an admin then runs it); the server decides.
    Spec {
        action: "rollback",
        label: "Roll back",
        role: Role::Responder,
        fields: &[num("revision", "Revision (blank: previous)")],
    },
    Spec {
        action: "rate-limit",
        label: "Rate limit",
        role: Role::Responder,
        fields: &[
            num("requests_per_second", "Requests per second"),
            num("burst", "Burst (blank: same)"),
            text("route", "Route (blank: all)"),
            TTL,
        ],
    },
    Spec {
        action: "timeouts",
        label: "Timeouts & retries",
        role: Role::Responder,
        fields: &[
            num("request_timeout_ms", "Request timeout (ms)"),
            num("connect_timeout_ms", "Connect timeout (ms)"),
            num("retries", "Retries"),
            TTL,
        ],
    },
    Spec {
        action: "circuit-breaker",
        label: "Circuit breaker",
        role: Role::Responder,
        fields: &[
            num("consecutive_errors", "Consecutive errors (5)"),
            num("ejection_seconds", "Ejection (s, 30)"),
            num("max_ejection_percent", "Max ejected % (100)"),
            text("service", "Service (blank: all)"),
            TTL,
        ],
    },
    Spec {
        action: "bypass",
        label: "Bypass gateway",
        role: Role::Responder,
        fields: &[
            text("service", "Service"),
            Field {
                name: "method",
                label: "How",
                number: false,
                choices: &[("", "Route around it inside the gateway"), ("dns", "Point the service's DNS record at it")],
            },
            text("force", "If its direct target fails the preflight, go ahead anyway because (DNS only)"),
            TTL,
        ],
    },
];

/// The signed-in session, provided by the layout.
#[derive(Clone, Copy)]
pub struct SessionContext(pub Resource<ApiResult<SessionInfo>, super::BrowserJson>);

/// Buttons, dialog and action list for `gateway`.
#[component]
pub fn ActionsPanel(gateway: String) -> impl IntoView {
    let session = expect_context::<SessionContext>().0;
    let connection = super::use_connection();
    let open = RwSignal::new(None::<usize>);
    // The action just started from this page: followed at the top of the screen.
    let notice = RwSignal::new(None::<(i64, String)>);
    let gw = gateway.clone();
    // The open incident of this gateway (or the one a runbook step came from) is preset
    // in every dialog; a runbook step's link opens its dialog (`?action=...`).
    let query = leptos_router::hooks::use_query_map();
    let incident = RwSignal::new(query.with_untracked(|q| q.get("incident")).unwrap_or_default());
    if let Some(i) = query.with_untracked(|q| q.get("action")).and_then(|a| SPECS.iter().position(|s| s.action == a)) {
        open.set(Some(i));
    }
    #[cfg(feature = "hydrate")]
    {
        let gateway = gateway.clone();
        leptos::task::spawn_local(async move {
            if incident.get_untracked().is_empty()
                && let Ok(list) =
                    operations().incidents(format!("gateway={}&open=true", super::format::encode(&gateway))).await
                && let Some(first) = list.incidents.first()
            {
                incident.set(first.key.clone());
            }
        });
    }
    // Effects run only in the browser, after hydration: the buttons work from then on.
    let ready = RwSignal::new(false);
    Effect::new(move |_| ready.set(true));
    view! {
        <section class="actions-panel" data-ready=move || ready.get().to_string()>
            <h2>"Mitigations"</h2>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let role = session.await.ok().map(|s| s.role);
                    SPECS
                        .iter()
                        .enumerate()
                        .map(|(i, spec)| {
                            let allowed = role.is_some_and(|r| r >= spec.role);
                            let lost = move || connection.lost_since().is_some();
                            let tip = move || {
                                if !allowed {
                                    format!("Needs the {} role", spec.role)
                                } else if lost() {
                                    "The console cannot be reached: actions cannot be sent until it answers again"
                                        .to_string()
                                } else {
                                    String::new()
                                }
                            };
                            view! {
                                <button
                                    class="btn"
                                    disabled=move || !allowed || lost()
                                    title=tip
                                    data-action=spec.action
                                    on:click=move |_| open.set(Some(i))
                                >
                                    {spec.label}
                                </button>
                            }
                        })
                        .collect_view()
                })}
            </Suspense>
            {move || open.get().map(|i| view! { <ActionDialog gateway=gw.clone() spec=i open notice incident /> })}
            <RunNotice notice />
            <ActionList gateway />
        </section>
    }
}

#[component]
fn ActionDialog(
    gateway: String,
    spec: usize,
    open: RwSignal<Option<usize>>,
    notice: RwSignal<Option<(i64, String)>>,
    incident: RwSignal<String>,
) -> impl IntoView {
    let spec = &SPECS[spec];
    let values: Vec<RwSignal<String>> = spec.fields.iter().map(|_| RwSignal::new(String::new())).collect();
    let (reason, confirm) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let incident = RwSignal::new(incident.get_untracked());
    let break_glass = RwSignal::new(false);
    let preview = RwSignal::new(None::<Preview>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let gateway_id = gateway.clone();
    let vals = values.clone();
    // What runs is what was previewed: the fields a preview was made from; editing any of
    // them afterwards clears the preview (and so disables Run) until it is made again.
    let fields_now = {
        let values = values.clone();
        move || (values.iter().map(|v| v.get()).collect::<Vec<_>>(), incident.get())
    };
    let previewed_for = StoredValue::new(None::<(Vec<String>, String)>);
    let edited_after_preview = RwSignal::new(false);
    {
        let fields_now = fields_now.clone();
        Effect::new(move |_| {
            let now = fields_now();
            if previewed_for.with_value(|p| p.as_ref().is_some_and(|p| *p != now)) {
                previewed_for.set_value(None);
                preview.set(None);
                edited_after_preview.set(true);
            }
        });
    }
    // The request body: reason, incident, confirmation and the filled-in parameters.
    let body = move |dry_run: bool| {
        let mut parts =
            vec![format!("\"reason\":{}", quote(&reason.get_untracked())), format!("\"dry_run\":{dry_run}")];
        for (name, v) in [("incident", incident), ("confirm", confirm)] {
            if !v.get_untracked().is_empty() {
                parts.push(format!("\"{name}\":{}", quote(&v.get_untracked())));
            }
        }
        if break_glass.get_untracked() {
            parts.push("\"break_glass\":true".into());
        }
        for (field, value) in spec.fields.iter().zip(&vals) {
            let v = value.get_untracked().trim().to_string();
            if v.is_empty() {
                continue;
            }
            // Unparseable numbers go as text, so the server names the field in its 422.
            let json = match (field.number, v.parse::<u64>()) {
                (true, Ok(n)) => n.to_string(),
                _ => quote(&v),
            };
            parts.push(format!("\"{}\":{json}", field.name));
        }
        format!("{{{}}}", parts.join(","))
    };
    let send = move |dry_run: bool, gateway: String| {
        let request = body(dry_run);
        let asked_for = untrack(&fields_now);
        let fields_then = fields_now.clone();
        busy.set(true);
        error.set(None);
        let c = operations();
        leptos::task::spawn_local(async move {
            match c.act(gateway, spec.action.into(), request).await {
                Ok(r) if dry_run => {
                    // A preview of fields edited meanwhile is not what would run.
                    if untrack(&fields_then) == asked_for {
                        previewed_for.set_value(Some(asked_for));
                        edited_after_preview.set(false);
                        preview.set(Some(r.preview));
                    }
                }
                Ok(r) => {
                    match (r.id, r.approval) {
                        (Some(id), _) => notice.set(Some((id, r.preview.summary))),
                        // Nothing ran: it waits for a second person (a negative id marks it).
                        (None, Some(a)) => notice.set(Some((-a.id, r.preview.summary))),
                        (None, None) => {}
                    }
                    open.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let gw_preview = gateway.clone();
    let gw_run = gateway.clone();
    let send_run = send.clone();
    // Keyboard: focus moves into the dialog, Tab stays inside it, Escape closes it, and
    // focus goes back to the button that opened it.
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(form) = form.get()
            && let Ok(Some(first)) = form.query_selector("input")
        {
            use wasm_bindgen::JsCast;
            let _ = first.unchecked_into::<web_sys::HtmlElement>().focus();
        }
    });
    on_cleanup(move || {
        #[cfg(feature = "hydrate")]
        focus_first(&format!("button[data-action=\"{}\"]", spec.action));
    });
    let on_key = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Escape" => {
            ev.prevent_default();
            open.set(None);
        }
        "Tab" =>
        {
            #[cfg(feature = "hydrate")]
            if let Some(form) = form.get_untracked() {
                keep_tab_inside(&form, &ev);
            }
        }
        _ => {}
    };
    view! {
        <div class="dialog-backdrop">
            <form
                class="card dialog"
                role="dialog"
                aria-modal="true"
                aria-label=format!("{} · {}", spec.label, gateway)
                node_ref=form
                on:keydown=on_key
                on:submit=|ev| ev.prevent_default()
                data-testid="action-dialog"
            >
                <h3>{format!("{} · {}", spec.label, gateway)}</h3>
                {spec
                    .fields
                    .iter()
                    .zip(values)
                    .map(|(f, v)| {
                        let input = if f.choices.is_empty() {
                            view! { <input name=f.name bind:value=v /> }.into_any()
                        } else {
                            view! {
                                <select name=f.name bind:value=v>
                                    {f
                                        .choices
                                        .iter()
                                        .map(|(value, label)| view! { <option value=*value>{*label}</option> })
                                        .collect_view()}
                                </select>
                            }
                                .into_any()
                        };
                        view! { <label>{f.label} {input}</label> }
                    })
                    .collect_view()}
                <label>
                    "Reason (required, for the audit trail)"
                    <input name="reason" bind:value=reason />
                </label>
                <label>
                    "Incident id (optional)"
                    <input name="incident" bind:value=incident />
                </label>
                {move || {
                    preview
                        .get()
                        .map(|p| {
                            let needs_confirm = p.confirm_required;
                            let type_this = format!("Type {gateway_id} to confirm");
                            let needs_second = p.warnings.iter().any(|w| w.contains("needs a second person"));
                            view! {
                                <div class="preview" data-testid="preview">
                                    <p class="preview-summary">{p.summary}</p>
                                    <table class="grid">
                                        <tbody>
                                            {p
                                                .changes
                                                .into_iter()
                                                .map(|c| {
                                                    view! {
                                                        <tr>
                                                            <td>{c.field}</td>
                                                            <td><code>{c.before}</code></td>
                                                            <td>"→"</td>
                                                            <td><code>{c.after}</code></td>
                                                        </tr>
                                                    }
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                    {p.warnings.into_iter().map(|w| view! { <p class="warning">{w}</p> }).collect_view()}
                                    {p.undo.map(|u| view! { <p class="muted">{format!("Undo: {u}")}</p> })}
                                    <Show when=move || needs_confirm>
                                        <label>
                                            {type_this.clone()}
                                            <input name="confirm" bind:value=confirm autocomplete="off" />
                                        </label>
                                    </Show>
                                    {needs_second.then(|| view! {
                                        <label class="check">
                                            <input type="checkbox" name="break_glass" bind:checked=break_glass />
                                            "Break glass: run it now without a second person (on the record, reviewed afterwards)"
                                        </label>
                                    })}
                                </div>
                            }
                        })
                }}
                {move || {
                    edited_after_preview.get().then(|| view! {
                        <p class="warning" role="status" data-testid="preview-stale">
                            "Changed since the preview: preview again to see what will run."
                        </p>
                    })
                }}
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <div class="dialog-buttons">
                    <button class="btn" type="button" on:click=move |_| open.set(None)>
                        "Cancel"
                    </button>
                    <button
                        class="btn"
                        type="button"
                        disabled=busy
                        on:click=move |_| send(true, gw_preview.clone())
                    >
                        "Preview"
                    </button>
                    <button
                        class="btn btn-primary"
                        type="button"
                        disabled=move || busy.get() || preview.with(Option::is_none) || reason.with(|r| r.trim().is_empty())
                        on:click=move |_| send_run(false, gw_run.clone())
                    >
                        "Run"
                    </button>
                </div>
            </form>
        </div>
    }
}

/// Where the person is looking after Run: the action just started, its progress and its
/// outcome, fixed at the top of the screen (the action list is often below the fold), with
/// a way to its row. Nothing scrolls until asked.
#[component]
fn RunNotice(notice: RwSignal<Option<(i64, String)>>) -> impl IntoView {
    let live = use_live_actions();
    move || {
        notice.get().map(|(id, summary)| {
            if id < 0 {
                // A request for approval: nothing ran, and it says who must act.
                return view! {
                    <div class="run-notice" role="status" data-testid="run-notice">
                        <span>
                            {format!("{summary}: ")}<strong>"waiting for a second person"</strong>
                            {format!(" · approval #{} · someone who may run it approves it on ", -id)}
                            <a href="/incidents">"Incidents"</a>
                        </span>
                        <button class="btn btn-ghost" type="button" aria-label="Dismiss" on:click=move |_| notice.set(None)>
                            "×"
                        </button>
                    </div>
                }
                .into_any();
            }
            let record = move || live.with(|l| l.iter().rev().find(|a| a.id == id).cloned());
            let status = move || record().map(|a| a.status).unwrap_or_else(|| "running".into());
            let class = move || match status().as_str() {
                "succeeded" => "run-notice run-notice-ok",
                "failed" => "run-notice run-notice-bad",
                _ => "run-notice",
            };
            let progress = move || {
                record()
                    .and_then(|a| a.progress)
                    .map(|p| format!(" · {}/{} updated, {} ready", p.updated, p.desired, p.ready))
            };
            // What it is waiting for, or why it ended as it did (a DNS change propagating).
            let detail = move || record().map(|a| a.detail).filter(|d| !d.is_empty()).map(|d| format!(" · {d}"));
            let show = move |_| {
                #[cfg(feature = "hydrate")]
                if let Some(row) = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.query_selector(&format!("tr[data-action-id=\"{id}\"]")).ok().flatten())
                {
                    row.scroll_into_view();
                }
            };
            view! {
                <div class=class role="status" data-testid="run-notice">
                    <span>{format!("#{id} {summary}: ")}<strong>{status}</strong>{progress}{detail}</span>
                    <button class="btn btn-ghost" type="button" on:click=show>"Show"</button>
                    <button class="btn btn-ghost" type="button" aria-label="Dismiss" on:click=move |_| notice.set(None)>
                        "×"
                    </button>
                </div>
            }
            .into_any()
        })
    }
}

/// Focuses the first element matching `selector`, if any.
#[cfg(feature = "hydrate")]
fn focus_first(selector: &str) {
    use wasm_bindgen::JsCast;
    if let Some(el) =
        web_sys::window().and_then(|w| w.document()).and_then(|d| d.query_selector(selector).ok().flatten())
    {
        let _ = el.unchecked_into::<web_sys::HtmlElement>().focus();
    }
}

/// Tab from the last control goes to the first, Shift+Tab from the first to the last, and
/// focus that is somewhere else comes back in.
#[cfg(feature = "hydrate")]
fn keep_tab_inside(container: &web_sys::HtmlElement, ev: &web_sys::KeyboardEvent) {
    use wasm_bindgen::JsCast;
    let Ok(list) = container.query_selector_all("input:not([disabled]), button:not([disabled]), a[href]") else {
        return;
    };
    let items: Vec<web_sys::HtmlElement> =
        (0..list.length()).filter_map(|i| list.item(i)).filter_map(|n| n.dyn_into().ok()).collect();
    let (Some(first), Some(last)) = (items.first(), items.last()) else { return };
    let active = web_sys::window().and_then(|w| w.document()).and_then(|d| d.active_element());
    let is = |el: &web_sys::HtmlElement| active.as_ref().is_some_and(|a| a == el.unchecked_ref::<web_sys::Element>());
    let inside = active.as_ref().is_some_and(|a| container.contains(Some(a.unchecked_ref())));
    let target = if !inside {
        Some(first)
    } else if ev.shift_key() && is(first) {
        Some(last)
    } else if !ev.shift_key() && is(last) {
        Some(first)
    } else {
        None
    };
    if let Some(t) = target {
        ev.prevent_default();
        let _ = t.focus();
    }
}

/// Newest first, merged with live updates from the event stream.
#[component]
fn ActionList(gateway: String) -> impl IntoView {
    let gw = gateway.clone();
    let initial = Resource::new(
        || (),
        move |_| {
            let (c, gw) = (operations(), gw.clone());
            async move { c.actions(gw).await }
        },
    );
    let live = use_live_actions();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let gateway = gateway.clone();
                Suspend::new(async move {
                    let base = initial.await.unwrap_or_default();
                    let rows = Memo::new(move |_| {
                        let mut list = base.clone();
                        live.with(|updates| {
                            for u in updates.iter().filter(|u| u.gateway == gateway) {
                                match list.iter_mut().find(|a| a.id == u.id) {
                                    Some(a) => *a = u.clone(),
                                    None => list.push(u.clone()),
                                }
                            }
                        });
                        list.sort_by_key(|a| std::cmp::Reverse(a.id));
                        list
                    });
                    view! {
                        <table class="grid action-list" data-testid="action-list">
                            <thead>
                                <tr>
                                    <th>"#"</th>
                                    <th>"Action"</th>
                                    <th>"By"</th>
                                    <th>"Reason"</th>
                                    <th>"Status"</th>
                                    <th>"Impact (then → 60 s later)"</th>
                                    <th></th>
                                </tr>
                            </thead>
                            // Keyed by id: a live update changes a row's cells, never
                            // rebuilds the row, so an open undo form (and its focus) stays.
                            <tbody>
                                <For
                                    each=move || rows.get()
                                    key=|a| a.id
                                    children=move |a| {
                                        let id = a.id;
                                        let a = Memo::new(move |_| {
                                            rows.with(|l| l.iter().find(|x| x.id == id).cloned()).unwrap_or_else(|| a.clone())
                                        });
                                        view! { <ActionRow a /> }
                                    }
                                />
                            </tbody>
                        </table>
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn ActionRow(a: Memo<ActionRecord>) -> impl IntoView {
    let progress =
        move || a.with(|a| a.progress.map(|p| format!(" {}/{} updated, {} ready", p.updated, p.desired, p.ready)));
    let impact = move || match a.with(|a| (a.impact_before, a.impact_after)) {
        (Some(b), after) => {
            let pair = |f: fn(&crate::dto::ImpactReading) -> String| match &after {
                Some(x) => format!("{} → {}", f(&b), f(x)),
                None => f(&b),
            };
            let gateway = format!(
                "5xx {} · 429 {} · p99 {}",
                pair(|r| format::percent(r.error_rate_5xx)),
                pair(|r| format::percent(r.throttle_rate_429)),
                pair(|r| format::millis(r.p99_ms))
            );
            // A bypass: how the bypassed service's own clients fare, both ways.
            match b.service {
                Some(_) => format!(
                    "{gateway} · its clients ok {} · going direct {}",
                    pair(|r| format::percent(r.service.unwrap_or_default().success)),
                    pair(|r| format::percent(r.service.unwrap_or_default().direct_share))
                ),
                None => gateway,
            }
        }
        _ => String::new(),
    };
    // Undo is previewed first, like every action: the exact change, then (for what needed
    // it) the typed confirmation, then the undo itself.
    let undo = RwSignal::new(false);
    let reason = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let preview = RwSignal::new(None::<crate::dto::Preview>);
    let error = RwSignal::new(None::<String>);
    let fixed = a.get_untracked();
    let id = fixed.id;
    let gateway_id = StoredValue::new(fixed.gateway.clone());
    let send = move |dry_run: bool| {
        let c = operations();
        let body = format!(
            "{{\"reason\":{},\"dry_run\":{dry_run},\"confirm\":{}}}",
            quote(&reason.get_untracked()),
            quote(&confirm.get_untracked())
        );
        error.set(None);
        leptos::task::spawn_local(async move {
            match c.undo(id, body).await {
                Ok(r) if dry_run => preview.set(Some(r.preview)),
                Ok(_) => {
                    undo.set(false);
                    preview.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let status = move || a.with(|a| a.status.clone());
    let badge = move || match a.with(|a| a.status.clone()).as_str() {
        "succeeded" => "badge badge-healthy",
        "failed" => "badge badge-critical",
        _ => "badge badge-degraded",
    };
    let undo_available = move || a.with(|a| a.undo_available);
    view! {
        <tr data-action-id=id id=format!("action-{id}")>
            <td>{id}</td>
            <td>
                <code>{fixed.action}</code>
                {fixed.undo_of.map(|o| format!(" (undo of #{o})"))}
            </td>
            <td>{fixed.actor}</td>
            <td class="reason">{fixed.reason}</td>
            <td>
                <span class=badge data-testid="action-status">{status}</span>
                <span class="muted">{progress}</span>
                <div class="muted detail" data-testid="action-detail">{move || a.with(|a| a.detail.clone())}</div>
            </td>
            <td class="muted impact">{impact}</td>
            <td>
                <Show when=move || undo_available() && !undo.get()>
                    <button class="btn btn-ghost" on:click=move |_| undo.set(true)>"Undo"</button>
                </Show>
                <Show when=move || undo.get()>
                    <div class="undo" data-testid="undo">
                        <input placeholder="why undo?" aria-label="Why undo?" bind:value=reason />
                        <button class="btn btn-ghost" on:click=move |_| send(true)>"Preview undo"</button>
                        {move || {
                            preview
                                .get()
                                .map(|p| {
                                    let needs_confirm = p.confirm_required;
                                    view! {
                                        <div class="preview" data-testid="undo-preview">
                                            <p class="preview-summary">{p.summary}</p>
                                            <ul>
                                                {p
                                                    .changes
                                                    .into_iter()
                                                    .map(|c| view! { <li>{format!("{}: {} → {}", c.field, c.before, c.after)}</li> })
                                                    .collect_view()}
                                            </ul>
                                            <Show when=move || needs_confirm>
                                                <label>
                                                    {move || format!("Type {} to confirm", gateway_id.get_value())}
                                                    <input name="confirm" bind:value=confirm autocomplete="off" />
                                                </label>
                                            </Show>
                                            <button class="btn btn-ghost" on:click=move |_| send(false)>"Undo now"</button>
                                        </div>
                                    }
                                })
                        }}
                    </div>
                </Show>
                {move || error.get().map(|e| view! { <span class="error">{e}</span> })}
            </td>
        </tr>
    }
}
