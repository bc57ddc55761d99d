//! Server-side rendering of the Leptos pages, with the caller's console in context.

use crate::auth::MaybeAuthUser;
use crate::console::ServerConsole;
use crate::state::AppState;
use app::console::ServerConsole as ConsoleContext;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::provide_context;
use std::sync::Arc;

/// Renders any UI route. Pages other than `/login` need a session; signed-in users
/// asking for `/login` go to the overview.
pub async fn page(State(state): State<AppState>, user: MaybeAuthUser, req: Request<Body>) -> Response {
    let on_login = req.uri().path() == "/login";
    match (&user.0, on_login) {
        (None, false) => return Redirect::to("/login").into_response(),
        (Some(_), true) => return Redirect::to("/").into_response(),
        _ => {}
    }
    let console = ConsoleContext(Arc::new(ServerConsole::new(state.clone(), user.0)));
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || provide_context(console.clone()),
        move || app::shell(options.clone()),
    );
    render(req).await.into_response()
}

/// Context for pages rendered without a matching route (404s): an anonymous console.
pub fn anonymous_context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let console = ConsoleContext(Arc::new(ServerConsole::new(state.clone(), None)));
    move || provide_context(console.clone())
}
