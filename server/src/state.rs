//! The one shared application state.

use crate::actions::Engine;
use crate::audit::Ledger;
use crate::db::Db;
use crate::fleet::sim::SimFleet;
use crate::health::HealthService;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use tokio::sync::watch;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Accounts and sessions.
    pub db: Db,
    /// Which database `db` is.
    pub dialect: crate::db::Dialect,
    /// Signing in: passwords, single sign-on, the users store.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// Gateway health from the fleet and metrics backends.
    pub health: Arc<HealthService>,
    /// The audit ledger.
    pub ledger: Arc<Ledger>,
    /// The mitigation engine.
    pub engine: Arc<Engine>,
    /// Incidents: declared, worked, closed.
    pub incidents: Arc<crate::incidents::Incidents>,
    /// Which backend, and the training scenario.
    pub fleet_info: app::dto::FleetInfo,
    /// The simulated fleet, when that is the backend.
    pub sim: Option<Arc<SimFleet>>,
    /// Every gateway instance's log lines.
    pub logs: Arc<crate::logs::LogStore>,
    /// Endpoint probes and synthetic checks.
    pub probes: Arc<crate::probe::Probes>,
    /// Events every replica's streams carry: actions, audit entries, sign-outs.
    pub bus: Arc<crate::bus::Bus>,
    /// Becomes true when the server stops: every open event stream ends, so a graceful
    /// stop does not wait for browsers that would never hang up.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Caps on streams, probes, searches and verifications.
    pub caps: Arc<crate::limits::Caps>,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The newest live snapshot, as data and serialized once for every SSE client.
    pub live: watch::Receiver<Option<crate::health::Live>>,
    /// Approval requests and break-glass runs waiting for someone (each event stream
    /// counts those waiting for its user).
    pub open_approvals: watch::Receiver<Arc<[crate::actions::approval::Open]>>,
    /// The bearer token `GET /metrics` requires, if one was given.
    pub metrics_token: Option<Arc<str>>,
    /// Where the compiled site is served from.
    pub leptos: LeptosOptions,
    /// This process among the console's replicas, and whether it leads.
    pub replicas: Arc<crate::replicas::Replicas>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
