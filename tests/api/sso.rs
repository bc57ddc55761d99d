//! Single sign-on (issue 19) against a real OpenID provider: npm's `oidc-provider`, run
//! by each test (`end2end/oidc-provider.mjs`), its development sign-in and consent forms
//! driven by an HTTP client the way a browser would.

use crate::support::{ADMIN_PASSWORD, Backend, Options, Session, TestApp};
use app::dto::Role;
use reqwest::{Client, StatusCode, redirect};
use serde_json::Value;
use server::auth::oidc::OidcSettings;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const SECRET: &str = "a test client secret";

/// A port free now and never handed out before in this run: the tests run in parallel, and
/// the kernel may offer a port just released to the next caller (a provider then failed to
/// start on a port another test's console had taken).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The provider process; stopped when dropped.
struct Provider {
    child: tokio::process::Child,
    port: u16,
}

impl Provider {
    async fn start(port: u16, redirect: &str) -> Provider {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../end2end/oidc-provider.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .arg(redirect)
            .arg(SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the test provider (make test installs end2end's npm packages)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("ready ") {
                    return;
                }
            }
            panic!("the provider ended before it was ready");
        })
        .await
        .expect("the provider is ready within 20 s");
        // Keep reading what it prints: a closed pipe would end it at its next line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Provider { child, port }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn settings(issuer_port: u16, app_port: u16, default_role: Option<Role>) -> OidcSettings {
    OidcSettings {
        issuer: format!("http://127.0.0.1:{issuer_port}"),
        client_id: "gatewarden".into(),
        client_secret: Some(SECRET.into()),
        redirect_url: format!("http://127.0.0.1:{app_port}/auth/oidc/callback"),
        scopes: "openid profile email groups".split(' ').map(String::from).collect(),
        role_claim: "groups".into(),
        role_map: vec![("sre".into(), Role::Responder), ("sre-leads".into(), Role::Admin)],
        default_role,
        provider_name: "Test IdP".into(),
    }
}

/// A console with single sign-on through a provider started for it. The console's port is
/// chosen first: the provider must know where to send people back.
async fn console_and_provider(local_accounts: bool, default_role: Option<Role>) -> (TestApp, Provider) {
    console_and_provider_on(Backend::Sqlite, local_accounts, default_role).await
}

async fn console_and_provider_on(
    backend: Backend,
    local_accounts: bool,
    default_role: Option<Role>,
) -> (TestApp, Provider) {
    let (provider_port, port) = (free_port(), free_port());
    let mut options = Options::new(backend);
    options.local_accounts = local_accounts;
    options.port = port;
    options.oidc = Some(settings(provider_port, port, default_role));
    let app = TestApp::spawn_with(options).await;
    let provider = Provider::start(provider_port, &app.url("/auth/oidc/callback")).await;
    (app, provider)
}

fn browser() -> Client {
    Client::builder().cookie_store(true).redirect(redirect::Policy::none()).build().unwrap()
}

fn absolute(url: &str, base: &str) -> String {
    if url.starts_with('/') { format!("{base}{url}") } else { url.to_string() }
}

fn location(response: &reqwest::Response, base: &str) -> String {
    let to = response.headers()["location"].to_str().unwrap().to_string();
    if to.starts_with('/') { format!("{base}{to}") } else { to }
}

/// Signs in as `account` at the provider, from the console's sign-in link through the
/// provider's forms; returns the console's answer to the callback.
async fn sign_in_through(app: &TestApp, provider: &Provider, client: &Client, account: &str) -> reqwest::Response {
    let start = client.get(app.url("/auth/oidc/login")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "the sign-in starts with a redirect");
    let mut url = location(&start, &provider.issuer());
    for _ in 0..20 {
        if url.starts_with(&app.url("/auth/oidc/callback")) {
            return client.get(&url).send().await.unwrap();
        }
        let response = client.get(&url).send().await.unwrap();
        if response.status().is_redirection() {
            url = location(&response, &provider.issuer());
            continue;
        }
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let html = response.text().await.unwrap();
        let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("a form").to_string();
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", account), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = client.post(absolute(&action, &provider.issuer())).form(&form).send().await.unwrap();
        assert!(posted.status().is_redirection(), "{}", posted.status());
        url = location(&posted, &provider.issuer());
    }
    panic!("the sign-in never came back to the console");
}

async fn session_of(app: &TestApp, client: &Client) -> reqwest::Response {
    client.get(app.url("/api/v1/session")).send().await.unwrap()
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let admin = app.signed_in(Role::Admin).await;
    admin.get_json(&format!("/api/v1/audit?{query}")).await["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn people_sign_in_through_the_provider_with_the_role_their_groups_give() {
    people_sign_in_with_the_role_their_groups_give(Backend::Sqlite).await;
}

#[tokio::test]
async fn people_sign_in_through_the_provider_with_the_role_their_groups_give_postgres() {
    people_sign_in_with_the_role_their_groups_give(Backend::Postgres).await;
}

async fn people_sign_in_with_the_role_their_groups_give(backend: Backend) {
    let (app, provider) = console_and_provider_on(backend, true, None).await;
    let alice = browser();
    let answer = sign_in_through(&app, &provider, &alice, "alice").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().await.unwrap().contains("url=/"), "the page moves on to the console");
    let session: Value = session_of(&app, &alice).await.json().await.unwrap();
    assert_eq!((session["username"].as_str(), session["role"].as_str()), (Some("alice"), Some("admin")), "{session}");

    let bob = browser();
    sign_in_through(&app, &provider, &bob, "bob").await;
    let session: Value = session_of(&app, &bob).await.json().await.unwrap();
    assert_eq!(session["role"], "responder");

    // The accounts are listed as the provider's, with no password to sign in with.
    let admin = app.signed_in(Role::Admin).await;
    let users = admin.get_json("/api/v1/users").await;
    let alice_row = users.as_array().unwrap().iter().find(|u| u["username"] == "alice").unwrap();
    assert_eq!((alice_row["source"].as_str(), alice_row["active_sessions"].as_i64()), (Some("oidc"), Some(1)));
    assert_eq!(app.login(&browser(), "alice", "").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&browser(), "alice", "any").await.status(), StatusCode::UNAUTHORIZED);

    // On the record: made at the first sign-in, with the groups; signed in via oidc.
    let created = audit(&app, "kind=user_change&action=create-user&target=alice").await;
    let params: Value = serde_json::from_str(created[0]["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["via"], "oidc");
    assert_eq!(params["groups"], serde_json::json!(["sre-leads", "everyone"]));
    let logins = audit(&app, "kind=login&actor=alice").await;
    assert_eq!(logins.len(), 1);
    provider.stop().await;
}

#[tokio::test]
async fn someone_in_no_mapped_group_is_refused_with_a_page_that_says_why_and_on_the_record() {
    let (app, provider) = console_and_provider(true, None).await;
    let carol = browser();
    let answer = sign_in_through(&app, &provider, &carol, "carol").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let page = answer.text().await.unwrap();
    assert!(page.contains("none of your groups (marketing, everyone) is given a role"), "{page}");
    assert_eq!(session_of(&app, &carol).await.status(), StatusCode::UNAUTHORIZED);
    let refused = audit(&app, "kind=login_failure&target=carol").await;
    assert!(refused[0]["params"].as_str().unwrap().contains("no mapped group"), "{refused:?}");
    let admin = app.signed_in(Role::Admin).await;
    let users = admin.get_json("/api/v1/users").await;
    assert!(!users.to_string().contains("carol"), "no account was made");
    provider.stop().await;

    // With a default role, the same person gets it.
    let (app, provider) = console_and_provider(true, Some(Role::Viewer)).await;
    let carol = browser();
    assert_eq!(sign_in_through(&app, &provider, &carol, "carol").await.status(), StatusCode::OK);
    let session: Value = session_of(&app, &carol).await.json().await.unwrap();
    assert_eq!(session["role"], "viewer");
    provider.stop().await;
}

#[tokio::test]
async fn a_replayed_or_foreign_callback_is_refused_and_signs_no_one_in() {
    let (app, provider) = console_and_provider(true, None).await;
    // A full sign-in, whose callback URL is then replayed.
    let alice = browser();
    let start = alice.get(app.url("/auth/oidc/login")).send().await.unwrap();
    let mut url = location(&start, &provider.issuer());
    let callback = loop {
        if url.starts_with(&app.url("/auth/oidc/callback")) {
            break url;
        }
        let response = alice.get(&url).send().await.unwrap();
        if response.status().is_redirection() {
            url = location(&response, &provider.issuer());
            continue;
        }
        let html = response.text().await.unwrap();
        let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", "alice"), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = alice.post(absolute(&action, &provider.issuer())).form(&form).send().await.unwrap();
        url = location(&posted, &provider.issuer());
    };
    // Another browser that started no sign-in gets alice's callback URL (a stolen link).
    let mallory = browser();
    let _ = mallory.get(app.url("/auth/oidc/login")).send().await.unwrap();
    let foreign = mallory.get(&callback).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST);
    assert!(foreign.text().await.unwrap().contains("another sign-in"));
    assert_eq!(session_of(&app, &mallory).await.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(alice.get(&callback).send().await.unwrap().status(), StatusCode::OK);
    // Used once: the same answer again is refused.
    let replay = alice.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(replay.text().await.unwrap().contains("was not started here"));
    let refused = audit(&app, "kind=login_failure").await;
    let reasons: Vec<String> = refused.iter().map(|e| e["params"].as_str().unwrap_or("").to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("state does not match")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("no sign-in started")), "{reasons:?}");
    provider.stop().await;
}

#[tokio::test]
async fn a_provider_that_is_down_gets_a_page_not_a_500_and_a_rotated_key_is_fetched_again() {
    let (app, provider) = console_and_provider(true, None).await;
    let port = provider.port;
    let redirect = app.url("/auth/oidc/callback");
    provider.stop().await;
    let down = browser().get(app.url("/auth/oidc/login")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
    let page = down.text().await.unwrap();
    assert!(page.contains("does not answer") && page.contains("Sign in with your password instead"), "{page}");

    // Up again: a sign-in works, and its keys are kept.
    let provider = Provider::start(port, &redirect).await;
    assert_eq!(sign_in_through(&app, &provider, &browser(), "alice").await.status(), StatusCode::OK);
    // The provider restarts with a new signing key: the kept keys lack it.
    provider.stop().await;
    let provider = Provider::start(port, &redirect).await;
    let bob = browser();
    assert_eq!(sign_in_through(&app, &provider, &bob, "bob").await.status(), StatusCode::OK);
    assert_eq!(session_of(&app, &bob).await.status(), StatusCode::OK);
    provider.stop().await;
}

#[tokio::test]
async fn roles_follow_the_groups_at_each_sign_in_and_a_disabled_account_stays_out() {
    let (app, provider) = console_and_provider(true, None).await;
    sign_in_through(&app, &provider, &browser(), "bob").await;
    // An admin made bob an admin by hand; the provider still says sre: the next sign-in
    // puts him back, on the record.
    let admin = app.signed_in(Role::Admin).await;
    let r = admin.patch("/api/v1/users/bob", &serde_json::json!({"role": "admin", "reason": "cover"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again = browser();
    sign_in_through(&app, &provider, &again, "bob").await;
    let session: Value = session_of(&app, &again).await.json().await.unwrap();
    assert_eq!(session["role"], "responder");
    let changed = audit(&app, "kind=user_change&action=change-role&target=bob").await;
    let params: Value = serde_json::from_str(changed[0]["params"].as_str().unwrap()).unwrap();
    assert_eq!(
        (params["from"].as_str(), params["to"].as_str(), params["via"].as_str()),
        (Some("admin"), Some("responder"), Some("oidc"))
    );

    let r = admin.patch("/api/v1/users/bob", &serde_json::json!({"disabled": true, "reason": "left"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(session_of(&app, &again).await.status(), StatusCode::UNAUTHORIZED, "his session ended");
    let refused = sign_in_through(&app, &provider, &browser(), "bob").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("disabled"));
    // A password reset is refused for an account without a password here.
    let r = admin.post("/api/v1/users/bob/password", &serde_json::json!({"reason": "x"})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    provider.stop().await;
}

#[tokio::test]
async fn with_local_accounts_off_only_the_break_glass_admin_signs_in_with_a_password() {
    let (app, provider) = console_and_provider(false, None).await;
    app.add_user("local.ops", Role::Responder).await;
    let refused = app.login(&browser(), "local.ops", crate::support::USER_PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("password sign-in is off"));
    let admin = Session::sign_in(&app.url(""), "admin", ADMIN_PASSWORD).await;
    assert_eq!(admin.get("/api/v1/session").await.status(), StatusCode::OK);
    assert_eq!(sign_in_through(&app, &provider, &browser(), "alice").await.status(), StatusCode::OK);
    // The sign-in page offers the provider.
    let page = browser().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Sign in with Test IdP") && page.contains("href=\"/auth/oidc/login\""), "{page}");
    provider.stop().await;
}

#[tokio::test]
async fn without_single_sign_on_its_routes_say_so_and_the_sign_in_page_hides_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = browser().get(app.url("/auth/oidc/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("Single sign-on is not set up"));
    let page = browser().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("sso-link") && !page.contains("/auth/oidc/login"), "no single sign-on offered");
}

/// Issue 29, item 9: the record names the account here, linked by the provider's subject,
/// not the name the token carries today.
#[tokio::test]
async fn single_sign_on_is_recorded_under_the_linked_account_not_the_tokens_name() {
    let (app, provider) = console_and_provider(true, None).await;
    sign_in_through(&app, &provider, &browser(), "bob").await;
    // An admin renamed bob's account here (or he renamed himself at the provider).
    sqlx::query("update users set username = 'robert' where username = 'bob' and source = 'oidc'")
        .execute(&app.state.db)
        .await
        .unwrap();
    let again = browser();
    assert_eq!(sign_in_through(&app, &provider, &again, "bob").await.status(), StatusCode::OK);
    let session: Value = session_of(&app, &again).await.json().await.unwrap();
    assert_eq!(session["username"], "robert");
    let logins = audit(&app, "kind=login").await;
    let last = logins.iter().find(|e| e["params"].as_str().is_some_and(|p| p.contains("oidc"))).unwrap();
    assert_eq!(last["actor"], "robert", "{last}");
    provider.stop().await;
}

/// Issue 29, item 9: someone whose groups stop giving a role is refused and loses the
/// sessions they had (before, the old role lived on in them).
#[tokio::test]
async fn losing_every_mapped_group_ends_the_sessions_of_that_account() {
    let (provider_port, port) = (free_port(), free_port());
    let options = |default_role: Option<Role>| {
        let mut options = Options::new(Backend::Sqlite);
        options.port = port;
        options.oidc = Some(settings(provider_port, port, default_role));
        options
    };
    // With a default role, carol (marketing) gets an account and a session.
    let app = TestApp::spawn_with(options(Some(Role::Viewer))).await;
    let provider = Provider::start(provider_port, &app.url("/auth/oidc/callback")).await;
    let carol = browser();
    assert_eq!(sign_in_through(&app, &provider, &carol, "carol").await.status(), StatusCode::OK);
    let db = app.stop().await;
    // The console now gives marketing nothing.
    let app = TestApp::spawn_on(db, options(None)).await;
    assert_eq!(session_of(&app, &carol).await.status(), StatusCode::OK, "her session survived the restart");
    let refused = sign_in_through(&app, &provider, &browser(), "carol").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_of(&app, &carol).await.status(), StatusCode::UNAUTHORIZED, "and it ends with the refusal");
    let ended = audit(&app, "kind=user_change&action=revoke-sessions&target=carol").await;
    assert_eq!(ended.len(), 1, "on the record");
    provider.stop().await;
}
