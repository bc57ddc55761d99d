//! The wasm entry point: hydrates the page the server rendered.

/// Called by the generated JS glue once the wasm module is loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy routes (the gateway and audit pages are separate wasm chunks) need the
    // asynchronous hydration entry point.
    leptos::mount::hydrate_lazy(app::App);
}
