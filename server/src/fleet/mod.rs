//! What the console can see of a gateway fleet and its metrics, as two small traits.
//!
//! `Fleet` is shaped by what kubectl sees (Deployments matching a selector, their pods
//! and revisions) so that a Kubernetes backend can implement it; `Metrics` by what a
//! PromQL backend can answer. The simulator implements both.

pub mod sim;

use app::dto::{Instance, Latency, SeriesPoint};
use futures::future::BoxFuture;
use std::collections::HashMap;
use tokio::sync::watch;

/// A gateway as the orchestrator knows it: a Deployment and its pods.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayInventory {
    /// Identifier used in URLs.
    pub id: String,
    /// Deployment name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `spec.replicas`.
    pub desired: u32,
    /// Version of the template's revision.
    pub version: String,
    /// The pods, sorted by name.
    pub instances: Vec<Instance>,
}

/// A gateway's traffic over the most recent window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthWindow {
    /// End of the window, Unix milliseconds.
    pub ts_ms: i64,
    /// Requests per second.
    pub rps: f64,
    /// Fraction 5xx.
    pub error_rate_5xx: f64,
    /// Fraction 429.
    pub throttle_rate_429: f64,
    /// Percentiles of admitted requests.
    pub latency_ms: Latency,
}

impl HealthWindow {
    /// The window as a chart point.
    pub fn point(&self) -> SeriesPoint {
        SeriesPoint {
            ts_ms: self.ts_ms,
            rps: self.rps,
            error_rate_5xx: self.error_rate_5xx,
            throttle_rate_429: self.throttle_rate_429,
            latency_ms: self.latency_ms,
        }
    }
}

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No gateway with that id.
    #[error("no gateway '{0}'")]
    NotFound(String),
    /// The backend (cluster, Prometheus) is unreachable or refused; the text is for logs
    /// and for the health view's "degraded backend" banner, never raw to clients.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// Result of a backend call.
pub type FleetResult<T> = Result<T, FleetError>;

/// The gateways and their instances.
pub trait Fleet: Send + Sync {
    /// Every gateway, sorted by id.
    fn inventory(&self) -> BoxFuture<'_, FleetResult<Vec<GatewayInventory>>>;
    /// Bumps whenever anything observable may have changed (a tick, a watch event).
    fn updates(&self) -> watch::Receiver<u64>;
}

/// Gateway traffic numbers.
pub trait Metrics: Send + Sync {
    /// Every gateway's most recent window, by gateway id.
    fn current(&self) -> BoxFuture<'_, FleetResult<HashMap<String, HealthWindow>>>;
    /// The last 15 minutes of one gateway: (step in seconds, points oldest first).
    fn series(&self, gateway: &str) -> BoxFuture<'_, FleetResult<(u32, Vec<SeriesPoint>)>>;
}
