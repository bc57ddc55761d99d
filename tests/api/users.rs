//! User management (issue 19): admins list accounts, change roles, disable and enable
//! them, reset passwords and end sessions; everyone changes their own password. Each
//! change is on the record with its reason; the last active admin stays.

use crate::replicas::{next_event, open};
use crate::support::{ADMIN_PASSWORD, Backend, Session, TestApp, TestDb, USER_PASSWORD, assert_error};
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The newest audit entries matching `query`, as the admin sees them.
async fn entries(admin: &Session, query: &str) -> Vec<Value> {
    admin.get_json(&format!("/api/v1/audit?{query}")).await["entries"].as_array().cloned().unwrap_or_default()
}

fn params(entry: &Value) -> Value {
    serde_json::from_str(entry["params"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

async fn user(admin: &Session, name: &str) -> Value {
    let list = admin.get_json("/api/v1/users").await;
    list.as_array().unwrap().iter().find(|u| u["username"] == name).cloned().unwrap_or(Value::Null)
}

async fn sign_in(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    app.login(&app.client(), name, password).await
}

#[tokio::test]
async fn admins_see_each_accounts_source_last_sign_in_and_open_sessions() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    app.add_user("quiet", Role::Viewer).await;
    let busy = app.signed_in(Role::Responder).await;
    let busy_name = busy.username().await;
    let _second = Session::sign_in(&app.url(""), &busy_name, USER_PASSWORD).await;

    let quiet = user(&admin, "quiet").await;
    assert_eq!((quiet["source"].as_str(), quiet["active_sessions"].as_i64()), (Some("local"), Some(0)), "{quiet}");
    assert!(quiet["last_sign_in_ms"].is_null() && quiet["disabled_at_ms"].is_null(), "{quiet}");
    let busy = user(&admin, &busy_name).await;
    assert_eq!((busy["role"].as_str(), busy["active_sessions"].as_i64()), (Some("responder"), Some(2)), "{busy}");
    assert!(busy["last_sign_in_ms"].as_i64().unwrap() > 0, "{busy}");
}

#[tokio::test]
async fn a_role_change_takes_effect_at_once_and_is_on_the_record_with_its_reason() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let person = app.signed_in(Role::Viewer).await;
    let name = person.username().await;
    assert_eq!(person.get("/api/v1/users").await.status(), StatusCode::FORBIDDEN);

    let r = admin.patch(&format!("/api/v1/users/{name}"), &json!({"role": "admin", "reason": "new team lead"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "admin");
    // The same session, its next request: no sign-in again.
    assert_eq!(person.get("/api/v1/users").await.status(), StatusCode::OK);

    let recorded = entries(&admin, "kind=user_change&action=change-role").await;
    let entry = &recorded[0];
    assert_eq!((entry["target"].as_str(), entry["reason"].as_str()), (Some(name.as_str()), Some("new team lead")));
    assert_eq!((entry["actor"].as_str(), entry["outcome"].as_str()), (Some("admin"), Some("succeeded")), "{entry}");
    assert_eq!(params(entry), json!({"from": "viewer", "to": "admin"}));
}

/// `b` is another replica of `a` (with PostgreSQL), or `a` itself.
async fn disabling_ends_every_session_at_once_on_every_replica(a: &TestApp, b: &TestApp) {
    let admin = a.signed_in(Role::Admin).await;
    let person = a.signed_in(Role::Responder).await;
    let name = person.username().await;
    // The person watches the live feed through the other replica.
    let on_b = person.on(b);
    let mut stream = open(&on_b, None).await;
    let mut buffer = String::new();
    next_event(&mut stream, &mut buffer, "snapshot").await;

    let r =
        admin.patch(&format!("/api/v1/users/{name}"), &json!({"disabled": true, "reason": "left the company"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = r.json().await.unwrap();
    assert!(listed["disabled_at_ms"].as_i64().is_some(), "{listed}");
    assert_eq!(listed["active_sessions"], 0, "{listed}");

    assert_error(on_b.get("/api/v1/gateways").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(person.get("/api/v1/gateways").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    use futures::StreamExt;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the open event stream on the other replica ended");
    // The right password is told the account is disabled; a wrong one learns nothing.
    let r = sign_in(b, &name, USER_PASSWORD).await;
    let message = assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("disabled"), "{message}");
    assert_error(sign_in(b, &name, "not the password").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let r = admin.patch(&format!("/api/v1/users/{name}"), &json!({"disabled": false, "reason": "came back"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.unwrap()["disabled_at_ms"].is_null());
    assert_eq!(sign_in(b, &name, USER_PASSWORD).await.status(), StatusCode::OK);

    let disabled = entries(&admin, "kind=user_change&action=disable-user").await;
    assert_eq!(disabled[0]["reason"], "left the company");
    assert_eq!(entries(&admin, "kind=user_change&action=enable-user").await[0]["reason"], "came back");
    let refused = entries(&admin, "kind=login_failure").await;
    assert!(refused.iter().any(|e| params(e)["refused"] == "account disabled"), "{refused:?}");
}

#[tokio::test]
async fn disabling_ends_every_session_at_once_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    disabling_ends_every_session_at_once_on_every_replica(&app, &app).await;
}

#[tokio::test]
async fn disabling_ends_every_session_at_once_on_every_replica_postgres() {
    let fake = crate::kube::fleet_with_policy();
    let db = TestDb::new(Backend::Postgres).await;
    let a = crate::replicas::replica(db.share(), &fake).await;
    let b = crate::replicas::replica(db.share(), &fake).await;
    disabling_ends_every_session_at_once_on_every_replica(&a, &b).await;
}

#[tokio::test]
async fn a_password_reset_is_shown_once_ends_the_sessions_and_only_the_new_password_works() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let person = app.signed_in(Role::Viewer).await;
    let name = person.username().await;

    let r = admin.post(&format!("/api/v1/users/{name}/password"), &json!({"reason": "forgot it"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let reset: Value = r.json().await.unwrap();
    let password = reset["password"].as_str().unwrap().to_string();
    assert_eq!((password.len(), reset["sessions_ended"].as_i64()), (20, Some(1)), "{reset}");

    assert_error(person.get("/api/v1/session").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(sign_in(&app, &name, USER_PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(sign_in(&app, &name, &password).await.status(), StatusCode::OK);
    // The password is nowhere on the record.
    let export = admin.get("/api/v1/audit/export?format=jsonl").await.text().await.unwrap();
    assert!(!export.contains(&password));
    assert_eq!(entries(&admin, "action=reset-password").await[0]["reason"], "forgot it");
}

#[tokio::test]
async fn revoked_sessions_stay_ended_even_when_a_request_under_way_saves_one_again() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let person = app.signed_in(Role::Responder).await;
    let name = person.username().await;
    let saved: Vec<(String, String, i64)> = sqlx::query_as(
        "select s.id, s.data, s.expiry_date from sessions s join users u on u.id = s.user_id where u.username = $1",
    )
    .bind(&name)
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert_eq!(saved.len(), 1);

    let r = admin.post(&format!("/api/v1/users/{name}/revoke-sessions"), &json!({"reason": "laptop stolen"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["sessions_ended"], 1);
    assert_error(person.get("/api/v1/session").await, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // A request of that session that had loaded it before the revocation saves it back.
    let (id, data, expiry) = &saved[0];
    sqlx::query("insert into sessions (id, data, expiry_date) values ($1, $2, $3)")
        .bind(id)
        .bind(data)
        .bind(expiry)
        .execute(&app.state.db)
        .await
        .unwrap();
    assert_error(person.get("/api/v1/session").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // The person signs in again as usual.
    assert_eq!(sign_in(&app, &name, USER_PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(entries(&admin, "action=revoke-sessions").await[0]["reason"], "laptop stolen");
}

async fn the_last_active_admin_can_be_neither_demoted_nor_disabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    for body in [json!({"role": "responder", "reason": "oops"}), json!({"disabled": true, "reason": "oops"})] {
        let r = admin.patch("/api/v1/users/admin", &body).await;
        let message = assert_error(r, StatusCode::CONFLICT, "conflict").await;
        assert!(message.contains("last active admin"), "{message}");
    }
    assert_eq!(user(&admin, "admin").await["role"], "admin");
    let refused = entries(&admin, "kind=user_change&outcome=denied").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(params(&refused[0])["refused"].as_str().unwrap().contains("last active admin"));

    // A disabled admin does not count as the other one.
    app.add_user("dormant", Role::Admin).await;
    let r = admin.patch("/api/v1/users/dormant", &json!({"disabled": true, "reason": "on leave"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(
        admin.patch("/api/v1/users/admin", &json!({"role": "viewer", "reason": "x"})).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;

    // Two active admins demoting each other at the same moment: one of them stays.
    app.add_user("second", Role::Admin).await;
    let second = Session::sign_in(&app.url(""), "second", USER_PASSWORD).await;
    let demote = json!({"role": "viewer", "reason": "race"});
    let (one, two) =
        tokio::join!(admin.patch("/api/v1/users/second", &demote), second.patch("/api/v1/users/admin", &demote));
    let mut statuses = [one.status().as_u16(), two.status().as_u16()];
    statuses.sort();
    let (admins,): (i64,) = sqlx::query_as("select count(*) from users where role = 'admin' and disabled_at is null")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(admins, 1, "statuses {statuses:?}");
    // The loser is refused (or, were its session's role already gone, forbidden).
    assert!(statuses == [200, 403] || statuses == [200, 409], "{statuses:?}");
}

#[tokio::test]
async fn the_last_active_admin_can_be_neither_demoted_nor_disabled_sqlite() {
    the_last_active_admin_can_be_neither_demoted_nor_disabled(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_last_active_admin_can_be_neither_demoted_nor_disabled_postgres() {
    the_last_active_admin_can_be_neither_demoted_nor_disabled(Backend::Postgres).await;
}

#[tokio::test]
async fn only_admins_manage_accounts_and_every_refusal_is_on_the_record() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let responder = app.signed_in(Role::Responder).await;
    let me = responder.username().await;
    let attempts = [
        responder.patch(&format!("/api/v1/users/{me}"), &json!({"role": "admin", "reason": "promote me"})).await,
        responder.post("/api/v1/users/admin/password", &json!({"reason": "take over"})).await,
        responder.post("/api/v1/users/admin/revoke-sessions", &json!({"reason": "lock them out"})).await,
    ];
    for r in attempts {
        assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(user(&admin, &me).await["role"], "responder");
    assert_eq!(admin.get("/api/v1/session").await.status(), StatusCode::OK, "the admin's session lives");
    let denied = entries(&admin, &format!("kind=user_change&outcome=denied&actor={me}")).await;
    let mut actions: Vec<&str> = denied.iter().map(|e| e["action"].as_str().unwrap()).collect();
    actions.sort();
    assert_eq!(actions, ["change-user", "reset-password", "revoke-sessions"]);
    // Without the CSRF token: refused, and recorded as the change it would have been.
    let r =
        admin.client.patch(admin.url(&format!("/api/v1/users/{me}"))).json(&json!({"role": "viewer", "reason": "x"}));
    assert_error(r.send().await.unwrap(), StatusCode::FORBIDDEN, "csrf").await;
    let csrf = entries(&admin, "kind=user_change&outcome=denied&actor=admin").await;
    assert_eq!((csrf[0]["action"].as_str(), csrf[0]["target"].as_str()), (Some("change-user"), Some(me.as_str())));
}

#[tokio::test]
async fn bad_user_changes_are_4xx_naming_the_bound_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    app.add_user("target", Role::Viewer).await;
    let cases = [
        (json!({"role": "admin"}), "reason"),
        (json!({"role": "admin", "reason": "   "}), "reason"),
        (json!({"role": "admin", "reason": "x".repeat(1001)}), "reason"),
        (json!({"reason": "nothing said"}), "nothing to change"),
        (json!({"role": "root", "reason": "x"}), "role"),
        (json!({"role": "admin", "reason": "x", "password": "sneaky one"}), "password"),
        (json!({"disabled": "yes", "reason": "x"}), "disabled"),
    ];
    for (body, says) in cases {
        let r = admin.patch("/api/v1/users/target", &body).await;
        let message = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert!(message.contains(says), "{body}: {message}");
    }
    for path in ["/api/v1/users/nobody", &format!("/api/v1/users/{}", "n".repeat(5000))] {
        let r = admin.patch(path, &json!({"role": "admin", "reason": "x"})).await;
        assert!(matches!(r.status(), StatusCode::NOT_FOUND | StatusCode::URI_TOO_LONG), "{path}: {}", r.status());
    }
    let r = admin.post("/api/v1/users/target/password", &json!({"reason": "x".repeat(1001)})).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let target = user(&admin, "target").await;
    assert_eq!((target["role"].as_str(), target["disabled_at_ms"].is_null()), (Some("viewer"), true));
    assert_eq!(sign_in(&app, "target", USER_PASSWORD).await.status(), StatusCode::OK, "the password is unchanged");
    assert!(entries(&admin, "kind=user_change&target=target").await.is_empty(), "nothing recorded as done");
}

#[tokio::test]
async fn people_change_their_own_password_their_other_sessions_end_and_this_one_goes_on() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let here = app.signed_in(Role::Viewer).await;
    let name = here.username().await;
    let elsewhere = Session::sign_in(&app.url(""), &name, USER_PASSWORD).await;

    let wrong = here
        .put_json(
            "/api/v1/session/password",
            &json!({"current_password": "a guess at it", "new_password": "my new passphrase"}),
        )
        .await;
    let message = assert_error(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("current_password"), "{message}");
    let short = here
        .put_json("/api/v1/session/password", &json!({"current_password": USER_PASSWORD, "new_password": "short"}))
        .await;
    assert_error(short, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(elsewhere.get("/api/v1/session").await.status(), StatusCode::OK, "a refused change ends nothing");

    let r = here
        .put_json(
            "/api/v1/session/password",
            &json!({"current_password": USER_PASSWORD, "new_password": "my new passphrase"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
    assert_eq!(here.get("/api/v1/session").await.status(), StatusCode::OK, "this session goes on");
    // And keeps working for changes (its CSRF token is the same).
    let again = here
        .put_json(
            "/api/v1/session/password",
            &json!({"current_password": "my new passphrase", "new_password": "a third passphrase"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_error(elsewhere.get("/api/v1/session").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(sign_in(&app, &name, USER_PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(sign_in(&app, &name, "a third passphrase").await.status(), StatusCode::OK);

    let recorded = entries(&admin, &format!("action=change-own-password&actor={name}")).await;
    let outcomes: Vec<&str> = recorded.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["succeeded", "succeeded", "denied"], "{recorded:?}");
    let export = admin.get("/api/v1/audit/export?format=jsonl").await.text().await.unwrap();
    assert!(!export.contains("my new passphrase") && !export.contains(ADMIN_PASSWORD));
}

#[tokio::test]
async fn wrong_current_passwords_are_capped_apart_from_sign_ins() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let person = app.signed_in(Role::Viewer).await;
    let name = person.username().await;
    let guess = json!({"current_password": "a wrong guess", "new_password": "a new passphrase"});
    for _ in 0..server::limits::GUESSES_PER_WINDOW {
        let r = person.put_json("/api/v1/session/password", &guess).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r = person.put_json("/api/v1/session/password", &guess).await;
    assert!(r.headers().contains_key("retry-after"));
    let message = assert_error(r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("wrong current passwords"), "{message}");
    // Even the right one waits now; signing in is not held up.
    let right = json!({"current_password": USER_PASSWORD, "new_password": "a new passphrase"});
    assert_eq!(person.put_json("/api/v1/session/password", &right).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sign_in(&app, &name, USER_PASSWORD).await.status(), StatusCode::OK);
}

/// Issue 29, item 9: `Admin` beside `admin` would read as one person in the audit trail
/// and in approvals; a name that differs from an existing one only by case is refused.
#[tokio::test]
async fn a_name_differing_from_an_existing_one_only_by_case_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    let body = |name: &str| json!({"username": name, "password": USER_PASSWORD, "role": "admin", "reason": "a twin"});
    let r = admin.post("/api/v1/users", &body("Admin")).await;
    let message = assert_error(r, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("'admin' already exists") && message.contains("only by case"), "{message}");
    assert_eq!(user(&admin, "Admin").await, Value::Null, "nothing was created");
    assert_eq!(admin.post("/api/v1/users", &body("admin2")).await.status(), StatusCode::CREATED);
}
