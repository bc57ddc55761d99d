//! Leptos components. Data comes only through [`console`]; live numbers through the
//! SSE feed in [`LiveFeed`]. No business rule lives here: the server computes status,
//! rates and percentiles, the UI formats them.

mod actions;
mod audit;
mod chart;
mod dependencies;
mod format;
mod gateway;
mod health;
mod login;
mod logs;

use crate::client::console;
use crate::dto::{ActionRecord, LiveSnapshot, SessionInfo};
use leptos::prelude::*;
use leptos_router::components::{Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::{Lazy, LazyRoute, lazy_route, path};

/// The HTML document the server streams; the browser hydrates `<App/>` inside it.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="dark" />
                // Static head: no leptos_meta in the bundle for one title and one stylesheet.
                <title>"Gatewarden"</title>
                <link rel="stylesheet" href="/pkg/gatewarden.css" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Latest live snapshot from `GET /api/v1/events`; `None` until the first one arrives
/// (and always during SSR, so the server-rendered numbers and hydration agree).
#[derive(Clone, Copy)]
pub struct LiveFeed(pub RwSignal<Option<LiveSnapshot>>);

/// The live feed provided by [`Layout`].
pub fn use_live() -> RwSignal<Option<LiveSnapshot>> {
    use_context::<LiveFeed>().map(|f| f.0).unwrap_or_else(|| RwSignal::new(None))
}

/// Runs `fetch` now, then again when a live snapshot arrives and at least `every_ms`
/// have passed since the last run (browser only): views that read more than a snapshot
/// carries follow the live feed without asking more often than they need.
#[cfg(feature = "hydrate")]
pub fn refetch_with_live(every_ms: f64, fetch: impl Fn() + 'static) {
    let live = use_live();
    Effect::new(move |last: Option<f64>| {
        live.track();
        let now = js_sys::Date::now();
        match last {
            Some(t) if now - t < every_ms => t,
            _ => {
                fetch();
                now
            }
        }
    });
}

/// Action updates received since the page loaded, as the JSON the server sent. They
/// are parsed where they are shown (the lazily loaded gateway page), which keeps the
/// action types' decoders out of the first download.
#[derive(Clone, Copy)]
pub struct LiveActions(pub RwSignal<Vec<String>>);

/// The action updates provided by [`Layout`], decoded, newest record per id last.
pub fn use_live_actions() -> Memo<Vec<ActionRecord>> {
    let raw = use_context::<LiveActions>().map(|f| f.0).unwrap_or_else(|| RwSignal::new(Vec::new()));
    // Decoded once per update, however often the list reads it.
    Memo::new(move |_| raw.with(|list| list.iter().filter_map(|j| serde_json::from_str(j).ok()).collect()))
}

/// Audit entries appended since the page loaded (counted, not decoded, by the layout).
#[derive(Clone, Copy)]
pub struct LiveAudit(pub RwSignal<u32>);

/// How many audit entries were appended since the page loaded.
pub fn use_live_audit() -> RwSignal<u32> {
    use_context::<LiveAudit>().map(|f| f.0).unwrap_or_else(|| RwSignal::new(0))
}

/// How many action updates the layout keeps (a page shows the newest per action).
#[cfg(feature = "hydrate")]
const LIVE_ACTIONS_KEPT: usize = 200;

/// Root component: routes and document metadata.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <Routes fallback=|| view! { <NotFound /> }>
                <Route path=path!("/login") view=login::LoginPage />
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("") view=health::HealthPage />
                    <Route path=path!("gateways/:id") view={Lazy::<GatewayRoute>::new()} />
                    <Route path=path!("audit") view={Lazy::<AuditRoute>::new()} />
                    <Route path=path!("logs") view={Lazy::<LogsRoute>::new()} />
                    <Route path=path!("dependencies") view={Lazy::<DependenciesRoute>::new()} />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// The gateway page (charts, instances, mitigations) loads as its own wasm chunk, so the
/// first page a person sees downloads only what it needs.
#[derive(Debug)]
struct GatewayRoute;

#[lazy_route]
impl LazyRoute for GatewayRoute {
    fn data() -> Self {
        GatewayRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <gateway::GatewayPage /> }.into_any()
    }
}

/// The audit trail page, also its own chunk.
#[derive(Debug)]
struct AuditRoute;

#[lazy_route]
impl LazyRoute for AuditRoute {
    fn data() -> Self {
        AuditRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <audit::AuditPage /> }.into_any()
    }
}

/// Log search, its own chunk too.
#[derive(Debug)]
struct LogsRoute;

#[lazy_route]
impl LazyRoute for LogsRoute {
    fn data() -> Self {
        LogsRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <logs::LogsPage /> }.into_any()
    }
}

/// The dependency map and endpoint tests, their own chunk.
#[derive(Debug)]
struct DependenciesRoute;

#[lazy_route]
impl LazyRoute for DependenciesRoute {
    fn data() -> Self {
        DependenciesRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <dependencies::DependenciesPage /> }.into_any()
    }
}

/// Frame of every signed-in page: header with the user and role, the live feed.
#[component]
fn Layout() -> impl IntoView {
    let live = RwSignal::new(None::<LiveSnapshot>);
    let live_actions = RwSignal::new(Vec::<String>::new());
    provide_context(LiveFeed(live));
    provide_context(LiveActions(live_actions));
    let live_audit = RwSignal::new(0u32);
    provide_context(LiveAudit(live_audit));
    // Runs only in the browser: one subscription for the whole signed-in session,
    // kept across client-side navigation because the layout stays mounted.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        crate::http::subscribe(
            move |snapshot| live.set(Some(snapshot)),
            move |json| {
                live_actions.update(|list| {
                    if list.len() >= LIVE_ACTIONS_KEPT {
                        list.remove(0);
                    }
                    list.push(json);
                })
            },
            move |_entry| live_audit.update(|n| *n += 1),
        );
    });
    let session = Resource::new(
        || (),
        |_| {
            let c = console();
            async move { c.session().await }
        },
    );
    provide_context(actions::SessionContext(session));
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand-mark">"◆"</span>
                " Gatewarden"
            </a>
            <nav class="nav">
                <a href="/">"Gateway health"</a>
                <a href="/logs">"Logs"</a>
                <a href="/dependencies">"Dependencies"</a>
                <a href="/audit">"Audit trail"</a>
            </nav>
            <LiveIndicator />
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match session.await {
                        Ok(s) => view! { <UserBadge session=s /> }.into_any(),
                        Err(e) => {
                            if e.is_unauthorized() {
                                #[cfg(feature = "hydrate")] crate::http::navigate_hard("/login");
                            }
                            view! { <span class="error">{e.message}</span> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </header>
        <main class="page">
            <Outlet />
        </main>
    }
}

/// Shows whether live updates are flowing.
#[component]
fn LiveIndicator() -> impl IntoView {
    let live = use_live();
    let connected = move || live.with(|s| s.is_some());
    view! {
        <span
            class="live"
            class:live-on=connected
            title="Numbers update every second over server-sent events"
        >
            <span class="live-dot"></span>
            {move || if connected() { "live" } else { "connecting" }}
        </span>
    }
}

#[component]
fn UserBadge(session: SessionInfo) -> impl IntoView {
    let on_logout = move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async {
            // Even if the server is unreachable, the local session is over for the user.
            let _ = crate::http::logout().await;
            crate::http::navigate_hard("/login");
        });
    };
    let role = session.role.as_str();
    view! {
        <span class="user" data-testid="current-user">
            <span class="user-name">{session.username}</span>
            <span class=format!("role role-{role}") data-testid="current-role">
                {role}
            </span>
            <button class="btn btn-ghost" on:click=on_logout data-testid="logout">
                "Sign out"
            </button>
        </span>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <main class="page">
            <h1>"Not found"</h1>
            <p>
                <a href="/">"Back to gateway health"</a>
            </p>
        </main>
    }
}
