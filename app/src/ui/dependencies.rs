//! `/dependencies`: who depends on what (gateways → routes → services), how healthy each
//! is, and what breaks when one fails. Select a node for its blast radius and the actions
//! that apply to it; probe a gateway path as `curl -v` would. The map is an SVG that pans
//! (drag) and zooms (wheel); the search (`?q=`) and the selection (`?node=`) live in the
//! URL so a view can be pasted into an incident channel.

use super::actions::SessionContext;
use super::format::{encode, unknown_number};
use crate::client::operations;
use crate::deps::{Graph, Mark, actions_for, layout, matches, svg};
use crate::dto::{DepNode, DependencyGraph, ProbeRequest, ProbeResult};
use crate::health::NodeHealth;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

/// Below this zoom the map hides labels and thickens failing nodes' outlines.
const FAR_SCALE: f64 = 0.45;

/// Seconds between refreshes of the map.
const REFRESH_S: u32 = 5;

/// The map page.
#[component]
pub fn DependenciesPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.with(|m| m.get("q").unwrap_or_default());
    let selected = move || query.with(|m| m.get("node"));
    let input = RwSignal::new(search());
    // Read in the browser only (a signal, not a resource: the server-rendered page must
    // not wait for it), and again as the live feed ticks, at most every REFRESH_S.
    let graph = RwSignal::new(None::<crate::dto::ApiResult<DependencyGraph>>);
    #[cfg(feature = "hydrate")]
    super::refetch_with_live(f64::from(REFRESH_S) * 1000.0, move || {
        let ops = operations();
        leptos::task::spawn_local(async move {
            let g = ops.dependencies().await;
            if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
                let _ = p.mark("gw-deps-data");
            }
            graph.set(Some(g));
        });
    });
    // Pan and zoom outlive the refreshes (each redraws the map).
    let view_tf = RwSignal::new((10.0f64, 10.0f64, 1.0f64));
    let fitted = StoredValue::new(None::<(i32, i32)>);
    let navigate = use_navigate();
    let go = {
        let navigate = navigate.clone();
        move |q: String, node: Option<String>| {
            let mut url = format!("/dependencies?q={}", encode(&q));
            if let Some(n) = node {
                url.push_str(&format!("&node={}", encode(&n)));
            }
            navigate(&url, Default::default());
        }
    };
    let on_search = {
        let go = go.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            go(input.get_untracked().trim().to_string(), selected());
        }
    };
    let select = {
        let go = go.clone();
        move |id: Option<String>| go(search(), id)
    };
    view! {
        <h1>"Dependencies"</h1>
        <form class="filters" on:submit=on_search data-testid="dep-search">
            <input
                name="q"
                class="find"
                placeholder="payments, health:down, kind:service"
                prop:value=move || input.get()
                on:input=move |ev| input.set(event_target_value(&ev))
            />
            <button class="btn" type="submit">"Find"</button>
            <span class="muted">
                {format!("Drag to pan, wheel to zoom, click a node for its blast radius. Health colours refresh every {REFRESH_S} s.")}
            </span>
        </form>
        {move || {
            let select = select.clone();
            match graph.get() {
                None => view! { <p class="muted">"Loading the map…"</p> }.into_any(),
                Some(Ok(g)) => {
                    view! { <MapView graph=g search=search() selected=selected() select=select view_tf fitted /> }
                        .into_any()
                }
                Some(Err(e)) => view! { <p class="error">{e.message}</p> }.into_any(),
            }
        }}
        <ProbeForm gateway=None path=String::new() />
    }
}

/// The drawing, the search's matches and the selected node's panel.
#[component]
fn MapView<F>(
    graph: DependencyGraph,
    search: String,
    selected: Option<String>,
    select: F,
    /// Translate x, y and scale, in screen pixels.
    view_tf: RwSignal<(f64, f64, f64)>,
    /// The box size the view was last fitted to: drawings in a box of that size keep the
    /// view (pan and zoom outlive refreshes); a box that changed (the side panel opened or
    /// closed, the window was resized) is fitted again, so nothing is left cut off.
    fitted: StoredValue<Option<(i32, i32)>>,
) -> impl IntoView
where
    F: Fn(Option<String>) + Clone + Send + Sync + 'static,
{
    let g = Graph::new(&graph);
    let l = layout(&g);
    let selected = selected.filter(|id| g.node(id).is_some());
    // The selected node's blast radius and what it depends on, computed once for both the
    // drawing and the panel.
    let (dependents, depends_on): (Vec<DepNode>, Vec<DepNode>) = match &selected {
        Some(id) => {
            (g.dependents(id).into_iter().cloned().collect(), g.dependencies(id).into_iter().cloned().collect())
        }
        None => Default::default(),
    };
    let radius: std::collections::HashSet<&str> = dependents.iter().chain(&depends_on).map(|n| n.id.as_str()).collect();
    let search_t = search.trim().to_string();
    let found: std::collections::HashSet<&str> = if search_t.is_empty() {
        Default::default()
    } else {
        graph.nodes.iter().filter(|n| matches(n, &search_t)).map(|n| n.id.as_str()).collect()
    };
    let drawing = svg(&g, &l, |n| match &selected {
        Some(id) if *id == n.id => Mark::Selected,
        Some(_) if radius.contains(n.id.as_str()) => Mark::Blast,
        Some(_) => Mark::Dim,
        None if search_t.is_empty() || found.contains(n.id.as_str()) => Mark::Plain,
        None => Mark::Dim,
    });
    let found: Vec<DepNode> = graph.nodes.iter().filter(|n| found.contains(n.id.as_str())).cloned().collect();
    #[cfg(feature = "hydrate")]
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark("gw-deps-svg");
    }
    let panel = selected.as_ref().and_then(|id| g.node(id).cloned()).map(|node| {
        let actions = actions_for(&g, &node.id);
        (node, dependents, depends_on, actions)
    });
    let (width, height) = (l.width.max(1.0), l.height.max(1.0));
    // Every kind counts: during an incident the red ones are often a gateway and its routes.
    let count = |kind: &str| graph.nodes.iter().filter(|n| n.kind == kind).count();
    let unhealthy = |kind: &str| {
        graph
            .nodes
            .iter()
            .filter(|n| n.kind == kind && matches!(n.health, NodeHealth::Degraded | NodeHealth::Down))
            .count()
    };
    // Nodes without numbers are neither healthy nor unhealthy: the summary says so.
    let unknown = graph.nodes.iter().filter(|n| n.health == NodeHealth::Unknown).count();
    let summary = {
        let bad: Vec<String> = [("gateway", "gateways"), ("route", "routes"), ("service", "services")]
            .iter()
            .filter_map(|(one, many)| match unhealthy(one) {
                0 => None,
                1 => Some(format!("1 {one}")),
                n => Some(format!("{n} {many}")),
            })
            .collect();
        let judged = match (bad.is_empty(), unknown) {
            (true, 0) => "all healthy".to_string(),
            (true, n) if n == graph.nodes.len() => "no numbers to judge any of them by".to_string(),
            (true, n) => format!("none unhealthy; {n} without numbers"),
            (false, 0) => format!("unhealthy: {}", bad.join(", ")),
            (false, n) => format!("unhealthy: {}; {n} without numbers", bad.join(", ")),
        };
        format!("{} gateways, {} routes, {} services ({judged})", count("gateway"), count("route"), count("service"))
    };
    // Pan and zoom: translate, then scale, in screen pixels.
    let fit = move |w: f64, h: f64| {
        let s = ((w - 20.0) / width).min((h - 20.0) / height).clamp(0.03, 1.2);
        // Centred in the box.
        ((w - width * s) / 2.0, (h - height * s) / 2.0, s)
    };
    if fitted.get_value().is_none() {
        view_tf.set(fit(860.0, 560.0));
    }
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();
    // Once drawn, fit the map to the box it actually has, if that is not the box it was
    // fitted to (a selection opens the side panel and narrows the map).
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(el) = svg_ref.get()
            && el.client_width() > 0
        {
            let size = (el.client_width(), el.client_height());
            if fitted.get_value() != Some(size) {
                view_tf.set(fit(f64::from(size.0), f64::from(size.1)));
                fitted.set_value(Some(size));
            }
        }
    });
    let drag = StoredValue::new(None::<(f64, f64, f64, f64, bool)>);
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        view_tf.update(|(tx, ty, s)| {
            let next = (*s * (-ev.delta_y() * 0.0015).exp()).clamp(0.03, 4.0);
            // Keep the point under the cursor where it is.
            *tx = x - (x - *tx) * next / *s;
            *ty = y - (y - *ty) * next / *s;
            *s = next;
        });
    };
    let on_down = move |ev: leptos::ev::PointerEvent| {
        let (tx, ty, _) = view_tf.get_untracked();
        drag.set_value(Some((f64::from(ev.client_x()) - tx, f64::from(ev.client_y()) - ty, tx, ty, false)));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        if let Some((dx, dy, x0, y0, _)) = drag.get_value() {
            let (x, y) = (f64::from(ev.client_x()) - dx, f64::from(ev.client_y()) - dy);
            let moved = (x - x0).abs() + (y - y0).abs() > 4.0;
            if moved {
                drag.set_value(Some((dx, dy, x0, y0, true)));
                view_tf.update(|(tx, ty, _)| {
                    *tx = x;
                    *ty = y;
                });
            }
        }
    };
    let on_up = move |_| {
        // A drag that moved is not a click; the click handler reads this first.
        let moved = drag.get_value().is_some_and(|d| d.4);
        drag.set_value(if moved { Some((0.0, 0.0, 0.0, 0.0, true)) } else { None });
    };
    let on_click = {
        let select = select.clone();
        move |ev: leptos::ev::MouseEvent| {
            let was_drag = drag.get_value().is_some_and(|d| d.4);
            drag.set_value(None);
            if was_drag {
                return;
            }
            #[cfg(feature = "hydrate")]
            {
                use wasm_bindgen::JsCast;
                let id = ev
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                    .and_then(|e| e.closest("[data-id]").ok().flatten())
                    .and_then(|e| e.get_attribute("data-id"));
                select(id);
            }
            #[cfg(not(feature = "hydrate"))]
            {
                let _ = (&ev, &select);
            }
        }
    };
    // For the browser benchmark: the frame after the one that painted the map.
    #[cfg(feature = "hydrate")]
    request_animation_frame(move || {
        request_animation_frame(move || {
            if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
                let _ = p.mark("gw-deps-drawn");
            }
        })
    });
    let session = use_context::<SessionContext>().map(|s| s.0);
    let role = move || session.and_then(|s| s.get()).and_then(|r| r.ok()).map(|s| s.role);
    let select_found = select.clone();
    view! {
        <p class="muted" data-testid="dep-summary">
            {summary}
        </p>
        {(!found.is_empty() || !search_t.is_empty())
            .then(|| {
                let shown: Vec<DepNode> = found.iter().take(12).cloned().collect();
                view! {
                    <p class="dep-found" data-testid="dep-found">
                        {format!("{} match \"{}\": ", found.len(), search_t)}
                        {shown
                            .into_iter()
                            .map(|n| {
                                let select = select_found.clone();
                                let id = n.id.clone();
                                view! {
                                    <button class=format!("btn btn-ghost chip {}", n.health) on:click=move |_| select(Some(id.clone()))>
                                        {format!("{} {}", n.kind, n.name)}
                                    </button>
                                }
                            })
                            .collect_view()}
                    </p>
                }
            })}
        <div class="dep-layout">
            <svg
                class="dep-map"
                // Zoomed out, labels are unreadable: hide them and let failing nodes stand out.
                class:far=move || view_tf.get().2 < FAR_SCALE
                data-testid="dep-map"
                on:wheel=on_wheel
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:click=on_click
                node_ref=svg_ref
            >
                <g
                    transform=move || {
                        let (tx, ty, s) = view_tf.get();
                        format!("translate({tx:.1},{ty:.1}) scale({s:.4})")
                    }
                    inner_html=drawing
                ></g>
            </svg>
            {panel
                .map(|(node, dependents, depends_on, actions)| {
                    let routes: Vec<String> =
                        dependents.iter().filter(|n| n.kind == "route").map(|n| format!("{} {}", n.gateway.clone().unwrap_or_default(), n.name)).collect();
                    let gateways: Vec<String> = dependents.iter().filter(|n| n.kind == "gateway").map(|n| n.name.clone()).collect();
                    let probe_gateway = node.gateway.clone();
                    // A simulated route is named by its path; a Kubernetes route by its object's name.
                    let probe_path = if node.kind == "route" && node.name.starts_with('/') {
                        node.name.clone()
                    } else {
                        "/healthz".to_string()
                    };
                    let close = select.clone();
                    view! {
                        <aside class="dep-panel" data-testid="dep-panel">
                            <button class="btn btn-ghost" on:click=move |_| close(None)>"Close"</button>
                            <h2>{format!("{} {}", node.kind, node.name)}</h2>
                            <p class=format!("badge badge-{}", match node.health { NodeHealth::Ok => "healthy", NodeHealth::Degraded => "degraded", NodeHealth::Down => "critical", NodeHealth::Unknown => "unknown" })>{node.health.as_str()}</p>
                            <dl class="dep-facts">
                                <dt>"Requests/s"</dt><dd>{node.rps.map_or_else(unknown_number, |v| format!("{v:.1}"))}</dd>
                                <dt>"Failing"</dt><dd>{node.error_rate.map_or_else(unknown_number, |v| format!("{:.1} %", v * 100.0))}</dd>
                                <dt>{if node.kind == "service" { "Latency (mean)" } else { "Latency p99" }}</dt>
                                <dd>{node.latency_ms.map_or_else(unknown_number, |v| format!("{v:.0} ms"))}</dd>
                                <dt>"Ready endpoints"</dt>
                                <dd>{match (node.ready_endpoints, node.endpoints) {
                                    (Some(r), Some(t)) => format!("{r} of {t}"),
                                    _ => "not known".to_string(),
                                }}</dd>
                            </dl>
                            <h3>"Blast radius"</h3>
                            {if dependents.is_empty() {
                                view! { <p class="muted">"Nothing on the map depends on it."</p> }.into_any()
                            } else {
                                view! {
                                    <p data-testid="blast-radius">
                                        {format!("{} gateway(s): {}", gateways.len(), gateways.join(", "))}
                                    </p>
                                    <ul class="dep-list">{routes.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
                                }
                                    .into_any()
                            }}
                            {(!depends_on.is_empty()).then(|| view! {
                                <h3>"Depends on"</h3>
                                <ul class="dep-list">
                                    {depends_on.iter().map(|n| view! { <li class=n.health.as_str()>{format!("{} {} ({})", n.kind, n.name, n.health)}</li> }).collect_view()}
                                </ul>
                            })}
                            <h3>"Actions"</h3>
                            <ul class="dep-list" data-testid="dep-actions">
                                {actions
                                    .into_iter()
                                    .map(|a| {
                                        let need = a.role;
                                        let href = format!("/gateways/{}", encode(&a.gateway));
                                        view! {
                                            <li>
                                                {move || if role().is_some_and(|r| r >= need) {
                                                    view! { <a href=href.clone()>{a.label.clone()}</a> }.into_any()
                                                } else {
                                                    view! { <span class="muted">{format!("{} (needs {})", a.label, need)}</span> }.into_any()
                                                }}
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                            {probe_gateway.map(|g| view! { <ProbeForm gateway=Some(g) path=probe_path /> })}
                        </aside>
                    }
                })}
        </div>
    }
}

/// The runbook's `curl -v`: a gateway path, or (without a gateway) a URL on the allow-list.
#[component]
fn ProbeForm(gateway: Option<String>, path: String) -> impl IntoView {
    let target = RwSignal::new(if gateway.is_some() { path } else { String::new() });
    let result = RwSignal::new(None::<Result<ProbeResult, String>>);
    let busy = RwSignal::new(false);
    let label = match &gateway {
        Some(g) => format!("Test an endpoint of {g}"),
        None => "Test a URL (hosts on the console's allow-list)".to_string(),
    };
    let placeholder = if gateway.is_some() { "/healthz" } else { "https://status.example.com/health" };
    // Opened from an incident's runbook: the result goes on its timeline.
    let incident = use_query_map().with_untracked(|m| m.get("incident")).filter(|k| k.starts_with("INC-"));
    let for_incident = incident.clone();
    let run = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = target.get_untracked().trim().to_string();
        let incident = for_incident.clone();
        let request = match &gateway {
            Some(g) => ProbeRequest { gateway: Some(g.clone()), path: Some(t), url: None, incident },
            None => ProbeRequest { gateway: None, path: None, url: Some(t), incident },
        };
        let body = serde_json::to_string(&request).unwrap_or_default();
        busy.set(true);
        let ops = operations();
        leptos::task::spawn_local(async move {
            let r = ops.probe(body).await.map_err(|e| e.message);
            result.set(Some(r));
            busy.set(false);
        });
    };
    view! {
        <form class="probe" on:submit=run data-testid="probe-form">
            <h3>{label}</h3>
            <input prop:value=move || target.get() on:input=move |ev| target.set(event_target_value(&ev)) placeholder=placeholder />
            <button class="btn" type="submit" disabled=move || busy.get()>"Send"</button>
            {incident.map(|k| view! { <p class="muted" data-testid="probe-incident">{format!("The result goes on {k}'s timeline.")}</p> })}
            {move || result.get().map(|r| match r {
                Err(message) => view! { <p class="error" data-testid="probe-error">{message}</p> }.into_any(),
                Ok(p) => {
                    let t = p.timings;
                    view! {
                        <div class="probe-result" data-testid="probe-result">
                            <p>
                                <strong>{p.status.map_or_else(|| "no response".to_string(), |s| format!("HTTP {s}"))}</strong>
                                {format!(" from {} ({})", p.url, p.address.clone().unwrap_or_default())}
                            </p>
                            {p.error.clone().map(|e| view! { <p class="error">{e}</p> })}
                            <p class="muted">
                                {format!(
                                    "dns {:.1} ms · connect {:.1} ms · tls {:.1} ms · first byte {:.1} ms · total {:.1} ms",
                                    t.dns_ms, t.connect_ms, t.tls_ms, t.ttfb_ms, t.total_ms
                                )}
                            </p>
                            {(!p.redirects.is_empty()).then(|| view! { <p class="muted">{format!("redirected via {}", p.redirects.join(" → "))}</p> })}
                            <pre class="probe-headers">
                                {p.headers.iter().map(|(k, v)| format!("< {k}: {v}\n")).collect::<String>()}
                                {format!("\n{}", p.body_excerpt)}
                            </pre>
                        </div>
                    }
                        .into_any()
                }
            })}
        </form>
    }
}
