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
mod incidents;
mod logs;
mod users;

use crate::client::console;
use crate::dto::{ActionRecord, LiveSnapshot, SessionInfo};
use leptos::prelude::*;

pub use format::{Zone, zone_in_cookies};
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
                // Named by its content (see `site.json`): browsers keep it for a year.
                <link rel="stylesheet" href=format!("/pkg/{}.css", options.output_name) />
                // No icon file: without this the browser asks for /favicon.ico on every
                // first visit and gets the not-found page (1.5 KB).
                <link rel="icon" href="data:," />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// How the first page's resources reach the browser: JSON written by serde_json on the
/// server, read by the browser's parser (see [`crate::json`]).
pub type BrowserJson = leptos_server::codee::string::JsonSerdeWasmCodec;

/// Latest live snapshot from `GET /api/v1/events`, as the JSON text the server sent;
/// `None` until the first one arrives (and always during SSR, so the server-rendered
/// numbers and hydration agree). Each page decodes the part it shows ([`use_live`],
/// [`live_part`]): the first download then holds no decoder for what only the lazily
/// loaded pages read (pods, chart points, bypasses).
#[derive(Clone, Copy)]
pub struct LiveFeed(pub RwSignal<Option<String>>);

/// The live feed's text, provided by [`Layout`].
fn live_text() -> RwSignal<Option<String>> {
    use_context::<LiveFeed>().map(|f| f.0).unwrap_or_else(|| RwSignal::new(None))
}

/// `T` decoded from each live snapshot, once per snapshot however often it is read; a
/// snapshot that does not decode keeps the previous value.
pub fn live_part<T>() -> Memo<Option<T>>
where
    T: serde::de::DeserializeOwned + Clone + PartialEq + Send + Sync + 'static,
{
    let text = live_text();
    Memo::new(move |previous: Option<&Option<T>>| {
        text.with(|t| t.as_deref().and_then(|t| crate::json::from_str(t).ok())).or_else(|| previous.cloned().flatten())
    })
}

/// The whole live snapshot (for the lazily loaded pages).
pub fn use_live() -> Memo<Option<LiveSnapshot>> {
    live_part()
}

/// Whether the live feed is arriving: the page never claims to be live when it is not.
/// (One signal over one small struct: each signal type costs the first download.)
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Link {
    /// Browser time of the newest snapshot (ms since the epoch).
    pub last_ms: Option<f64>,
    /// Browser time, moved every second.
    pub now_ms: f64,
    /// When the page started waiting for its first snapshot.
    pub started_ms: f64,
    /// When the feed came back after a loss (shown for a few seconds).
    pub reconnected_ms: Option<f64>,
    /// The stream was closed or refused, not just late.
    pub closed: bool,
}

/// The live feed's [`Link`], provided by [`Layout`].
#[derive(Clone, Copy)]
pub struct Connection(pub RwSignal<Link>);

/// A snapshot comes every second: one this late means the feed stopped.
pub const STALE_AFTER_MS: f64 = 4000.0;
/// How long "reconnected" is shown.
const RECONNECTED_FOR_MS: f64 = 8000.0;

impl Link {
    /// The feed stopped: since when the numbers on the page are (or, with no data yet,
    /// since when the page has waited). `None` while live, or while still connecting.
    pub fn lost_since(&self) -> Option<f64> {
        match self.last_ms {
            Some(last) if self.closed || self.now_ms - last > STALE_AFTER_MS => Some(last),
            Some(_) => None,
            None if self.now_ms > 0.0 && (self.closed || self.now_ms - self.started_ms > 2.0 * STALE_AFTER_MS) => {
                Some(self.started_ms)
            }
            None => None,
        }
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn snapshot_arrived(&mut self, now: f64) {
        if self.lost_since().is_some() {
            self.reconnected_ms = Some(now);
        }
        self.closed = false;
        self.last_ms = Some(now);
        self.now_ms = now;
    }
}

impl Connection {
    /// Since when the feed has stopped (see [`Link::lost_since`]), tracked.
    pub fn lost_since(&self) -> Option<f64> {
        self.0.with(Link::lost_since)
    }
}

/// The connection state provided by [`Layout`].
pub fn use_connection() -> Connection {
    use_context::<Connection>().unwrap_or_else(|| Connection(RwSignal::new(Link::default())))
}

/// `HH:MM:SS UTC` (or `UTC+01:00`, the chosen zone) of a time in ms since the epoch.
pub fn clock(ms: f64) -> String {
    // Not through `format::time`: the first download needs no calendar arithmetic.
    let day = ((ms / 1000.0).floor() as i64 + i64::from(format::zone()) * 60).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02} {}", day / 3600, day / 60 % 60, day % 60, format::zone_label())
}

/// "12 s", then "3 min" from a minute on.
pub fn age(ms: f64) -> String {
    let s = (ms / 1000.0).max(0.0) as i64;
    if s < 60 { format!("{s} s") } else { format!("{} min", s / 60) }
}

/// Runs `fetch` now, then again when a live snapshot arrives and at least `every_ms`
/// have passed since the last run (browser only): views that read more than a snapshot
/// carries follow the live feed without asking more often than they need.
#[cfg(feature = "hydrate")]
pub fn refetch_with_live(every_ms: f64, fetch: impl Fn() + 'static) {
    let live = live_text();
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

/// A write (or a read) to `/api/v1{path}` from a page; a refusal as the server's sentence.
async fn send(method: &str, path: String, body: String) -> Result<String, String> {
    crate::client::operations().send(method.into(), path, body).await.map_err(|e| e.message)
}

/// `s` as a JSON string literal, for the bodies pages build.
fn quote(s: &str) -> String {
    crate::json::string(s)
}

/// Runs `fetch` now (in the browser) and again whenever the ledger grows, at most once a
/// second: a burst of entries (a flood of refused sign-ins) is one fetch now and one when
/// the second is over, not one per entry from every open page.
fn on_ledger_change(fetch: impl Fn() + 'static) {
    let _ = &fetch;
    #[cfg(feature = "hydrate")]
    {
        const EVERY_MS: f64 = 1000.0;
        let fetch = std::rc::Rc::new(fetch);
        let audit = use_live_audit();
        // When the last fetch ran, and whether one is already due at the end of the second.
        let last = std::rc::Rc::new(std::cell::Cell::new(f64::MIN));
        let due = std::rc::Rc::new(std::cell::Cell::new(false));
        Effect::new(move |_| {
            audit.track();
            let now = js_sys::Date::now();
            let wait = last.get() + EVERY_MS - now;
            if wait <= 0.0 {
                last.set(now);
                fetch();
            } else if !due.replace(true) {
                let (fetch, last, due) = (fetch.clone(), last.clone(), due.clone());
                set_timeout(
                    move || {
                        due.set(false);
                        last.set(js_sys::Date::now());
                        fetch();
                    },
                    std::time::Duration::from_millis(wait as u64),
                );
            }
        });
    }
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
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("") view=health::HealthPage />
                    <Route path=path!("gateways/:id") view={Lazy::<GatewayRoute>::new()} />
                    <Route path=path!("audit") view={Lazy::<AuditRoute>::new()} />
                    <Route path=path!("logs") view={Lazy::<LogsRoute>::new()} />
                    <Route path=path!("dependencies") view={Lazy::<DependenciesRoute>::new()} />
                    <Route path=path!("incidents") view={Lazy::<IncidentsRoute>::new()} />
                    <Route path=path!("users") view={Lazy::<UsersRoute>::new()} />
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

/// Incidents and the approvals inbox, their own chunk.
#[derive(Debug)]
struct IncidentsRoute;

#[lazy_route]
impl LazyRoute for IncidentsRoute {
    fn data() -> Self {
        IncidentsRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <incidents::IncidentsPage /> }.into_any()
    }
}

/// Accounts and your own password, their own chunk.
#[derive(Debug)]
struct UsersRoute;

#[lazy_route]
impl LazyRoute for UsersRoute {
    fn data() -> Self {
        UsersRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <users::UsersPage /> }.into_any()
    }
}

/// Frame of every signed-in page: header with the user and role, the live feed.
#[component]
fn Layout() -> impl IntoView {
    let live = RwSignal::new(None::<String>);
    let live_actions = RwSignal::new(Vec::<String>::new());
    provide_context(LiveFeed(live));
    let connection = Connection(RwSignal::new(Link::default()));
    provide_context(connection);
    provide_context(LiveActions(live_actions));
    let live_audit = RwSignal::new(0u32);
    provide_context(LiveAudit(live_audit));
    // Runs only in the browser: one subscription for the whole signed-in session,
    // kept across client-side navigation because the layout stays mounted.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        {
            let now = js_sys::Date::now();
            connection.0.update(|l| (l.started_ms, l.now_ms) = (now, now));
            crate::http::subscribe(crate::http::Feed {
                on_snapshot: Box::new(move |snapshot: String| {
                    connection.0.update(|l| l.snapshot_arrived(js_sys::Date::now()));
                    live.set(Some(snapshot));
                }),
                on_action: Box::new(move |json| {
                    live_actions.update(|list| {
                        if list.len() >= LIVE_ACTIONS_KEPT {
                            list.remove(0);
                        }
                        list.push(json);
                    })
                }),
                on_audit: Box::new(move |_entry| live_audit.update(|n| *n += 1)),
                on_closed: Box::new(move || connection.0.update(|l| l.closed = true)),
                // The clock the staleness is judged by, even when nothing arrives.
                on_tick: Box::new(move || connection.0.update(|l| l.now_ms = js_sys::Date::now())),
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = connection;
    });
    let session = Resource::new_serde_wb(
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
                <a href="/incidents">
                    "Incidents"
                    // What waits for this person's approval or review, written by the live
                    // feed (`http::show_waiting`); empty, so hidden, until something does.
                    <span
                        class="badge"
                        id="approvals-badge"
                        data-testid="approvals-badge"
                        title="Approvals and break-glass reviews waiting for you"
                    ></span>
                </a>
                <a href="/audit">"Audit trail"</a>
                <a href="/users">"Users"</a>
            </nav>
            {live_indicator(connection)}
            {zone_switch()}
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
        // The banner, when shown, comes first: the style greys everything after it.
        <main class="page">
            {connection_banner(connection)}
            // Shown by the live feed (`http::show_break_glass`) while a change someone
            // ran by break-glass waits for this person's review.
            <div class="banner banner-warn" id="break-glass-banner" data-testid="break-glass-banner" role="alert" hidden>
                "A change ran by break-glass, without a second person's approval, and waits for your review. "
                <a href="/incidents">"Review it"</a>
            </div>
            <Outlet />
        </main>
    }
}

/// "00:13:13 UTC (4 s ago)": when the page's data is from, and its age.
fn data_from(l: &Link, since: f64) -> String {
    format!("{} ({} ago)", clock(since), age(l.now_ms - since))
}

/// Shows whether live updates are flowing, and since when they are not.
fn live_indicator(c: Connection) -> impl IntoView {
    move || {
        let l = c.0.get();
        // With no snapshot yet, the numbers are the ones rendered when the page loaded,
        // which is what `since` then is.
        let (class, text) = match (l.lost_since(), l.last_ms) {
            (Some(since), _) => ("live live-lost", format!("disconnected — data from {}", data_from(&l, since))),
            (None, Some(_)) => match l.reconnected_ms {
                Some(t) if l.now_ms - t < RECONNECTED_FOR_MS => ("live live-on", "live — reconnected".into()),
                _ => ("live live-on", "live".into()),
            },
            (None, None) => ("live", "connecting".into()),
        };
        view! {
            <span
                class=class
                data-testid="live-indicator"
                role="status"
                title="Numbers update every second over server-sent events"
            >
                <span class="live-dot"></span>
                {text}
            </span>
        }
    }
}

/// Which zone times are shown in; a click switches between UTC and this browser's local
/// offset and reloads, so every time on the page (server-rendered too) is in one zone.
fn zone_switch() -> impl IntoView {
    let utc = format::zone() == 0;
    let switch = move |_| {
        #[cfg(feature = "hydrate")]
        crate::http::choose_zone(utc);
    };
    view! {
        <button
            class="btn btn-ghost zone"
            data-testid="time-zone"
            title=if utc { "Times are in UTC: show this browser's local time" } else { "Times are in local time: show UTC" }
            on:click=switch
        >
            {format!("Times: {}", format::zone_label())}
        </button>
    }
}

/// Says, above every page, that the console cannot be reached and how old the numbers are.
fn connection_banner(c: Connection) -> impl IntoView {
    move || {
        let l = c.0.get();
        l.lost_since().map(|since| {
            // With no snapshot yet, `since` is when the page (and its numbers) loaded.
            let text = format!(
                "The console cannot be reached: the page shows data from {}; actions cannot be sent. Reconnecting…",
                data_from(&l, since)
            );
            view! { <div class="banner banner-bad" role="alert" data-testid="connection-banner">{text}</div> }
        })
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
