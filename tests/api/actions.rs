//! The runbook's buttons: each one cures the incident it is for, refuses bad input and
//! callers without the role, previews, and can be undone.

use crate::support::*;
use app::dto::{ActionRecord, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::fleet::sim::Scenario;

crate::both_databases!(
    undo_restores_the_previous_state_once,
    undo_refuses_to_overwrite_a_later_change_by_someone_else,
    a_time_limited_rate_limit_reverts_by_itself_as_the_system,
    of_two_concurrent_undos_exactly_one_runs,
    a_time_limited_scale_goes_back_to_the_previous_count_by_itself,
    an_expiry_whose_revert_fails_is_tried_again_until_it_is_reverted,
    undo_previews_with_dry_run_and_asks_for_the_actions_confirmation,
    after_a_restart_the_default_rollback_goes_to_the_template_that_differs,
);

/// bad-deploy -> restart -> rollback: the restart made a revision with the bad template,
/// so the default rollback skips it to the newest revision that runs something else,
/// says why, and shows what changes in the pods; it cures the 5xx. A named revision wins.
async fn after_a_restart_the_default_rollback_goes_to_the_template_that_differs(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).scenario(Scenario::BadDeploy)).await;
    let admin = app.signed_in(Role::Admin).await;
    accepted(&admin, "edge", "restart", json!({"reason": "try turning it off and on"})).await;
    app.advance(60).await;
    let bad = app.gateway("edge").await;
    assert_eq!(bad.version, "2.15.0");

    let r = act(&admin, "edge", "rollback", json!({"reason": "look", "confirm": "edge", "dry_run": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let preview = r.json::<Value>().await.unwrap()["preview"].clone();
    let summary = preview["summary"].as_str().unwrap();
    assert!(summary.ends_with("(2.15.0) to revision 2 (2.14.1)"), "{summary}");
    let why = preview["warnings"][0].as_str().unwrap();
    assert!(
        why.starts_with("Revision 2 is the newest earlier revision whose pod template differs from what runs: revision #3 runs the same template as revision 4 (a restart)"),
        "{why}"
    );
    let image = preview["changes"].as_array().unwrap().iter().find(|c| c["field"] == "gateway: image").cloned();
    assert_eq!(
        image.map(|c| (c["before"].clone(), c["after"].clone())),
        Some((json!("registry.example.com/api-gateway:2.15.0"), json!("registry.example.com/api-gateway:2.14.1"))),
        "the pod template's differences are shown: {preview}"
    );

    // Naming the restart-only revision is allowed, and the preview says what it does.
    let named =
        act(&admin, "edge", "rollback", json!({"reason": "look", "confirm": "edge", "revision": 3, "dry_run": true}))
            .await;
    let named = named.json::<Value>().await.unwrap()["preview"].clone();
    assert!(named["warnings"][0].as_str().unwrap().contains("runs the same pod template as revision 4"), "{named}");

    accepted(&admin, "edge", "rollback", json!({"reason": "2.15.0 fails 45% of requests", "confirm": "edge"})).await;
    app.advance(60).await;
    let edge = app.gateway("edge").await;
    assert_eq!(edge.version, "2.14.1");
    assert!(edge.error_rate_5xx.unwrap() < 0.01, "5xx back to normal: {edge:?}");
}

/// A rate limit's preview says whom "N req/s" counts, as the backend enforces it (the
/// simulator: one bucket for the whole gateway; ingress-nginx and Kong: see kube.rs).
#[tokio::test]
async fn a_rate_limit_preview_says_whom_the_limit_counts() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let r =
        act(&responder, "edge", "rate-limit", json!({"reason": "look", "requests_per_second": 900, "dry_run": true}))
            .await;
    let preview: Value = r.json().await.unwrap();
    let summary = preview["preview"]["summary"].as_str().unwrap();
    assert_eq!(summary, "Limit edge to 900 req/s, burst 900, counting all clients of the gateway together");
}

/// Undo honours `dry_run` (the exact change, nothing done), and undoing a rollback asks for
/// the same typed confirmation as the rollback: the gateway's id or the name pages show.
async fn undo_previews_with_dry_run_and_asks_for_the_actions_confirmation(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).scenario(Scenario::BadDeploy)).await;
    let admin = app.signed_in(Role::Admin).await;
    let id = accepted(&admin, "edge", "rollback", json!({"reason": "bad deploy", "confirm": "edge"})).await;
    app.advance(60).await;
    assert_eq!(app.gateway("edge").await.version, "2.14.1");
    let path = format!("/api/v1/actions/{id}/undo");

    let preview = admin.post(&path, &json!({"reason": "check", "dry_run": true})).await;
    assert_eq!(preview.status(), StatusCode::OK);
    let preview: Value = preview.json().await.unwrap();
    assert_eq!(preview["status"], "preview");
    assert!(preview["preview"]["confirm_required"].as_bool().unwrap());
    assert!(!preview["preview"]["changes"].as_array().unwrap().is_empty(), "{preview}");
    app.advance(5).await;
    assert_eq!(app.gateway("edge").await.version, "2.14.1", "a preview changes nothing");
    assert!(record(&admin, id).await.undo_available);

    let unconfirmed = admin.post(&path, &json!({"reason": "roll forward"})).await;
    let message = assert_error(unconfirmed, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("'edge'") && message.contains("'public-edge'"), "says exactly what to type: {message}");
    let undone = admin.post(&path, &json!({"reason": "roll forward", "confirm": "public-edge"})).await;
    assert_eq!(undone.status(), StatusCode::ACCEPTED, "the displayed name confirms too");
    app.advance(60).await;
    assert_eq!(app.gateway("edge").await.version, "2.15.0");
}

/// An expired change whose revert fails (the API server down) is not forgotten: each failed
/// try is on the record as the system, the action says "revert pending", it can still be
/// undone, and the revert is tried again, waiting longer each time, until it happens.
async fn an_expiry_whose_revert_fails_is_tried_again_until_it_is_reverted(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let id = cap_edge_for_a_minute(&responder).await;
    app.sim().fail_next_changes(2);
    app.advance(65).await;

    let pending = eventually("the first failed try", || async {
        let r = record(&responder, id).await;
        r.detail.starts_with("revert pending").then_some(r)
    })
    .await;
    assert!(pending.detail.contains("try 1 failed") && pending.detail.contains("next in 5 s"), "{}", pending.detail);
    assert!(pending.undo_available, "a person can still undo it meanwhile");
    app.advance(6).await;
    eventually("the second failed try", || async {
        record(&responder, id).await.detail.contains("try 2 failed").then_some(())
    })
    .await;
    assert!(app.gateway("edge").await.throttle_rate_429.unwrap() > 0.5, "still limited while the reverts fail");
    app.advance(11).await;
    let done = eventually("the revert to go through", || async {
        let r = record(&responder, id).await;
        r.detail.starts_with("reverted").then_some(r)
    })
    .await;
    assert!(!done.undo_available, "a reverted change cannot be undone again");
    app.advance(5).await;
    assert!(app.gateway("edge").await.throttle_rate_429.unwrap() < 0.5, "the limit is gone");
    let failed: Value = responder.get_json("/api/v1/audit?kind=action_outcome&outcome=failed").await;
    let by_system: Vec<&Value> =
        failed["entries"].as_array().unwrap().iter().filter(|e| e["actor"] == "system").collect();
    assert_eq!(by_system.len(), 2, "each failed try is on the record: {failed}");
    assert!(by_system[0]["params"].as_str().unwrap().contains("unavailable"), "{}", by_system[0]);
}

/// `scale` takes `ttl_seconds` like the policy actions: after it, the count goes back to
/// what it was, as the system, unless someone changed it since (issue 14).
async fn a_time_limited_scale_goes_back_to_the_previous_count_by_itself(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let responder = app.signed_in(Role::Responder).await;
    let preview =
        act(&responder, "edge", "scale", json!({"reason": "surge", "replicas": 7, "ttl_seconds": 60, "dry_run": true}))
            .await
            .json::<Value>()
            .await
            .unwrap();
    assert!(preview["preview"]["warnings"][0].as_str().unwrap().contains("Scales back to 4 by itself after 60 s"));
    let id = accepted(&responder, "edge", "scale", json!({"reason": "surge", "replicas": 7, "ttl_seconds": 60})).await;
    assert_eq!(desired(&app).await, 7);
    app.advance(30).await;
    assert_eq!(desired(&app).await, 7, "not before its time");
    app.advance(35).await;
    eventually("the scale to go back", || async { (desired(&app).await == 4).then_some(()) }).await;
    let reverted: Value = responder.get_json("/api/v1/audit?kind=ttl_revert").await;
    let entry = &reverted["entries"][0];
    assert_eq!(entry["actor"], "system");
    assert!(entry["params"].as_str().unwrap().contains(&format!("\"revert_of\":{id}")));

    // Changed since: the expiry leaves the newer count alone.
    let second =
        accepted(&responder, "edge", "scale", json!({"reason": "again", "replicas": 6, "ttl_seconds": 60})).await;
    accepted(&responder, "edge", "scale", json!({"reason": "by hand", "replicas": 9})).await;
    app.advance(65).await;
    eventually("the expiry to be handled", || async {
        let r = record(&responder, second).await;
        (!r.undo_available).then_some(())
    })
    .await;
    assert_eq!(desired(&app).await, 9, "the later change stays");
}

/// An emergency rate limit on edge (1,500 req/s) that expires after 60 s; its action id.
async fn cap_edge_for_a_minute(responder: &Session) -> i64 {
    accepted(responder, "edge", "rate-limit", json!({"reason": "cap", "requests_per_second": 1500, "ttl_seconds": 60}))
        .await
}

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
    assert!(app.gateway("edge").await.error_rate_5xx.unwrap() > 0.3);

    let id = accepted(&admin, "edge", "rollback", json!({"reason": "2.15.0 fails 45% of requests", "confirm": "edge"}))
        .await;
    app.advance(60).await;

    let edge = app.gateway("edge").await;
    assert_eq!(edge.version, "2.14.1");
    assert!(edge.error_rate_5xx.unwrap() < 0.01, "5xx back to normal: {edge:?}");
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
    assert!(edge.error_rate_5xx.unwrap() > 0.3, "{edge:?}");
}

#[tokio::test]
async fn scaling_out_brings_surge_latency_down() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let before = app.gateway("edge").await;
    assert!(before.latency_ms.unwrap().p99 > 2000.0, "{before:?}");

    accepted(&responder, "edge", "scale", json!({"reason": "surge", "replicas": 8})).await;
    app.advance(30).await;

    let after = app.gateway("edge").await;
    assert_eq!((after.instances_ready, after.instances_desired), (8, 8));
    assert!(
        after.latency_ms.unwrap().p99 < 500.0,
        "p99 {} -> {}",
        before.latency_ms.unwrap().p99,
        after.latency_ms.unwrap().p99
    );
}

#[tokio::test]
async fn an_emergency_rate_limit_trades_429s_for_latency() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let before = app.gateway("edge").await;

    accepted(&responder, "edge", "rate-limit", json!({"reason": "shed the surge", "requests_per_second": 1500})).await;
    app.advance(10).await;

    let after = app.gateway("edge").await;
    assert!(
        after.latency_ms.unwrap().p99 < 500.0,
        "p99 {} -> {}",
        before.latency_ms.unwrap().p99,
        after.latency_ms.unwrap().p99
    );
    assert!(
        after.throttle_rate_429.unwrap() > before.throttle_rate_429.unwrap() + 0.2,
        "limited clients get 429: {after:?}"
    );
    assert!(after.error_rate_5xx.unwrap() < 0.01);
}

#[tokio::test]
async fn restarting_does_not_cure_a_surge() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;

    accepted(&responder, "edge", "restart", json!({"reason": "maybe it's stuck"})).await;
    app.advance(60).await;

    assert!(app.gateway("edge").await.latency_ms.unwrap().p99 > 2000.0);
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
    let state = app.sim().raw_window("edge", 1).unwrap();
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
            ("timeouts", json!({"reason": "matrix", "request_timeout_ms": 1000 + n * 100}), Role::Responder),
            ("circuit-breaker", json!({"reason": "matrix", "consecutive_errors": 3 + n}), Role::Responder),
            ("rollback", json!({"reason": "matrix", "confirm": "partner"}), Role::Admin),
            ("bypass", json!({"reason": "matrix", "service": "shipping", "confirm": "partner"}), Role::Admin),
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
    assert_eq!(count("viewer", "role"), 7, "viewer refused every action for its role");
    assert_eq!(count("responder", "role"), 2, "responder refused rollback and bypass");
    assert_eq!(count("viewer", "CSRF") + count("responder", "CSRF") + count("admin", "CSRF"), 21);
}

async fn undo_restores_the_previous_state_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
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

async fn undo_refuses_to_overwrite_a_later_change_by_someone_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let responder = app.signed_in(Role::Responder).await;
    let first = accepted(&responder, "edge", "scale", json!({"reason": "more room", "replicas": 7})).await;
    accepted(&responder, "edge", "scale", json!({"reason": "even more", "replicas": 9})).await;

    let undo = responder.post(&format!("/api/v1/actions/{first}/undo"), &json!({"reason": "not needed"})).await;

    let message = assert_error(undo, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("changed since"), "{message}");
    assert_eq!(desired(&app).await, 9, "the later change stays");
    assert!(record(&responder, first).await.undo_available, "nothing was undone");
    // Refused after its role check: on the record, with the caller's words and why.
    let refused = responder.get_json("/api/v1/audit?kind=undo&outcome=denied").await;
    let entry = &refused["entries"][0];
    assert_eq!((entry["target"].as_str(), entry["reason"].as_str()), (Some("edge"), Some("not needed")), "{refused}");
    let params: Value = serde_json::from_str(entry["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["undo_of"], first);
    assert!(params["refused"].as_str().unwrap().starts_with("changed since"), "{params}");
}

async fn a_time_limited_rate_limit_reverts_by_itself_as_the_system(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).scenario(Scenario::TrafficSurge)).await;
    let responder = app.signed_in(Role::Responder).await;
    let id = cap_edge_for_a_minute(&responder).await;
    app.advance(10).await;
    assert!(app.gateway("edge").await.throttle_rate_429.unwrap() > 0.5);

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
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["intent_id"] == intent && e["outcome"] == "succeeded")
            .then_some(())
    })
    .await;
    app.advance(5).await;
    assert!(app.gateway("edge").await.throttle_rate_429.unwrap() < 0.5, "the limit is gone");
    assert!(!record(&responder, id).await.undo_available, "a reverted change cannot be undone again");
}

#[tokio::test]
async fn restarting_cures_stuck_instances_and_scaling_does_not() {
    let stuck = Options::new(Backend::Sqlite).scenario(Scenario::StuckInstances);
    let (a, b) = (TestApp::spawn_with(stuck.clone()).await, TestApp::spawn_with(stuck).await);
    let before = a.gateway("edge").await;
    assert!(
        before.error_rate_5xx.unwrap() > 0.3 && before.latency_ms.unwrap().p99 > 5000.0,
        "half the pods hang: {before:?}"
    );

    accepted(&a.signed_in(Role::Responder).await, "edge", "restart", json!({"reason": "hung pods"})).await;
    accepted(&b.signed_in(Role::Responder).await, "edge", "scale", json!({"reason": "more pods", "replicas": 8})).await;
    a.advance(60).await;
    b.advance(60).await;

    let (restarted, scaled) = (a.gateway("edge").await, b.gateway("edge").await);
    assert!(restarted.error_rate_5xx.unwrap() < 0.01 && restarted.latency_ms.unwrap().p99 < 500.0, "{restarted:?}");
    assert!(scaled.error_rate_5xx.unwrap() > 0.1, "the stuck pods still get their share: {scaled:?}");
}

#[tokio::test]
async fn a_circuit_breaker_and_short_timeouts_contain_a_downstream_outage() {
    let outage = Options::new(Backend::Sqlite).scenario(Scenario::DownstreamOutage);
    let (a, b) = (TestApp::spawn_with(outage.clone()).await, TestApp::spawn_with(outage).await);
    let before = a.gateway("edge").await;
    assert!(before.latency_ms.unwrap().p99 > 5000.0, "held workers slow every route: {before:?}");
    let responder = a.signed_in(Role::Responder).await;

    accepted(
        &responder,
        "edge",
        "circuit-breaker",
        json!({"reason": "payments is down", "service": "payments", "consecutive_errors": 5}),
    )
    .await;
    accepted(&responder, "edge", "timeouts", json!({"reason": "fail fast", "request_timeout_ms": 1000})).await;
    accepted(&b.signed_in(Role::Responder).await, "edge", "restart", json!({"reason": "wrong fix"})).await;
    a.advance(30).await;
    b.advance(60).await;

    let contained = a.gateway("edge").await;
    assert!(contained.latency_ms.unwrap().p99 < 500.0, "the other routes are fast again: {contained:?}");
    let payments_share = 60.0 / 900.0;
    assert!(contained.error_rate_5xx.unwrap() < 1.5 * payments_share, "errors confined to payments: {contained:?}");
    assert!(b.gateway("edge").await.latency_ms.unwrap().p99 > 5000.0, "a restart changes nothing");
}

#[tokio::test]
async fn fewer_retries_end_a_retry_storm_and_a_restart_does_not() {
    let storm = Options::new(Backend::Sqlite).scenario(Scenario::RetryStorm);
    let (a, b) = (TestApp::spawn_with(storm.clone()).await, TestApp::spawn_with(storm).await);
    let before = a.gateway("partner").await;
    assert!(before.error_rate_5xx.unwrap() > 0.15, "inventory stays overloaded long after the blip: {before:?}");

    accepted(
        &a.signed_in(Role::Responder).await,
        "partner",
        "timeouts",
        json!({"reason": "retry storm", "retries": 0}),
    )
    .await;
    accepted(&b.signed_in(Role::Responder).await, "partner", "restart", json!({"reason": "wrong fix"})).await;
    a.advance(30).await;
    b.advance(60).await;

    let calm = a.gateway("partner").await;
    assert!(calm.error_rate_5xx.unwrap() < 0.01, "{calm:?}");
    assert!(b.gateway("partner").await.error_rate_5xx.unwrap() > 0.15);
}

#[tokio::test]
async fn bypassing_the_gateway_restores_a_critical_service_during_an_auth_failure() {
    let auth = Options::new(Backend::Sqlite).scenario(Scenario::AuthFailure);
    let (a, b) = (TestApp::spawn_with(auth.clone()).await, TestApp::spawn_with(auth).await);
    let before = a.gateway("edge").await;
    assert!(before.error_rate_5xx.unwrap() > 0.9, "every route errors: {before:?}");
    assert!(a.sim().client_success("payments").unwrap() < 0.5);
    let admin = a.signed_in(Role::Admin).await;

    let preview =
        act(&admin, "edge", "bypass", json!({"reason": "checkout must work", "service": "payments", "dry_run": true}))
            .await;
    let preview: Value = preview.json().await.unwrap();
    assert!(preview["preview"]["warnings"][0].as_str().unwrap().contains("no authentication, WAF or rate limiting"));
    assert_eq!(preview["preview"]["confirm_required"], true);
    accepted(
        &admin,
        "edge",
        "bypass",
        json!({"reason": "checkout must work", "service": "payments", "confirm": "edge"}),
    )
    .await;
    accepted(&b.signed_in(Role::Responder).await, "edge", "restart", json!({"reason": "wrong fix"})).await;
    a.advance(10).await;
    b.advance(60).await;

    assert!(a.sim().client_success("payments").unwrap() > 0.99, "payments' clients are served directly");
    let after = a.gateway("edge").await;
    assert!(
        after.rps.unwrap() < before.rps.unwrap() * 0.97,
        "payments traffic no longer passes the gateway: {} -> {}",
        before.rps.unwrap(),
        after.rps.unwrap()
    );
    assert!(b.sim().client_success("payments").unwrap() < 0.5, "a restart does not fix auth");
}

#[tokio::test]
async fn new_policy_actions_validate_their_parameters() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let cases = [
        ("timeouts", json!({"reason": "r"}), "request_timeout_ms"),
        ("timeouts", json!({"reason": "r", "request_timeout_ms": 10}), "request_timeout_ms"),
        ("timeouts", json!({"reason": "r", "retries": 11}), "retries"),
        ("timeouts", json!({"reason": "r", "retries": 2}), "request_timeout_ms"),
        ("circuit-breaker", json!({"reason": "r", "max_ejection_percent": 0}), "max_ejection_percent"),
        ("circuit-breaker", json!({"reason": "r", "service": "nope"}), "service"),
        ("bypass", json!({"reason": "r", "confirm": "edge"}), "service"),
        ("bypass", json!({"reason": "r", "service": "shipping", "confirm": "edge"}), "service"),
        ("bypass", json!({"reason": "r", "service": "payments"}), "confirm"),
    ];
    for (action, body, field) in cases {
        let r = act(&admin, "edge", action, body.clone()).await;
        let message = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert!(message.contains(field), "{action} {body}: {message}");
    }
    let responder = app.signed_in(Role::Responder).await;
    let r = act(&responder, "edge", "bypass", json!({"reason": "r", "service": "payments", "confirm": "edge"})).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

/// Of two undos of one action sent at once, exactly one runs (the action is claimed by a
/// conditional update before anything changes); the other is a 409, on the record.
async fn of_two_concurrent_undos_exactly_one_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let responder = app.signed_in(Role::Responder).await;
    let id = accepted(&responder, "edge", "scale", json!({"reason": "more room", "replicas": 7})).await;
    let path = format!("/api/v1/actions/{id}/undo");
    let (first, second) = (json!({"reason": "first"}), json!({"reason": "second"}));
    let (a, b) = tokio::join!(responder.post(&path, &first), responder.post(&path, &second));
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::CONFLICT]);
    assert_eq!(desired(&app).await, 4, "undone once");
    let (undos,): (i64,) = sqlx::query_as("select count(*) from actions where undo_of = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(undos, 1, "one undo action");
    let refused: Value = responder.get_json("/api/v1/audit?kind=undo&outcome=denied").await;
    let entries = refused["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "the loser is on the record: {entries:?}");
    assert!(entries[0]["params"].as_str().unwrap().contains(&format!("\"undo_of\":{id}")));
}

/// The charts mark when the bad revision rolled out and when the rollback ran, at the
/// charts' own times, so a responder can line a spike up with its cause.
#[tokio::test]
async fn the_charts_mark_the_bad_revision_and_the_rollback() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::BadDeploy)).await;
    let admin = app.signed_in(Role::Admin).await;
    let detail: app::dto::GatewayDetail =
        serde_json::from_value(admin.get_json("/api/v1/gateways/edge").await).unwrap();
    let (first, last) = (detail.series.first().unwrap().ts_ms, detail.series.last().unwrap().ts_ms);
    let labels: Vec<&str> = detail.marks.iter().map(|m| m.label.as_str()).collect();
    // Only the revision rolled out during the charts' 15 minutes: older ones are off the chart.
    assert_eq!(labels, ["rev 3 (2.15.0)"], "{:?}", detail.marks);
    let deployed = detail.marks[0].ts_ms;
    assert!(first < deployed && deployed < last, "{first} < {deployed} < {last}");
    // The 5xx rate jumps right after the mark, not before.
    let rate = |from: i64, to: i64| {
        let p: Vec<f64> =
            detail.series.iter().filter(|p| p.ts_ms > from && p.ts_ms <= to).map(|p| p.error_rate_5xx).collect();
        p.iter().sum::<f64>() / p.len() as f64
    };
    assert!(rate(first, deployed - 1000) < 0.01 && rate(deployed + 60_000, last) > 0.3);

    let id = accepted(&admin, "edge", "rollback", json!({"reason": "2.15.0 fails", "confirm": "edge"})).await;
    app.advance(5).await;
    let detail: app::dto::GatewayDetail =
        serde_json::from_value(admin.get_json("/api/v1/gateways/edge").await).unwrap();
    let rollback = detail.marks.iter().find(|m| m.action == Some(id)).expect("the rollback is marked");
    assert_eq!(rollback.label, "rollback");
    let now = detail.series.last().unwrap().ts_ms;
    assert!(now - 6_000 <= rollback.ts_ms && rollback.ts_ms <= now, "marked when it ran: {} vs {now}", rollback.ts_ms);
    // A rollback reuses the old revision: no new revision mark.
    assert_eq!(detail.marks.iter().filter(|m| m.action.is_none()).count(), 1, "{:?}", detail.marks);
}

#[tokio::test]
async fn the_catalogue_states_the_bounds_this_console_keeps_and_the_planner_keeps_them() {
    let mut options = Options::new(Backend::Sqlite);
    options.max_replicas = 200;
    options.require_approval = vec!["rollback".into()];
    let app = TestApp::spawn_with(options).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let responder = app.signed_in(Role::Responder).await;

    let catalogue: app::dto::Catalogue = viewer.get("/api/v1/catalogue").await.json().await.unwrap();

    let scale = catalogue.get("scale").expect("scale is offered");
    let replicas = scale.fields.iter().find(|f| f.name == "replicas").unwrap();
    assert_eq!((replicas.min, replicas.max), (Some(1), Some(200)), "--max-replicas, not a number in the page");
    let rollback = catalogue.get("rollback").unwrap();
    assert_eq!((rollback.role, rollback.approval), (Role::Responder, true), "a responder may ask for it");
    assert_eq!(catalogue.get("bypass").unwrap().role, Role::Admin);
    // What the catalogue says is what a request meets.
    let at_bound = act(&responder, "edge", "scale", json!({"reason": "surge", "replicas": 200, "dry_run": true})).await;
    assert_eq!(at_bound.status(), StatusCode::OK);
    let past = act(&responder, "edge", "scale", json!({"reason": "surge", "replicas": 201, "dry_run": true})).await;
    let message = assert_error(past, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("1 to 200"), "{message}");
    assert_eq!(app.anonymous().get("/api/v1/catalogue").await.status(), StatusCode::UNAUTHORIZED);
}
