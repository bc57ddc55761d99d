//! Signing in and out, sessions, CSRF and throttling.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

crate::both_databases!(
    signing_in_with_the_right_password_returns_the_user_role_and_a_csrf_token,
    unknown_user_and_wrong_password_get_identical_answers,
    a_session_survives_a_server_restart,
    signing_out_ends_the_session_on_the_server,
);

async fn signing_in_with_the_right_password_returns_the_user_role_and_a_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client();

    let response = app.login(&client, "admin", ADMIN_PASSWORD).await;

    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("gatewarden_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http must not mark the cookie Secure: {cookie}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "admin");
    assert_eq!(body["role"], "admin");
    assert!(body["csrf_token"].as_str().unwrap().len() >= 32);
    let session: Value = client.get(app.url("/api/v1/session")).send().await.unwrap().json().await.unwrap();
    assert_eq!(session, body, "GET /session returns the same user and token");
}

async fn unknown_user_and_wrong_password_get_identical_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let wrong_password = app.login(&app.client(), "admin", "not the password").await;
    let unknown_user = app.login(&app.client(), "nobody", "not the password").await;

    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_user.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong_password.headers().get("set-cookie").is_none());
    let (a, b) = (wrong_password.text().await.unwrap(), unknown_user.text().await.unwrap());
    assert_eq!(a, b, "the two failures must be indistinguishable");
    assert!(a.contains("invalid_credentials"));
}

async fn a_session_survives_a_server_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.signed_in(Role::Admin).await;
    let db = app.stop().await;

    let restarted = TestApp::spawn_on(db, Options::new(backend)).await;
    let response = session.client.get(restarted.url("/api/v1/session")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "admin");
    assert_eq!(body["csrf_token"], session.csrf.as_str());
}

async fn signing_out_ends_the_session_on_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client();
    let login = app.login(&client, "admin", ADMIN_PASSWORD).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();

    let logout = client.delete(app.url("/api/v1/session")).header("x-csrf-token", &csrf).send().await.unwrap();

    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // Replaying the old cookie from elsewhere must not work either.
    let replay = app.client().get(app.url("/api/v1/session")).header("cookie", cookie).send().await.unwrap();
    assert_error(replay, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn signing_in_again_issues_a_new_session_id() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.client();

    let first = app.login(&client, "admin", ADMIN_PASSWORD).await;
    let second = app.login(&client, "admin", ADMIN_PASSWORD).await;

    let id = |r: &reqwest::Response| r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_ne!(id(&first), id(&second), "login must cycle the session id (no fixation)");
}

#[tokio::test]
async fn state_changes_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;

    let no_token = admin.client.delete(app.url("/api/v1/session")).send().await.unwrap();
    let wrong_token =
        admin.client.delete(app.url("/api/v1/session")).header("x-csrf-token", "guess").send().await.unwrap();

    assert_error(no_token, StatusCode::FORBIDDEN, "csrf").await;
    assert_error(wrong_token, StatusCode::FORBIDDEN, "csrf").await;
    assert_eq!(admin.get("/api/v1/session").await.status(), StatusCode::OK, "still signed in");
    assert_eq!(admin.delete("/api/v1/session").await.status(), StatusCode::NO_CONTENT, "with the token it works");
}

#[tokio::test]
async fn an_account_is_locked_for_a_while_after_five_wrong_passwords() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for _ in 0..5 {
        let r = app.login(&app.client(), "admin", "wrong password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    let right_password = app.login(&app.client(), "admin", ADMIN_PASSWORD).await;

    assert_eq!(right_password.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = right_password.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_error(right_password, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    use clap::Parser;
    let args = server::config::Cli::try_parse_from([
        "gatewarden",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "sqlite::memory:",
        "--public-url",
        "https://gatewarden.example.com",
    ])
    .unwrap()
    .serve;
    assert!(server::startup::Settings::from_args(args.clone()).unwrap().secure_cookies);
    let plain = server::config::ServeArgs { public_url: Some("http://localhost:3000".into()), ..args };
    assert!(!server::startup::Settings::from_args(plain).unwrap().secure_cookies);
}

#[tokio::test]
async fn anonymous_api_calls_get_401_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anon = app.anonymous();
    for path in ["/api/v1/session", "/api/v1/gateways", "/api/v1/gateways/edge", "/api/v1/events", "/api/v1/users"] {
        assert_error(anon.get(path).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let r = anon
        .post(
            "/api/v1/users",
            &json!({"username": "x", "password": "0123456789", "role": "admin", "reason": "a test account"}),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn idle_and_over_age_sessions_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let idle = app.signed_in(Role::Viewer).await;
    let old = app.signed_in(Role::Responder).await;
    let sessions: Vec<(String, String)> =
        sqlx::query_as("select id, data from sessions").fetch_all(&app.state.db).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let login_at = |data: &str| -> i64 {
        let v: Value = serde_json::from_str(data).unwrap();
        v["data"]["auth"]["login_at_ms"].as_i64().unwrap()
    };
    let (idle_id, old_id) = {
        // Tell the two sessions apart by which user they belong to: the responder signed in second.
        let mut s = sessions.clone();
        s.sort_by_key(|(_, d)| login_at(d));
        (s[0].0.clone(), s[1].clone())
    };

    // Idle: the store's expiry (renewed by every request) has passed.
    sqlx::query("update sessions set expiry_date = $1 where id = $2")
        .bind(server::db::now_ms() - 1)
        .bind(&idle_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    // Over age: signed in 13 hours ago, however active since (absolute limit 12 h). The
    // stored text is edited in place: a JSON round trip would turn the i128 id to a float.
    let was = format!("\"login_at_ms\":{}", login_at(&old_id.1));
    let now = format!("\"login_at_ms\":{}", server::db::now_ms() - 13 * 3600 * 1000);
    assert!(old_id.1.contains(&was));
    sqlx::query("update sessions set data = $1 where id = $2")
        .bind(old_id.1.replace(&was, &now))
        .bind(&old_id.0)
        .execute(&app.state.db)
        .await
        .unwrap();

    assert_error(idle.get("/api/v1/gateways").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(old.get("/api/v1/gateways").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

/// Issue 29, item 12: the sign-in page takes a page signed out under someone's eyes back
/// to where it was, and only to a page of this console (never an open redirect).
#[tokio::test]
async fn signing_in_goes_back_to_the_page_it_came_from_and_never_to_another_site() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = || reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client().get(app.url("/login?next=%2Fgateways%2Fedge")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<input type="hidden" name="next" value="/gateways/edge">"#), "{page}");
    for bad in ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/login?next=/x"] {
        let url = format!("/login?next={}", form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>());
        let page = client().get(app.url(&url)).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("name=\"next\""), "{bad} is not kept");
    }
    let post = |next: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let r = client()
                .post(app.url("/login"))
                .form(&[("username", "admin"), ("password", password), ("next", next)])
                .send()
                .await
                .unwrap();
            r.headers()["location"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(post("/gateways/edge", "wrong").await, "/login?failed=credentials&next=%2Fgateways%2Fedge");
    assert_eq!(post("/gateways/edge", ADMIN_PASSWORD).await, "/gateways/edge");
    assert_eq!(post("//evil.example/", ADMIN_PASSWORD).await, "/");
}
