//! The `Console` interface: every operation the UI performs, with two implementations.
//!
//! During server-side rendering the server provides its own implementation (the real
//! services, bound to the caller's identity) through Leptos context. In the browser,
//! `client::console` returns an HTTP client for `/api/v1`. Components call it and never
//! know which one they got, so SSR, the hydrated app and curl share one path.

use crate::dto::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable console operation.
pub type ApiFuture<T> = Pin<Box<dyn Future<Output = ApiResult<T>> + Send>>;

/// What the console can do, as the UI sees it. (Operations the UI has no page for yet,
/// such as user management, are only on `/api/v1`; each one added here costs wasm size.)
pub trait Console: Send + Sync {
    /// The signed-in user.
    fn session(&self) -> ApiFuture<SessionInfo>;
    /// Every gateway's current health.
    fn gateways(&self) -> ApiFuture<Vec<GatewaySummary>>;
    /// The backend (and training scenario).
    fn fleet(&self) -> ApiFuture<FleetInfo>;
}

/// What the lazily loaded pages do: mitigations, the audit trail, log search. A separate trait
/// from [`Console`] so that its code ships in the lazily loaded pages that use it, not
/// in the first download (a trait object keeps every method it names).
pub trait Operations: Send + Sync {
    /// One gateway with instances, history and chart marks.
    fn gateway(&self, id: String) -> ApiFuture<GatewayDetail>;
    /// Runs (or with `dry_run`, previews) a mitigation; `body` is the request's JSON
    /// text (reason and params). Text, not `serde_json::Value`: the browser bundle then
    /// needs no dynamic JSON tree.
    fn act(&self, gateway: String, action: String, body: String) -> ApiFuture<ActionResponse>;
    /// Recent actions on a gateway, newest first.
    fn actions(&self, gateway: String) -> ApiFuture<Vec<ActionRecord>>;
    /// Undoes (or with `dry_run`, previews undoing) an action; `body` is the request's
    /// JSON text (reason, dry_run, confirm).
    fn undo(&self, id: i64, body: String) -> ApiFuture<ActionResponse>;
    /// A page of the audit trail; `query` is the URL query (filters, cursor).
    fn audit(&self, query: String) -> ApiFuture<AuditPage>;
    /// Verifies the audit chain.
    fn verify_audit(&self) -> ApiFuture<AuditVerification>;
    /// One audit entry with its linked entries.
    fn audit_entry(&self, id: i64) -> ApiFuture<AuditEntryDetail>;
    /// A page of log search; `query` is the URL query (`q`, `since`, `until`, `limit`, `cursor`).
    fn search_logs(&self, query: String) -> ApiFuture<LogSearch>;
    /// The dependency map.
    fn dependencies(&self) -> ApiFuture<DependencyGraph>;
    /// An endpoint probe; `body` is a `ProbeRequest` as JSON text.
    fn probe(&self, body: String) -> ApiFuture<ProbeResult>;
    /// The synthetic checks' recent results.
    fn synthetics(&self) -> ApiFuture<Vec<SyntheticHistory>>;
    /// Incidents; `query` is the URL query (`status`, `severity`, `gateway`, `open`).
    fn incidents(&self, query: String) -> ApiFuture<IncidentList>;
    /// One incident, with its follow-ups.
    fn incident(&self, id: i64) -> ApiFuture<Incident>;
    /// An incident's timeline.
    fn timeline(&self, id: i64) -> ApiFuture<Timeline>;
    /// An incident's runbook checklist.
    fn checklist(&self, id: i64) -> ApiFuture<Checklist>;
    /// Approvals; `query` is the URL query (`status`, `for=me`).
    fn approvals(&self, query: String) -> ApiFuture<ApprovalList>;
    /// A write to `/api/v1{path}` (`POST`, `PATCH`, `PUT`, `DELETE`) with a JSON body,
    /// or a `GET` (the body unused); the answer's JSON text. Pages send only from the
    /// browser: rendering never does. (Reading through it keeps a lazily loaded page's
    /// types out of the first download.)
    fn send(&self, method: String, path: String, body: String) -> ApiFuture<String>;
}

/// The implementation the server provides as context while rendering a page.
#[derive(Clone)]
pub struct ServerConsole(pub Arc<dyn Console>);

/// The server's [`Operations`], provided as context while rendering a page.
#[derive(Clone)]
pub struct ServerOperations(pub Arc<dyn Operations>);
