//! `/logs`: search every gateway instance's log lines. The query lives in the URL
//! (`/logs?q=...`), so a search can be pasted into an incident channel.

use super::format;
use crate::console::operations;
use crate::dto::LogHit;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The search page.
#[component]
pub fn LogsPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.with(|m| m.get("q").unwrap_or_default());
    let input = RwSignal::new(q());
    let cursor = RwSignal::new(None::<String>);
    let results = Resource::new(
        move || (q(), cursor.get()),
        |(q, cursor)| {
            let console = operations();
            let mut url = format!("limit=100&q={}", encode(&q));
            if let Some(c) = cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            async move { console.search_logs(url).await }
        },
    );
    let navigate = use_navigate();
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        cursor.set(None);
        navigate(&format!("/logs?q={}", encode(input.get_untracked().trim())), Default::default());
    };
    view! {
        <h1>"Logs"</h1>
        <form class="filters" on:submit=search data-testid="log-search">
            <input
                class="log-query"
                name="q"
                placeholder="level:error gateway:edge \"connection refused\""
                bind:value=input
            />
            <button class="btn" type="submit">"Search"</button>
        </form>
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
                    Err(e) => view! { <p class="error" data-testid="log-error">{e.message}</p> }.into_any(),
                    Ok(page) => {
                        let next = page.next_cursor.clone();
                        view! {
                            <p class="muted" data-testid="log-total">
                                {format!("{} matching lines · {:.1} ms", page.total, page.took_ms)}
                            </p>
                            <table class="grid logs" data-testid="log-hits">
                                <thead>
                                    <tr>
                                        <th>"Time (UTC)"</th>
                                        <th>"Gateway"</th>
                                        <th>"Instance"</th>
                                        <th>"Level"</th>
                                        <th>"Message"</th>
                                    </tr>
                                </thead>
                                <tbody>{page.hits.into_iter().map(|h| view! { <HitRow h /> }).collect_view()}</tbody>
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

/// One line, its matches marked.
#[component]
fn HitRow(h: LogHit) -> impl IntoView {
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
    view! {
        <tr class:row-critical={level == "error"}>
            <td>
                <code>{format::utc(h.ts)}</code>
            </td>
            <td>{h.gateway}</td>
            <td>
                <code>{h.instance}</code>
            </td>
            <td class=format!("level level-{level}")>{h.level}</td>
            <td class="message">
                <pre>{parts}</pre>
            </td>
        </tr>
    }
}
