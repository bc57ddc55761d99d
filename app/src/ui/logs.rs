//! `/logs`: search every gateway instance's log lines. The query lives in the URL
//! (`/logs?q=...`), so a search can be pasted into an incident channel.

use super::format;
use super::format::encode;
use crate::client::operations;
use crate::dto::{HistogramBar, LogHit};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

/// The search page.
#[component]
pub fn LogsPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.with(|m| m.get("q").unwrap_or_default());
    let q_untracked = move || query.with_untracked(|m| m.get("q").unwrap_or_default());
    // A zoomed-in window (Unix ms), also in the URL.
    let window = move || query.with(|m| (m.get("since"), m.get("until")));
    let input = RwSignal::new(q());
    // Opened from an incident's runbook: each line can be pinned to its timeline.
    let pin_to = query.with_untracked(|m| m.get("incident")).and_then(|k| k.strip_prefix("INC-")?.parse::<i64>().ok());
    let cursor = RwSignal::new(None::<String>);
    let results = Resource::new(
        move || (q(), window(), cursor.get()),
        |(q, (since, until), cursor)| {
            let console = operations();
            let mut url = format!("limit=100&q={}", encode(&q));
            for (name, v) in [("since", since), ("until", until), ("cursor", cursor)] {
                if let Some(v) = v {
                    url.push_str(&format!("&{name}={}", encode(&v)));
                }
            }
            async move { console.search_logs(url).await }
        },
    );
    // Live tail: new matching lines over SSE, newest first, at most 200 kept on screen.
    let tailing = RwSignal::new(false);
    let live = RwSignal::new(Vec::<LogHit>::new());
    // While someone reads (the pointer on the lines, or the page scrolled past their
    // top), new ones wait above them.
    let hovered = RwSignal::new(false);
    let scrolled = RwSignal::new(false);
    let paused = move || hovered.get_untracked() || scrolled.get_untracked();
    let waiting = RwSignal::new(Vec::<LogHit>::new());
    let flush = move || {
        let mut new = waiting.try_update(std::mem::take).unwrap_or_default();
        if !new.is_empty() {
            live.update(|v| {
                new.append(v);
                new.truncate(200);
                *v = new;
            });
        }
    };
    #[cfg(feature = "hydrate")]
    {
        let handle = StoredValue::new_local(None::<crate::http::LogTail>);
        Effect::new(move |_| {
            let (on, q) = (tailing.get(), q());
            handle.set_value(None);
            live.set(Vec::new());
            waiting.set(Vec::new());
            if on {
                let tail = crate::http::tail_logs(&format!("q={}", encode(&q)), move |hit| {
                    let list = if paused() { waiting } else { live };
                    list.update(|v| {
                        v.insert(0, hit);
                        v.truncate(200);
                    })
                });
                handle.set_value(tail);
            }
        });
        // Scrolled past the top of the live lines: reading them, so they hold still.
        let listener = window_event_listener(leptos::ev::scroll, move |_| {
            use wasm_bindgen::JsCast;
            let Some(window) = web_sys::window() else { return };
            let top = window
                .document()
                .and_then(|d| d.query_selector("[data-testid=tail-hits]").ok().flatten())
                .map(|t| t.unchecked_into::<web_sys::HtmlElement>().offset_top());
            let away = top.is_some_and(|top| window.scroll_y().unwrap_or(0.0) > f64::from(top));
            if away != scrolled.get_untracked() {
                scrolled.set(away);
                if !paused() {
                    flush();
                }
            }
        });
        on_cleanup(move || listener.remove());
    }
    // The last ten searches that worked, kept in this browser (localStorage), newest
    // first: a query the server refused is not offered again.
    let recent = RwSignal::new(Vec::<String>::new());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| recent.set(recent_queries::load()));
    // Called when a search's results arrive (so only searches that worked are kept).
    let remember = move |q: String| {
        #[cfg(feature = "hydrate")]
        if !q.trim().is_empty() {
            let mut list = recent_queries::load();
            if list.first() != Some(&q) {
                list.retain(|r| r != &q);
                list.insert(0, q);
                list.truncate(10);
                recent_queries::save(&list);
                recent.set(list);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (q, recent);
    };
    let navigate = use_navigate();
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        cursor.set(None);
        navigate(&format!("/logs?q={}", encode(input.get_untracked().trim())), Default::default());
    };
    // Effects run only in the browser, after hydration: the search is the app's from then
    // on (before, a click submits the plain form).
    let ready = RwSignal::new(false);
    Effect::new(move |_| ready.set(true));
    view! {
        <h1>"Logs"</h1>
        <form class="filters" on:submit=search data-testid="log-search" data-ready=move || ready.get().to_string()>
            <input
                class="log-query"
                name="q"
                placeholder="level:error gateway:edge \"connection refused\""
                bind:value=input
            />
            <button class="btn" type="submit">"Search"</button>
            <button
                class="btn btn-ghost"
                type="button"
                data-testid="tail-toggle"
                on:click=move |_| tailing.update(|t| *t = !*t)
            >
                {move || if tailing.get() { "Stop live tail" } else { "Live tail" }}
            </button>
        </form>
        <Show when=move || tailing.get()>
            <h2>"Live"</h2>
            <p class="muted tail-waiting" data-testid="tail-waiting">
                {move || match waiting.with(Vec::len) {
                    0 => String::new(),
                    n => format!(
                        "{n} new {} while you read: the list holds still while the pointer is on it or the page is scrolled into it, and takes them when you leave or scroll back up.",
                        if n == 1 { "line waits" } else { "lines wait" }
                    ),
                }}
            </p>
            <table
                class="grid logs"
                data-testid="tail-hits"
                on:mouseenter=move |_| hovered.set(true)
                on:mouseleave=move |_| {
                    hovered.set(false);
                    if !paused() {
                        flush();
                    }
                }
            >
                <tbody>{move || live.get().into_iter().map(|h| view! { <HitRow h pin_to=None /> }).collect_view()}</tbody>
            </table>
        </Show>
        <Show when=move || recent.with(|r| !r.is_empty())>
            <p class="muted recent" data-testid="recent-queries">
                "Recent: "
                {move || {
                    recent
                        .get()
                        .into_iter()
                        .map(|r| view! { <a href=format!("/logs?q={}", encode(&r))><code>{r.clone()}</code></a> })
                        .collect_view()
                }}
            </p>
        </Show>
        <details class="muted syntax">
            <summary>"Query syntax"</summary>
            <p>
                "Words match anywhere, any case: " <code>"timeout"</code> ". Phrases: "
                <code>"\"connection refused\""</code> ". Regular expressions: " <code>"/5\\d\\d/"</code>
                ". Fields: " <code>"level:error"</code> " " <code>"gateway:edge"</code> " "
                <code>"instance:NAME"</code> " " <code>"route:/api/pay"</code> " " <code>"status:503"</code> " "
                <code>"status:5xx"</code> " " <code>"since:15m"</code> " "
                <code>"until:2026-11-24T06:00:00Z"</code> ". Combine with " <code>"AND"</code>
                " (or a space), " <code>"OR"</code> ", " <code>"NOT"</code> " (or " <code>"-"</code> ") and "
                <code>"( )"</code> "."
            </p>
        </details>
        <Suspense fallback=|| view! { <p class="muted">"Searching…"</p> }>
            {move || Suspend::new(async move {
                match results.await {
                    Err(e) => {
                        // The API names the parameter ("q: at character 7 ..."); here the
                        // query box is the only one, so the sentence starts with the place.
                        let message = match e.message.strip_prefix("q: ") {
                            Some(rest) => format!("Your query, {rest}"),
                            None => e.message,
                        };
                        view! { <p class="error" data-testid="log-error">{message}</p> }.into_any()
                    }
                    Ok(page) => {
                        remember(q_untracked());
                        let next = page.next_cursor.clone();
                        let zoomed = match window() {
                            (Some(since), Some(until)) => {
                                let at = |v: &str| v.parse::<i64>().map(format::time).unwrap_or_else(|_| v.to_string());
                                Some(format!("{} – {}", at(&since), at(&until)))
                            }
                            (Some(since), None) => since.parse::<i64>().ok().map(|v| format!("from {}", format::time(v))),
                            _ => None,
                        };
                        view! {
                            <p class="muted" data-testid="log-total">
                                {format!("{} matching lines · {:.1} ms", page.total, page.took_ms)}
                                {zoomed
                                    .map(|range| {
                                        // The time window in force, as a chip that removes it.
                                        view! {
                                            " · "
                                            <span class="chip" data-testid="log-window">
                                                {range}
                                                <a
                                                    href=format!("/logs?q={}", encode(&q()))
                                                    aria-label="Remove the time window (all times)"
                                                    title="All times"
                                                >
                                                    " ×"
                                                </a>
                                            </span>
                                        }
                                    })}
                            </p>
                            {(page.dropped > 0)
                                .then(|| {
                                    view! {
                                        <p class="muted" data-testid="log-retention">
                                            {format!(
                                                "Older lines are no longer kept: {} dropped by retention; the oldest kept is from {}.",
                                                page.dropped,
                                                page.oldest_kept.map(format::time).unwrap_or_default(),
                                            )}
                                        </p>
                                    }
                                })}
                            <Histogram bars=page.histogram q=q() />
                            <table class="grid logs" data-testid="log-hits">
                                <thead>
                                    <tr>
                                        <th>{format!("Time ({})", format::zone_label())}</th>
                                        <th>"Gateway"</th>
                                        <th>"Instance"</th>
                                        <th>"Level"</th>
                                        <th>"Message"</th>
                                        {pin_to.map(|id| view! { <th>{format!("INC-{id}")}</th> })}
                                    </tr>
                                </thead>
                                <tbody>{page.hits.into_iter().map(|h| view! { <HitRow h pin_to /> }).collect_view()}</tbody>
                            </table>
                            {next.map(|c| {
                                view! {
                                    <button class="btn btn-ghost" on:click=move |_| cursor.set(Some(c.clone()))>
                                        "Older lines"
                                    </button>
                                }
                            })}
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Recent searches in the browser's localStorage.
#[cfg(feature = "hydrate")]
mod recent_queries {
    const KEY: &str = "gatewarden.recentQueries";

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    /// The saved list (empty when storage is unavailable or holds something else).
    pub fn load() -> Vec<String> {
        storage()
            .and_then(|s| s.get_item(KEY).ok()?)
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Saves the list (best effort: private windows may refuse).
    pub fn save(list: &[String]) {
        if let (Some(s), Ok(text)) = (storage(), serde_json::to_string(list)) {
            let _ = s.set_item(KEY, &text);
        }
    }
}

/// Matching lines over time; a bar links to its own window (zoom in).
#[component]
fn Histogram(bars: Vec<HistogramBar>, q: String) -> impl IntoView {
    let most = bars.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    let n = bars.len().max(1) as f64;
    let (w, h) = (1000.0, 80.0);
    let slot = w / n;
    // A time axis: the first bar's start, the middle, and the last bar's end (UTC).
    let axis: Vec<String> = match (bars.first(), bars.last()) {
        (Some(first), Some(last)) => {
            let end = last.start + last.width;
            [first.start, first.start + (end - first.start) / 2, end].map(format::time).into_iter().collect()
        }
        _ => Vec::new(),
    };
    view! {
        <svg class="histogram" viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" data-testid="log-histogram">
            {bars
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    let height = (b.count as f64 / most * (h - 2.0)).max(if b.count > 0 { 1.5 } else { 0.0 });
                    let href = format!(
                        "/logs?q={}&since={}&until={}",
                        encode(&q),
                        b.start,
                        b.start + b.width - 1,
                    );
                    view! {
                        <a href=href>
                            <rect x=i as f64 * slot y=h - height width=(slot - 1.0).max(0.5) height=height>
                                <title>{format!("{} · {} lines", format::time(b.start), b.count)}</title>
                            </rect>
                        </a>
                    }
                })
                .collect_view()}
        </svg>
        <div class="histogram-axis muted" data-testid="log-histogram-axis">
            {axis.into_iter().map(|t| view! { <span>{t}</span> }).collect_view()}
        </div>
    }
}

/// One line, its matches marked.
#[component]
fn HitRow(h: LogHit, pin_to: Option<i64>) -> impl IntoView {
    let pinned = RwSignal::new(None::<String>);
    let pin = pin_to.map(|id| {
        let line = format!("{} {} {} {}", format::time(h.ts), h.instance, h.level, h.message.lines().next().unwrap_or(""));
        let body = format!(
            "{{\"line\":{},\"source\":{}}}",
            serde_json::to_string(&line).unwrap_or_default(),
            serde_json::to_string(&h.instance).unwrap_or_default()
        );
        let body = StoredValue::new(body);
        view! {
            <td>
                {move || match pinned.get() {
                    Some(said) => view! { <span class="muted">{said}</span> }.into_any(),
                    None => view! {
                        <button class="btn btn-ghost" data-testid="pin" on:click=move |_| {
                            let body = body.get_value();
                            leptos::task::spawn_local(async move {
                                let said = match operations().send("POST".into(), format!("/incidents/{id}/pins"), body).await {
                                    Ok(_) => "Pinned".to_string(),
                                    Err(e) => e.message,
                                };
                                pinned.set(Some(said));
                            });
                        }>"Pin"</button>
                    }
                    .into_any(),
                }}
            </td>
        }
    });
    let mut parts = Vec::new();
    let mut at = 0;
    for (start, end) in h.highlights.iter().copied() {
        if start < at || end > h.message.len() || !h.message.is_char_boundary(start) || !h.message.is_char_boundary(end)
        {
            continue;
        }
        parts.push(view! { <span>{h.message[at..start].to_string()}</span> }.into_any());
        parts.push(view! { <mark>{h.message[start..end].to_string()}</mark> }.into_any());
        at = end;
    }
    parts.push(view! { <span>{h.message[at..].to_string()}</span> }.into_any());
    let level = h.level.clone();
    let multi = h.message.split_once('\n').map(|(first, rest)| (first.to_string(), rest.lines().count()));
    view! {
        <tr class:row-critical={level == "error"}>
            <td>
                <code>{format::time(h.ts)}</code>
            </td>
            <td>{h.gateway}</td>
            <td>
                <code>{h.instance}</code>
            </td>
            <td class=format!("level level-{level}")>{h.level}</td>
            <td class="message">
                {match multi {
                    // A stack trace: one line until asked for the rest.
                    Some((first, more)) => {
                        view! {
                            <details class="multi">
                                <summary>
                                    <code>{first}</code>
                                    <span class="muted">{format!(" (+{more} lines)")}</span>
                                </summary>
                                <pre>{parts}</pre>
                            </details>
                        }
                            .into_any()
                    }
                    None => view! { <pre>{parts}</pre> }.into_any(),
                }}
            </td>
            {pin}
        </tr>
    }
}
