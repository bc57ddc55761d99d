//! Gateway health numbers: shape, agreement with the simulation, scenarios, determinism.

use crate::support::*;
use app::dto::{GatewayDetail, GatewaySummary, Role};
use server::fleet::sim::Scenario;
use server::fleet::sim::histogram::{BOUNDS_MS, Buckets};

async fn gateways(app: &TestApp) -> Vec<GatewaySummary> {
    let viewer = app.signed_in(Role::Viewer).await;
    serde_json::from_value(viewer.get_json("/api/v1/gateways").await).expect("gateway list shape")
}

fn find<'a>(list: &'a [GatewaySummary], id: &str) -> &'a GatewaySummary {
    list.iter().find(|g| g.id == id).unwrap_or_else(|| panic!("gateway {id}"))
}

/// Prometheus' histogram_quantile, written out independently of the server's.
fn reference_quantile(q: f64, b: &Buckets) -> f64 {
    let total: u64 = b.iter().sum();
    let rank = q * total as f64;
    let mut cum = 0.0;
    for (i, &n) in b.iter().enumerate() {
        if cum + n as f64 >= rank && n > 0 {
            if i == BOUNDS_MS.len() {
                return BOUNDS_MS[i - 1];
            }
            let lo = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
            return lo + (BOUNDS_MS[i] - lo) * (rank - cum) / n as f64;
        }
        cum += n as f64;
    }
    unreachable!()
}

#[tokio::test]
async fn the_list_shows_both_gateways_with_sane_numbers() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let list = gateways(&app).await;

    let ids: Vec<&str> = list.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["edge", "partner"]);
    for g in &list {
        assert!(g.rps.unwrap() > 100.0, "{g:?}");
        assert!(
            (0.0..=1.0).contains(&g.error_rate_5xx.unwrap()) && (0.0..=1.0).contains(&g.throttle_rate_429.unwrap())
        );
        assert!(
            0.0 < g.latency_ms.unwrap().p50
                && g.latency_ms.unwrap().p50 <= g.latency_ms.unwrap().p95
                && g.latency_ms.unwrap().p95 <= g.latency_ms.unwrap().p99
        );
        assert_eq!(g.instances_ready, g.instances_desired);
        assert!(!g.version.is_empty());
    }
}

#[tokio::test]
async fn the_numbers_are_the_simulations_ground_truth() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    app.advance(17).await;

    let list = gateways(&app).await;

    for id in ["edge", "partner"] {
        let g = find(&list, id);
        let raw = app.sim().raw_window(id, 5).unwrap();
        assert!((g.rps.unwrap() - raw.total as f64 / 5.0).abs() < 1e-9, "{id} rps");
        assert!((g.error_rate_5xx.unwrap() - raw.c5xx as f64 / raw.total as f64).abs() < 1e-12, "{id} 5xx");
        assert!((g.throttle_rate_429.unwrap() - raw.c429 as f64 / raw.total as f64).abs() < 1e-12, "{id} 429");
        assert!((g.latency_ms.unwrap().p99 - reference_quantile(0.99, &raw.buckets)).abs() < 1e-9, "{id} p99");
        assert!((g.latency_ms.unwrap().p50 - reference_quantile(0.50, &raw.buckets)).abs() < 1e-9, "{id} p50");
    }
}

#[tokio::test]
async fn a_healthy_fleet_is_green_with_low_error_rates() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for g in gateways(&app).await {
        assert_eq!(g.status.as_str(), "healthy", "{g:?}");
        assert!(g.error_rate_5xx.unwrap() < 0.005 && g.throttle_rate_429.unwrap() < 0.01, "{g:?}");
        assert!(g.latency_ms.unwrap().p99 < 500.0, "{g:?}");
    }
}

#[tokio::test]
async fn a_bad_deploy_makes_the_new_edge_version_fail_and_leaves_partner_alone() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let viewer = app.signed_in(Role::Viewer).await;

    let list = gateways(&app).await;
    let edge: GatewayDetail = serde_json::from_value(viewer.get_json("/api/v1/gateways/edge").await).unwrap();

    let e = find(&list, "edge");
    assert_eq!(e.status.as_str(), "critical");
    assert_eq!(e.version, "2.15.0");
    assert!((0.35..0.55).contains(&e.error_rate_5xx.unwrap()), "45% of what the bad version serves fails: {e:?}");
    assert!(edge.instances.iter().all(|i| i.version == "2.15.0" && i.ready), "rollout completed");
    let before_onset = &edge.series[..edge.series.len() * 3 / 5];
    assert!(before_onset.iter().all(|p| p.error_rate_5xx < 0.01), "the charts show the fleet was fine before");
    let p = find(&list, "partner");
    assert_eq!(p.status.as_str(), "healthy", "{p:?}");
}

#[tokio::test]
async fn a_traffic_surge_raises_429s_and_latency_on_the_edge() {
    let healthy = TestApp::spawn(Backend::Sqlite).await;
    let surge = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;

    let (calm, busy) = (gateways(&healthy).await, gateways(&surge).await);

    let (c, b) = (find(&calm, "edge"), find(&busy, "edge"));
    assert!(
        b.rps.unwrap() > 3.0 * c.rps.unwrap(),
        "offered load roughly quadruples: {} vs {}",
        b.rps.unwrap(),
        c.rps.unwrap()
    );
    assert!(b.throttle_rate_429.unwrap() > 0.25, "quotas answer 429: {b:?}");
    assert!(
        b.latency_ms.unwrap().p99 > 3.0 * c.latency_ms.unwrap().p99,
        "queueing drives p99 up: {} vs {}",
        b.latency_ms.unwrap().p99,
        c.latency_ms.unwrap().p99
    );
    assert_ne!(b.status.as_str(), "healthy");
    assert_eq!(find(&busy, "partner").status.as_str(), "healthy");
}

async fn list_and_edge(app: &TestApp) -> (serde_json::Value, serde_json::Value) {
    let viewer = app.signed_in(Role::Viewer).await;
    (viewer.get_json("/api/v1/gateways").await, viewer.get_json("/api/v1/gateways/edge").await)
}

#[tokio::test]
async fn the_same_seed_gives_the_same_numbers_and_another_seed_does_not() {
    let a = TestApp::spawn_with(Options::new(Backend::Sqlite).seed(11)).await;
    let b = TestApp::spawn_with(Options::new(Backend::Sqlite).seed(11)).await;
    let c = TestApp::spawn_with(Options::new(Backend::Sqlite).seed(12)).await;
    for app in [&a, &b, &c] {
        app.advance(42).await;
    }

    let (ra, rb, rc) = (list_and_edge(&a).await, list_and_edge(&b).await, list_and_edge(&c).await);

    assert_eq!(ra, rb, "same seed, same actions: every number and instance name equal");
    assert_ne!(ra.0, rc.0, "another seed gives other numbers");
}

#[tokio::test]
async fn a_gateway_page_has_its_instances_and_fifteen_minutes_of_history() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;

    let d: GatewayDetail = serde_json::from_value(viewer.get_json("/api/v1/gateways/partner").await).unwrap();

    assert_eq!(d.name, "partner-api");
    assert_eq!(d.instances.len(), 3);
    assert!(d.instances.iter().all(|i| i.name.starts_with("partner-api-") && i.age_s > 3 * 86_400));
    assert_eq!(d.series_step_s, 5);
    assert_eq!(d.series.len(), 180);
    let span = d.series.last().unwrap().ts_ms - d.series.first().unwrap().ts_ms;
    assert_eq!(span, (15 * 60 - 5) * 1000);
    assert!(d.series.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms));
}

#[tokio::test]
async fn numbers_move_as_simulated_time_passes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let before = gateways(&app).await;
    app.advance(5).await;
    let after = gateways(&app).await;
    assert_ne!(find(&before, "edge").rps, find(&after, "edge").rps);
}
