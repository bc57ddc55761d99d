//! Server-side rendering of the Leptos pages, with the caller's console in context.

use crate::auth::MaybeAuthUser;
use crate::console::ServerConsole;
use crate::state::AppState;
use app::console::{ServerConsole as ConsoleContext, ServerOperations};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::provide_context;
use rand::RngCore;
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
    let nonce = new_nonce();
    let script_nonce = nonce.clone();
    // The zone the person chose for times (see `app::ui::Zone`).
    let zone = app::ui::Zone(
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(app::ui::zone_in_cookies)
            .find(|m| *m != 0)
            .unwrap_or(0),
    );
    let sso = app::ui::SsoProvider(state.oidc.as_ref().map(|o| o.settings().provider_name.clone()));
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            provide_context(console.clone());
            provide_context(operations.clone());
            provide_context(zone);
            provide_context(sso.clone());
            // Provided after leptos_axum's own, so the hydration scripts carry this one.
            provide_context(leptos::nonce::Nonce::from_value(script_nonce.clone()));
        },
        move || app::shell(options.clone()),
    );
    let mut response = render(req).await.into_response();
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&nonce)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// 128 random bits, hex: this response's script nonce.
fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The page's policy: scripts only with this response's nonce (and what they load:
/// the lazily loaded page chunks), WebAssembly compiled, everything else from this
/// origin, no framing, no plugins, forms and links only back here.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
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

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A page without the app (no script): the sign-in's answers, the API reference. `title`
/// is text; `head` and `main` are HTML the caller escaped; `main_class` styles the page.
pub fn plain_page(title: &str, head: &str, main_class: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head}\
         <title>{} — Gatewarden</title><link rel=\"stylesheet\" href=\"/pkg/gatewarden.css\">\
         <link rel=\"icon\" href=\"data:,\"></head><body><main class=\"{main_class}\">{main}</main></body></html>",
        escape(title)
    )
}
