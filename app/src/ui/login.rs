//! The sign-in page.

use leptos::html::Input;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The message for a failed sign-in reported by the server through `?failed=`.
fn failure_message(reason: &str) -> &'static str {
    match reason {
        "throttled" => "too many failed sign-in attempts; try again later",
        "disabled" => "this account is disabled: ask an admin to enable it",
        "local-off" => "password sign-in is off here: sign in with single sign-on",
        _ => "invalid username or password",
    }
}

/// The single sign-on provider's name, when the server has one (provided while rendering).
#[derive(Clone, Debug, Default)]
pub struct SsoProvider(pub Option<String>);

/// The provider's name: the server's, while rendering; in the browser, what the
/// rendered page says (the same, so hydration agrees; none after a client-side move
/// here, which signing out never is: it loads the page).
fn sso_provider() -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("sso-link"))
            .and_then(|e| e.get_attribute("data-provider"))
            .filter(|p| !p.is_empty())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<SsoProvider>().and_then(|p| p.0)
    }
}

/// `/login`: username and password; on success a full page load of `/`. Before the wasm
/// bundle has loaded, the form posts to the server instead (never as a GET).
#[component]
pub fn LoginPage() -> impl IntoView {
    let username: NodeRef<Input> = NodeRef::new();
    let password: NodeRef<Input> = NodeRef::new();
    let query = use_query_map();
    let from_server = query.with_untracked(|q| q.get("failed").map(|r| failure_message(&r).to_string()));
    let error = RwSignal::new(from_server);
    let busy = RwSignal::new(false);
    let sso = sso_provider();
    let (sso_hidden, sso_name) = (sso.is_none(), sso.unwrap_or_default());
    let sso_label = format!("Sign in with {sso_name}");
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(u), Some(p)) = (username.get(), password.get()) else { return };
        let (u, p) = (u.value(), p.value());
        busy.set(true);
        error.set(None);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            match crate::http::login(u, p).await {
                Ok(_) => crate::http::navigate_hard("/"),
                Err(e) => {
                    error.set(Some(e.message));
                    busy.set(false);
                }
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (u, p);
    };
    view! {
        <main class="login-page">
            <form
                class="card login"
                method="post"
                action="/login"
                on:submit=on_submit
                data-testid="login-form"
            >
                <h1>
                    <span class="brand-mark">"◆"</span>
                    " Gatewarden"
                </h1>
                <p class="muted">"Incident console for API gateways"</p>
                <label>
                    "Username"
                    <input node_ref=username name="username" autocomplete="username" required />
                </label>
                <label>
                    "Password"
                    <input
                        node_ref=password
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                    />
                </label>
                <Show when=move || error.get().is_some()>
                    <p class="error" role="alert" data-testid="login-error">
                        {move || error.get()}
                    </p>
                </Show>
                <button class="btn btn-primary" type="submit" disabled=busy>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
                // Always there (hidden without single sign-on), so the rendered page and
                // the hydrated one have the same shape.
                <a
                    class="btn sso-link"
                    id="sso-link"
                    href="/auth/oidc/login"
                    // A server route, not a page: the router must let the browser go.
                    rel="external"
                    data-provider=sso_name
                    hidden=sso_hidden
                    data-testid="sso-link"
                >
                    {sso_label}
                </a>
            </form>
        </main>
    }
}
