//! KubeFleet at scale (not a test): the real `gatewarden --fleet kube` binary watches an
//! API server (served here over HTTP from memory) holding 500 gateway Deployments with
//! 100 pods each; measures the time to the first full inventory, the latency of
//! `GET /api/v1/gateways`, and the console process's memory.
//!
//! Run: `cargo bench -p server --bench kube_fleet -- [deployments=500] [pods-per-deployment=100] [pod-events/s=200]`
//! Targets (issue 5): <= 300 MB RSS, <= 50 ms p95 for `GET /api/v1/gateways` at 50,000 pods.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use server::fleet::cluster::fake;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "bench";
const PASSWORD: &str = "bench-admin-password";

/// Objects by collection path.
type Lists = Arc<HashMap<String, Vec<serde_json::Value>>>;

/// Pod watch events per second once churn starts (0 until then).
static CHURN_PER_S: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Answers LISTs in pages (`limit` and `continue`, as the API server does) and holds
/// WATCHes open without events, as on a quiet cluster.
async fn api_server(State(lists): State<Lists>, request: Request) -> Response {
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let items = lists.get(request.uri().path());
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        if !request.uri().path().ends_with("/pods") {
            std::future::pending::<()>().await;
        }
        // Pods change all the time on a big cluster: a MODIFIED event (a restart count
        // going up) for pod after pod, at the churn rate.
        let pods: Arc<Vec<serde_json::Value>> = Arc::new(items.cloned().unwrap_or_default());
        let events = futures::stream::unfold(0usize, move |i| {
            let pods = Arc::clone(&pods);
            async move {
                loop {
                    let rate = CHURN_PER_S.load(std::sync::atomic::Ordering::Relaxed);
                    if rate > 0 {
                        tokio::time::sleep(Duration::from_secs_f64(1.0 / rate as f64)).await;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let mut pod = pods[i % pods.len()].clone();
                pod["metadata"]["resourceVersion"] = serde_json::json!((i + 2).to_string());
                pod["status"]["containerStatuses"][0]["restartCount"] = serde_json::json!(i / pods.len() + 1);
                let mut line = serde_json::to_vec(&serde_json::json!({"type": "MODIFIED", "object": pod})).unwrap();
                line.push(b'\n');
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line)), i + 1))
            }
        });
        return ([("content-type", "application/json")], Body::from_stream(events)).into_response();
    }
    let Some(items) = items else {
        return (axum::http::StatusCode::NOT_FOUND, "{\"kind\":\"Status\",\"code\":404}").into_response();
    };
    let start: usize = query.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(items.len());
    let mut metadata = serde_json::json!({"resourceVersion": "1"});
    if end < items.len() {
        metadata["continue"] = serde_json::json!(end.to_string());
    }
    let body =
        serde_json::json!({"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": &items[start..end]});
    ([("content-type", "application/json")], Body::from(serde_json::to_vec(&body).unwrap())).into_response()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Prints the phase's percentiles; answers its p95.
fn report(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: n={} p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.95)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
    percentile(&samples, 0.95)
}

/// The targets: every phase's p95 within 50 ms, the console within 300 MB.
const P95_BUDGET: Duration = Duration::from_millis(50);
const RSS_BUDGET_MB: u64 = 300;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let deployments = args.first().copied().unwrap_or(500);
    let pods = args.get(1).copied().unwrap_or(100);
    let churn = args.get(2).copied().unwrap_or(200);
    println!("kube fleet benchmark: {deployments} deployments x {pods} pods = {} pods", deployments * pods);

    let mut by_kind: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for d in 0..deployments {
        for object in fake::gateway(NAMESPACE, &format!("gw-{d:04}"), pods as u32, "1.4.0") {
            let kind = object["kind"].as_str().unwrap().to_string();
            by_kind.entry(kind).or_default().push(object);
        }
    }
    let mut lists = HashMap::new();
    by_kind.entry("HorizontalPodAutoscaler".into()).or_default();
    for (kind, items) in by_kind {
        let bytes: usize = items.iter().map(|i| serde_json::to_vec(i).unwrap().len()).sum();
        println!("  {kind}: {} objects, {:.1} MB of JSON", items.len(), bytes as f64 / 1e6);
        lists.insert(fake::collection(&kind, NAMESPACE), items);
    }
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    let router = axum::Router::new().fallback(api_server).with_state(Arc::new(lists));
    tokio::spawn(async move { axum::serve(api, router).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\nclusters:\n- name: bench\n  cluster:\n    server: \
             http://{api_addr}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    \
             namespace: {NAMESPACE}\nusers:\n- name: bench\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut console = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatewarden"))
        .args(["serve", "--fleet", "kube", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(format!("sqlite:{}", dir.path().join("bench.db").display()))
        .env("KUBECONFIG", &kubeconfig)
        .env("GATEWARDEN_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the gatewarden binary starts");
    let pid = console.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let started = Instant::now();
    loop {
        let login = http
            .post(format!("{base}/api/v1/session"))
            .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await;
        if login.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the console did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Wait for every pod to be in the inventory.
    let url = format!("{base}/api/v1/gateways");
    loop {
        let list: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        let ready: u64 = list.as_array().unwrap().iter().map(|g| g["instances_ready"].as_u64().unwrap()).sum();
        if list.as_array().unwrap().len() == deployments && ready == (deployments * pods) as u64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the inventory never filled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("first full inventory after {:.2} s", started.elapsed().as_secs_f64());
    println!(
        "console RSS after sync: {} MB (peak {} MB)",
        status_kb(pid, "VmRSS:") / 1024,
        status_kb(pid, "VmHWM:") / 1024
    );

    let mut sequential = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let response = http.get(&url).send().await.unwrap();
        let bytes = response.bytes().await.unwrap();
        sequential.push(t.elapsed());
        assert!(bytes.len() > 1000);
    }
    let quiet = report("GET /api/v1/gateways, one at a time", sequential);

    let concurrent: Vec<Duration> = futures::future::join_all((0..8).map(|_| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let mut samples = Vec::new();
            for _ in 0..50 {
                let t = Instant::now();
                http.get(&url).send().await.unwrap().bytes().await.unwrap();
                samples.push(t.elapsed());
            }
            samples
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let mut p95s = vec![quiet, report("GET /api/v1/gateways, 8 concurrent", concurrent)];
    println!(
        "console RSS after load: {} MB (peak {} MB)",
        status_kb(pid, "VmRSS:") / 1024,
        status_kb(pid, "VmHWM:") / 1024
    );

    // Churn: pod events stream in while requests are measured.
    CHURN_PER_S.store(churn as u64, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut churning = Vec::new();
    let churn_start = Instant::now();
    while churn_start.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        http.get(&url).send().await.unwrap().bytes().await.unwrap();
        churning.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p95s.push(report(&format!("GET /api/v1/gateways, one at a time, {churn} pod events/s"), churning));
    let peak_mb = status_kb(pid, "VmHWM:") / 1024;
    println!("console RSS after 30 s of churn: {} MB (peak {peak_mb} MB)", status_kb(pid, "VmRSS:") / 1024);
    let _ = console.kill().await;
    // Out of budget is a failure, not a line to read past.
    let worst = p95s.iter().max().copied().unwrap_or_default();
    if worst > P95_BUDGET || peak_mb > RSS_BUDGET_MB {
        eprintln!(
            "OVER BUDGET: worst p95 {:.2} ms (budget {} ms), peak RSS {peak_mb} MB (budget {RSS_BUDGET_MB} MB)",
            worst.as_secs_f64() * 1000.0,
            P95_BUDGET.as_millis()
        );
        std::process::exit(1);
    }
}
