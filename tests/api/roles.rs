//! Role checks on every endpoint, for every role.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

crate::both_databases!(
    an_admin_creates_a_responder_who_can_then_sign_in_with_that_role,
    an_account_whose_record_cannot_be_written_is_not_created,
);

async fn an_admin_creates_a_responder_who_can_then_sign_in_with_that_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.signed_in(Role::Admin).await;

    let created = admin
        .post("/api/v1/users", &json!({"username": "oncall.sre", "password": "pager duty 24/7", "role": "responder", "reason": "a test account"}))
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
        let new_user = json!({"username": format!("made-by-{name}"), "password": "0123456789ab", "role": "viewer", "reason": "a test account"});
        let with_token = session.post("/api/v1/users", &new_user).await.status();
        let expected = if role == Role::Admin { StatusCode::CREATED } else { StatusCode::FORBIDDEN };
        assert_eq!(with_token, expected, "{name} POST /users");
        let again = json!({"username": format!("again-by-{name}"), "password": "0123456789ab", "role": "viewer", "reason": "a test account"});
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

    let r = viewer
        .post(
            "/api/v1/users",
            &json!({"username": "bad name!", "password": "x", "role": "admin", "reason": "a test account"}),
        )
        .await;

    let message = assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("admin"), "{message}");
}

#[tokio::test]
async fn a_taken_username_is_a_conflict() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;

    let r = admin
        .post(
            "/api/v1/users",
            &json!({"username": "admin", "password": "0123456789ab", "role": "viewer", "reason": "a test account"}),
        )
        .await;

    assert_error(r, StatusCode::CONFLICT, "conflict").await;
}

/// Every route of the router (generated from the same table it is built from, and the
/// page list it renders) x anonymous, viewer, responder, admin, with and without the CSRF
/// token: exactly the roles the table names get past the role check.
#[tokio::test]
async fn the_role_matrix_covers_every_route_the_router_serves() {
    use server::http::api::{Access, table};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let restart = admin.post("/api/v1/gateways/edge/actions/restart", &json!({"reason": "matrix"})).await;
    assert_eq!(restart.status(), StatusCode::ACCEPTED);
    let action_id = restart.json::<Value>().await.unwrap()["id"].as_i64().unwrap().to_string();
    let fill = |path: &str, id: &str| {
        path.split('/')
            .map(|seg| match seg {
                "{id}" | ":id" => id.to_string(),
                "{action}" => "restart".to_string(),
                "{entry}" => "1".to_string(),
                "{step}" => "diagnosis-1".to_string(),
                s if s.starts_with('{') || s.starts_with(':') => "edge".to_string(),
                s => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let routes = table();
    assert!(routes.len() >= 23, "every route is in the table");
    let callers: Vec<(&str, Option<Role>, Session)> = vec![
        ("anonymous", None, app.anonymous()),
        ("viewer", Some(Role::Viewer), app.signed_in(Role::Viewer).await),
        ("responder", Some(Role::Responder), app.signed_in(Role::Responder).await),
        ("admin", Some(Role::Admin), app.signed_in(Role::Admin).await),
    ];
    let mut checked = 0;
    // Signing out ends the session: it goes last.
    let ordered = routes
        .iter()
        .filter(|r| r.path != "/session" || r.method != "DELETE")
        .chain(routes.iter().filter(|r| r.path == "/session" && r.method == "DELETE"));
    for route in ordered {
        let id = if route.path.starts_with("/actions") {
            action_id.as_str()
        } else if route.path.starts_with("/audit")
            || route.path.starts_with("/incidents")
            || route.path.starts_with("/approvals")
        {
            "1"
        } else {
            "edge"
        };
        let url = format!("/api/v1{}", fill(route.path, id));
        let changes = route.method != "GET";
        for (name, role, session) in &callers {
            for with_token in [false, true] {
                if !changes && !with_token {
                    continue;
                }
                let mut request = session.client.request(route.method.clone(), app.url(&url));
                if changes {
                    request = request.json(&json!({}));
                }
                if with_token && !session.csrf.is_empty() {
                    request = request.header("x-csrf-token", &session.csrf);
                }
                let response = request.send().await.expect("request");
                let status = response.status();
                let body = if status.is_success() { String::new() } else { response.text().await.unwrap_or_default() };
                let login = route.path == "/session" && route.method == "POST";
                let expected = match (route.access, role) {
                    (Access::Anyone, _) => None,
                    (Access::AtLeast(_), None) => Some(StatusCode::UNAUTHORIZED),
                    // A state-changing request of a signed-in session needs its token first.
                    (_, Some(_)) if changes && !with_token && !login => Some(StatusCode::FORBIDDEN),
                    (Access::AtLeast(needed), Some(role)) if *role < needed => Some(StatusCode::FORBIDDEN),
                    (Access::AtLeast(_), Some(_)) => None,
                };
                let what = format!("{name} {} {url} (token: {with_token}): {status} {body}", route.method);
                match expected {
                    Some(code) => assert_eq!(status, code, "{what}"),
                    None => {
                        assert!(![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status), "{what}");
                        assert!(!body.contains("no such API endpoint"), "{what}");
                    }
                }
                if changes && !with_token && role.is_some() && !login {
                    assert!(body.contains("csrf"), "{what}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * routes.len(), "{checked} requests");

    // Server-rendered pages: anonymous callers are sent to sign in, every role sees them.
    let pages = server::http::page_paths();
    assert!(pages.len() >= 6 && pages.iter().any(|p| p == "/login"), "{pages:?}");
    // (The matrix above signed its sessions out.)
    let viewer = &app.signed_in(Role::Viewer).await;
    let anonymous = &callers[0].2;
    for page in &pages {
        let url = fill(page, "edge");
        let anon = anonymous.get(&url).await;
        let mine = viewer.get(&url).await;
        if page == "/login" {
            assert_eq!(anon.status(), StatusCode::OK, "{url}");
            assert!(mine.status().is_redirection(), "{url}: signed in, to the overview");
        } else {
            assert!(anon.status().is_redirection(), "{url}: {}", anon.status());
            assert_eq!(anon.headers()["location"], "/login", "{url}");
            assert_eq!(mine.status(), StatusCode::OK, "{url}");
        }
    }
    // The routes outside /api/v1 and the pages: liveness and scrape target for anyone.
    for path in ["/healthz", "/metrics", "/sim/metrics"] {
        assert_eq!(anonymous.get(path).await.status(), StatusCode::OK, "{path}");
    }
}

/// An account is never created without its audit entry: with the ledger failing, the
/// request is a 503 and no account exists.
async fn an_account_whose_record_cannot_be_written_is_not_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    app.break_ledger(backend).await;

    let r = admin
        .post("/api/v1/users", &json!({"username": "unrecorded", "password": "0123456789ab", "role": "viewer", "reason": "a test account"}))
        .await;

    let message = assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(message.contains("no account was created"), "{message}");
    let (n,): (i64,) = sqlx::query_as("select count(*) from users where username = 'unrecorded'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
