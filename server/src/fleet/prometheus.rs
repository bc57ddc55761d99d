//! Gateway traffic numbers from Prometheus (PromQL over HTTP), for `--fleet kube`.
//!
//! Every query is grouped `by (namespace, deployment)`, so each answer maps onto a
//! gateway id (`namespace:deployment`). Gateways export their own metric names; a
//! [`Queries`] set says which metrics to read and, when series carry a pod label rather
//! than a deployment label, how to derive the Deployment from the pod name (a
//! Deployment's pods are named `<deployment>-<template hash>-<suffix>`).

use super::{FleetError, FleetResult, HealthWindow, Metrics};
use app::dto::{Latency, SeriesPoint};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The metric names of one kind of gateway. Each field may be overridden from a JSON
/// file (`--prometheus-queries`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queries {
    /// Range of `rate()`, a PromQL duration.
    pub window: String,
    /// Counter of all requests (a selector).
    pub requests: String,
    /// The same counter restricted to 5xx answers.
    pub errors_5xx: String,
    /// The counter of throttled (429) answers.
    pub throttled_429: String,
    /// `_bucket` series of the latency histogram.
    pub duration_bucket: String,
    /// Milliseconds per unit of the histogram's `le` (1000 for seconds, 1 for ms).
    pub duration_unit_ms: f64,
    /// Label holding the pod name when series have no `deployment` label.
    pub pod_label: Option<String>,
    /// Label holding the namespace.
    pub namespace_label: String,
}

impl Queries {
    /// The defaults for a gateway kind: `ingress-nginx`, `envoy`, `kong`, or `gatewarden`
    /// (the simulator's `/metrics`).
    pub fn flavor(name: &str) -> Option<Self> {
        let q = |requests: &str, e5: &str, t429: &str, bucket: &str, unit: f64, pod: Option<&str>, ns: &str| Queries {
            window: "1m".into(),
            requests: requests.into(),
            errors_5xx: e5.into(),
            throttled_429: t429.into(),
            duration_bucket: bucket.into(),
            duration_unit_ms: unit,
            pod_label: pod.map(str::to_string),
            namespace_label: ns.into(),
        };
        Some(match name {
            "ingress-nginx" => q(
                "nginx_ingress_controller_requests",
                r#"nginx_ingress_controller_requests{status=~"5.."}"#,
                r#"nginx_ingress_controller_requests{status="429"}"#,
                "nginx_ingress_controller_request_duration_seconds_bucket",
                1000.0,
                Some("controller_pod"),
                "controller_namespace",
            ),
            "envoy" => q(
                "envoy_http_downstream_rq_xx",
                r#"envoy_http_downstream_rq_xx{envoy_response_code_class="5"}"#,
                "envoy_http_local_rate_limit_rate_limited",
                "envoy_http_downstream_rq_time_bucket",
                1.0,
                Some("pod"),
                "namespace",
            ),
            "kong" => q(
                "kong_http_requests_total",
                r#"kong_http_requests_total{code=~"5.."}"#,
                r#"kong_http_requests_total{code="429"}"#,
                "kong_request_latency_ms_bucket",
                1.0,
                Some("pod"),
                "namespace",
            ),
            "gatewarden" => q(
                "gatewarden_requests_total",
                r#"gatewarden_requests_total{code=~"5.."}"#,
                r#"gatewarden_requests_total{code="429"}"#,
                "gatewarden_request_duration_seconds_bucket",
                1000.0,
                None,
                "namespace",
            ),
            _ => return None,
        })
    }

    /// `inner` with `namespace` and `deployment` labels to group by.
    fn labelled(&self, inner: &str) -> String {
        let mut expr = inner.to_string();
        if let Some(pod) = &self.pod_label {
            expr = format!(r#"label_replace({expr}, "deployment", "$1", "{pod}", "(.+)-[a-z0-9]+-[a-z0-9]+")"#);
        }
        if self.namespace_label != "namespace" {
            expr = format!(r#"label_replace({expr}, "namespace", "$1", "{}", "(.*)")"#, self.namespace_label);
        }
        expr
    }

    fn rate(&self, counter: &str) -> String {
        format!("sum by (namespace, deployment) ({})", self.labelled(&format!("rate({counter}[{}])", self.window)))
    }

    fn quantile(&self, q: f64) -> String {
        let rate = self.labelled(&format!("rate({}[{}])", self.duration_bucket, self.window));
        format!("histogram_quantile({q}, sum by (namespace, deployment, le) ({rate})) * {}", self.duration_unit_ms)
    }

    /// Requests per second over the last 15 minutes: the gateway's own level, against
    /// which a fall to near nothing is judged. The mean of the windowed rate (a subquery),
    /// not `rate(...[15m])`: that divides by the full 15 minutes even when the series is
    /// younger (a new gateway, a restarted Prometheus), making the level look low.
    pub fn baseline(&self) -> String {
        format!("avg_over_time(({})[15m:15s])", self.rate(&self.requests))
    }

    /// The six queries behind a health window, in `Six` order.
    pub fn all(&self) -> [String; 6] {
        [
            self.rate(&self.requests),
            self.rate(&self.errors_5xx),
            self.rate(&self.throttled_429),
            self.quantile(0.5),
            self.quantile(0.95),
            self.quantile(0.99),
        ]
    }
}

/// Seconds between chart points.
pub const SERIES_STEP_S: u32 = 15;
/// The chart's span.
const SERIES_SPAN_S: i64 = 15 * 60;

/// Metrics read from a Prometheus server.
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
    queries: Queries,
}

type Sample = BTreeMap<i64, f64>;

impl Prometheus {
    /// A client for the Prometheus at `base` (e.g. `http://prometheus:9090`).
    pub fn new(base: &str, queries: Queries) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http, base: base.trim_end_matches('/').to_string(), queries }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> FleetResult<Value> {
        let answer = self.ask(path, params).await;
        if answer.is_err() {
            crate::metrics::get().prometheus_error();
        }
        answer
    }

    async fn ask(&self, path: &str, params: &[(&str, String)]) -> FleetResult<Value> {
        let unavailable = |e: String| FleetError::Unavailable(format!("prometheus: {e}"));
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| unavailable(format!("HTTP {status}: {e}")))?;
        if body["status"] != "success" {
            return Err(unavailable(format!("{}: {}", body["errorType"], body["error"])));
        }
        Ok(body["data"]["result"].clone())
    }

    /// One instant query: value by gateway id.
    async fn instant(&self, query: &str, at_s: f64) -> FleetResult<HashMap<String, f64>> {
        let result = self.get("/api/v1/query", &[("query", query.to_string()), ("time", at_s.to_string())]).await?;
        Ok(series(&result).filter_map(|(id, v)| Some((id, number(v.get("value")?.get(1)?)?))).collect())
    }

    /// One range query over the chart's span: points by gateway id.
    async fn range(&self, query: &str, end_s: i64) -> FleetResult<HashMap<String, Sample>> {
        let params = [
            ("query", query.to_string()),
            ("start", (end_s - SERIES_SPAN_S).to_string()),
            ("end", end_s.to_string()),
            ("step", SERIES_STEP_S.to_string()),
        ];
        let result = self.get("/api/v1/query_range", &params).await?;
        Ok(series(&result)
            .map(|(id, v)| {
                let points = v["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| Some((p.get(0)?.as_f64()? as i64, number(p.get(1)?)?)))
                    .collect();
                (id, points)
            })
            .collect())
    }
}

/// Gateway id and series of each element of a vector or matrix result.
fn series(result: &Value) -> impl Iterator<Item = (String, &Value)> {
    result.as_array().into_iter().flatten().filter_map(|v| {
        let m = v.get("metric")?;
        Some((format!("{}:{}", m.get("namespace")?.as_str()?, m.get("deployment")?.as_str()?), v))
    })
}

/// A sample value: Prometheus sends numbers as strings; NaN (no traffic) counts as 0.
fn number(v: &Value) -> Option<f64> {
    let x: f64 = v.as_str()?.parse().ok()?;
    Some(if x.is_finite() { x } else { 0.0 })
}

fn window(ts_ms: i64, v: [f64; 6]) -> HealthWindow {
    let frac = |x: f64| if v[0] > 0.0 { (x / v[0]).clamp(0.0, 1.0) } else { 0.0 };
    HealthWindow {
        ts_ms,
        rps: v[0],
        error_rate_5xx: frac(v[1]),
        throttle_rate_429: frac(v[2]),
        latency_ms: Latency { p50: v[3], p95: v[4], p99: v[5] },
        baseline_rps: None,
    }
}

impl Metrics for Prometheus {
    fn current(&self) -> BoxFuture<'_, FleetResult<HashMap<String, HealthWindow>>> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc();
            let at = now.unix_timestamp_nanos() as f64 / 1e9;
            let queries = self.queries.all();
            let baseline = self.queries.baseline();
            let (answers, baseline) = futures::future::join(
                futures::future::try_join_all(queries.iter().map(|q| self.instant(q, at))),
                self.instant(&baseline, at),
            )
            .await;
            let answers = answers?;
            // Without its own level a gateway is still judged; only a drop is not.
            let baseline = baseline.unwrap_or_default();
            let mut ids: Vec<&String> = answers[0].keys().collect();
            ids.sort();
            Ok(ids
                .into_iter()
                .map(|id| {
                    let v = std::array::from_fn(|i| answers[i].get(id).copied().unwrap_or(0.0));
                    let mut w = window((at * 1000.0) as i64, v);
                    w.baseline_rps = baseline.get(id).copied();
                    (id.clone(), w)
                })
                .collect())
        })
    }

    fn series(&self, gateway: &str) -> BoxFuture<'_, FleetResult<(u32, Vec<SeriesPoint>)>> {
        let gateway = gateway.to_string();
        Box::pin(async move {
            let end = time::OffsetDateTime::now_utc().unix_timestamp();
            let end = end - end % i64::from(SERIES_STEP_S);
            let queries = self.queries.all();
            let mut answers = futures::future::try_join_all(queries.iter().map(|q| self.range(q, end))).await?;
            let mine: Vec<Sample> = answers.iter_mut().map(|a| a.remove(&gateway).unwrap_or_default()).collect();
            let points = mine[0]
                .keys()
                .map(|ts| {
                    let v = std::array::from_fn(|i| mine[i].get(ts).copied().unwrap_or(0.0));
                    window(ts * 1000, v).point()
                })
                .collect();
            Ok((SERIES_STEP_S, points))
        })
    }
}

/// Metrics when no Prometheus is configured: no numbers, which the health view shows
/// as unknown next to the backend problem.
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn current(&self) -> BoxFuture<'_, FleetResult<HashMap<String, HealthWindow>>> {
        Box::pin(async { Err(FleetError::Unavailable("no Prometheus configured (--prometheus-url)".into())) })
    }

    fn series(&self, _gateway: &str) -> BoxFuture<'_, FleetResult<(u32, Vec<SeriesPoint>)>> {
        Box::pin(async { Err(FleetError::Unavailable("no Prometheus configured (--prometheus-url)".into())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_labelled_flavors_derive_the_deployment_and_namespace() {
        let q = Queries::flavor("ingress-nginx").unwrap();
        assert_eq!(
            q.all()[1],
            r#"sum by (namespace, deployment) (label_replace(label_replace(rate(nginx_ingress_controller_requests{status=~"5.."}[1m]), "deployment", "$1", "controller_pod", "(.+)-[a-z0-9]+-[a-z0-9]+"), "namespace", "$1", "controller_namespace", "(.*)"))"#
        );
        let q = Queries::flavor("gatewarden").unwrap();
        assert_eq!(
            q.all()[5],
            "histogram_quantile(0.99, sum by (namespace, deployment, le) (rate(gatewarden_request_duration_seconds_bucket[1m]))) * 1000"
        );
        assert!(Queries::flavor("haproxy").is_none());
        // The level is the mean of the windowed rate, not `rate(...[15m])`, which divides a
        // young series' increase by the whole 15 minutes (16.5 req/s read for 957).
        assert_eq!(
            q.baseline(),
            "avg_over_time((sum by (namespace, deployment) (rate(gatewarden_requests_total[1m])))[15m:15s])"
        );
    }

    #[test]
    fn answers_map_to_gateway_ids_and_nan_counts_as_zero() {
        let result = serde_json::json!([
            {"metric": {"namespace": "prod", "deployment": "edge"}, "value": [1.0, "12.5"]},
            {"metric": {"namespace": "prod", "deployment": "idle"}, "value": [1.0, "NaN"]},
            {"metric": {"namespace": "prod"}, "value": [1.0, "3"]},
        ]);
        let got: Vec<(String, Option<f64>)> = series(&result).map(|(id, v)| (id, number(&v["value"][1]))).collect();
        assert_eq!(got, vec![("prod:edge".into(), Some(12.5)), ("prod:idle".into(), Some(0.0))]);
        let w = window(0, [200.0, 10.0, 50.0, 20.0, 80.0, 120.0]);
        assert_eq!((w.error_rate_5xx, w.throttle_rate_429), (0.05, 0.25));
    }
}
