//! Role checks on every endpoint, for every role.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

crate::both_databases!(an_admin_creates_a_responder_who_can_then_sign_in_with_that_role);

async fn an_admin_creates_a_responder_who_can_then_sign_in_with_that_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.signed_in(Role::Admin).await;

    let created = admin
        .post("/api/v1/users", &json!({"username": "oncall.sre", "password": "pager duty 24/7", "role": "responder"}))
        .await;

    assert_eq!(created.status(), StatusCode::CREATED);
    let login = app.login(&app.client(), "oncall.sre", "pager duty 24/7").await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.json::<Value>().await.unwrap()["role"], "responder");
    let users = admin.get_json("/api/v1/users").await;
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "oncall.sre"]);
    assert!(users.to_string().find("password").is_none(), "no password or hash in the list");
}

#[tokio::test]
async fn every_endpoint_allows_exactly_the_roles_it_should() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let sessions = [
        ("viewer", app.signed_in(Role::Viewer).await),
        ("responder", app.signed_in(Role::Responder).await),
        ("admin", app.signed_in(Role::Admin).await),
    ];
    // (method path, lowest role allowed)
    let reads = [
        ("/api/v1/session", Role::Viewer),
        ("/api/v1/gateways", Role::Viewer),
        ("/api/v1/gateways/edge", Role::Viewer),
        ("/api/v1/users", Role::Admin),
    ];
    for (name, session) in &sessions {
        let role: Role = name.parse().unwrap();
        for (path, needed) in reads {
            let status = session.get(path).await.status();
            let expected = if role >= needed { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(status, expected, "{name} GET {path}");
        }
        let new_user = json!({"username": format!("made-by-{name}"), "password": "0123456789ab", "role": "viewer"});
        let with_token = session.post("/api/v1/users", &new_user).await.status();
        let expected = if role == Role::Admin { StatusCode::CREATED } else { StatusCode::FORBIDDEN };
        assert_eq!(with_token, expected, "{name} POST /users");
        let again = json!({"username": format!("again-by-{name}"), "password": "0123456789ab", "role": "viewer"});
        let without_token = session.post_without_csrf("/api/v1/users", &again).await;
        assert_error(without_token, StatusCode::FORBIDDEN, "csrf").await;
    }
    let users = sessions[2].1.get_json("/api/v1/users").await;
    let created: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str())
        .filter(|n| n.starts_with("made-by") || n.starts_with("again-by"))
        .collect();
    assert_eq!(created, ["made-by-admin"], "only the admin's request with a token created anything");
}

#[tokio::test]
async fn a_viewer_is_refused_before_validation_so_errors_leak_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;

    let r = viewer.post("/api/v1/users", &json!({"username": "bad name!", "password": "x", "role": "admin"})).await;

    let message = assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("admin"), "{message}");
}

#[tokio::test]
async fn a_taken_username_is_a_conflict() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;

    let r =
        admin.post("/api/v1/users", &json!({"username": "admin", "password": "0123456789ab", "role": "viewer"})).await;

    assert_error(r, StatusCode::CONFLICT, "conflict").await;
}
