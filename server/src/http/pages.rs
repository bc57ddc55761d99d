//! Server-side rendering of the Leptos pages, with the caller's console in context.

use crate::auth::MaybeAuthUser;
use crate::console::ServerConsole;
use crate::state::AppState;
use app::console::{ServerConsole as ConsoleContext, ServerOperations};
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::provide_context;
use rand::RngCore;
use std::sync::Arc;

/// Renders any UI route for someone signed in; anyone else is sent to sign in.
pub async fn page(State(state): State<AppState>, user: MaybeAuthUser, req: Request<Body>) -> Response {
    if user.0.is_none() {
        return Redirect::to("/login").into_response();
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
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            provide_context(console.clone());
            provide_context(operations.clone());
            provide_context(zone);
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

/// A page without the app (no script): the single sign-on's answers, the API reference.
/// `title` is text; `head` and `main` are HTML the caller escaped; `main_class` styles the
/// page.
pub fn plain_page(title: &str, head: &str, main_class: &str, main: &str) -> String {
    styled_page("gatewarden", title, head, main_class, main)
}

/// [`plain_page`] with the site's stylesheet `stylesheet`.css (its content-named copy,
/// where the page should share the cached one with the app's pages).
fn styled_page(stylesheet: &str, title: &str, head: &str, main_class: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"dark\">{head}\
         <title>{} — Gatewarden</title><link rel=\"stylesheet\" href=\"/pkg/{stylesheet}.css\">\
         <link rel=\"icon\" href=\"data:,\"></head><body><main class=\"{main_class}\">{main}</main></body></html>",
        escape(title)
    )
}

/// The sign-in page's policy, and every plain page's (404s, single sign-on's, the API
/// reference): no script at all, forms only back here, no framing.
pub const PLAIN_PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src data:; form-action 'self'; \
                                     base-uri 'none'; frame-ancestors 'none'";

/// What a failed sign-in (`?failed=`, from `POST /login`) says; fixed sentences, so the
/// page reflects nothing a link could put in it.
fn failure_message(reason: &str) -> &'static str {
    match reason {
        "throttled" => "too many failed sign-in attempts; try again later",
        "disabled" => "this account is disabled: ask an admin to enable it",
        "local-off" => "password sign-in is off here: sign in with single sign-on",
        _ => "invalid username or password",
    }
}

/// `next` when it is a path on this console (never another site: `//host`, `/\\host` or a
/// scheme would make the sign-in page an open redirect).
pub fn safe_next(next: &str) -> Option<String> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && !next.starts_with("/login");
    local.then(|| next.to_string())
}

/// `GET /login`: the sign-in page, plain HTML without the app: it is the first page
/// anyone sees, so it loads nothing but the stylesheet (the app's wasm comes with the
/// first page behind it). The form posts to `POST /login`, which answers with redirects
/// (a failure comes back here as `?failed=`). Signed-in users go to the overview.
pub async fn sign_in(State(state): State<AppState>, user: MaybeAuthUser, RawQuery(query): RawQuery) -> Response {
    if user.0.is_some() {
        return Redirect::to("/").into_response();
    }
    let query = query.unwrap_or_default();
    let failed = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "failed")
        .map(|(_, reason)| failure_message(&reason));
    // Where to go back to after signing in (a page signed out under someone's eyes).
    let next = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "next")
        .and_then(|(_, next)| safe_next(&next))
        .map_or(String::new(), |next| format!("<input type=\"hidden\" name=\"next\" value=\"{}\">", escape(&next)));
    let error = failed
        .map_or(String::new(), |m| format!("<p class=\"error\" role=\"alert\" data-testid=\"login-error\">{m}</p>"));
    let provider = state.accounts.oidc.as_ref().map(|o| o.settings().provider_name.clone());
    let sso = provider.map_or(String::new(), |name| {
        format!(
            "<a class=\"btn sso-link\" id=\"sso-link\" href=\"/auth/oidc/login\" data-testid=\"sso-link\">Sign in \
             with {}</a>",
            escape(&name)
        )
    });
    let form = format!(
        "<form class=\"card login\" method=\"post\" action=\"/login\" data-testid=\"login-form\">\
         <h1><span class=\"brand-mark\">◆</span> Gatewarden</h1><p class=\"muted\">Incident console for API gateways</p>\
         <label>Username<input name=\"username\" autocomplete=\"username\" required autofocus></label>\
         <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         </label>{next}{error}<button class=\"btn btn-primary\" type=\"submit\">Sign in</button>{sso}</form>"
    );
    let html = styled_page(&state.leptos.output_name, "Sign in", "", "login-page", &form);
    (
        [(header::CACHE_CONTROL, "no-store"), (header::CONTENT_SECURITY_POLICY, PLAIN_PAGE_POLICY)],
        axum::response::Html(html),
    )
        .into_response()
}
