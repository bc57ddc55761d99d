//! A sign-in flood of huge usernames (issue 29, item 1; not a test).
//!
//! Starts the release `gatewarden` binary (SQLite, simulator, `--trusted-proxy 127.0.0.1`)
//! and, from idle:
//! 1. 5 addresses x 20 attempts with 2 MB usernames, half as JSON (`POST /api/v1/session`),
//!    half as the sign-in form (`POST /login`): before the fix each name was kept twice per
//!    attempt in the throttle and written to a log line;
//! 2. 5 addresses x 2,000 attempts with the largest name a sign-in body can carry (~8 KB),
//!    each name different, 20 at a time: what the throttle keeps per name.
//!
//! Prints the statuses, peak and final RSS against idle, and the log bytes written; exits
//! 1 (`OVER BUDGET`) when the peak is more than 50 MB above idle or RSS does not come back
//! within 10 MB of idle after the flood.
//!
//! Run: `cargo bench -p server --bench sign_in_flood`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BUDGET_PEAK_MB: f64 = 50.0;
const BUDGET_AFTER_MB: f64 = 10.0;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

async fn attempt(client: &reqwest::Client, base: &str, from: &str, name: &str, form: bool) -> u16 {
    let request = if form {
        client.post(format!("{base}/login")).form(&[("username", name), ("password", "guess")])
    } else {
        client.post(format!("{base}/api/v1/session")).json(&serde_json::json!({"username": name, "password": "guess"}))
    };
    request.header("x-forwarded-for", from).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("console.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let key = dir.path().join("audit.key");
    std::fs::write(&key, "a benchmark audit key of at least thirty-two bytes\n").unwrap();
    let mut console = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatewarden"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--trusted-proxy", "127.0.0.1"])
        .arg("--database-url")
        .arg(format!("sqlite:{}", dir.path().join("bench.db").display()))
        .arg("--audit-key-file")
        .arg(&key)
        .env("GATEWARDEN_ADMIN_PASSWORD", "bench-admin-password")
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the gatewarden binary starts");
    let pid = console.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the console did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_kb(pid);
    let log_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    println!("idle: {:.1} MB RSS", mb(idle));

    let stop = Arc::new(AtomicBool::new(false));
    let peak = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let client = reqwest::Client::new();
    let huge = "x".repeat(2 << 20);
    let mut statuses: BTreeMap<(&str, u16), u32> = BTreeMap::new();
    let t = Instant::now();
    for a in 0..5 {
        let from = format!("203.0.113.{}", a + 1);
        let round = (0..20).map(|i| {
            let (client, base, from, huge) = (&client, &base, &from, &huge);
            async move { (i % 2 == 1, attempt(client, base, from, huge, i % 2 == 1).await) }
        });
        for (form, status) in futures::future::join_all(round).await {
            *statuses.entry((if form { "2 MB form" } else { "2 MB json" }, status)).or_default() += 1;
        }
    }
    let phase1 = t.elapsed();
    let t = Instant::now();
    for a in 0..5 {
        let from = format!("198.51.100.{}", a + 1);
        for batch in 0..100 {
            let round = (0..20).map(|i| {
                let (client, base, from) = (&client, &base, &from);
                // The largest name that fits the sign-in body, different every time.
                let name = format!("{a}-{batch}-{i}-{}", "y".repeat(8_000));
                async move { attempt(client, base, from, &name, false).await }
            });
            for status in futures::future::join_all(round).await {
                *statuses.entry(("8 KB json", status)).or_default() += 1;
            }
        }
    }
    let phase2 = t.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap().max(rss_kb(pid));
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = rss_kb(pid);
    let logged = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) - log_before;
    for ((kind, status), n) in &statuses {
        println!("  {kind}: {n} x HTTP {status}");
    }
    println!(
        "5 x 20 attempts with 2 MB names in {:.2} s, 5 x 2,000 with 8 KB names in {:.2} s",
        phase1.as_secs_f64(),
        phase2.as_secs_f64()
    );
    let (over_peak, over_after) = (mb(peak.saturating_sub(idle)), mb(after.saturating_sub(idle)));
    println!(
        "RSS: idle {:.1} MB, peak {:.1} MB (+{over_peak:.1} MB), 15 s later {:.1} MB (+{over_after:.1} MB); \
         log written: {logged} bytes",
        mb(idle),
        mb(peak),
        mb(after)
    );
    console.kill().await.ok();
    if over_peak > BUDGET_PEAK_MB || over_after > BUDGET_AFTER_MB {
        println!("OVER BUDGET: peak must stay within +{BUDGET_PEAK_MB} MB, and come back within +{BUDGET_AFTER_MB} MB");
        std::process::exit(1);
    }
}
