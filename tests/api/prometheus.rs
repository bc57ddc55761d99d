//! A real Prometheus (Debian's `prometheus`) scrapes the simulator's `/sim/metrics`; the
//! console's PromQL (the `gatewarden` flavor of the Kubernetes metrics backend) must
//! answer what the simulator knows to be true. It scrapes the console's own `/metrics`
//! too, which it must read.

use crate::support::{Backend, Options, TestApp, eventually_within};
use server::fleet::Metrics;
use server::fleet::prometheus::{Prometheus, Queries};
use server::fleet::sim::Scenario;
use std::process::Stdio;
use std::time::Duration;

/// Seconds of history each side averages over.
const WINDOW_S: usize = 15;

struct PrometheusServer {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    async fn scraping(target: std::net::SocketAddr) -> Self {
        let binary = ["/usr/bin/prometheus", "prometheus"]
            .into_iter()
            .find(|p| std::process::Command::new(p).arg("--version").output().is_ok())
            .expect("Debian's prometheus is installed (`make test` installs it)");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gatewarden-sim\n    \
                 metrics_path: /sim/metrics\n    static_configs:\n      - targets: ['{target}']\n  \
                 - job_name: gatewarden-console\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config written");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{url}/-/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
                return PrometheusServer { child, url, _dir: dir };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("prometheus did not become ready on {url}");
    }
}

fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    (got - want).abs() <= abs.max(want.abs() * rel)
}

#[tokio::test]
async fn promql_over_a_real_prometheus_matches_the_simulators_ground_truth() {
    // bad-deploy: one gateway serves a share of 5xx, so error rates are not all zero.
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let body = reqwest::get(format!("http://{}/sim/metrics", app.addr)).await.unwrap().text().await.unwrap();
    assert!(body.contains("# TYPE gatewarden_requests_total counter"), "{body}");
    assert!(body.contains("gatewarden_request_duration_seconds_bucket{"), "{body}");
    assert!(body.contains(r#"route="/api/payments""#), "series per route: {body}");

    let mut prometheus = PrometheusServer::scraping(app.addr).await;
    // Simulated time runs at real speed so rates per scraped second are rates per
    // simulated second.
    let sim = app.sim().clone();
    let clock = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            sim.advance(1);
        }
    });
    tokio::time::sleep(Duration::from_secs(WINDOW_S as u64 + 5)).await;

    let mut queries = Queries::flavor("gatewarden").unwrap();
    queries.window = format!("{WINDOW_S}s");
    let metrics = Prometheus::new(&prometheus.url, queries);
    let answers = metrics.current().await.expect("PromQL answers");
    let inventory = server::fleet::Fleet::inventory(&**app.sim()).await.unwrap();
    assert!(!inventory.is_empty());
    let mut compared = 0;
    for gw in inventory.iter() {
        let id = format!("{}:{}", gw.namespace, gw.name);
        let got = answers.get(&id).unwrap_or_else(|| panic!("no PromQL answer for {id}: {answers:?}"));
        let truth = app.sim().raw_window(&gw.id, WINDOW_S).unwrap();
        let rps = truth.total as f64 / WINDOW_S as f64;
        let e5 = truth.c5xx as f64 / truth.total.max(1) as f64;
        let p99 = server::fleet::sim::histogram::quantile(0.99, &truth.buckets);
        assert!(close(got.rps, rps, 0.15, 1.0), "{id} rps: PromQL {} vs simulated {rps}", got.rps);
        assert!(close(got.error_rate_5xx, e5, 0.25, 0.01), "{id} 5xx: PromQL {} vs {e5}", got.error_rate_5xx);
        assert!(close(got.latency_ms.p99, p99, 0.25, 5.0), "{id} p99: PromQL {} vs {p99}", got.latency_ms.p99);
        // The gateway's own level (the mean of the windowed rate over 15 minutes), against
        // which a fall to near nothing is judged, answers for every gateway. With the 20 s of
        // history here its first steps see partial windows, so it is only a lower bound (a
        // young series can only hide a drop, never invent one); the query's form is the
        // unit test's.
        let baseline = got.baseline_rps.unwrap_or_else(|| panic!("{id}: no 15-minute level"));
        assert!(baseline > 0.0 && baseline < rps * 1.5 + 1.0, "{id} level: PromQL {baseline} vs {rps}");
        compared += 1;
    }
    assert!(compared >= 2);
    // The range query's points sit on 15-second boundaries: the newest may fall before
    // Prometheus holds two scrapes in its rate window, so wait (clock running) for one
    // that does.
    let id = answers.keys().next().unwrap().clone();
    let series = eventually_within(Duration::from_secs(30), "a range point with traffic", || {
        let (metrics, id) = (&metrics, id.clone());
        async move {
            let series = metrics.series(&id).await.expect("range query");
            (!series.1.is_empty() && series.1.iter().any(|p| p.rps > 0.0)).then_some(series)
        }
    })
    .await;
    clock.abort();
    assert_eq!(series.0, 15);

    // The console's own metrics, as Prometheus read them: the scrape worked, and the
    // requests this test made are counted by route template.
    let http = reqwest::Client::new();
    let ask = |query: &'static str| {
        let (http, url) = (http.clone(), prometheus.url.clone());
        async move {
            let body: serde_json::Value = http
                .get(format!("{url}/api/v1/query"))
                .query(&[("query", query)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["data"]["result"].as_array().cloned().unwrap_or_default()
        }
    };
    let up = ask(r#"up{job="gatewarden-console"}"#).await;
    assert_eq!(up.first().map(|r| r["value"][1].clone()), Some(serde_json::json!("1")), "{up:?}");
    let scrapes = ask(r#"gatewarden_http_requests_total{route="/metrics",status="200"}"#).await;
    assert!(!scrapes.is_empty(), "Prometheus' own scrapes are counted");
    let build = ask("gatewarden_live_snapshot_build_seconds_count").await;
    assert!(!build.is_empty(), "histograms are read too");
    let _ = prometheus.child.kill().await;
}
