//! Gatewarden's user interface and wire contract.
//!
//! `dto` is the `/api/v1` wire format, `console` the one interface the UI calls, and
//! `ui` the Leptos components. With the `ssr` feature the server renders these
//! components; with `hydrate` they run in the browser. This crate never depends on
//! sqlx, kube or tokio, so its wasm build stays small.

pub mod client;
pub mod console;
pub mod deps;
pub mod dto;
pub mod health;
#[cfg(feature = "hydrate")]
pub mod http;
pub mod json;
pub mod ui;

pub use ui::{App, shell};
