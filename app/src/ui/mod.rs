//! Leptos components. Data comes only through [`console`]; live numbers through the
//! SSE feed in [`LiveFeed`]. No business rule lives here: the server computes status,
//! rates and percentiles, the UI formats them.

mod chart;
mod format;
mod gateway;
mod health;
mod login;

use crate::console::console;
use crate::dto::{LiveSnapshot, SessionInfo};
use leptos::prelude::*;
use leptos_router::components::{Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::path;

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

/// Root component: routes and document metadata.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <Routes fallback=|| view! { <NotFound /> }>
                <Route path=path!("/login") view=login::LoginPage />
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("") view=health::HealthPage />
                    <Route path=path!("gateways/:id") view=gateway::GatewayPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Frame of every signed-in page: header with the user and role, the live feed.
#[component]
fn Layout() -> impl IntoView {
    let live = RwSignal::new(None::<LiveSnapshot>);
    provide_context(LiveFeed(live));
    // Runs only in the browser: one subscription for the whole signed-in session,
    // kept across client-side navigation because the layout stays mounted.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        crate::http::subscribe(move |snapshot| live.set(Some(snapshot)));
    });
    let session = Resource::new(
        || (),
        |_| {
            let c = console();
            async move { c.session().await }
        },
    );
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand-mark">"◆"</span>
                " Gatewarden"
            </a>
            <nav class="nav">
                <a href="/">"Gateway health"</a>
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
