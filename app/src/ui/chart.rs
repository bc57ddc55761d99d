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
            <svg viewBox="0 0 600 150" preserveAspectRatio="none" role="img" aria-label=title>
                <line class="gridline" x1="0" y1="75" x2="600" y2="75" />
                {paths}
                {minutes}
            </svg>
            <div class="axis">
                <span>"15 min ago"</span>
                <span class="muted">{move || format!("max {}", fmt(y_max.get()))}</span>
                <span>"now"</span>
            </div>
        </figure>
    }
}
