//! The fleet overview: one row per gateway, colour by status, live numbers.

use super::{format, live_part};
use crate::client::console;
use crate::dto::GatewaySummary;
use crate::health::{Level, level_5xx, level_429, level_instances, level_p99};
use leptos::prelude::*;
use serde::Deserialize;

/// What this page shows of a live snapshot ([`crate::dto::LiveSnapshot`], whose other
/// fields it skips): decoding only this keeps the first download small.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct HealthLive {
    gateways: Vec<GatewayLiveSummary>,
    #[serde(default)]
    backend_problem: Option<String>,
}

/// A gateway's numbers in a live snapshot ([`crate::dto::GatewayLive`]'s `summary`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct GatewayLiveSummary {
    summary: GatewaySummary,
}

/// `/`: every gateway's health at a glance.
#[component]
pub fn HealthPage() -> impl IntoView {
    // One resource for both reads: each resource's type costs the first download.
    let page = Resource::new_serde_wb(
        || (),
        |_| {
            let c = console();
            async move { futures::future::join(c.fleet(), c.gateways()).await }
        },
    );
    let live = live_part::<HealthLive>();
    view! {
        <div class="page-head">
            <h1>"Gateway health"</h1>
            <a class="btn" href="/incidents" data-testid="declare-from-health">"Declare an incident"</a>
        </div>
        <Suspense fallback=|| view! { <p class="muted">"Loading gateways…"</p> }>
            {move || Suspend::new(async move {
                let (fleet, gateways) = page.await;
                let fleet = fleet
                    .ok()
                    .map(|f| {
                        let training = f.scenario.zip(f.briefing).map(|(scenario, briefing)| {
                            view! {
                                <aside class="scenario" data-testid="scenario">
                                    <strong>{format!("Training mode · scenario {scenario}")}</strong>
                                    <span>{briefing}</span>
                                </aside>
                            }
                        });
                        let served = match f.replicas {
                            1 => format!("Served by replica {}, the only one running.", f.replica),
                            n => format!("Served by replica {} of {n} running.", f.replica),
                        };
                        view! {
                            <p class="muted replica" data-testid="replica">{served}</p>
                            {training}
                            <BackendProblem initial=f.problem live />
                        }
                    });
                let table = match gateways {
                    Ok(list) => view! { <GatewayTable initial=list live /> }.into_any(),
                    Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                };
                view! {
                    {fleet}
                    {table}
                }
            })}
        </Suspense>
    }
}

/// Why the numbers may be stale or missing (cluster watch failing, Prometheus down), as
/// the server last said; updated live.
#[component]
fn BackendProblem(initial: Option<String>, live: Memo<Option<HealthLive>>) -> impl IntoView {
    let problem = move || {
        live.with(|s| match s {
            Some(s) => s.backend_problem.clone(),
            None => initial.clone(),
        })
    };
    move || {
        problem().map(|p| {
            view! {
                <aside class="backend-problem" role="status" data-testid="backend-problem">
                    <strong>"Backend degraded"</strong>
                    <span>{p}</span>
                </aside>
            }
        })
    }
}

#[component]
fn GatewayTable(initial: Vec<GatewaySummary>, live: Memo<Option<HealthLive>>) -> impl IntoView {
    let rows = move || {
        live.with(|s| match s {
            Some(s) => s.gateways.iter().map(|g| g.summary.clone()).collect(),
            None => initial.clone(),
        })
    };
    view! {
        <table class="grid gateways" data-testid="gateway-table">
            <thead>
                <tr>
                    <th>"Gateway"</th>
                    <th class="num">"Requests/s"</th>
                    <th class="num">"5xx"</th>
                    <th class="num">"429"</th>
                    <th class="num">"p50"</th>
                    <th class="num">"p95"</th>
                    <th class="num">"p99"</th>
                    <th class="num">"Instances"</th>
                    <th>"Version"</th>
                    <th class="num" title="Latest synthetic check of each key path">"Checks"</th>
                </tr>
            </thead>
            <tbody>{move || rows().into_iter().map(|g| view! { <GatewayRow g /> }).collect_view()}</tbody>
        </table>
        <p class="muted legend">
            {crate::health::legend()}
        </p>
    }
}

/// A number cell's classes: amber or red past the thresholds its status uses, grey
/// when the number could not be read.
pub(crate) fn level_class(level: Option<Level>) -> &'static str {
    match level {
        None => "num unknown",
        Some(Level::Ok) => "num",
        Some(Level::Warn) => "num warn",
        Some(Level::Bad) => "num bad",
    }
}

/// A number, or `unknown` (never a zero) when it could not be read.
pub(crate) fn shown(v: Option<f64>, show: fn(f64) -> String) -> String {
    v.map_or_else(format::unknown_number, show)
}

#[component]
fn GatewayRow(g: GatewaySummary) -> impl IntoView {
    let status = g.status.as_str();
    let (p50, p95, p99) = (g.latency_ms.map(|l| l.p50), g.latency_ms.map(|l| l.p95), g.latency_ms.map(|l| l.p99));
    let dropped = crate::health::traffic_dropped(g.rps, g.baseline_rps);
    view! {
        <tr class=format!("row-{status}") data-gateway=g.id.clone()>
            <td>
                <span class=format!("dot dot-{status}") title=status></span>
                <a class="gw-name" href=format!("/gateways/{}", g.id)>
                    {g.name.clone()}
                </a>
                <span class="muted ns">{g.namespace.clone()}</span>
                <span class=format!("badge badge-{status}") data-testid="status" title=g.blind.clone()>
                    {status}
                </span>
            </td>
            <td
                class=if dropped { "num warn" } else { level_class(g.rps.map(|_| Level::Ok)) }
                title=dropped.then(|| format!("{} req/s over the last 15 minutes", shown(g.baseline_rps, format::rps)))
                data-testid="rps"
            >
                {shown(g.rps, format::rps)}
            </td>
            <td class=level_class(g.error_rate_5xx.map(level_5xx)) data-testid="err5xx">
                {shown(g.error_rate_5xx, format::percent)}
            </td>
            <td class=level_class(g.throttle_rate_429.map(level_429)) data-testid="rate429">
                {shown(g.throttle_rate_429, format::percent)}
            </td>
            <td class=level_class(p50.map(|_| Level::Ok))>{shown(p50, format::millis)}</td>
            <td class=level_class(p95.map(|_| Level::Ok))>{shown(p95, format::millis)}</td>
            <td class=level_class(p99.map(level_p99)) data-testid="p99">
                {shown(p99, format::millis)}
            </td>
            <td class=level_class(Some(level_instances(g.instances_ready, g.instances_desired)))>
                {format!("{}/{}", g.instances_ready, g.instances_desired)}
            </td>
            <td>
                <code>{g.version.clone()}</code>
            </td>
            <td class="num" class:bad=g.checks.is_some_and(|[ok, all]| ok < all) data-testid="checks">
                {g.checks.map_or_else(|| "–".to_string(), |[ok, all]| format!("{ok}/{all}"))}
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::LiveSnapshot;

    #[test]
    fn the_page_reads_its_part_of_the_live_snapshot_the_server_sends() {
        let summary = serde_json::json!({
            "id": "edge", "name": "edge-gateway", "namespace": "gw", "status": "degraded", "rps": 812.5,
            "error_rate_5xx": 0.021, "throttle_rate_429": 0.0, "latency_ms": {"p50": 12.0, "p95": 80.0, "p99": 650.0},
            "instances_ready": 3, "instances_desired": 4, "version": "v2.4.1", "checks": [2, 3]
        });
        let point = serde_json::json!({
            "ts_ms": 1_700_000_000_000i64, "rps": 812.5, "error_rate_5xx": 0.021, "throttle_rate_429": 0.0,
            "latency_ms": {"p50": 12.0, "p95": 80.0, "p99": 650.0}
        });
        let snapshot: LiveSnapshot = serde_json::from_value(serde_json::json!({
            "ts_ms": 1_700_000_000_000i64,
            "gateways": [{"summary": summary, "instances": null, "point": point}],
            "backend_problem": "Prometheus is not answering"
        }))
        .unwrap();
        // As the server sends it: whatever the snapshot holds besides, this page's part
        // decodes from it, the same numbers.
        let sent = serde_json::to_string(&snapshot).unwrap();
        let part: HealthLive = serde_json::from_str(&sent).unwrap();
        assert_eq!(part.gateways.len(), 1);
        assert_eq!(part.gateways[0].summary, snapshot.gateways[0].summary);
        assert_eq!(part.backend_problem.as_deref(), Some("Prometheus is not answering"));
    }
}
