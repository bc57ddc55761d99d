//! The dependency map, endpoint probes and synthetic checks on the wire.

use super::NodeHealth;
use serde::{Deserialize, Serialize};

/// `GET /api/v1/dependencies`: who depends on what (gateways → routes → services).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DependencyGraph {
    /// Gateways, routes and downstream services.
    pub nodes: Vec<DepNode>,
    /// `from` depends on `to`, with the traffic between them.
    pub edges: Vec<DepEdge>,
}

/// One node of the dependency map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DepNode {
    /// `gateway:<id>`, `route:<gateway>:<path>` or `service:<name>`.
    pub id: String,
    /// `gateway`, `route` or `service`.
    pub kind: String,
    /// What a person calls it.
    pub name: String,
    /// The gateway a gateway or route node belongs to.
    #[serde(default)]
    pub gateway: Option<String>,
    /// `ok`, `degraded`, `down` or `unknown` (judged by `health::node_health`).
    pub health: NodeHealth,
    /// Requests per second through it; `null` when unknown.
    pub rps: Option<f64>,
    /// Fraction of its requests that fail (5xx); `null` when unknown.
    pub error_rate: Option<f64>,
    /// p99 latency, ms (mean for services); `null` when unknown.
    pub latency_ms: Option<f64>,
    /// Ready endpoints (pods for a gateway), when known.
    #[serde(default)]
    pub ready_endpoints: Option<u32>,
    /// All endpoints, when known.
    #[serde(default)]
    pub endpoints: Option<u32>,
}

/// `from` depends on `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DepEdge {
    /// Node id.
    pub from: String,
    /// Node id.
    pub to: String,
    /// Requests per second along it; `null` when unknown.
    pub rps: Option<f64>,
    /// Fraction of them that fail; `null` when unknown.
    pub error_rate: Option<f64>,
}

/// `POST /api/v1/probe`: one request to a gateway path (or an allowed URL), as `curl -v`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeRequest {
    /// A gateway id, with `path`.
    #[serde(default)]
    pub gateway: Option<String>,
    /// A path on that gateway, starting with `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// A full URL whose host is on the console's allow-list.
    #[serde(default)]
    pub url: Option<String>,
    /// The incident it is for (`INC-<id>`): its result then goes on that incident's
    /// timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

/// Where the time of a probe went, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeTimings {
    /// Name resolution (0 for an address).
    pub dns_ms: f64,
    /// TCP handshake.
    pub connect_ms: f64,
    /// TLS handshake (0 for http).
    pub tls_ms: f64,
    /// From the start until the response headers.
    pub ttfb_ms: f64,
    /// From the start until the body (or its first 64 KiB) was read.
    pub total_ms: f64,
}

/// What a probe found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeResult {
    /// The URL requested last (after redirects).
    pub url: String,
    /// The address connected to.
    pub address: Option<String>,
    /// HTTP status; none when no response came.
    pub status: Option<u16>,
    /// Why no response came (refused, timed out, TLS).
    pub error: Option<String>,
    /// Timings of the last request.
    pub timings: ProbeTimings,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The first 2 KiB of the body, as text.
    pub body_excerpt: String,
    /// Redirects followed, in order (each checked like the first URL).
    #[serde(default)]
    pub redirects: Vec<String>,
}

/// One scheduled synthetic check's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckResult {
    /// When, Unix ms.
    pub ts: i64,
    /// HTTP status, none when no response came.
    pub status: Option<u16>,
    /// Whole request, ms.
    pub total_ms: f64,
    /// 2xx or 3xx within the timeout.
    pub ok: bool,
    /// Why it failed without a status.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /api/v1/synthetics`: the recent checks of one key path of one gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyntheticHistory {
    /// Gateway id.
    pub gateway: String,
    /// Path checked.
    pub path: String,
    /// Oldest first.
    pub results: Vec<CheckResult>,
}
