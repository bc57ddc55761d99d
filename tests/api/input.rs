//! Bad input gets a clear 4xx JSON message and changes nothing.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::json;

async fn user_count(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("select count(*) from users").fetch_one(&app.state.db).await.unwrap();
    n
}

#[tokio::test]
async fn malformed_json_is_a_400_that_says_why() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app
        .client()
        .post(app.url("/api/v1/session"))
        .header("content-type", "application/json")
        .body("{\"username\": \"admin\", ")
        .send()
        .await
        .unwrap();
    let message = assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(message.to_lowercase().contains("json"), "{message}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.client().post(app.url("/api/v1/session")).body("username=admin&password=x").send().await.unwrap();
    let message = assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    assert!(message.contains("application/json"), "{message}");
}

#[tokio::test]
async fn a_missing_field_is_a_422_naming_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.client().post(app.url("/api/v1/session")).json(&json!({"username": "admin"})).send().await.unwrap();
    let message = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("password"), "{message}");
}

#[tokio::test]
async fn an_oversized_body_is_a_413_and_creates_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let huge = "x".repeat(200 * 1024);

    let r = admin
        .post(
            "/api/v1/users",
            &json!({"username": "big", "password": huge, "role": "viewer", "reason": "a test account"}),
        )
        .await;

    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn invalid_new_users_are_422s_naming_the_field_and_create_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let cases = [
        (
            json!({"username": "has space", "password": "0123456789ab", "role": "viewer", "reason": "a test account"}),
            "username",
        ),
        (json!({"username": "", "password": "0123456789ab", "role": "viewer", "reason": "a test account"}), "username"),
        (json!({"username": "short.pw", "password": "123", "role": "viewer", "reason": "a test account"}), "password"),
        (
            json!({"username": "bad.role", "password": "0123456789ab", "role": "root", "reason": "a test account"}),
            "role",
        ),
        (json!({"username": "no.reason", "password": "0123456789ab", "role": "viewer"}), "reason"),
        (
            json!({"username": "long.reason", "password": "0123456789ab", "role": "viewer", "reason": "x".repeat(1001)}),
            "reason",
        ),
    ];
    for (body, field) in cases {
        let r = admin.post("/api/v1/users", &body).await;
        let message = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_eq!(user_count(&app).await, 1, "only the admin exists");
}

#[tokio::test]
async fn unknown_gateways_and_endpoints_are_404_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let message = assert_error(viewer.get("/api/v1/gateways/nope").await, StatusCode::NOT_FOUND, "not_found").await;
    assert!(message.contains("nope"));
    assert_error(viewer.get("/api/v1/no-such-thing").await, StatusCode::NOT_FOUND, "not_found").await;
}
