//! The runbook's buttons: each one cures the incident it is for, refuses bad input and
//! callers without the role, previews, and can be undone.

use crate::support::*;
use app::dto::{ActionRecord, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::fleet::sim::Scenario;

async fn act(session: &Session, gateway: &str, action: &str, body: Value) -> reqwest::Response {
    session.post(&format!("/api/v1/gateways/{gateway}/actions/{action}"), &body).await
}

async fn accepted(session: &Session, gateway: &str, action: &str, body: Value) -> i64 {
    let r = act(session, gateway, action, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{action}");
    r.json::<Value>().await.unwrap()["id"].as_i64().expect("action id")
}

async fn record(session: &Session, id: i64) -> ActionRecord {
    serde_json::from_value(session.get_json(&format!("/api/v1/actions/{id}")).await).unwrap()
}

async fn desired(app: &TestApp) -> u32 {
    app.gateway("edge").await.instances_desired
}

#[tokio::test]
async fn rolling_back_a_bad_deploy_cures_it() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let admin = app.signed_in(Role::Admin).await;
    assert!(app.gateway("edge").await.error_rate_5xx > 0.3);

    let id = accepted(&admin, "edge", "rollback", json!({"reason": "2.15.0 fails 45% of requests", "confirm": "edge"}))
        .await;
    app.advance(60).await;

    let edge = app.gateway("edge").await;
    assert_eq!(edge.version, "2.14.1");
    assert!(edge.error_rate_5xx < 0.01, "5xx back to normal: {edge:?}");
    let done = eventually("rollout finished", || async {
        let r = record(&admin, id).await;
        (r.status == "succeeded" && r.impact_after.is_some()).then_some(r)
    })
    .await;
    let (before, after) = (done.impact_before.unwrap(), done.impact_after.unwrap());
    assert!(before.error_rate_5xx > 0.3 && after.error_rate_5xx < 0.01, "{before:?} -> {after:?}");
    assert_eq!(after.clock_s - before.clock_s, 60);
    let progress = done.progress.unwrap();
    assert_eq!((progress.updated, progress.ready, progress.total), (4, 4, 4));
}

#[tokio::test]
async fn restarting_does_not_cure_a_bad_deploy() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let responder = app.signed_in(Role::Responder).await;

    accepted(&responder, "edge", "restart", json!({"reason": "try turning it off and on"})).await;
    app.advance(60).await;

    let edge = app.gateway("edge").await;
    assert_eq!(edge.version, "2.15.0", "a restart keeps the bad version");
    assert!(edge.error_rate_5xx > 0.3, "{edge:?}");
}

#[tokio::test]
async fn scaling_out_brings_surge_latency_down() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let before = app.gateway("edge").await;
    assert!(before.latency_ms.p99 > 2000.0, "{before:?}");

    accepted(&responder, "edge", "scale", json!({"reason": "surge", "replicas": 8})).await;
    app.advance(30).await;

    let after = app.gateway("edge").await;
    assert_eq!((after.instances_ready, after.instances_desired), (8, 8));
    assert!(after.latency_ms.p99 < 500.0, "p99 {} -> {}", before.latency_ms.p99, after.latency_ms.p99);
}

#[tokio::test]
async fn an_emergency_rate_limit_trades_429s_for_latency() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let before = app.gateway("edge").await;

    accepted(&responder, "edge", "rate-limit", json!({"reason": "shed the surge", "requests_per_second": 1500})).await;
    app.advance(10).await;

    let after = app.gateway("edge").await;
    assert!(after.latency_ms.p99 < 500.0, "p99 {} -> {}", before.latency_ms.p99, after.latency_ms.p99);
    assert!(after.throttle_rate_429 > before.throttle_rate_429 + 0.2, "limited clients get 429: {after:?}");
    assert!(after.error_rate_5xx < 0.01);
}

#[tokio::test]
async fn restarting_does_not_cure_a_surge() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;

    accepted(&responder, "edge", "restart", json!({"reason": "maybe it's stuck"})).await;
    app.advance(60).await;

    assert!(app.gateway("edge").await.latency_ms.p99 > 2000.0);
}

#[tokio::test]
async fn a_dry_run_previews_the_exact_change_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let entries = app.audit_count().await;

    let r = act(&responder, "edge", "scale", json!({"reason": "plan", "replicas": 6, "dry_run": true})).await;

    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "preview");
    assert!(body["id"].is_null());
    assert_eq!(body["preview"]["changes"][0], json!({"field": "spec.replicas", "before": "4", "after": "6"}));
    assert_eq!(body["preview"]["summary"], "Scale edge from 4 to 6 replicas");
    assert_eq!(desired(&app).await, 4);
    assert_eq!(app.audit_count().await, entries, "a dry run writes nothing");
}

#[tokio::test]
async fn bad_parameters_are_422s_naming_the_field_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let cases = [
        ("scale", json!({"reason": "r", "replicas": 0}), "replicas"),
        ("scale", json!({"reason": "r", "replicas": 51}), "replicas"),
        ("scale", json!({"reason": "r", "replicas": "eight"}), "replicas"),
        ("scale", json!({"reason": "r"}), "replicas"),
        ("scale", json!({"reason": "r", "replicas": 4}), "replicas"),
        ("scale", json!({"replicas": 6}), "reason"),
        ("scale", json!({"reason": "   ", "replicas": 6}), "reason"),
        ("scale", json!({"reason": "r", "replicas": 6, "replica": 7}), "replica"),
        ("restart", json!({"reason": "r", "force": true}), "force"),
        ("rollback", json!({"reason": "r", "revision": 99, "confirm": "edge"}), "revision"),
        ("rollback", json!({"reason": "r", "revision": 2, "confirm": "edge"}), "revision"),
        ("rollback", json!({"reason": "r"}), "confirm"),
        ("rate-limit", json!({"reason": "r", "requests_per_second": 0}), "requests_per_second"),
        ("rate-limit", json!({"reason": "r", "requests_per_second": 100, "route": "/nope"}), "route"),
        ("rate-limit", json!({"reason": "r", "requests_per_second": 100, "ttl_seconds": 5}), "ttl_seconds"),
        ("scale", json!(["not", "an", "object"]), "body"),
    ];
    let entries = app.audit_count().await;
    for (action, body, field) in cases {
        let r = act(&admin, "edge", action, body.clone()).await;
        let message = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert!(message.contains(field), "{action} {body}: {message}");
    }
    assert_eq!(desired(&app).await, 4);
    let state = app.sim.raw_window("edge", 1).unwrap();
    assert!(state.total > 0);
    let actions: Vec<Value> = serde_json::from_value(admin.get_json("/api/v1/actions").await).unwrap();
    assert!(actions.is_empty(), "no action was recorded");
    assert_eq!(app.audit_count().await, entries, "rejected input starts nothing");
    let unknown = act(&admin, "edge", "reboot-everything", json!({"reason": "r"})).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let gone = act(&admin, "nope", "scale", json!({"reason": "r", "replicas": 6})).await;
    assert_error(gone, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn every_role_gets_exactly_its_actions_and_every_refusal_is_audited() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let sessions = [
        ("anonymous", app.anonymous()),
        ("viewer", app.signed_in(Role::Viewer).await),
        ("responder", app.signed_in(Role::Responder).await),
        ("admin", app.signed_in(Role::Admin).await),
    ];
    for (n, (name, session)) in sessions.iter().enumerate() {
        let role: Option<Role> = name.parse().ok();
        // Each caller asks for a different count, so a success never makes the next a no-op.
        let actions = [
            ("restart", json!({"reason": "matrix"}), Role::Responder),
            ("scale", json!({"reason": "matrix", "replicas": 5 + n}), Role::Responder),
            ("rate-limit", json!({"reason": "matrix", "requests_per_second": 5000}), Role::Responder),
            ("rollback", json!({"reason": "matrix", "confirm": "partner"}), Role::Admin),
        ];
        for (action, body, needed) in &actions {
            // Without the CSRF token nobody gets through, whatever the role.
            let no_token = session.post_without_csrf(&format!("/api/v1/gateways/partner/actions/{action}"), body).await;
            let expected = if role.is_some() { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
            assert_eq!(no_token.status(), expected, "{name} {action} without CSRF token");
            let with_token = act(session, "partner", action, body.clone()).await.status();
            let expected = match role {
                None => StatusCode::UNAUTHORIZED,
                Some(r) if r >= *needed => StatusCode::ACCEPTED,
                Some(_) => StatusCode::FORBIDDEN,
            };
            assert_eq!(with_token, expected, "{name} {action}");
        }
    }
    let admin = &sessions[3].1;
    let denied: Value = admin.get_json("/api/v1/audit?outcome=denied&kind=action_intent&limit=500").await;
    let denied = denied["entries"].as_array().unwrap();
    let count = |actor_prefix: &str, why: &str| {
        denied
            .iter()
            .filter(|e| {
                e["actor"].as_str().unwrap().starts_with(actor_prefix) && e["params"].as_str().unwrap().contains(why)
            })
            .count()
    };
    assert_eq!(count("viewer", "role"), 4, "viewer refused four times for its role");
    assert_eq!(count("responder", "role"), 1, "responder refused rollback");
    assert_eq!(count("viewer", "CSRF") + count("responder", "CSRF") + count("admin", "CSRF"), 12);
}

#[tokio::test]
async fn undo_restores_the_previous_state_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let id = accepted(&responder, "edge", "scale", json!({"reason": "more room", "replicas": 7})).await;
    assert_eq!(desired(&app).await, 7);
    assert!(record(&responder, id).await.undo_available);

    let undo = responder.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "not needed"})).await;

    assert_eq!(undo.status(), StatusCode::ACCEPTED);
    let undo_id = undo.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(desired(&app).await, 4);
    let original = record(&responder, id).await;
    assert_eq!(original.undone_by, Some(undo_id));
    assert!(!original.undo_available);
    assert_eq!(record(&responder, undo_id).await.undo_of, Some(id));
    let again = responder.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "twice"})).await;
    assert_error(again, StatusCode::CONFLICT, "conflict").await;
    let no_reason = responder.post(&format!("/api/v1/actions/{undo_id}/undo"), &json!({})).await;
    assert_error(no_reason, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
}

#[tokio::test]
async fn a_time_limited_rate_limit_reverts_by_itself_as_the_system() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let id = accepted(
        &responder,
        "edge",
        "rate-limit",
        json!({"reason": "cap", "requests_per_second": 1500, "ttl_seconds": 60}),
    )
    .await;
    app.advance(10).await;
    assert!(app.gateway("edge").await.throttle_rate_429 > 0.5);

    app.advance(55).await;

    let reverted = eventually("the TTL revert", || async {
        let page: Value = responder.get_json("/api/v1/audit?kind=ttl_revert").await;
        page["entries"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(reverted["actor"], "system");
    assert!(reverted["params"].as_str().unwrap().contains(&format!("\"revert_of\":{id}")));
    // The intent is written before the change; wait for its outcome.
    let intent = reverted["id"].as_i64().unwrap();
    eventually("the revert's outcome", || async {
        let page: Value = responder.get_json("/api/v1/audit?kind=action_outcome").await;
        page["entries"].as_array().unwrap().iter().any(|e| e["intent_id"] == intent && e["outcome"] == "succeeded").then_some(())
    })
    .await;
    app.advance(5).await;
    assert!(app.gateway("edge").await.throttle_rate_429 < 0.5, "the limit is gone");
    assert!(!record(&responder, id).await.undo_available, "a reverted change cannot be undone again");
}

#[tokio::test]
async fn actions_not_built_yet_say_so_with_501() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    for action in ["timeouts", "circuit-breaker", "bypass"] {
        let r = act(&admin, "edge", action, json!({"reason": "r"})).await;
        assert_error(r, StatusCode::NOT_IMPLEMENTED, "not_implemented").await;
    }
}
