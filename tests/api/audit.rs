//! The audit trail: complete, append-only, tamper-evident, searchable, exportable, and
//! honest about actions interrupted by a crash.

use crate::support::*;
use app::dto::{AuditPage, AuditVerification, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

crate::both_databases!(
    the_database_refuses_to_change_or_delete_entries,
    tampering_with_an_entry_is_detected_and_named,
    free_text_search_finds_substrings_whatever_the_characters,
    search_filters_and_pages_newest_first,
    csv_export_round_trips_every_entry_and_respects_filters,
    an_action_interrupted_by_a_crash_is_reconciled_at_the_next_start,
    a_time_range_search_finds_entries_written_out_of_time_order,
    a_page_of_intents_says_how_each_ended,
);

/// An intent is written as pending before its action runs; a page of intents says how
/// each ended (its outcome entry), and says nothing for one that has not.
async fn a_page_of_intents_says_how_each_ended(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let responder = app.signed_in(Role::Responder).await;
    let r = responder.post("/api/v1/gateways/edge/actions/scale", &json!({"reason": "room", "replicas": 6})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let done: AuditPage = eventually("the scale's outcome", || async {
        let p: AuditPage =
            serde_json::from_value(responder.get_json("/api/v1/audit?kind=action_intent").await).unwrap();
        (!p.settled.is_empty()).then_some(p)
    })
    .await;
    let intent = &done.entries[0];
    assert_eq!(intent.outcome, "pending", "the entry itself is never changed");
    assert_eq!(done.settled.get(&intent.id).map(String::as_str), Some("succeeded"));
    // An intent with no outcome yet (as after a crash) has no word in `settled`.
    let mut e = server::audit::NewEntry::new(
        server::audit::Actor::system(),
        server::audit::Kind::ActionIntent,
        server::audit::Outcome::Pending,
    );
    e.reason = "still running".into();
    let open = app.state.ledger.append(e).await.unwrap();
    let page: AuditPage = serde_json::from_value(responder.get_json("/api/v1/audit?kind=action_intent").await).unwrap();
    assert_eq!(page.entries[0].id, open.id);
    assert!(!page.settled.contains_key(&open.id));
    assert_eq!(page.settled.get(&intent.id).map(String::as_str), Some("succeeded"));
}

/// A clock stepped back (or two replicas' clocks disagreeing) writes timestamps out of id
/// order; a time-range search still finds exactly the entries in the range.
async fn a_time_range_search_finds_entries_written_out_of_time_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let (head,): (i64,) = sqlx::query_as("select max(id) from audit_log").fetch_one(&app.state.db).await.unwrap();
    let base = 2_000_000_000_000i64;
    // Ids in order, times not: 1000, 980 (the clock stepped back), 990, 1500.
    for (i, offset) in [1000i64, 980, 990, 1500].into_iter().enumerate() {
        let id = head + 1 + i as i64;
        sqlx::query(
            "insert into audit_log (id, ts_ms, actor, actor_role, client_addr, user_agent, request_id, kind, action, \
             target, params, reason, incident, outcome, intent_id, before_state, after_state, prev_hash, hash) \
             values ($1, $2, 'system', 'system', '', '', '', 'reconciliation', '', $3, '{}', '', '', 'succeeded', \
             null, '', '', $4, $5)",
        )
        .bind(id)
        .bind(base + offset * 1000)
        .bind(format!("skewed{offset}"))
        .bind(format!("prev-{id}"))
        .bind(format!("hash-{id}"))
        .execute(&app.state.db)
        .await
        .unwrap();
    }
    let targets = |since: i64, until: i64| {
        let viewer = &viewer;
        async move {
            let url = format!(
                "/api/v1/audit?kind=reconciliation&since={}&until={}",
                base + since * 1000,
                base + until * 1000
            );
            let page: AuditPage = serde_json::from_value(viewer.get_json(&url).await).unwrap();
            page.entries.into_iter().map(|e| e.target).collect::<Vec<_>>()
        }
    };
    assert_eq!(targets(985, 2000).await, ["skewed1500", "skewed990", "skewed1000"], "the 1000 s entry before the step");
    assert_eq!(targets(0, 995).await, ["skewed990", "skewed980"], "the 980 s entry written after the 1000 s one");
    assert_eq!(targets(981, 999).await, ["skewed990"]);
}

async fn free_text_search_finds_substrings_whatever_the_characters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["Intruder4", "o\"neil", "100%_sure", "ab"] {
        let _ = app.login(&app.client(), name, "guess").await;
    }
    let viewer = app.signed_in(Role::Viewer).await;
    let targets = |q: &'static str| {
        let viewer = &viewer;
        async move {
            let url = format!("/api/v1/audit?kind=login_failure&q={q}");
            let page: AuditPage = serde_json::from_value(viewer.get_json(&url).await).unwrap();
            page.entries.into_iter().map(|e| e.target).collect::<Vec<_>>()
        }
    };

    assert_eq!(targets("intruder4").await, ["Intruder4"], "case-insensitive");
    assert_eq!(targets("o%22ne").await, ["o\"neil"], "a double quote is just a character");
    assert_eq!(targets("0%25_s").await, ["100%_sure"], "% and _ match themselves");
    assert_eq!(targets("ab").await, ["ab"], "short queries still work (no index)");
    assert!(targets("zzzz").await.is_empty());
}

async fn some_activity(app: &TestApp) -> Session {
    let _ = app.login(&app.client(), "admin", "wrong password").await;
    let admin = app.signed_in(Role::Admin).await;
    let _ = admin
        .post(
            "/api/v1/gateways/edge/actions/scale",
            &json!({"reason": "room, \"quoted\"\nand a new line", "replicas": 6}),
        )
        .await;
    let _ = admin
        .post(
            "/api/v1/users",
            &json!({"username": "observer", "password": USER_PASSWORD, "role": "viewer", "reason": "a test account"}),
        )
        .await;
    admin
}

async fn the_database_refuses_to_change_or_delete_entries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    some_activity(&app).await;

    let update = sqlx::query("update audit_log set reason = 'nothing happened'").execute(&app.state.db).await;
    let delete = sqlx::query("delete from audit_log").execute(&app.state.db).await;

    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    let verify: AuditVerification =
        serde_json::from_value(app.signed_in(Role::Viewer).await.get_json("/api/v1/audit/verify").await).unwrap();
    assert!(verify.ok);
}

async fn tampering_with_an_entry_is_detected_and_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = some_activity(&app).await;
    let before: AuditVerification = serde_json::from_value(admin.get_json("/api/v1/audit/verify").await).unwrap();
    assert!(before.ok && before.entries >= 5, "{before:?}");
    let (victim,): (i64,) = sqlx::query_as("select id from audit_log where kind = 'action_intent' order by id limit 1")
        .fetch_one(&app.state.db)
        .await
        .unwrap();

    // Someone with database access removes the guard and rewrites history.
    let drop = match backend {
        Backend::Sqlite => "drop trigger audit_log_no_update",
        Backend::Postgres => "drop trigger audit_log_no_update on audit_log",
    };
    sqlx::query(drop).execute(&app.state.db).await.unwrap();
    sqlx::query("update audit_log set reason = 'routine check' where id = $1")
        .bind(victim)
        .execute(&app.state.db)
        .await
        .unwrap();

    let after: AuditVerification = serde_json::from_value(admin.get_json("/api/v1/audit/verify").await).unwrap();
    assert!(!after.ok);
    assert_eq!(after.first_bad_id, Some(victim));
    assert_eq!(after.entries, before.entries);
}

#[tokio::test]
async fn denied_attempts_failed_logins_and_failed_actions_are_all_there_and_no_secret_is() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let failed_login = app.login(&app.client(), "admin", "hunter2-not-it").await;
    assert_eq!(failed_login.status(), StatusCode::UNAUTHORIZED);
    let viewer = app.signed_in(Role::Viewer).await;
    let denied = viewer.post("/api/v1/gateways/edge/actions/restart", &json!({"reason": "let me"})).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let admin_client = app.client();
    let login = app.login(&admin_client, "admin", ADMIN_PASSWORD).await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_string();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    let created = admin_client
        .post(app.url("/api/v1/users"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"username": "newbie", "password": "s3cret-passphrase!", "role": "viewer", "reason": "a test account"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let export = viewer.get("/api/v1/audit/export?format=jsonl").await.text().await.unwrap();
    let entries: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    let has = |kind: &str, outcome: &str| entries.iter().any(|e| e["kind"] == kind && e["outcome"] == outcome);
    assert!(has("login_failure", "denied"), "failed login");
    assert!(has("action_intent", "denied"), "viewer's restart");
    assert!(has("login", "succeeded") && has("user_change", "succeeded"));
    let failure = entries.iter().find(|e| e["kind"] == "login_failure").unwrap();
    assert_eq!(failure["target"], "admin");
    assert_eq!(failure["client_addr"], "127.0.0.1");
    assert!(!failure["request_id"].as_str().unwrap().is_empty());
    for secret in [ADMIN_PASSWORD, USER_PASSWORD, "hunter2-not-it", "s3cret-passphrase!", &csrf, &cookie] {
        assert!(!export.contains(secret), "a secret reached the ledger");
    }
}

#[tokio::test]
async fn an_action_whose_intent_cannot_be_recorded_does_not_run() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    // The ledger's storage fails (simulated with a trigger refusing inserts).
    sqlx::query("create trigger break_ledger before insert on audit_log begin select raise(abort, 'disk full'); end")
        .execute(&app.state.db)
        .await
        .unwrap();

    let r = responder.post("/api/v1/gateways/edge/actions/scale", &json!({"reason": "more", "replicas": 9})).await;

    let message = assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(app.gateway("edge").await.instances_desired, 4);
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client();
        let url = app.url("/api/v1/session");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": format!("nobody{i}"), "password": "x"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut direct = Vec::new();
    for i in 0..100 {
        let ledger = app.state.ledger.clone();
        direct.push(tokio::spawn(async move {
            let mut e = server::audit::NewEntry::new(
                server::audit::Actor::system(),
                server::audit::Kind::Reconciliation,
                server::audit::Outcome::Succeeded,
            );
            e.reason = format!("concurrent {i}");
            ledger.append(e).await.unwrap().id
        }));
    }
    for t in tasks {
        // Past 20 failures the address is throttled (429); both are audited.
        let status = t.await.unwrap();
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
    }
    for t in direct {
        t.await.unwrap();
    }

    app.state.ledger.flush_refusals(true).await.unwrap();

    let verify = app.state.ledger.verify().await.unwrap();

    assert!(verify.ok, "{verify:?}");
    // Throttled attempts are folded into one entry a window with their count (issue 13):
    // the counts add up to every attempt, and every direct append is there.
    let failures: Vec<(String,)> = sqlx::query_as("select params from audit_log where kind = 'login_failure'")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    let attempts: u64 =
        failures.iter().map(|(p,)| serde_json::from_str::<Value>(p).unwrap()["count"].as_u64().expect("a count")).sum();
    assert_eq!(attempts, 40, "every attempt recorded once");
    assert_eq!(verify.entries, failures.len() as i64 + 100 + 1, "and every append (after the key marker)");
    let ids: Vec<i64> = sqlx::query_as::<_, (i64,)>("select id from audit_log order by id")
        .fetch_all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|(id,)| id)
        .collect();
    assert_eq!(ids, (1..=verify.entries).collect::<Vec<_>>(), "gapless");
}

async fn search_filters_and_pages_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..7 {
        let _ = app.login(&app.client(), &format!("intruder{i}"), "guess").await;
    }
    let viewer = app.signed_in(Role::Viewer).await;

    let first: AuditPage =
        serde_json::from_value(viewer.get_json("/api/v1/audit?kind=login_failure&limit=3").await).unwrap();
    let cursor = first.next_cursor.expect("more pages");
    let second: AuditPage = serde_json::from_value(
        viewer.get_json(&format!("/api/v1/audit?kind=login_failure&limit=3&cursor={cursor}")).await,
    )
    .unwrap();
    let free_text: AuditPage = serde_json::from_value(viewer.get_json("/api/v1/audit?q=INTRUDER4").await).unwrap();

    let targets = |p: &AuditPage| p.entries.iter().map(|e| e.target.clone()).collect::<Vec<_>>();
    assert_eq!(targets(&first), ["intruder6", "intruder5", "intruder4"]);
    assert_eq!(targets(&second), ["intruder3", "intruder2", "intruder1"]);
    assert_eq!(targets(&free_text), ["intruder4"], "case-insensitive substring");
    let bad = viewer.get("/api/v1/audit?limit=zero").await;
    let message = assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("limit"));
    let bad = viewer.get("/api/v1/audit?outcome=maybe").await;
    assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
}

/// A minimal RFC 4180 reader: quoted fields may hold commas, quotes and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

async fn csv_export_round_trips_every_entry_and_respects_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = some_activity(&app).await;
    let page: AuditPage = serde_json::from_value(admin.get_json("/api/v1/audit?limit=500").await).unwrap();

    let response = admin.get("/api/v1/audit/export?format=csv").await;
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let rows = parse_csv(&response.text().await.unwrap());
    let filtered = parse_csv(&admin.get("/api/v1/audit/export?format=csv&kind=login").await.text().await.unwrap());

    assert_eq!(rows[0][0], "id");
    assert_eq!(rows.len() - 1, page.entries.len(), "every entry");
    let mut newest_first: Vec<_> = page.entries.iter().collect();
    newest_first.reverse();
    for (row, entry) in rows[1..].iter().zip(newest_first) {
        assert_eq!(row.len(), 19);
        assert_eq!(row[0], entry.id.to_string());
        assert_eq!(row[11], entry.reason, "reasons survive commas, quotes and newlines");
        assert_eq!(row[18], entry.hash);
    }
    assert!(rows.iter().any(|r| r[11] == "room, \"quoted\"\nand a new line"));
    assert!(filtered.len() > 1 && filtered[1..].iter().all(|r| r[7] == "login"));
    let bad = admin.get("/api/v1/audit/export?format=xml").await;
    assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
}

#[tokio::test]
async fn every_role_may_read_and_verify_and_nobody_may_write() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    for path in ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/export", "/api/v1/audit/1"] {
        assert_eq!(viewer.get(path).await.status(), StatusCode::OK, "{path}");
        assert_eq!(app.anonymous().get(path).await.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let admin = app.signed_in(Role::Admin).await;
    let write = admin.post("/api/v1/audit", &json!({"reason": "forged"})).await;
    assert_eq!(write.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn an_action_interrupted_by_a_crash_is_reconciled_at_the_next_start(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.url.clone();
    let start = |pause: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatewarden"));
        cmd.args(["--listen", "127.0.0.1:0", "--database-url", &db])
            .args(test_db.key_args())
            .env("GATEWARDEN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        if pause {
            // Hold every action between its audit intent and the change.
            cmd.env("GATEWARDEN_FAULT_PAUSE_AFTER_INTENT_MS", "60000");
        }
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("Gatewarden is serving on ").map(str::to_string))
            .expect("serving");
        (child, url)
    };
    let (mut first, url) = start(true);
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login: Value = client
        .post(format!("{url}/api/v1/session"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_string();
    let pending = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .post(format!("{url}/api/v1/gateways/edge/actions/scale"))
                .header("x-csrf-token", csrf)
                .json(&json!({"reason": "before the crash", "replicas": 9}))
                .send()
                .await
        }
    });
    let audit = |client: reqwest::Client, url: String| async move {
        let page: AuditPage =
            client.get(format!("{url}/api/v1/audit?action=scale")).send().await.ok()?.json().await.ok()?;
        Some(page)
    };
    let intent = eventually("the intent to be written", || {
        let (c, u) = (client.clone(), url.clone());
        async move { audit(c, u).await?.entries.into_iter().find(|e| e.kind == "action_intent") }
    })
    .await;

    // The fault hook holds the action after its intent *and* its row are written; the
    // intent becomes visible a moment before the row, so wait for both (killing in
    // between left no row to mark, a flake seen twice).
    eventually("the action's row to be written", || {
        let (c, u) = (client.clone(), url.clone());
        async move {
            let list: Vec<Value> = c.get(format!("{u}/api/v1/actions")).send().await.ok()?.json().await.ok()?;
            (!list.is_empty()).then_some(())
        }
    })
    .await;
    first.kill().unwrap(); // SIGKILL: no chance to write the outcome
    first.wait().unwrap();
    assert!(pending.await.unwrap().is_err(), "the request died with the server");
    let (mut second, url) = start(false);
    client
        .post(format!("{url}/api/v1/session"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    // (Polled, saying what came back meanwhile: an earlier session saw no entry once.)
    let page: AuditPage = eventually_within(std::time::Duration::from_secs(10), "the reconciliation entry", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client.get(format!("{url}/api/v1/audit?kind=reconciliation")).send().await.ok()?;
            let status = r.status();
            let text = r.text().await.ok()?;
            let page = serde_json::from_str::<AuditPage>(&text).ok().filter(|p| !p.entries.is_empty());
            if page.is_none() {
                eprintln!("no reconciliation entry yet: {status}: {text}");
            }
            page
        }
    })
    .await;
    let verify: AuditVerification =
        client.get(format!("{url}/api/v1/audit/verify")).send().await.unwrap().json().await.unwrap();
    let actions: Vec<Value> = client.get(format!("{url}/api/v1/actions")).send().await.unwrap().json().await.unwrap();
    second.kill().unwrap();
    let _ = second.wait();

    let settled = &page.entries[0];
    assert_eq!(settled.intent_id, Some(intent.id));
    assert_eq!(settled.actor, "system");
    // The simulated fleet restarted with the server, so the scale never took effect.
    assert_eq!(settled.outcome, "failed");
    assert!(settled.reason.contains("not made"), "{}", settled.reason);
    assert!(verify.ok);
    assert_eq!(actions[0]["status"], "failed");
}

#[tokio::test]
async fn verification_links_pages_so_edits_and_removals_at_page_boundaries_are_found() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..30 {
        let mut e = server::audit::NewEntry::new(
            server::audit::Actor::system(),
            server::audit::Kind::Reconciliation,
            server::audit::Outcome::Succeeded,
        );
        e.reason = format!("entry {i}");
        app.state.ledger.append(e).await.unwrap();
    }
    let small_pages =
        || server::audit::Ledger::new(app.state.db.clone(), server::db::Dialect::Sqlite).with_verify_page(7);
    let intact = small_pages().verify().await.unwrap();
    assert!(intact.ok && intact.entries >= 30, "{intact:?}");
    sqlx::query("drop trigger audit_log_no_delete").execute(&app.state.db).await.unwrap();
    sqlx::query("drop trigger audit_log_no_update").execute(&app.state.db).await.unwrap();

    // The first entry of the third page is removed: the page after the gap links wrong.
    sqlx::query("delete from audit_log where id = 15").execute(&app.state.db).await.unwrap();
    let removed = small_pages().verify().await.unwrap();
    assert_eq!(removed.first_bad_id, Some(16));

    // An edit at a page's last entry is found too (its own hash no longer matches).
    sqlx::query("update audit_log set reason = 'edited' where id = 7").execute(&app.state.db).await.unwrap();
    let edited = small_pages().verify().await.unwrap();
    assert_eq!(edited.first_bad_id, Some(7));
}
