//! The sign-in page.

use leptos::html::Input;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The message for a failed sign-in reported by the server through `?failed=`.
fn failure_message(reason: &str) -> &'static str {
    match reason {
        "throttled" => "too many failed sign-in attempts; try again later",
        "disabled" => "this account is disabled: ask an admin to enable it",
        _ => "invalid username or password",
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
            </form>
        </main>
    }
}
