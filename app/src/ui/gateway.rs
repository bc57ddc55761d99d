//! One gateway: live summary, instances, and 15 minutes of charts.

use super::chart::{Line, LineChart};
use super::format;
use super::use_live;
use crate::client::operations;
use crate::dto::{BypassedService, ChartMark, EventRow, GatewayDetail, GatewaySummary, Instance, SeriesPoint};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// `/gateways/:id`.
#[component]
pub fn GatewayPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let detail = Resource::new(id, |id| {
        let c = operations();
        async move { c.gateway(id).await }
    });
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading gateway…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <GatewayView detail=d /> }.into_any(),
                    Err(e) => {
                        view! {
                            <h1>"Gateway"</h1>
                            <p class="error">{e.message}</p>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn GatewayView(detail: GatewayDetail) -> impl IntoView {
    let live = use_live();
    let id = detail.id.clone();
    let gateway_id = detail.id.clone();
    let step_ms = i64::from(detail.series_step_s) * 1000;
    let initial = (detail.summary(), detail.instances);
    let bypasses = {
        let (id, initial) = (id.clone(), detail.bypasses);
        Memo::new(move |_| {
            live.with(|s| match s.as_ref().and_then(|s| s.gateways.iter().find(|g| g.summary.id == id)) {
                Some(g) => g.bypasses.clone(),
                None => initial.clone(),
            })
        })
    };
    let events = detail.events;
    let series = RwSignal::new(detail.series);
    let current = {
        let id = id.clone();
        Memo::new(move |previous: Option<&(GatewaySummary, Vec<Instance>)>| {
            live.with(|s| match s.as_ref().and_then(|s| s.gateways.iter().find(|g| g.summary.id == id)) {
                Some(g) => {
                    let instances = g.instances.clone().unwrap_or_else(|| match previous {
                        Some(p) => p.1.clone(),
                        None => initial.1.clone(),
                    });
                    (g.summary.clone(), instances)
                }
                None => initial.clone(),
            })
        })
    };
    // Extend the charts with live points, one per series step, keeping 15 minutes.
    Effect::new(move |_| {
        let Some(point) = live
            .with(|s| s.as_ref().and_then(|s| s.gateways.iter().find(|g| g.summary.id == id)).and_then(|g| g.point))
        else {
            return;
        };
        series.update(|v| {
            if v.last().is_none_or(|last| point.ts_ms >= last.ts_ms + step_ms) {
                v.push(point);
                let cutoff = point.ts_ms - 15 * 60 * 1000;
                v.retain(|p| p.ts_ms > cutoff);
            }
        });
    });
    let log_id = gateway_id.clone();
    // Revisions and actions to mark on the charts: the server's, plus actions that start
    // while the page is open, marked at the chart's newest point when they first arrive.
    let marks = RwSignal::new(detail.marks);
    let live_actions = super::use_live_actions();
    #[cfg(feature = "hydrate")]
    let opened_ms = js_sys::Date::now() as i64 - 10_000;
    #[cfg(not(feature = "hydrate"))]
    let opened_ms = i64::MAX;
    let marks_gateway = gateway_id.clone();
    Effect::new(move |_| {
        live_actions.with(|list| {
            for a in list.iter().filter(|a| a.gateway == marks_gateway && a.created_at_ms >= opened_ms) {
                if marks.with_untracked(|m| m.iter().all(|m| m.action != Some(a.id))) {
                    let ts_ms = series.with_untracked(|s| s.last().map_or(0, |p| p.ts_ms));
                    marks.update(|m| m.push(ChartMark { ts_ms, label: a.action.clone(), action: Some(a.id) }));
                }
            }
        })
    });
    let summary = move || current.with(|c| c.0.clone());
    let instances = move || current.with(|c| c.1.clone());
    view! {
        <p class="crumbs">
            <a href="/">"Gateway health"</a>
            " / "
        </p>
        {move || view! { <SummaryHeader s=summary() /> }}
        {
            let declare = format!("/incidents?gateway={}", format::encode(&gateway_id));
            move || {
                (summary().status.as_str() == "critical").then(|| {
                    view! {
                        <p>
                            <a class="btn" href=declare.clone() data-testid="declare-incident">"Declare an incident"</a>
                        </p>
                    }
                })
            }
        }
        {move || bypasses.with(|b| (!b.is_empty()).then(|| view! { <Bypasses list=b.clone() /> }))}
        <p class="muted">
            "Click a minute of a chart for its log lines, or "
            <a href=format!("/logs?q=gateway%3A{}", log_id)>"search this gateway's logs"</a>
            "."
        </p>
        <section class="charts">
            <LineChart
                title="Request rate"
                series
                logs_for=log_id.clone()
                marks
                fmt=format::rps
                unit=" req/s"
                lines=vec![Line { label: "req/s", class: "c-rps", value: |p: &SeriesPoint| p.rps }]
            />
            <LineChart
                title="Error rates"
                series
                logs_for=log_id.clone()
                marks
                fmt=format::percent
                lines=vec![
                    Line { label: "5xx", class: "c-5xx", value: |p: &SeriesPoint| p.error_rate_5xx },
                    Line { label: "429", class: "c-429", value: |p: &SeriesPoint| p.throttle_rate_429 },
                ]
            />
            <LineChart
                title="Latency"
                series
                logs_for=log_id.clone()
                marks
                fmt=format::millis
                lines=vec![
                    Line { label: "p50", class: "c-p50", value: |p: &SeriesPoint| p.latency_ms.p50 },
                    Line { label: "p95", class: "c-p95", value: |p: &SeriesPoint| p.latency_ms.p95 },
                    Line { label: "p99", class: "c-p99", value: |p: &SeriesPoint| p.latency_ms.p99 },
                ]
            />
        </section>
        <SyntheticChecks gateway=gateway_id.clone() />
        <h2>"Instances"</h2>
        {move || view! { <InstanceTable instances=instances() /> }}
        {(!events.is_empty()).then(|| view! { <EventTable events /> })}
        <super::actions::ActionsPanel gateway=gateway_id />
    }
}

#[component]
fn SummaryHeader(s: GatewaySummary) -> impl IntoView {
    use super::health::shown;
    use crate::health::{Level, level_5xx, level_429, level_instances, level_p99, traffic_dropped};
    let status = s.status.as_str();
    // The same judgement as the status and the health page's cells (`app::health`).
    let state = |level: Option<Level>| match level {
        None => "unknown",
        Some(Level::Ok) => "",
        Some(Level::Warn) => "warn",
        Some(Level::Bad) => "bad",
    };
    let known = |v: Option<f64>| v.map(|_| Level::Ok);
    let (p50, p95, p99) = (s.latency_ms.map(|l| l.p50), s.latency_ms.map(|l| l.p95), s.latency_ms.map(|l| l.p99));
    let dropped = traffic_dropped(s.rps, s.baseline_rps);
    view! {
        <div class="gw-header">
            <h1>
                <span class=format!("dot dot-{status}")></span>
                {s.name.clone()}
                <span class=format!("badge badge-{status}") data-testid="status">
                    {status}
                </span>
            </h1>
            <p class="muted">{format!("namespace {} · version {}", s.namespace, s.version)}</p>
            {s.blind.clone().map(|why| view! { <p class="banner banner-warn" data-testid="blind">{format!("Numbers unknown: {why}.")}</p> })}
            {dropped.then(|| view! {
                <p class="banner banner-warn" data-testid="traffic-dropped">
                    {format!(
                        "Traffic fell to {} req/s from {} req/s over the last 15 minutes: are clients still reaching this gateway?",
                        shown(s.rps, format::rps),
                        shown(s.baseline_rps, format::rps),
                    )}
                </p>
            })}
            <div class="tiles">
                <Tile label="Requests/s" value=shown(s.rps, format::rps) testid="rps" state=if dropped { "warn" } else { state(known(s.rps)) } />
                <Tile label="5xx" value=shown(s.error_rate_5xx, format::percent) testid="err5xx" state=state(s.error_rate_5xx.map(level_5xx)) />
                <Tile label="429" value=shown(s.throttle_rate_429, format::percent) testid="rate429" state=state(s.throttle_rate_429.map(level_429)) />
                <Tile label="p50" value=shown(p50, format::millis) testid="p50" state=state(known(p50)) />
                <Tile label="p95" value=shown(p95, format::millis) testid="p95" state=state(known(p95)) />
                <Tile label="p99" value=shown(p99, format::millis) testid="p99" state=state(p99.map(level_p99)) />
                <Tile
                    label="Ready"
                    value=format!("{}/{}", s.instances_ready, s.instances_desired)
                    testid="ready"
                    state=state(Some(level_instances(s.instances_ready, s.instances_desired)))
                />
            </div>
        </div>
    }
}

/// The services whose clients go around this gateway now, and how those clients fare
/// both ways: the gateway's own numbers count only what still passes through it.
#[component]
fn Bypasses(list: Vec<BypassedService>) -> impl IntoView {
    let way = |success: Option<f64>, p99: Option<f64>| match (success, p99) {
        (Some(s), Some(p)) => format!("{} ok · p99 {}", format::percent(s), format::millis(p)),
        (Some(s), None) => format!("{} ok", format::percent(s)),
        _ => "none".to_string(),
    };
    view! {
        <section class="card bypasses" data-testid="bypasses">
            <h2>"Bypassing this gateway"</h2>
            <p class="muted">"Their clients, both ways. The numbers above count only what still comes through the gateway."</p>
            <table class="grid">
                <thead>
                    <tr>
                        <th>"Service"</th>
                        <th>"How"</th>
                        <th>"Clients going direct"</th>
                        <th>"Direct"</th>
                        <th>"Through the gateway"</th>
                        <th>"All its clients"</th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|b| {
                            let i = b.impact;
                            let name = b.service.clone();
                            view! {
                                <tr data-service=b.service>
                                    <td>{name}</td>
                                    <td>{if b.how == "dns" { "DNS record" } else { "route" }}</td>
                                    <td>{format::percent(i.direct_share)}</td>
                                    <td>{way(i.direct_success, i.direct_p99_ms)}</td>
                                    <td>{way(i.via_gateway_success, i.via_gateway_p99_ms)}</td>
                                    <td data-testid="bypass-success">{format!("{} ok", format::percent(i.success))}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// The scheduled synthetic checks of this gateway's key paths: one mark per check,
/// oldest first, red where it failed (refreshed every 15 s).
#[component]
fn SyntheticChecks(gateway: String) -> impl IntoView {
    // Read in the browser only (a signal, not a resource: the server-rendered page must
    // not wait for it), and again as the live feed ticks, at most every 15 s.
    let checks = RwSignal::new(None::<crate::dto::ApiResult<Vec<crate::dto::SyntheticHistory>>>);
    #[cfg(feature = "hydrate")]
    super::refetch_with_live(15_000.0, move || {
        let ops = crate::client::operations();
        leptos::task::spawn_local(async move { checks.set(Some(ops.synthetics().await)) });
    });
    view! {
        <h2>"Synthetic checks"</h2>
        <div class="synthetics" data-testid="synthetics">
            {move || {
                let gateway = gateway.clone();
                checks
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                        Ok(all) => {
                            let mine: Vec<_> = all.into_iter().filter(|h| h.gateway == gateway).collect();
                            if mine.is_empty() {
                                return view! { <p class="muted">"No checks yet."</p> }.into_any();
                            }
                            mine.into_iter()
                                .map(|h| {
                                    let last = h.results.last().map(|r| match r.status {
                                        Some(s) => format!("HTTP {s} in {}", format::millis(r.total_ms)),
                                        None => r.error.clone().unwrap_or_else(|| "no response".into()),
                                    });
                                    view! {
                                        <div class="synthetic-row">
                                            <code>{h.path.clone()}</code>
                                            <span class="checks">
                                                {h.results
                                                    .iter()
                                                    .map(|r| {
                                                        let title = format!(
                                                            "{}: {}",
                                                            format::time(r.ts),
                                                            r.status.map_or_else(|| r.error.clone().unwrap_or_default(), |s| format!("HTTP {s}, {:.0} ms", r.total_ms)),
                                                        );
                                                        view! { <span class=if r.ok { "check" } else { "check failed" } title=title></span> }
                                                    })
                                                    .collect_view()}
                                            </span>
                                            <span class="muted">{last.unwrap_or_default()}</span>
                                        </div>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }
                    })
            }}
        </div>
    }
}

#[component]
fn Tile(label: &'static str, value: String, testid: &'static str, state: &'static str) -> impl IntoView {
    view! {
        <div class=format!("tile {state}")>
            <div class="tile-label">{label}</div>
            <div class="tile-value" data-testid=testid>
                {value}
            </div>
        </div>
    }
}

/// The orchestrator's recent events about the gateway (`kubectl get events`).
#[component]
fn EventTable(events: Vec<EventRow>) -> impl IntoView {
    view! {
        <h2>"Recent events"</h2>
        <table class="grid" data-testid="events">
            <thead>
                <tr>
                    <th>{format!("Last seen ({})", format::zone_label())}</th>
                    <th>"Type"</th>
                    <th>"Reason"</th>
                    <th>"Object"</th>
                    <th class="num">"Count"</th>
                    <th>"Message"</th>
                </tr>
            </thead>
            <tbody>
                {events
                    .into_iter()
                    .map(|e| {
                        let warning = e.kind == "Warning";
                        view! {
                            <tr class:row-critical=warning>
                                <td>
                                    <code>{format::time(e.ts_ms)}</code>
                                </td>
                                <td class:warn=warning>{e.kind}</td>
                                <td>{e.reason}</td>
                                <td>
                                    <code>{e.object}</code>
                                </td>
                                <td class="num">{e.count}</td>
                                <td class="reason">{e.message}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn InstanceTable(instances: Vec<Instance>) -> impl IntoView {
    view! {
        <table class="grid" data-testid="instances">
            <thead>
                <tr>
                    <th>"Instance"</th>
                    <th>"Ready"</th>
                    <th class="num">"Restarts"</th>
                    <th class="num">"Age"</th>
                    <th>"Version"</th>
                    <th>"Node"</th>
                </tr>
            </thead>
            <tbody>
                {instances
                    .into_iter()
                    .map(|i| {
                        view! {
                            <tr class:row-critical={!i.ready}>
                                <td>
                                    <code>{i.name}</code>
                                </td>
                                <td>
                                    {if i.ready {
                                        view! { <span class="badge badge-healthy">"ready"</span> }
                                    } else {
                                        view! { <span class="badge badge-critical">"not ready"</span> }
                                    }}
                                </td>
                                <td class="num" class:warn={i.restarts > 0}>
                                    {i.restarts}
                                </td>
                                <td class="num">{format::age(i.age_s)}</td>
                                <td>
                                    <code>{i.version}</code>
                                </td>
                                <td class="muted">{i.node}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}
