//! Several replicas on one PostgreSQL database (issue 16): one leads, leadership moves
//! when the leader dies, singleton work runs once, and a live replica's in-flight actions
//! are never settled by another. Replicas here are in-process (`TestApp`s sharing a
//! database and one in-memory Kubernetes API server); stopping one aborts everything it
//! runs, as a killed process would, and drops its connections.

use crate::support::{Backend, Options, Session, TestApp, TestDb, eventually_within};
use app::dto::Role;
use serde_json::{Value, json};
use server::fleet::cluster::fake::{self, FakeApiServer};
use server::startup::InjectedClient;
use std::sync::Arc;
use std::time::Duration;

fn cluster() -> Arc<FakeApiServer> {
    let fake = FakeApiServer::new();
    for object in fake::gateway("prod", "edge", 3, "1.4.0") {
        fake.insert(object);
    }
    fake
}

pub(crate) async fn replica(db: TestDb, fake: &Arc<FakeApiServer>) -> TestApp {
    let mut options = Options::new(Backend::Postgres);
    options.kube = Some(InjectedClient(fake.client("prod")));
    TestApp::spawn_on(db, options).await
}

async fn replicas(session: &Session) -> Vec<Value> {
    session.get_json("/api/v1/replicas").await.as_array().cloned().unwrap_or_default()
}

/// Waits until the list shows `n` replicas of which exactly one leads; returns its id.
async fn one_leader_of(session: &Session, n: usize) -> String {
    eventually_within(Duration::from_secs(10), "exactly one leader", || async {
        let list = replicas(session).await;
        let leaders: Vec<&Value> = list.iter().filter(|r| r["leader"] == true).collect();
        (list.len() == n && leaders.len() == 1).then(|| leaders[0]["id"].as_str().unwrap().to_string())
    })
    .await
}

fn id_of(app: &TestApp) -> String {
    app.state.replicas.id.clone()
}

#[tokio::test]
async fn three_replicas_on_one_database_have_exactly_one_leader_and_each_says_who_answered() {
    let fake = cluster();
    let db = TestDb::new(Backend::Postgres).await;
    let a = replica(db.share(), &fake).await;
    let b = replica(db.share(), &fake).await;
    let c = replica(db.share(), &fake).await;
    let viewer = a.signed_in(Role::Viewer).await;
    let leader = one_leader_of(&viewer, 3).await;
    let ids = [id_of(&a), id_of(&b), id_of(&c)];
    assert!(ids.contains(&leader));
    // Every replica sees the same list, and names itself on its answers.
    for app in [&a, &b, &c] {
        let session = viewer.on(app);
        let response = session.get("/api/v1/replicas").await;
        assert_eq!(response.headers()["x-gatewarden-replica"], id_of(app).as_str());
        let list: Vec<Value> = response.json().await.unwrap();
        let mut listed: Vec<String> = list.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        listed.sort();
        let mut expected = ids.to_vec();
        expected.sort();
        assert_eq!(listed, expected);
        assert!(list.iter().all(|r| r["version"] == env!("CARGO_PKG_VERSION") && r["fleet"] == "kube"), "{list:?}");
    }
    assert_eq!([&a, &b, &c].iter().filter(|app| app.state.replicas.is_leader()).count(), 1);
    // The health page says which replica served it and how many run (as counted at its
    // replica's last heartbeat).
    eventually_within(Duration::from_secs(5), "b counts three", || async {
        (b.state.replicas.running() == 3).then_some(())
    })
    .await;
    let page = viewer.on(&b).get("/").await.text().await.unwrap();
    assert!(page.contains(&format!("Served by replica {} of 3 running.", id_of(&b))), "{page}");
    drop((b, c));
    drop(db);
}

#[tokio::test]
async fn when_the_leader_dies_another_leads_within_seconds_and_reverts_a_due_change_exactly_once() {
    // edge behind an ingress-nginx Ingress: a rate limit is a JSON patch the fake applies.
    let fake = crate::kube::fleet_with_policy();
    let limit = || {
        fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"].clone()
    };
    let db = TestDb::new(Backend::Postgres).await;
    let a = replica(db.share(), &fake).await;
    let viewer = a.signed_in(Role::Viewer).await;
    one_leader_of(&viewer, 1).await;
    // a leads (it came first); b and c follow.
    let b = replica(db.share(), &fake).await;
    let c = replica(db.share(), &fake).await;
    assert_eq!(one_leader_of(&viewer, 3).await, id_of(&a));
    let responder = b.signed_in(Role::Responder).await;
    eventually_within(Duration::from_secs(10), "the first list", || async {
        (responder.get_json("/api/v1/gateways").await.as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    let response = responder
        .post(
            "/api/v1/gateways/prod:edge/actions/rate-limit",
            &json!({"reason": "card-testing bot", "requests_per_second": 100, "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(limit(), "100");

    // The leader dies; then the change falls due.
    let killed = std::time::Instant::now();
    a.stop().await;
    let survivor = responder.on(&c);
    let new_leader = one_leader_of(&survivor, 2).await;
    let failover = killed.elapsed();
    assert!(failover < Duration::from_secs(5), "leadership moved in {failover:?}");
    assert!([id_of(&b), id_of(&c)].contains(&new_leader));
    sqlx::query("update actions set expires_at_s = $1 where id = $2")
        .bind(time::OffsetDateTime::now_utc().unix_timestamp() - 1)
        .bind(id)
        .execute(&b.state.db)
        .await
        .unwrap();
    eventually_within(Duration::from_secs(10), "the revert", || async {
        let a = survivor.get_json(&format!("/api/v1/actions/{id}")).await;
        a["detail"].as_str().unwrap_or_default().contains("reverted when its time limit").then_some(())
    })
    .await;
    assert_eq!(limit(), Value::Null, "the limit is gone again");
    // Once: one revert on the record, by the system, and it stays one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reverts = survivor.get_json("/api/v1/audit?kind=ttl_revert").await;
    let entries = reverts["entries"].as_array().unwrap();
    let intents = entries.iter().filter(|e| e["outcome"] == "pending").count();
    assert_eq!(intents, 1, "{reverts}");
    assert!(entries.iter().all(|e| e["actor"] == "system"));
    drop(db);
}

#[tokio::test]
async fn a_live_replicas_unfinished_action_is_left_alone_and_a_dead_ones_is_settled_by_the_leader() {
    use server::audit::{Actor, Kind, NewEntry, Outcome};
    let fake = cluster();
    let db = TestDb::new(Backend::Postgres).await;
    let a = replica(db.share(), &fake).await;
    let viewer = a.signed_in(Role::Viewer).await;
    one_leader_of(&viewer, 1).await;
    // a is in the middle of a restart: its intent is written, its outcome is not yet.
    let mut intent = NewEntry::new(Actor::system(), Kind::ActionIntent, Outcome::Pending);
    intent.action = "restart".into();
    intent.target = "prod:edge".into();
    intent.params = json!({"params": {}, "change": {"change": "restart"}, "replica": id_of(&a)});
    intent.before = Some(json!({"replicas": 3, "revision": 2, "version": "1.4.0", "template": "cur2",
        "revisions": [[1, "0.9.0"], [2, "1.4.0"]], "routes": [], "rate_limit": null,
        "timeouts": {"request_timeout_ms": 0, "connect_timeout_ms": 0, "retries": 0},
        "circuit_breaker": null, "services": [], "bypassed": []}));
    a.state.ledger.append(intent).await.unwrap();

    // b starts (its start-up reconciliation runs) and leads for a while: a's intent stays open.
    let b = replica(db.share(), &fake).await;
    one_leader_of(&viewer, 2).await;
    tokio::time::sleep(server::actions::ORPHANS_EVERY * 2).await;
    let settled = viewer.get_json("/api/v1/audit?kind=reconciliation").await;
    assert_eq!(settled["entries"].as_array().unwrap().len(), 0, "a live replica's intent was settled: {settled}");

    // a dies: the leader (now b) settles its intent, against the cluster, once.
    a.stop().await;
    let viewer = viewer.on(&b);
    let entry = eventually_within(Duration::from_secs(10), "the reconciliation", || async {
        let settled = viewer.get_json("/api/v1/audit?kind=reconciliation").await;
        settled["entries"].as_array().and_then(|e| e.first().cloned())
    })
    .await;
    assert_eq!(entry["actor"], "system");
    assert!(entry["reason"].as_str().unwrap().contains("shows it was not made"), "{entry}");
    tokio::time::sleep(server::actions::ORPHANS_EVERY * 2).await;
    let settled = viewer.get_json("/api/v1/audit?kind=reconciliation").await;
    assert_eq!(settled["entries"].as_array().unwrap().len(), 1, "{settled}");
    drop(db);
}

#[tokio::test]
async fn the_simulator_is_one_process_a_second_one_on_the_same_database_refuses_to_start() {
    let db = TestDb::new(Backend::Postgres).await;
    let first = TestApp::spawn_on(db.share(), Options::new(Backend::Postgres)).await;
    let settings_error =
        TestApp::try_spawn_on(db.share(), Options::new(Backend::Postgres)).await.err().expect("refused");
    assert!(settings_error.contains(&format!("replica {}", id_of(&first))), "{settings_error}");
    assert!(settings_error.contains("the simulator is one process"), "{settings_error}");
    // Once the first is gone (killed: its connection closes), a new one starts at once.
    first.stop().await;
    let second = eventually_within(Duration::from_secs(5), "a start after the first is gone", || async {
        TestApp::try_spawn_on(db.share(), Options::new(Backend::Postgres)).await.ok()
    })
    .await;
    let viewer = second.signed_in(Role::Viewer).await;
    assert_eq!(one_leader_of(&viewer, 1).await, id_of(&second));
    drop(db);
}

#[tokio::test]
async fn with_sqlite_there_is_one_replica_and_it_leads() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let list = replicas(&viewer).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], id_of(&app).as_str());
    assert_eq!(list[0]["leader"], true);
    assert_eq!(list[0]["fleet"], "sim");
    let page = viewer.get("/").await.text().await.unwrap();
    assert!(page.contains(&format!("Served by replica {}, the only one running.", id_of(&app))), "{page}");
}

pub(crate) type Bytes = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The next SSE event named `name` on `stream`: (its id, its data). Panics after 10 s.
pub(crate) async fn next_event(stream: &mut Bytes, buffer: &mut String, name: &str) -> (Option<i64>, String) {
    use futures::StreamExt;
    let wanted = format!("event: {name}");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.lines().any(|l| l == wanted) {
                    let id = event.lines().find_map(|l| l.strip_prefix("id: ")).and_then(|v| v.parse().ok());
                    let data = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
                    return (id, data);
                }
            }
            let chunk = stream.next().await.expect("the stream is open").expect("a chunk");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
}

pub(crate) async fn open(session: &Session, last_event_id: Option<i64>) -> Bytes {
    let mut request = session.client.get(session.url("/api/v1/events"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    Box::pin(response.bytes_stream())
}

#[tokio::test]
async fn events_cross_replicas_a_sign_out_ends_streams_everywhere_and_a_reconnect_gets_what_it_missed() {
    use futures::StreamExt;
    let fake = crate::kube::fleet_with_policy();
    let db = TestDb::new(Backend::Postgres).await;
    let a = replica(db.share(), &fake).await;
    let b = replica(db.share(), &fake).await;
    let c = replica(db.share(), &fake).await;
    let responder = a.signed_in(Role::Responder).await;
    eventually_within(Duration::from_secs(10), "the first list", || async {
        (responder.get_json("/api/v1/gateways").await.as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    // A viewer watches through b.
    let watcher = a.signed_in(Role::Viewer).await.on(&b);
    let mut on_b = open(&watcher, None).await;
    let mut buffer = String::new();
    next_event(&mut on_b, &mut buffer, "snapshot").await;

    // An action on a reaches b's stream, with an id.
    let run = |limit: u32| {
        let responder = &responder;
        async move {
            let response = responder
                .post(
                    "/api/v1/gateways/prod:edge/actions/rate-limit",
                    &json!({"reason": "bot", "requests_per_second": limit}),
                )
                .await;
            assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
            response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        }
    };
    let first = run(100).await;
    let (seen_id, data) = loop {
        let (id, data) = next_event(&mut on_b, &mut buffer, "action").await;
        if serde_json::from_str::<Value>(&data).unwrap()["id"] == first {
            break (id.expect("action events carry ids"), data);
        }
    };
    assert!(data.contains("\"rate-limit\""), "{data}");

    // The watcher's connection drops; meanwhile a second action runs on a.
    drop(on_b);
    let second = run(50).await;
    // Reconnecting to c with the last id it saw: it gets the second action first.
    let mut on_c = open(&watcher.on(&c), Some(seen_id)).await;
    let mut buffer = String::new();
    let got = loop {
        let (_, data) = next_event(&mut on_c, &mut buffer, "action").await;
        let id = serde_json::from_str::<Value>(&data).unwrap()["id"].as_i64().unwrap();
        if id == second {
            break id;
        }
        // Only later updates of the first action may come before it.
        assert_eq!(id, first, "replayed: {data}");
    };
    assert_eq!(got, second);

    // Signing out through a ends the session's stream on c.
    let mut on_b = open(&watcher.on(&b), None).await;
    assert!(watcher.on(&a).delete("/api/v1/session").await.status().is_success());
    for (name, stream) in [("c", &mut on_c), ("b", &mut on_b)] {
        let ended =
            tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = stream.next().await {} })
                .await
                .is_ok();
        assert!(ended, "the stream on {name} ended with the sign-out on a");
    }
    drop((a, b, c));
    drop(db);
}

#[tokio::test]
async fn readiness_waits_for_the_clusters_first_list_and_liveness_does_not() {
    let fake = cluster();
    fake.set_down(true);
    let mut options = Options::new(Backend::Sqlite);
    options.kube = Some(InjectedClient(fake.client("prod")));
    let app = TestApp::spawn_with(options).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), app.url(path));
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200, "alive");
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("have not listed yet"), "{body}");
    fake.set_down(false);
    eventually_within(Duration::from_secs(15), "ready once the watches have listed", || async {
        (get("/readyz").await == (200, "ready\n".to_string())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn wrong_passwords_spread_over_replicas_meet_one_count() {
    let fake = cluster();
    let db = TestDb::new(Backend::Postgres).await;
    let apps = [replica(db.share(), &fake).await, replica(db.share(), &fake).await, replica(db.share(), &fake).await];
    // Each replica counts the others at its next heartbeat (alone, its own counters decide).
    eventually_within(Duration::from_secs(5), "every replica sees three", || async {
        apps.iter().all(|a| a.state.replicas.running() == 3).then_some(())
    })
    .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..9 {
        let app = &apps[i % 3];
        let response = app.login(&client, "admin", "not the password").await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(response.status().as_u16());
    }
    // Five free failures for this account from this address in all, not five per replica.
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429], "round-robin over three replicas");
    drop(apps);
    drop(db);
}

#[tokio::test]
async fn across_replicas_an_address_held_by_failures_still_lets_in_who_signed_in_from_it() {
    let fake = cluster();
    let db = TestDb::new(Backend::Postgres).await;
    let apps = [replica(db.share(), &fake).await, replica(db.share(), &fake).await, replica(db.share(), &fake).await];
    eventually_within(Duration::from_secs(5), "every replica sees three", || async {
        apps.iter().all(|a| a.state.replicas.running() == 3).then_some(())
    })
    .await;
    let client = reqwest::Client::new();
    assert_eq!(apps[0].login(&client, "admin", crate::support::ADMIN_PASSWORD).await.status(), 200);
    // Everyone else at this address fails, spread over the replicas.
    for i in 0..server::auth::throttle::FREE_PER_ADDRESS + 3 {
        let _ = apps[i as usize % 3].login(&client, &format!("guess{i}"), "wrong").await;
    }
    assert_eq!(apps[1].login(&client, "nobody", "wrong").await.status(), 429, "the address is held everywhere");
    // Trusted in the shared counters: the replica that never saw the admin sign in agrees.
    assert_eq!(apps[2].login(&client, "admin", crate::support::ADMIN_PASSWORD).await.status(), 200);
    drop(apps);
    drop(db);
}

#[tokio::test]
async fn the_leader_runs_the_synthetic_checks_and_every_replica_shows_the_same_results() {
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let counted = hits.clone();
    let gateway = axum::Router::new().route(
        "/healthz",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(socket, gateway).await;
    });
    let fake = FakeApiServer::new();
    for mut object in fake::gateway("prod", "edge", 2, "1.4.0") {
        if object["kind"] == "Deployment" {
            object["metadata"]["annotations"]["gatewarden.io/probe-url"] = json!(format!("http://localhost:{port}"));
            object["metadata"]["annotations"]["gatewarden.io/probe-paths"] = json!("/healthz");
        }
        fake.insert(object);
    }
    let db = TestDb::new(Backend::Postgres).await;
    let start = |db: TestDb| {
        let fake = fake.clone();
        async move {
            let mut options = Options::new(Backend::Postgres).probe_allow(&format!("localhost:{port}"));
            options.kube = Some(InjectedClient(fake.client("prod")));
            TestApp::spawn_on(db, options).await
        }
    };
    let a = start(db.share()).await;
    let viewer = a.signed_in(Role::Viewer).await;
    one_leader_of(&viewer, 1).await;
    let b = start(db.share()).await;
    one_leader_of(&viewer, 2).await;
    let shared = |app: &TestApp| server::probe::Shared {
        db: app.state.db.clone(),
        replicas: app.state.replicas.clone(),
        keep: Duration::from_secs(3600),
    };
    let synthetics = |session: Session| async move {
        serde_json::from_value::<Vec<app::dto::SyntheticHistory>>(session.get_json("/api/v1/synthetics").await).unwrap()
    };
    // Both know the gateway's address once they have listed it (a probe through each works).
    for app in [&a, &b] {
        let session = viewer.on(app);
        eventually_within(Duration::from_secs(10), "the gateway's address", || async {
            let r = session.post("/api/v1/probe", &json!({"gateway": "prod:edge", "path": "/healthz"})).await;
            r.status().is_success().then_some(())
        })
        .await;
    }
    let before = hits.load(Ordering::SeqCst);
    let now = server::db::now_ms();
    for round in 0..3 {
        a.state.probes.round(now + round * 1000, Some(&shared(&a))).await;
        b.state.probes.round(now + round * 1000, Some(&shared(&b))).await;
    }
    // Checked three times in all (by the leader), not six.
    assert_eq!(hits.load(Ordering::SeqCst) - before, 3);
    let on_a = synthetics(viewer.on(&a)).await;
    let on_b = synthetics(viewer.on(&b)).await;
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(on_a[0].results.len(), 3);
    assert!(on_a[0].results.iter().all(|r| r.ok && r.status == Some(200)));
    assert_eq!(on_a, on_b, "every replica shows the same strip");
    drop((a, b));
    drop(db);
}

#[tokio::test]
async fn a_rollout_followed_by_a_replica_that_dies_is_followed_to_its_end_by_the_leader() {
    let fake = cluster();
    // A rollout in progress: the controller has not caught up with the spec yet.
    fake.edit("Deployment", "prod", "edge", |d| d["status"]["observedGeneration"] = json!(1));
    let db = TestDb::new(Backend::Postgres).await;
    let a = replica(db.share(), &fake).await;
    let responder = a.signed_in(Role::Responder).await;
    eventually_within(Duration::from_secs(10), "the first list", || async {
        (responder.get_json("/api/v1/gateways").await.as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    let response =
        responder.post("/api/v1/gateways/prod:edge/actions/restart", &json!({"reason": "stuck workers"})).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(responder.get_json(&format!("/api/v1/actions/{id}")).await["status"], "running");

    // a dies mid-rollout; the rollout finishes; b, now the only replica, leads.
    a.stop().await;
    fake.edit("Deployment", "prod", "edge", |d| d["status"]["observedGeneration"] = json!(2));
    let b = replica(db.share(), &fake).await;
    let responder = responder.on(&b);
    let done = eventually_within(Duration::from_secs(10), "the rollout's end", || async {
        let a = responder.get_json(&format!("/api/v1/actions/{id}")).await;
        (a["status"] == "succeeded").then_some(a)
    })
    .await;
    assert_eq!(done["progress"]["updated"], 3, "{done}");
    assert_eq!(done["progress"]["ready"], 3, "{done}");
    drop(b);
    drop(db);
}

#[tokio::test]
async fn the_ledger_stays_one_chain_with_appends_racing_from_three_replicas() {
    use server::audit::{Actor, Kind, NewEntry, Outcome};
    let fake = cluster();
    let db = TestDb::new(Backend::Postgres).await;
    let apps = [replica(db.share(), &fake).await, replica(db.share(), &fake).await, replica(db.share(), &fake).await];
    let admin = apps[0].signed_in(Role::Admin).await;
    let before = apps[0].audit_count().await;
    // 150 appends at once, 50 through each replica's ledger, racing for the chain's head.
    let appends = (0..150).map(|i| {
        let ledger = apps[i % 3].state.ledger.clone();
        async move {
            let mut entry = NewEntry::new(Actor::system(), Kind::Reconciliation, Outcome::Succeeded);
            entry.reason = format!("race {i}");
            ledger.append(entry).await.map(|e| e.id)
        }
    });
    let ids: Vec<i64> = futures::future::join_all(appends).await.into_iter().map(|r| r.expect("appended")).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 150, "every append got its own place in the chain");
    assert_eq!(apps[0].audit_count().await - before, 150);
    // Every replica verifies the one chain (links, hashes, signatures, its own checkpoint).
    for app in &apps {
        let verdict = admin.on(app).get_json("/api/v1/audit/verify").await;
        assert_eq!(verdict["ok"], true, "{verdict}");
    }
    drop(apps);
    drop(db);
}
