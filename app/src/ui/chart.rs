//! A minimal SVG line chart: enough for 15 minutes of a few series, no JS library.

use crate::dto::{ChartMark, SeriesPoint};
use leptos::prelude::*;

const W: f64 = 600.0;
const H: f64 = 150.0;
/// The charts' time span, matching the history the server keeps.
const SPAN_MS: f64 = 15.0 * 60.0 * 1000.0;

/// One line of a chart: its label, CSS class and how to read its value from a point.
#[derive(Clone, Copy)]
pub struct Line {
    /// Legend text.
    pub label: &'static str,
    /// CSS class giving the stroke colour.
    pub class: &'static str,
    /// The plotted value.
    pub value: fn(&SeriesPoint) -> f64,
}

/// A titled chart of `lines` over `series`; `fmt` formats the y-axis values. Each minute
/// of the chart links to gateway `logs_for`'s logs of that minute, so a spike is one click
/// from its log lines; the minutes are one tab stop (arrow keys move between them, the
/// readout follows). `marks` (revisions, actions) are drawn as labelled lines that link
/// to the action's row or to the revision's first minute of logs.
#[component]
pub fn LineChart(
    title: &'static str,
    series: RwSignal<Vec<SeriesPoint>>,
    lines: Vec<Line>,
    fmt: fn(f64) -> String,
    logs_for: String,
    marks: RwSignal<Vec<ChartMark>>,
    /// Appended to the y-axis values when `fmt` gives none (e.g. ` req/s`).
    #[prop(optional)]
    unit: &'static str,
) -> impl IntoView {
    let lines_for_max = lines.clone();
    // Headroom above the highest value; 1.0 for an empty or all-zero chart.
    let y_max = Memo::new(move |_| {
        let m = series
            .with(|s| s.iter().flat_map(|p| lines_for_max.iter().map(move |l| (l.value)(p))).fold(0.0_f64, f64::max));
        if m > 0.0 { m * 1.1 } else { 1.0 }
    });
    let legend = lines.clone();
    let paths = move || {
        let y_max = y_max.get();
        series.with(|s| {
            let end = s.last().map(|p| p.ts_ms as f64).unwrap_or(0.0);
            lines
                .iter()
                .map(|l| {
                    let d = s
                        .iter()
                        .map(|p| {
                            let x = W - (end - p.ts_ms as f64) / SPAN_MS * W;
                            let y = H - ((l.value)(p) / y_max).clamp(0.0, 1.0) * H;
                            // Whole viewBox units are sharp enough for a 600-wide chart.
                            format!("{},{}", x.max(0.0).round() as i64, y.round() as i64)
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    view! { <polyline class=format!("line {}", l.class) points=d /> }
                })
                .collect_view()
        })
    };
    // The minute that holds the tab stop (roving tabindex), 14 = the newest.
    let cursor = RwSignal::new(14usize);
    let hover = RwSignal::new(None::<f64>);
    let gateway = logs_for.clone();
    let minutes = move || {
        let end = series.with(|s| s.last().map(|p| p.ts_ms))?;
        let slot = W / 15.0;
        Some(
            (0..15)
                .map(|i| {
                    let until = end - (14 - i as i64) * 60_000;
                    let since = until - 60_000;
                    let href = format!("/logs?q=gateway%3A{gateway}&since={since}&until={until}");
                    // In a <g>: the view macro makes an <a> outside one an HTML element,
                    // which an SVG does not draw once the browser re-renders the minutes.
                    view! {
                        <g>
                        <a
                            href=href
                            class="minute"
                            tabindex=move || if cursor.get() == i { "0" } else { "-1" }
                            on:focus=move |_| {
                                cursor.set(i);
                                hover.set(Some((i as f64 + 0.5) / 15.0));
                            }
                        >
                            <rect x=i as f64 * slot y="0" width=slot height=H>
                                <title>{format!("Logs of this minute ({})", super::format::time(since))}</title>
                            </rect>
                        </a>
                        </g>
                    }
                })
                .collect_view(),
        )
    };
    // Arrow keys, Home and End move the tab stop between minutes.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let now = cursor.get_untracked();
        let next = match ev.key().as_str() {
            "ArrowLeft" => now.saturating_sub(1),
            "ArrowRight" => (now + 1).min(14),
            "Home" => 0,
            "End" => 14,
            _ => return,
        };
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if let Some(n) = ev
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .and_then(|plot| plot.query_selector_all("a.minute").ok())
                .and_then(|list| list.item(next as u32))
            {
                let _ = n.unchecked_into::<web_sys::HtmlElement>().focus();
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = next;
    };
    // Revisions and actions on the time axis, in an SVG of their own without a viewBox:
    // positions are percentages of the width and the text is not stretched. (Attributes,
    // not style: the Content-Security-Policy refuses inline styles.)
    let flags = move || {
        let end = series.with(|s| s.last().map(|p| p.ts_ms))?;
        let gateway = logs_for.clone();
        Some(marks.with(|m| {
            m.iter()
                .filter_map(|m| {
                    let frac = 1.0 - (end - m.ts_ms) as f64 / SPAN_MS;
                    if !(0.0..=1.0).contains(&frac) {
                        return None;
                    }
                    let at = format!("{} {}", clock(m.ts_ms), super::format::zone_label());
                    let (class, href, title, y) = match m.action {
                        Some(id) => {
                            ("mark act", format!("#action-{id}"), format!("Action #{id}, {} at {at}", m.label), "146")
                        }
                        None => (
                            "mark rev",
                            format!("/logs?q=gateway%3A{gateway}&since={}&until={}", m.ts_ms, m.ts_ms + 60_000),
                            format!("{} rolled out at {at}: its first minute of logs", m.label),
                            "10",
                        ),
                    };
                    let x = format!("{}%", super::format::fixed(frac * 100.0, 2));
                    // Near the right edge the label goes to the left of its line.
                    let (anchor, dx) = if frac > 0.75 { ("end", "-3") } else { ("start", "3") };
                    Some(view! {
                        <g>
                            <a class=class href=href data-testid="chart-mark">
                                <title>{title}</title>
                                <line x1=x.clone() x2=x.clone() y1="0" y2="150" />
                                <text x=x y=y dx=dx text-anchor=anchor>{m.label.clone()}</text>
                            </a>
                        </g>
                    })
                })
                .collect_view()
        }))
    };
    // Hover readout: the point under the pointer or the focused minute (as a fraction of
    // the width), every series' value at that second, and a line marking it.
    let readout_lines = legend.clone();
    let readout = Memo::new(move |_| {
        let frac = hover.get()?;
        series.with(|s| {
            let end = s.last()?.ts_ms as f64;
            let at = end - (1.0 - frac) * SPAN_MS;
            let p = s.iter().min_by_key(|p| (p.ts_ms as f64 - at).abs() as i64)?;
            let values: Vec<String> =
                readout_lines.iter().map(|l| format!("{} {}", l.label, fmt((l.value)(p)))).collect();
            Some((frac, format!("{} · {}", clock(p.ts_ms), values.join(" · "))))
        })
    });
    let on_move = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if let Some(el) = ev.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                && el.client_width() > 0
            {
                hover.set(Some((f64::from(ev.offset_x()) / f64::from(el.client_width())).clamp(0.0, 1.0)));
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    // Clock times under the chart: its start, middle and end.
    let times = move || {
        series.with(|s| s.last().map(|p| p.ts_ms)).map(|end| {
            let span = SPAN_MS as i64;
            [end - span, end - span / 2, end].map(|t| clock(t)[..5].to_string())
        })
    };
    view! {
        <figure class="chart">
            <figcaption>
                <span class="chart-title">{title}</span>
                <span class="legend">
                    {legend
                        .into_iter()
                        .map(|l| view! { <span class=format!("key {}", l.class)>{l.label}</span> })
                        .collect_view()}
                </span>
            </figcaption>
            // Keys on the wrapper, not the SVG: Chromium makes an SVG element with key
            // listeners a tab stop of its own.
            <div class="plot" on:keydown=on_key on:focusout=move |_| hover.set(None)>
                // The values of the top edge and of the dashed middle line.
                <span class="y-tick y-top" data-testid="y-max">{move || format!("{}{unit}", fmt(y_max.get()))}</span>
                <span class="y-tick y-mid">{move || format!("{}{unit}", fmt(y_max.get() / 2.0))}</span>
                <svg
                    viewBox="0 0 600 150"
                    preserveAspectRatio="none"
                    role="img"
                    aria-label=title
                    on:mousemove=on_move
                    on:mouseleave=move |_| hover.set(None)
                >
                    <line class="gridline" x1="0" y1="75" x2="600" y2="75" />
                    {paths}
                    {move || readout.get().map(|(frac, _)| {
                        let x = frac * W;
                        view! { <line class="hover-line" x1=x y1="0" x2=x y2=H /> }
                    })}
                    {minutes}
                </svg>
                {move || readout.get().map(|(_, text)| view! { <div class="readout" data-testid="chart-readout">{text}</div> })}
                <svg class="marks" height="150">{flags}</svg>
            </div>
            <div class="axis" data-testid="chart-times">
                {move || times().map(|[a, b, c]| view! {
                    <span>{format!("{a} {}", super::format::zone_label())}</span>
                    <span>{b}</span>
                    <span>{c}</span>
                })}
            </div>
        </figure>
    }
}

/// `HH:MM:SS` (in the chosen zone) of a time in ms since the epoch.
fn clock(ms: i64) -> String {
    super::format::time(ms)[11..].to_string()
}
