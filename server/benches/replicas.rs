//! Replicas on one PostgreSQL database (issue 16; not a test): three real `gatewarden
//! serve --fleet kube` processes, one fresh database on the local PostgreSQL, and an API
//! server served here over HTTP from memory (one gateway; watches held open, as on a
//! quiet cluster). Measures
//! - failover: `kill -9` of the leader until another replica reports that it leads
//!   (`GET /api/v1/replicas`), five times (a fresh process replaces each one killed);
//! - cross-replica event delay: a sign-in on replica A until its audit event arrives on
//!   event streams open on B and C;
//! - 1,000 event streams spread over the three replicas: RSS of each, and the delay of an
//!   event to all of them.
//!
//! Run: `cargo bench -p server --bench replicas` (PostgreSQL on 127.0.0.1:5432, as for the
//! tests). Targets (issue 16): failover <= 5 s, event delay p99 <= 1 s.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use server::fleet::cluster::fake;
use sqlx::{Connection, Executor};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const PASSWORD: &str = "bench-admin-password";
type Lists = Arc<HashMap<String, Vec<serde_json::Value>>>;

async fn api_server(State(lists): State<Lists>, request: Request) -> Response {
    if request.uri().query().unwrap_or_default().contains("watch=") {
        std::future::pending::<()>().await;
    }
    let items = lists.get(request.uri().path()).cloned().unwrap_or_default();
    let body =
        serde_json::json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items});
    ([("content-type", "application/json")], Body::from(serde_json::to_vec(&body).unwrap())).into_response()
}

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
            .env("GATEWARDEN_NAMESPACES", "bench")
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

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let admin_url =
        std::env::var("GATEWARDEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("gw_bench_{:08x}", rand::random::<u32>());
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.expect("PostgreSQL on 127.0.0.1:5432");
    admin.execute(format!("create database {name}").as_str()).await.unwrap();
    let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);

    let mut lists = HashMap::new();
    for object in fake::gateway("bench", "edge", 3, "1.4.0") {
        let kind = object["kind"].as_str().unwrap().to_string();
        lists.entry(fake::collection(&kind, "bench")).or_insert_with(Vec::new).push(object);
    }
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    let router = axum::Router::new().fallback(api_server).with_state(Arc::new(lists));
    tokio::spawn(async move { axum::serve(api, router).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("audit.key"),
        format!("{:032x}{:032x}\n", rand::random::<u128>(), rand::random::<u128>()),
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: b\n  cluster:\n    server: \
             http://{api_addr}\ncontexts:\n- name: b\n  context:\n    cluster: b\n    user: b\n    namespace: bench\n\
             users:\n- name: b\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let setup = Setup { url, dir, kubeconfig };
    let mut replicas = Vec::new();
    for n in 0..3 {
        replicas.push(setup.start(free_port(), n).await);
    }
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    sign_in(&http, replicas[0].port).await;
    println!("replicas benchmark: 3 processes on one PostgreSQL database");

    // Failover, five times.
    let mut failovers = Vec::new();
    for run in 0..5 {
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
        let killed = Instant::now();
        replicas[i].child.start_kill().unwrap();
        let _ = replicas[i].child.wait().await;
        let survivor = replicas[(i + 1) % 3].port;
        loop {
            if leader(&http, survivor).await.is_some_and(|id| id != old) {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no new leader");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        failovers.push(killed.elapsed().as_secs_f64() * 1000.0);
        println!("  run {}: a new leader {:.0} ms after kill -9", run + 1, failovers[run]);
        replicas[i] = setup.start(free_port(), 10 + run).await;
    }
    report("failover (kill -9 of the leader to a new leader)", failovers);

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
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = admin.execute(format!("drop database if exists {name} with (force)").as_str()).await;
}
