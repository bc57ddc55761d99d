//! Replicas on one PostgreSQL database (issue 16; not a test): three real `gatewarden
//! serve --fleet kube` processes, one fresh database on the local PostgreSQL, and the
//! in-memory API server served here over HTTP (`FakeApiServer::serve`: two gateways;
//! watches held open, as on a quiet cluster). Measures
//! - failover: a change with a time limit falls due and the leader is `kill -9`ed at
//!   once; the time until another replica reports that it leads (`GET /api/v1/replicas`)
//!   and until the change is reverted on the API server, five times (a fresh process
//!   replaces each one killed);
//! - cross-replica event delay: a sign-in on replica A until its audit event arrives on
//!   event streams open on B and C;
//! - 1,000 event streams spread over the three replicas: RSS of each, and the delay of an
//!   event to all of them;
//! - 200 gateway pods (40 gateways of 5), each log followed by two replicas and writing
//!   5 lines a second: RSS and CPU of each replica, and a log search's latency.
//!
//! Run: `cargo bench -p server --bench replicas` (PostgreSQL on 127.0.0.1:5432, as for the
//! tests). Targets (issue 16): failover to the first revert <= 5 s, event delay p99 <= 1 s.

use futures::StreamExt;
use server::fleet::cluster::fake::{self, FakeApiServer};
use sqlx::{Connection, Executor};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const PASSWORD: &str = "bench-admin-password";

struct Replica {
    port: u16,
    child: Child,
}

struct Setup {
    url: String,
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Setup {
    async fn start(&self, port: u16, n: usize) -> Replica {
        let child = Command::new(env!("CARGO_BIN_EXE_gatewarden"))
            .args(["serve", "--fleet", "kube", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &self.url, "--max-streams-per-user", "1000"])
            .arg("--audit-key-file")
            .arg(self.dir.path().join("audit.key"))
            .arg("--audit-checkpoint-file")
            .arg(self.dir.path().join(format!("checkpoint-{n}")))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("GATEWARDEN_NAMESPACES", "prod")
            .env("GATEWARDEN_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into()))
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the gatewarden binary starts");
        let replica = Replica { port, child };
        let http = reqwest::Client::new();
        let started = Instant::now();
        while !http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(60), "replica on {port} never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replica
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
        / 1024
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!("{what}: n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", ms.len(), q(0.5), q(0.99), ms[ms.len() - 1]);
}

/// Signs in as the admin through replica `port` (a new session, an audit entry).
async fn sign_in(http: &reqwest::Client, port: u16) {
    let r = http
        .post(format!("http://127.0.0.1:{port}/api/v1/session"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "sign-in refused: {}", r.status());
}

/// The leader's id as replica `port` lists it.
async fn leader(http: &reqwest::Client, port: u16) -> Option<String> {
    let list: serde_json::Value =
        http.get(format!("http://127.0.0.1:{port}/api/v1/replicas")).send().await.ok()?.json().await.ok()?;
    list.as_array()?.iter().find(|r| r["leader"] == true).and_then(|r| r["id"].as_str()).map(String::from)
}

async fn replica_id(http: &reqwest::Client, port: u16) -> String {
    let r = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.unwrap();
    r.headers()["x-gatewarden-replica"].to_str().unwrap().to_string()
}

/// Opens an event stream on `port`; every `audit` event's arrival time goes to `arrivals`.
fn watch(http: reqwest::Client, port: u16, arrivals: Arc<std::sync::Mutex<Vec<Instant>>>) {
    tokio::spawn(async move {
        let response = http.get(format!("http://127.0.0.1:{port}/api/v1/events")).send().await.unwrap();
        assert!(response.status().is_success(), "stream refused: {}", response.status());
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.lines().any(|l| l == "event: audit") && event.contains("\"kind\":\"login\"") {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        }
    });
}

/// Serves `fake` over HTTP; a kubeconfig pointing at it, in `dir`.
async fn serve(fake: &Arc<FakeApiServer>, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let kubeconfig = dir.join(name);
    fake.serve_with_kubeconfig(&kubeconfig).await.expect("the API server listens");
    kubeconfig
}

/// A signed-in client (cookies) and its CSRF token.
async fn session(port: u16) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = http
        .post(format!("http://127.0.0.1:{port}/api/v1/session"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    (http, body["csrf_token"].as_str().unwrap().to_string())
}

/// (user + system CPU seconds, RSS MB) of process `pid`.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let admin_url =
        std::env::var("GATEWARDEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("gw_bench_{:08x}", rand::random::<u32>());
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.expect("PostgreSQL on 127.0.0.1:5432");
    admin.execute(format!("create database {name}").as_str()).await.unwrap();
    let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);

    let fake = fake::with_policy();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("audit.key"),
        format!("{:032x}{:032x}\n", rand::random::<u128>(), rand::random::<u128>()),
    )
    .unwrap();
    let kubeconfig = serve(&fake, dir.path(), "kubeconfig").await;
    let mut setup = Setup { url: url.clone(), dir, kubeconfig };
    let mut replicas = Vec::new();
    for n in 0..3 {
        replicas.push(setup.start(free_port(), n).await);
    }
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    sign_in(&http, replicas[0].port).await;
    let mut pg = sqlx::AnyConnection::connect(&url).await.unwrap();
    let limit = || {
        fake.get("Ingress", "prod", "payments").unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"].clone()
    };
    println!("replicas benchmark: 3 processes on one PostgreSQL database");

    // Failover with a change due, five times.
    let (mut failovers, mut reverts) = (Vec::new(), Vec::new());
    let mut run = 0;
    while failovers.len() < 5 {
        run += 1;
        let old = loop {
            if let Some(id) = leader(&http, replicas[0].port).await {
                break id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut index = None;
        for (i, r) in replicas.iter().enumerate() {
            if replica_id(&http, r.port).await == old {
                index = Some(i);
            }
        }
        let i = index.expect("the leader is one of ours");
        let survivor = replicas[(i + 1) % 3].port;
        // A change with a time limit, through a follower, once the fleet is listed.
        let (client, csrf) = session(survivor).await;
        let response = loop {
            let r = client
                .post(format!("http://127.0.0.1:{survivor}/api/v1/gateways/prod:edge/actions/rate-limit"))
                .header("x-csrf-token", &csrf)
                .json(&serde_json::json!({"reason": "bench", "requests_per_second": 100 + run, "ttl_seconds": 60}))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 202 {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let id = response.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap();
        assert!(!limit().is_null(), "the limit is on the Ingress");
        // Due now; the leader dies at once.
        sqlx::query(&format!(
            "update actions set expires_at_s = {} where id = {id}",
            time::OffsetDateTime::now_utc().unix_timestamp() - 1
        ))
        .execute(&mut pg)
        .await
        .unwrap();
        let killed = Instant::now();
        replicas[i].child.start_kill().unwrap();
        let _ = replicas[i].child.wait().await;
        if limit().is_null() {
            println!("  run {run}: the old leader reverted before it died; not counted");
        } else {
            let mut led = None;
            loop {
                if led.is_none() && leader(&http, survivor).await.is_some_and(|id| id != old) {
                    led = Some(killed.elapsed());
                }
                if led.is_some() && limit().is_null() {
                    break;
                }
                assert!(killed.elapsed() < Duration::from_secs(30), "no new leader, or no revert");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (led, reverted) = (led.unwrap(), killed.elapsed());
            failovers.push(led.as_secs_f64() * 1000.0);
            reverts.push(reverted.as_secs_f64() * 1000.0);
            println!(
                "  run {run}: a new leader {:.0} ms after kill -9, the due change reverted after {:.0} ms",
                led.as_secs_f64() * 1000.0,
                reverted.as_secs_f64() * 1000.0
            );
        }
        replicas[i] = setup.start(free_port(), 10 + run).await;
    }
    report("failover (kill -9 of the leader to a new leader)", failovers);
    report("failover (kill -9 of the leader to its due change reverted by the next)", reverts);

    // Cross-replica event delay: sign-ins on A, their audit events on B and C.
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    for r in &replicas[1..] {
        watch(http.clone(), r.port, arrivals.clone());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = reqwest::Client::new();
    let mut delays = Vec::new();
    for _ in 0..100 {
        let before = arrivals.lock().unwrap().len();
        let sent = Instant::now();
        sign_in(&fresh, replicas[0].port).await;
        while arrivals.lock().unwrap().len() < before + 2 {
            assert!(sent.elapsed() < Duration::from_secs(10), "an event never arrived");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let list = arrivals.lock().unwrap();
        for t in &list[before..before + 2] {
            delays.push(t.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    report("sign-in on A to its audit event on B and C (includes the sign-in itself)", delays);

    // 1,000 streams spread over the three replicas.
    let many = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..1000 {
        watch(http.clone(), replicas[i % 3].port, many.clone());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = Instant::now();
    sign_in(&fresh, replicas[0].port).await;
    while many.lock().unwrap().len() < 1000 {
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "only {} of 1000 streams got the event",
            many.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let delays: Vec<f64> = many.lock().unwrap().iter().map(|t| t.duration_since(sent).as_secs_f64() * 1000.0).collect();
    report("one sign-in's audit event to 1,000 streams over 3 replicas", delays);
    for (i, r) in replicas.iter().enumerate() {
        println!("  replica {i}: RSS {} MB with ~333 streams open", rss_mb(r.child.id().unwrap()));
    }
    for mut r in replicas {
        let _ = r.child.kill().await;
    }

    // 200 gateway pods, every log followed by each of two replicas.
    let pods = FakeApiServer::new();
    for g in 0..40 {
        for object in fake::gateway("prod", &format!("gw-{g:02}"), 5, "1.4.0") {
            pods.insert(object);
        }
    }
    pods.set_log_rate(5);
    setup.kubeconfig = serve(&pods, setup.dir.path(), "kubeconfig-pods").await;
    let two = [setup.start(free_port(), 100).await, setup.start(free_port(), 101).await];
    let settle = Instant::now();
    while pods.followed().len() < 200 {
        assert!(settle.elapsed() < Duration::from_secs(60), "only {} pods followed", pods.followed().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A minute of traffic, then CPU over 30 s and RSS.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let pids: Vec<u32> = two.iter().map(|r| r.child.id().unwrap()).collect();
    let cpu0: Vec<f64> = pids.iter().map(|&p| cpu_s(p)).collect();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (client, _) = session(two[0].port).await;
    let mut searches = Vec::new();
    for q in ["status:502", "gateway:prod:gw-07 status:5xx", "orders", "/api/orders/4.*/"] {
        for _ in 0..5 {
            let started = Instant::now();
            let r = client
                .get(format!("http://127.0.0.1:{}/api/v1/logs", two[0].port))
                .query(&[("q", q)])
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "search {q}: {}", r.status());
            let _ = r.bytes().await;
            searches.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    println!("200 gateway pods, 5 lines/s each (1,000 lines/s), followed by each of 2 replicas:");
    for r in &two {
        let (client, _) = session(r.port).await;
        let all: serde_json::Value = client
            .get(format!("http://127.0.0.1:{}/api/v1/logs?q=orders&limit=1", r.port))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        println!("  replica on {}: {} lines held after ~95 s", r.port, all["total"]);
    }
    for (i, &pid) in pids.iter().enumerate() {
        println!(
            "  replica {i}: RSS {} MB after 90 s, CPU {:.1} % of one core over 30 s",
            rss_mb(pid),
            (cpu_s(pid) - cpu0[i]) / elapsed * 100.0
        );
    }
    report("log search over 90 s of 200 pods (4 queries x 5)", searches);

    drop(two);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(pg);
    let _ = admin.execute(format!("drop database if exists {name} with (force)").as_str()).await;
}
