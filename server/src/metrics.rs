//! The console's own metrics (issue 19), served at `GET /metrics` in the OpenMetrics text
//! format through `prometheus-client`: HTTP requests by route and status with latency
//! histograms, actions by kind and outcome, ledger append latency, Prometheus query
//! errors, live snapshot build time; and, read when scraped, open event streams,
//! approvals waiting, leadership and backend health.
//!
//! One registry per process (a static, like a global recorder): every replica counts
//! what it served, and a scrape of each replica is how Prometheus sees them all.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionOutcome {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Part {
    part: String,
}

/// What is read when scraped rather than counted as it happens.
#[derive(Clone, Debug, Default)]
pub struct Now {
    /// Event streams and log tails open on this replica.
    pub streams_open: usize,
    /// Approval requests and break-glass runs waiting for someone.
    pub approvals_waiting: usize,
    /// This replica leads.
    pub leader: bool,
    /// The fleet's watches have listed and none is failing.
    pub fleet_healthy: bool,
    /// The metrics backend answered its last query.
    pub metrics_healthy: bool,
}

/// Every metric of this process.
pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram>,
    actions: Family<ActionOutcome, Counter>,
    ledger_append: Histogram,
    prometheus_errors: Counter,
    snapshot_build: Histogram,
    streams_open: Gauge,
    approvals_waiting: Gauge,
    leader: Gauge,
    healthy: Family<Part, Gauge>,
    snapshot_age: Gauge<f64, AtomicU64>,
    last_snapshot: std::sync::Mutex<Option<std::time::Instant>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gatewarden");
        let requests = Family::<Request, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        // 1 ms to 32 s.
        let latency =
            Family::<Route, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer (to the first byte of a stream)",
            latency.clone(),
        );
        let actions = Family::<ActionOutcome, Counter>::default();
        registry.register("actions", "Mitigations finished, by action and outcome", actions.clone());
        let ledger_append = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register("ledger_append_duration_seconds", "Time to append one audit entry", ledger_append.clone());
        let prometheus_errors = Counter::default();
        registry.register(
            "prometheus_query_errors",
            "PromQL queries that failed or timed out",
            prometheus_errors.clone(),
        );
        let snapshot_build = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "live_snapshot_build_seconds",
            "Time to build one live snapshot after a fleet change",
            snapshot_build.clone(),
        );
        let streams_open = Gauge::default();
        registry.register(
            "event_streams_open",
            "Event streams and log tails open on this replica",
            streams_open.clone(),
        );
        let approvals_waiting = Gauge::default();
        registry.register(
            "approvals_waiting",
            "Approval requests and break-glass runs waiting",
            approvals_waiting.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 when this replica leads", leader.clone());
        let healthy = Family::<Part, Gauge>::default();
        registry.register(
            "backend_healthy",
            "1 when the fleet's watches (part=fleet) or the metrics backend (part=metrics) work",
            healthy.clone(),
        );
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        registry.register("live_snapshot_age_seconds", "Seconds since the newest live snapshot", snapshot_age.clone());
        Metrics {
            registry,
            requests,
            latency,
            actions,
            ledger_append,
            prometheus_errors,
            snapshot_build,
            streams_open,
            approvals_waiting,
            leader,
            healthy,
            snapshot_age,
            last_snapshot: std::sync::Mutex::new(None),
        }
    }

    /// One answered request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = Request { route: route.into(), method: method.into(), status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&Route { route: route.into() }).observe(seconds);
    }

    /// A mitigation finished with `outcome`.
    pub fn action(&self, action: &str, outcome: &str) {
        self.actions.get_or_create(&ActionOutcome { action: action.into(), outcome: outcome.into() }).inc();
    }

    /// One ledger append took `seconds`.
    pub fn ledger_append(&self, seconds: f64) {
        self.ledger_append.observe(seconds);
    }

    /// A PromQL query failed.
    pub fn prometheus_error(&self) {
        self.prometheus_errors.inc();
    }

    /// A live snapshot took `seconds` to build.
    pub fn snapshot_built(&self, seconds: f64) {
        self.snapshot_build.observe(seconds);
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// The text a scrape gets, with `now` read just before.
    pub fn encode(&self, now: &Now) -> String {
        self.streams_open.set(now.streams_open as i64);
        self.approvals_waiting.set(now.approvals_waiting as i64);
        self.leader.set(i64::from(now.leader));
        self.healthy.get_or_create(&Part { part: "fleet".into() }).set(i64::from(now.fleet_healthy));
        self.healthy.get_or_create(&Part { part: "metrics".into() }).set(i64::from(now.metrics_healthy));
        let last = *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner());
        // Seconds since the newest live snapshot: how far behind the fleet the pages are
        // when nothing changes, and -1 before the first.
        self.snapshot_age.set(last.map_or(-1.0, |t| t.elapsed().as_secs_f64()));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
