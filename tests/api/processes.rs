//! Several replicas as real processes (issue 16): three `gatewarden serve --fleet kube`
//! processes on one fresh PostgreSQL database, watching one in-memory Kubernetes API
//! server served over HTTP, as they would run behind a load balancer. A replica dies by
//! `kill -9`: no clean-up runs, its connections drop when the kernel closes them.
//! (`replicas.rs` covers the same ground with in-process replicas, and more cases.)

use crate::replicas::{next_event, open};
use crate::support::{ADMIN_PASSWORD, Backend, Session, TestDb, eventually_within};
use serde_json::{Value, json};
use server::fleet::cluster::fake::{self, FakeApiServer};
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The fake API server on a local port, and a kubeconfig that points at it.
struct Cluster {
    fake: Arc<FakeApiServer>,
    kubeconfig: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn serve(fake: Arc<FakeApiServer>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        fake.serve_with_kubeconfig(&kubeconfig).await.unwrap();
        Cluster { fake, kubeconfig, dir }
    }
}

/// One `gatewarden` process.
struct Process {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Its replica id (the `X-Gatewarden-Replica` header).
    id: String,
    child: Child,
}

impl Process {
    /// Starts replica number `n` and waits until it is ready (its watches have listed).
    async fn start(db: &TestDb, cluster: &Cluster, n: usize) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatewarden"))
            .args(["serve", "--fleet", "kube", "--listen", "127.0.0.1:0", "--namespace", "prod"])
            .args(["--database-url", &db.url, "--synthetic-interval-s", "0"])
            .args(db.key_args())
            .arg("--audit-checkpoint-file")
            .arg(cluster.dir.path().join(format!("checkpoint-{n}")))
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("GATEWARDEN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "error")
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the gatewarden binary starts");
        // Its output goes to the test's captured output (shown when a test fails).
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("[replica {n}] {line}");
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(url) = line.strip_prefix("Gatewarden is serving on ") {
                    return url.to_string();
                }
            }
            panic!("replica {n} exited before serving");
        })
        .await
        .expect("replica serves within 60 s");
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let http = reqwest::Client::new();
        let id = eventually_within(Duration::from_secs(30), "a ready replica", || async {
            let r = http.get(format!("{base}/readyz")).send().await.ok()?;
            r.status().is_success().then(|| r.headers()["x-gatewarden-replica"].to_str().unwrap().to_string())
        })
        .await;
        Process { base, id, child }
    }

    /// `kill -9`, and waits until it is gone.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

/// Waits until the replica at `session`'s base lists exactly `ids` with exactly one
/// leader among them; returns the leader's id.
async fn the_one_leader(session: &Session, ids: &[&str]) -> String {
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort();
    eventually_within(Duration::from_secs(10), "exactly one leader among the live replicas", || async {
        let list = session.get_json("/api/v1/replicas").await;
        let list = list.as_array()?;
        let mut listed: Vec<&str> = list.iter().filter_map(|r| r["id"].as_str()).collect();
        listed.sort();
        let leaders: Vec<&Value> = list.iter().filter(|r| r["leader"] == true).collect();
        (listed == expected && leaders.len() == 1).then(|| leaders[0]["id"].as_str().unwrap().to_string())
    })
    .await
}

async fn rate_limit(session: &Session, limit: u32, ttl: Option<u32>) -> i64 {
    let mut body = json!({"reason": "card-testing bot", "requests_per_second": limit});
    if let Some(ttl) = ttl {
        body["ttl_seconds"] = json!(ttl);
    }
    let response = session.post("/api/v1/gateways/prod:edge/actions/rate-limit", &body).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn gateways_listed(session: &Session, n: usize) {
    eventually_within(Duration::from_secs(15), "the cluster's first list", || async {
        (session.get_json("/api/v1/gateways").await.as_array().map(Vec::len) == Some(n)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn three_processes_have_one_leader_and_its_kill_9_hands_a_due_revert_to_the_next_exactly_once() {
    let fake = crate::kube::fleet_with_policy();
    let limit = || {
        fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"].clone()
    };
    let cluster = Cluster::serve(Arc::clone(&fake)).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut p = Vec::new();
    for n in 0..3 {
        p.push(Process::start(&db, &cluster, n).await);
    }
    let admin = Session::sign_in(&p[0].base, "admin", ADMIN_PASSWORD).await;
    let ids: Vec<String> = p.iter().map(|r| r.id.clone()).collect();
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    // Every process sees the same three and the same one leader.
    let leader = the_one_leader(&admin, &all).await;
    for r in &p[1..] {
        assert_eq!(the_one_leader(&admin.at(&r.base), &all).await, leader);
    }
    let l = p.iter().position(|r| r.id == leader).expect("the leader is one of the three");
    let (follower, third) = ((l + 1) % 3, (l + 2) % 3);

    // A change with a time limit, made through a follower.
    let on_follower = admin.at(&p[follower].base);
    gateways_listed(&on_follower, 2).await;
    let id = rate_limit(&on_follower, 100, Some(60)).await;
    assert_eq!(limit(), "100");

    // kill -9 the leader; then the change falls due.
    let killed = Instant::now();
    p[l].kill().await;
    let survivors = [ids[follower].as_str(), ids[third].as_str()];
    let new_leader = the_one_leader(&on_follower, &survivors).await;
    let failover = killed.elapsed();
    assert!(failover < Duration::from_secs(5), "leadership moved in {failover:?}");
    let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("update actions set expires_at_s = $1 where id = $2")
        .bind(time::OffsetDateTime::now_utc().unix_timestamp() - 1)
        .bind(id)
        .execute(&mut pg)
        .await
        .unwrap();
    let due = Instant::now();
    eventually_within(Duration::from_secs(10), "the revert by the new leader", || async {
        let action = on_follower.get_json(&format!("/api/v1/actions/{id}")).await;
        action["detail"].as_str().unwrap_or_default().contains("reverted when its time limit").then_some(())
    })
    .await;
    eprintln!("failover {failover:?}; revert {:?} after the change fell due; new leader {new_leader}", due.elapsed());
    assert_eq!(limit(), Value::Null, "the limit is gone from the Ingress");
    // Once: one revert on the record, by the system, and it stays one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reverts = on_follower.get_json("/api/v1/audit?kind=ttl_revert").await;
    let entries = reverts["entries"].as_array().unwrap();
    assert_eq!(entries.iter().filter(|e| e["outcome"] == "pending").count(), 1, "{reverts}");
    assert!(entries.iter().all(|e| e["actor"] == "system"), "{reverts}");

    // A fresh process takes the dead one's place; sign-ins race through all three, each
    // one appending to the ledger at once (four at a time: a fifth attempt in flight at one
    // account from one address would be throttled, as it should be).
    p[l] = Process::start(&db, &cluster, 3).await;
    let logins = async |pg: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar("select count(*) from audit_log where kind = 'login'").fetch_one(pg).await.unwrap()
    };
    let before = logins(&mut pg).await;
    let workers = (0..4).map(|w| {
        let p = &p;
        async move {
            for i in 0..8 {
                Session::sign_in(&p[(w + i) % 3].base, "admin", ADMIN_PASSWORD).await;
            }
        }
    });
    futures::future::join_all(workers).await;
    assert_eq!(logins(&mut pg).await - before, 32, "every sign-in is on the record");
    for r in &p {
        let verdict = admin.at(&r.base).get_json("/api/v1/audit/verify").await;
        assert_eq!(verdict["ok"], true, "the chain verifies on {}: {verdict}", r.id);
    }
    drop(p);
    drop(cluster);
    drop(db);
}

#[tokio::test]
async fn events_and_sign_outs_cross_processes_a_reconnect_elsewhere_gets_what_it_missed_and_logs_agree() {
    use futures::StreamExt;
    // Nine gateway pods, more than kubectl's five log streams: every replica follows all.
    let fake = crate::kube::fleet_with_policy();
    for object in fake::gateway("prod", "edge", 7, "1.4.0") {
        if object["kind"] == "Pod" && object["metadata"]["name"].as_str().unwrap() > "edge-cur2-00002" {
            fake.insert(object);
        }
    }
    for pod in (0..7).map(|i| format!("edge-cur2-{i:05}")) {
        let lines: Vec<String> =
            (0..4).map(|i| format!(r#"10.0.0.{i} "GET /payments/{i} HTTP/1.1" 502 3.1ms pod={pod}"#)).collect();
        fake.set_logs(&pod, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let cluster = Cluster::serve(Arc::clone(&fake)).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut p = Vec::new();
    for n in 0..3 {
        p.push(Process::start(&db, &cluster, n).await);
    }
    let (a, b, c) = (&p[0].base, &p[1].base, &p[2].base);
    let admin = Session::sign_in(a, "admin", ADMIN_PASSWORD).await;
    gateways_listed(&admin, 2).await;
    // A second session of the admin's watches through b.
    let watcher = Session::sign_in(a, "admin", ADMIN_PASSWORD).await;
    let mut on_b = open(&watcher.at(b), None).await;
    let mut buffer = String::new();
    next_event(&mut on_b, &mut buffer, "snapshot").await;

    // An action on a reaches b's stream, with an id.
    let first = rate_limit(&admin, 100, None).await;
    let seen = loop {
        let (id, data) = next_event(&mut on_b, &mut buffer, "action").await;
        if serde_json::from_str::<Value>(&data).unwrap()["id"] == first {
            assert!(data.contains("\"rate-limit\""), "{data}");
            break id.expect("action events carry ids");
        }
    };

    // b's connection drops; a second action runs on a; the browser reconnects to c
    // with the last id it saw and gets the second action.
    drop(on_b);
    let second = rate_limit(&admin, 50, None).await;
    let mut on_c = open(&watcher.at(c), Some(seen)).await;
    let mut buffer = String::new();
    loop {
        let (_, data) = next_event(&mut on_c, &mut buffer, "action").await;
        let id = serde_json::from_str::<Value>(&data).unwrap()["id"].as_i64().unwrap();
        if id == second {
            break;
        }
        assert_eq!(id, first, "only later updates of the first action come before it: {data}");
    }

    // Signing out through a ends the session's streams on b and c.
    let mut on_b = open(&watcher.at(b), None).await;
    assert!(watcher.at(a).delete("/api/v1/session").await.status().is_success());
    for (name, stream) in [("c", &mut on_c), ("b", &mut on_b)] {
        let ended =
            tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = stream.next().await {} })
                .await
                .is_ok();
        assert!(ended, "the stream on {name} ended with the sign-out on a");
    }

    // Log search: each replica follows every gateway pod and answers with the same lines.
    let search = |base: &String| {
        let session = admin.at(base);
        async move {
            eventually_within(Duration::from_secs(15), "every pod's lines", || async {
                let r = session.get_json("/api/v1/logs?q=gateway%3Aprod%3Aedge&limit=500").await;
                (r["total"].as_u64() == Some(28)).then_some(r)
            })
            .await
        }
    };
    let mut answers = Vec::new();
    for base in [a, b, c] {
        let found = search(base).await;
        let mut lines: Vec<(String, String)> = found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["instance"].as_str().unwrap().into(), h["message"].as_str().unwrap().into()))
            .collect();
        lines.sort();
        answers.push(lines);
    }
    assert_eq!(answers[0].len(), 28);
    assert_eq!(answers[0], answers[1], "a and b answer with the same lines");
    assert_eq!(answers[0], answers[2], "a and c answer with the same lines");
    assert_eq!(fake.followed().len(), 9, "all nine pods followed: {:?}", fake.followed());
    drop(p);
    drop(cluster);
    drop(db);
}

#[tokio::test]
async fn a_live_processes_unfinished_action_survives_anothers_start_up_and_is_settled_once_it_is_killed() {
    let fake = crate::kube::fleet_with_policy();
    let cluster = Cluster::serve(Arc::clone(&fake)).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut a = Process::start(&db, &cluster, 0).await;
    let admin = Session::sign_in(&a.base, "admin", ADMIN_PASSWORD).await;
    gateways_listed(&admin, 2).await;
    // a starts a restart; the API server holds the write: a's intent is on the record,
    // its outcome is not.
    cluster.fake.hold_writes(true);
    let restart = {
        let admin = admin.at(&a.base);
        tokio::spawn(async move {
            admin.post("/api/v1/gateways/prod:edge/actions/restart", &json!({"reason": "stuck workers"})).await
        })
    };
    eventually_within(Duration::from_secs(10), "a's intent", || async {
        let intents = admin.get_json("/api/v1/audit?kind=action_intent").await;
        intents["entries"].as_array().is_some_and(|e| e.iter().any(|e| e["action"] == "restart")).then_some(())
    })
    .await;

    // b starts (its start-up reconciliation runs) and follows: a's intent stays open.
    let b = Process::start(&db, &cluster, 1).await;
    let on_b = admin.at(&b.base);
    the_one_leader(&on_b, &[&a.id, &b.id]).await;
    tokio::time::sleep(server::actions::ORPHANS_EVERY * 2).await;
    let settled = on_b.get_json("/api/v1/audit?kind=reconciliation").await;
    assert_eq!(settled["entries"].as_array().unwrap().len(), 0, "a live replica's intent was settled: {settled}");

    // kill -9 a, its write still held: the leader (now b) settles its intent against the
    // cluster, once.
    a.kill().await;
    let _ = restart.await;
    let entry = eventually_within(Duration::from_secs(15), "the reconciliation", || async {
        let settled = on_b.get_json("/api/v1/audit?kind=reconciliation").await;
        settled["entries"].as_array().and_then(|e| e.first().cloned())
    })
    .await;
    assert_eq!(entry["actor"], "system");
    assert!(entry["reason"].as_str().unwrap().contains("shows it was not made"), "{entry}");
    tokio::time::sleep(server::actions::ORPHANS_EVERY * 2).await;
    let settled = on_b.get_json("/api/v1/audit?kind=reconciliation").await;
    assert_eq!(settled["entries"].as_array().unwrap().len(), 1, "{settled}");
    cluster.fake.hold_writes(false);
    drop(b);
    drop(cluster);
    drop(db);
}

#[tokio::test]
async fn a_leader_killed_in_the_middle_of_a_revert_leaves_it_to_the_next_which_reverts_once() {
    let fake = crate::kube::fleet_with_policy();
    let limit = || {
        fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"].clone()
    };
    let cluster = Cluster::serve(Arc::clone(&fake)).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut a = Process::start(&db, &cluster, 0).await;
    let admin = Session::sign_in(&a.base, "admin", ADMIN_PASSWORD).await;
    the_one_leader(&admin, &[&a.id]).await;
    let b = Process::start(&db, &cluster, 1).await;
    let on_b = admin.at(&b.base);
    assert_eq!(the_one_leader(&on_b, &[&a.id, &b.id]).await, a.id, "the first one leads");
    gateways_listed(&on_b, 2).await;
    let id = rate_limit(&on_b, 100, Some(60)).await;

    // The API server holds writes; the change falls due; the leader (a) starts its revert:
    // the intent is on the record, the patch waits.
    cluster.fake.hold_writes(true);
    let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("update actions set expires_at_s = $1 where id = $2")
        .bind(time::OffsetDateTime::now_utc().unix_timestamp() - 1)
        .bind(id)
        .execute(&mut pg)
        .await
        .unwrap();
    eventually_within(Duration::from_secs(10), "a's revert intent", || async {
        let reverts = on_b.get_json("/api/v1/audit?kind=ttl_revert").await;
        reverts["entries"].as_array().is_some_and(|e| e.iter().any(|e| e["outcome"] == "pending")).then_some(())
    })
    .await;

    // a dies mid-revert; its patch never lands.
    a.kill().await;
    cluster.fake.fail_held_writes();
    assert_eq!(limit(), "100", "the change is still in force");
    // b leads, settles a's interrupted revert as not made, and reverts the change itself.
    eventually_within(Duration::from_secs(20), "the revert by b", || async {
        let action = on_b.get_json(&format!("/api/v1/actions/{id}")).await;
        action["detail"].as_str().unwrap_or_default().contains("reverted when its time limit").then_some(())
    })
    .await;
    assert_eq!(limit(), Value::Null, "the limit is gone from the Ingress");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reverts = on_b.get_json("/api/v1/audit?kind=ttl_revert").await;
    let entries = reverts["entries"].as_array().unwrap();
    // Two tries on the record (a's, settled as not made, and b's, which succeeded), and
    // one patch that reached the cluster.
    assert_eq!(entries.iter().filter(|e| e["outcome"] == "pending").count(), 2, "{reverts}");
    let mut endings: Vec<&str> = reverts["settled"].as_object().unwrap().values().filter_map(Value::as_str).collect();
    endings.sort();
    assert_eq!(endings, ["failed", "succeeded"], "a's try settled as failed, b's succeeded: {reverts}");
    let settled = on_b.get_json("/api/v1/audit?kind=reconciliation").await;
    let settled = settled["entries"].as_array().unwrap();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert!(settled[0]["reason"].as_str().unwrap().contains("not made"), "{settled:?}");
    let patches = fake
        .writes()
        .iter()
        .filter(|w| w.method == "PATCH" && w.uri.contains("/ingresses/payments") && !w.uri.contains("dryRun"))
        .count();
    assert_eq!(patches, 2, "the limit's patch and one revert patch: {:?}", fake.writes());
    drop(b);
    drop(cluster);
    drop(db);
}

#[tokio::test]
async fn sigterm_ends_the_leaders_streams_and_hands_leadership_over_at_once() {
    use futures::StreamExt;
    let cluster = Cluster::serve(crate::kube::fleet_with_policy()).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut a = Process::start(&db, &cluster, 0).await;
    let admin = Session::sign_in(&a.base, "admin", ADMIN_PASSWORD).await;
    the_one_leader(&admin, &[&a.id]).await;
    let b = Process::start(&db, &cluster, 1).await;
    let on_b = admin.at(&b.base);
    assert_eq!(the_one_leader(&on_b, &[&a.id, &b.id]).await, a.id);
    let mut stream = open(&admin, None).await;
    let mut buffer = String::new();
    next_event(&mut stream, &mut buffer, "snapshot").await;

    // Kubernetes stops a pod with SIGTERM.
    let signalled = Instant::now();
    let pid = a.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let ended = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = stream.next().await {} })
        .await
        .is_ok();
    assert!(ended, "the stream on the stopping replica ended, so its browser reconnects elsewhere");
    eventually_within(Duration::from_secs(5), "b leading", || async {
        let list = on_b.get_json("/api/v1/replicas").await;
        list.as_array()?.iter().any(|r| r["id"] == b.id.as_str() && r["leader"] == true).then_some(())
    })
    .await;
    let handed_over = signalled.elapsed();
    // Leadership is released when the stop begins, not found stale a heartbeat later.
    assert!(handed_over < Duration::from_millis(2500), "b led {handed_over:?} after the SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(10), a.child.wait()).await.expect("a exits").unwrap();
    assert!(status.success(), "a clean exit: {status}");
    eprintln!("leadership handed over {handed_over:?} after SIGTERM");
    drop(b);
    drop(cluster);
    drop(db);
}
