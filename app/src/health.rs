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
}

impl HealthStatus {
    /// Lowercase name, also the CSS class suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Critical => "critical",
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

/// A gateway's status: the worst of its numbers' levels.
pub fn gateway_status(
    error_rate_5xx: f64,
    throttle_rate_429: f64,
    p99_ms: f64,
    ready: u32,
    desired: u32,
    checks: Option<[u32; 2]>,
) -> HealthStatus {
    // A failing synthetic check (passing < checked) is a path that does not answer right:
    // never "healthy" beside a red checks column.
    let checks = match checks {
        Some([ok, all]) if ok < all => Level::Warn,
        _ => Level::Ok,
    };
    [
        level_5xx(error_rate_5xx),
        level_429(throttle_rate_429),
        level_p99(p99_ms),
        level_instances(ready, desired),
        checks,
    ]
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
         red from {} 5xx, {} p99 or with fewer than half the instances ready.",
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
}

impl NodeHealth {
    /// Lowercase name, also the CSS class suffix and the `health:` search word.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealth::Ok => "ok",
            NodeHealth::Degraded => "degraded",
            NodeHealth::Down => "down",
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
/// there or with nothing ready.
pub fn node_health(error_rate: f64, ready: Option<u32>) -> NodeHealth {
    if ready == Some(0) || error_rate >= DOWN_FAILURES {
        NodeHealth::Down
    } else if error_rate >= DEGRADED_5XX {
        NodeHealth::Degraded
    } else {
        NodeHealth::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                        assert_eq!(gateway_status(r5, r4, p99, ready, desired, None), worst.status());
                    }
                }
            }
        }
        assert_eq!(gateway_status(0.011, 0.0, 10.0, 4, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(0.05, 0.0, 10.0, 4, 4, None), HealthStatus::Critical);
        assert_eq!(gateway_status(0.0, 0.9, 10.0, 4, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(0.0, 0.0, 2000.0, 4, 4, None), HealthStatus::Critical);
        assert_eq!(gateway_status(0.0, 0.0, 10.0, 1, 4, None), HealthStatus::Critical);
        assert_eq!(gateway_status(0.0, 0.0, 10.0, 3, 4, None), HealthStatus::Degraded);
        assert_eq!(gateway_status(0.0, 0.0, 10.0, 0, 0, None), HealthStatus::Healthy);
        // A failing synthetic check makes a gateway at least degraded.
        assert_eq!(gateway_status(0.0, 0.0, 10.0, 4, 4, Some([2, 3])), HealthStatus::Degraded);
        assert_eq!(gateway_status(0.0, 0.0, 10.0, 4, 4, Some([3, 3])), HealthStatus::Healthy);
    }

    #[test]
    fn a_node_is_degraded_from_the_gateway_threshold_and_down_from_a_fifth_failing() {
        assert_eq!(node_health(0.0, None), NodeHealth::Ok);
        assert_eq!(node_health(DEGRADED_5XX, None), NodeHealth::Degraded);
        assert_eq!(node_health(0.19, Some(3)), NodeHealth::Degraded);
        assert_eq!(node_health(DOWN_FAILURES, None), NodeHealth::Down);
        assert_eq!(node_health(0.0, Some(0)), NodeHealth::Down);
        assert_eq!(serde_json::to_string(&NodeHealth::Down).unwrap(), "\"down\"");
    }
}
