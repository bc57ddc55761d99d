//! A minimal SVG line chart: enough for 15 minutes of a few series, no JS library.

use crate::dto::SeriesPoint;
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

/// A titled chart of `lines` over `series`; `fmt` formats the y-axis maximum. With
/// `logs_for` (a gateway id), each minute of the chart links to that gateway's logs of
/// that minute, so a spike is one click from its log lines.
#[component]
pub fn LineChart(
    title: &'static str,
    series: RwSignal<Vec<SeriesPoint>>,
    lines: Vec<Line>,
    fmt: fn(f64) -> String,
    #[prop(optional)] logs_for: Option<String>,
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
    let minutes = move || {
        let gateway = logs_for.clone()?;
        let end = series.with(|s| s.last().map(|p| p.ts_ms))?;
        let slot = W / 15.0;
        Some(
            (0..15)
                .map(|i| {
                    let until = end - (14 - i) * 60_000;
                    let since = until - 60_000;
                    let href = format!("/logs?q=gateway%3A{gateway}&since={since}&until={until}");
                    view! {
                        <a href=href class="minute">
                            <rect x=i as f64 * slot y="0" width=slot height=H>
                                <title>{format!("Logs of this minute ({})", super::format::utc(since))}</title>
                            </rect>
                        </a>
                    }
                })
                .collect_view(),
        )
    };
    // Hover readout: the point under the pointer (as a fraction of the width), every
    // series' value at that second, and a line marking it.
    let hover = RwSignal::new(None::<f64>);
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
            <div class="plot">
                // The values of the top edge and of the dashed middle line.
                <span class="y-tick y-top" data-testid="y-max">{move || fmt(y_max.get())}</span>
                <span class="y-tick y-mid">{move || fmt(y_max.get() / 2.0)}</span>
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
            </div>
            <div class="axis" data-testid="chart-times">
                {move || times().map(|[a, b, c]| view! {
                    <span>{format!("{a} UTC")}</span>
                    <span>{b}</span>
                    <span>{c}</span>
                })}
            </div>
        </figure>
    }
}

/// `HH:MM:SS` (UTC) of a time in ms since the epoch.
fn clock(ms: i64) -> String {
    super::format::utc(ms)[11..].to_string()
}
