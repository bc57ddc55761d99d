//! Server-side rendering of the Leptos pages, with the caller's console in context.

use crate::auth::MaybeAuthUser;
use crate::console::ServerConsole;
use crate::state::AppState;
use app::console::{ServerConsole as ConsoleContext, ServerOperations};
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
    let server = Arc::new(ServerConsole::new(state.clone(), user.0));
    let (console, operations) = (ConsoleContext(server.clone()), ServerOperations(server));
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            provide_context(console.clone());
            provide_context(operations.clone());
        },
        move || app::shell(options.clone()),
    );
    render(req).await.into_response()
}

/// Context for pages rendered without a matching route (404s): an anonymous console.
pub fn anonymous_context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let server = Arc::new(ServerConsole::new(state.clone(), None));
    let (console, operations) = (ConsoleContext(server.clone()), ServerOperations(server));
    move || {
        provide_context(console.clone());
        provide_context(operations.clone());
    }
}
