//! The one place where health is judged: the thresholds, a gateway's status, each
//! number's colour, and a dependency map node's health. The server's status, the health
//! page's legend and cell colours, and the map all come from here, so they cannot drift.

use serde::{Deserialize, Serialize};

/// Colour-coded judgement of a gateway; computed on the server from the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Within normal bounds.
    Healthy,
    /// Something a responder should look at.
    Degraded,
    /// Users are failing now.
    Critical,
    /// The numbers could not be read: nothing is concluded from them.
    Unknown,
}

impl HealthStatus {
    /// Lowercase name, also the CSS class suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Critical => "critical",
            HealthStatus::Unknown => "unknown",
        }
    }
}

/// 5xx fraction that makes a gateway degraded.
pub const DEGRADED_5XX: f64 = 0.01;
/// 5xx fraction that makes it critical.
pub const CRITICAL_5XX: f64 = 0.05;
/// 429 fraction that makes it degraded.
pub const DEGRADED_429: f64 = 0.05;
/// p99 (ms) that makes it degraded.
pub const DEGRADED_P99_MS: f64 = 500.0;
/// p99 (ms) that makes it critical.
pub const CRITICAL_P99_MS: f64 = 2000.0;
/// Failing fraction from which a dependency map node (route, service) is down.
pub const DOWN_FAILURES: f64 = 0.2;
/// Traffic below this fraction of the gateway's own level over the last 15 minutes has
/// fallen away: clients may no longer reach it (a DNS, load-balancer or network fault).
pub const TRAFFIC_DROP: f64 = 0.1;
/// ... judged only when that level was at least this many requests per second.
pub const TRAFFIC_DROP_MIN_RPS: f64 = 1.0;

/// How far one number is from normal: the colour of its cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Within bounds.
    Ok,
    /// Past the degraded threshold (amber).
    Warn,
    /// Past the critical threshold (red).
    Bad,
}

impl Level {
    fn of(value: f64, warn: f64, bad: Option<f64>) -> Level {
        if bad.is_some_and(|b| value >= b) {
            Level::Bad
        } else if value >= warn {
            Level::Warn
        } else {
            Level::Ok
        }
    }

    /// The status this level alone makes.
    pub fn status(self) -> HealthStatus {
        match self {
            Level::Ok => HealthStatus::Healthy,
            Level::Warn => HealthStatus::Degraded,
            Level::Bad => HealthStatus::Critical,
        }
    }
}

/// The 5xx rate's level.
pub fn level_5xx(rate: f64) -> Level {
    Level::of(rate, DEGRADED_5XX, Some(CRITICAL_5XX))
}

/// The 429 rate's level (throttling degrades, it never makes a gateway critical).
pub fn level_429(rate: f64) -> Level {
    Level::of(rate, DEGRADED_429, None)
}

/// The p99 latency's level.
pub fn level_p99(ms: f64) -> Level {
    Level::of(ms, DEGRADED_P99_MS, Some(CRITICAL_P99_MS))
}

/// The instance count's level: any missing is amber; fewer than half ready (or none
/// while some are wanted) is red.
pub fn level_instances(ready: u32, desired: u32) -> Level {
    if ready * 2 < desired || (ready == 0 && desired > 0) {
        Level::Bad
    } else if ready < desired {
        Level::Warn
    } else {
        Level::Ok
    }
}

/// A gateway's numbers over the last few seconds, and its own recent level. Every field
/// is `None` when it could not be read: blind is not healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Numbers {
    /// Fraction answered 5xx.
    pub error_rate_5xx: Option<f64>,
    /// Fraction answered 429.
    pub throttle_rate_429: Option<f64>,
    /// p99 latency, ms.
    pub p99_ms: Option<f64>,
    /// Requests per second now.
    pub rps: Option<f64>,
    /// Requests per second over the last 15 minutes.
    pub baseline_rps: Option<f64>,
}

/// Traffic has fallen to near nothing against the gateway's own recent level.
pub fn traffic_dropped(rps: Option<f64>, baseline_rps: Option<f64>) -> bool {
    match (rps, baseline_rps) {
        (Some(now), Some(before)) => before >= TRAFFIC_DROP_MIN_RPS && now < before * TRAFFIC_DROP,
        _ => false,
    }
}

/// A gateway's status: the worst of its numbers' levels; `unknown` when its traffic
/// numbers could not be read (the instance counts alone do not make it healthy).
pub fn gateway_status(n: &Numbers, ready: u32, desired: u32, checks: Option<[u32; 2]>) -> HealthStatus {
    let (Some(e5), Some(e429), Some(p99)) = (n.error_rate_5xx, n.throttle_rate_429, n.p99_ms) else {
        return HealthStatus::Unknown;
    };
    // A failing synthetic check (passing < checked) is a path that does not answer right:
    // never "healthy" beside a red checks column.
    let checks = match checks {
        Some([ok, all]) if ok < all => Level::Warn,
        _ => Level::Ok,
    };
    let dropped = if traffic_dropped(n.rps, n.baseline_rps) { Level::Warn } else { Level::Ok };
    [level_5xx(e5), level_429(e429), level_p99(p99), level_instances(ready, desired), checks, dropped]
        .into_iter()
        .max()
        .unwrap_or(Level::Ok)
        .status()
}

/// The health page's legend, in words, from the same thresholds.
pub fn legend() -> String {
    // Through integers: printing a float would put core's float formatting in the first
    // download (the thresholds are whole tenths of a percent and whole milliseconds).
    let percent = |f: f64| {
        let tenths = (f * 1000.0).round() as i64;
        if tenths % 10 == 0 { format!("{}%", tenths / 10) } else { format!("{}.{}%", tenths / 10, tenths % 10) }
    };
    let ms = |v: f64| {
        let ms = v.round() as i64;
        if ms >= 1000 && ms % 1000 == 0 { format!("{} s", ms / 1000) } else { format!("{ms} ms") }
    };
    format!(
        "Rates over the last 5 seconds. Status turns amber from {} 5xx, {} 429 or {} p99, with an instance missing \
         or a synthetic check failing; \
         red from {} 5xx, {} p99 or with fewer than half the instances ready. Amber too when traffic falls \
         below a tenth of its own 15-minute level. Unknown (grey) when the numbers cannot be read: \
         nothing is concluded from them.",
        percent(DEGRADED_5XX),
        percent(DEGRADED_429),
        ms(DEGRADED_P99_MS),
        percent(CRITICAL_5XX),
        ms(CRITICAL_P99_MS),
    )
}

/// A dependency map node's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NodeHealth {
    /// Below the degraded 5xx threshold.
    #[default]
    Ok,
    /// Failing noticeably.
    Degraded,
    /// Failing most requests, or nothing ready to serve.
    Down,
    /// No numbers for it (nothing is concluded).
    Unknown,
}

impl NodeHealth {
    /// Lowercase name, also the CSS class suffix and the `health:` search word.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealth::Ok => "ok",
            NodeHealth::Degraded => "degraded",
            NodeHealth::Down => "down",
            NodeHealth::Unknown => "unknown",
        }
    }
}

/// Compares with the wire name (`node.health == "down"`).
impl PartialEq<&str> for NodeHealth {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for NodeHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ok` below the degraded 5xx threshold, `degraded` below [`DOWN_FAILURES`], `down` from
/// there or with nothing ready; `unknown` with no failure share to judge.
pub fn node_health(error_rate: Option<f64>, ready: Option<u32>) -> NodeHealth {
    match error_rate {
        _ if ready == Some(0) => NodeHealth::Down,
        None => NodeHealth::Unknown,
        Some(e) if e >= DOWN_FAILURES => NodeHealth::Down,
        Some(e) if e >= DEGRADED_5XX => NodeHealth::Degraded,
        Some(_) => NodeHealth::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(e5: f64, e429: f64, p99: f64) -> Numbers {
        Numbers {
            error_rate_5xx: Some(e5),
            throttle_rate_429: Some(e429),
            p99_ms: Some(p99),
            rps: Some(100.0),
            baseline_rps: Some(100.0),
        }
    }

    #[test]
    fn a_gateway_whose_numbers_cannot_be_read_is_unknown_never_healthy() {
        let blind = Numbers::default();
        assert_eq!(gateway_status(&blind, 4, 4, None), HealthStatus::Unknown);
        assert_eq!(gateway_status(&blind, 0, 4, Some([3, 3])), HealthStatus::Unknown);
        let partly = Numbers { p99_ms: None, ..n(0.0, 0.0, 10.0) };
        assert_eq!(gateway_status(&partly, 4, 4, None), HealthStatus::Unknown);
        assert_eq!(serde_json::to_string(&HealthStatus::Unknown).unwrap(), "\"unknown\"");
        assert!(legend().contains("Unknown"));
    }

    #[test]
    fn traffic_falling_away_from_its_own_level_is_amber() {
        let at = |now: f64, before: f64| Numbers { rps: Some(now), baseline_rps: Some(before), ..n(0.0, 0.0, 10.0) };
        assert_eq!(gateway_status(&at(2.0, 200.0), 4, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(&at(25.0, 200.0), 4, 4, None), HealthStatus::Healthy);
        // A gateway that was quiet anyway is not "dropped".
        assert_eq!(gateway_status(&at(0.0, 0.5), 4, 4, None), HealthStatus::Healthy);
        // Without a recent level nothing is concluded about a drop.
        assert!(!traffic_dropped(Some(0.0), None));
        assert!(legend().contains("15-minute level"));
    }

    #[test]
    fn the_legend_the_cells_and_the_status_agree() {
        // Every threshold the legend names is the one the status and the cells use.
        let legend = legend();
        for words in ["1% 5xx", "5% 429", "500 ms p99", "5% 5xx", "2 s p99"] {
            assert!(legend.contains(words), "{words} missing from: {legend}");
        }
        // Just below, at, and above each threshold: the status is exactly the worst cell.
        let probes = |t: f64| [t * 0.99, t, t * 1.01];
        for r5 in [0.0].into_iter().chain(probes(DEGRADED_5XX)).chain(probes(CRITICAL_5XX)) {
            for r4 in [0.0].into_iter().chain(probes(DEGRADED_429)) {
                for p99 in [10.0].into_iter().chain(probes(DEGRADED_P99_MS)).chain(probes(CRITICAL_P99_MS)) {
                    for (ready, desired) in [(4, 4), (3, 4), (2, 4), (1, 4), (0, 0), (0, 1)] {
                        let cells = [level_5xx(r5), level_429(r4), level_p99(p99), level_instances(ready, desired)];
                        let worst = cells.into_iter().max().unwrap();
                        assert_eq!(gateway_status(&n(r5, r4, p99), ready, desired, None), worst.status());
                    }
                }
            }
        }
        assert_eq!(gateway_status(&n(0.011, 0.0, 10.0), 4, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(&n(0.05, 0.0, 10.0), 4, 4, None), HealthStatus::Critical);
        assert_eq!(gateway_status(&n(0.0, 0.9, 10.0), 4, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(&n(0.0, 0.0, 2000.0), 4, 4, None), HealthStatus::Critical);
        assert_eq!(gateway_status(&n(0.0, 0.0, 10.0), 1, 4, None), HealthStatus::Critical);
        assert_eq!(gateway_status(&n(0.0, 0.0, 10.0), 3, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(&n(0.0, 0.0, 10.0), 0, 0, None), HealthStatus::Healthy);
        // A failing synthetic check makes a gateway at least degraded.
        assert_eq!(gateway_status(&n(0.0, 0.0, 10.0), 4, 4, Some([2, 3])), HealthStatus::Degraded);
        assert_eq!(gateway_status(&n(0.0, 0.0, 10.0), 4, 4, Some([3, 3])), HealthStatus::Healthy);
    }

    #[test]
    fn a_node_is_degraded_from_the_gateway_threshold_and_down_from_a_fifth_failing() {
        assert_eq!(node_health(Some(0.0), None), NodeHealth::Ok);
        assert_eq!(node_health(Some(DEGRADED_5XX), None), NodeHealth::Degraded);
        assert_eq!(node_health(Some(0.19), Some(3)), NodeHealth::Degraded);
        assert_eq!(node_health(Some(DOWN_FAILURES), None), NodeHealth::Down);
        assert_eq!(node_health(Some(0.0), Some(0)), NodeHealth::Down);
        // No numbers: unknown, unless nothing is ready to serve at all.
        assert_eq!(node_health(None, Some(3)), NodeHealth::Unknown);
        assert_eq!(node_health(None, Some(0)), NodeHealth::Down);
        assert_eq!(serde_json::to_string(&NodeHealth::Down).unwrap(), "\"down\"");
    }
}
