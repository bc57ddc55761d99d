//! A sign-in flood of huge usernames (issue 29, item 1; not a test).
//!
//! Starts the release `gatewarden` binary (SQLite, simulator, `--trusted-proxy 127.0.0.1`)
//! and, from idle:
//! 1. 5 addresses x 20 attempts with 2 MB usernames, half as JSON (`POST /api/v1/session`),
//!    half as the sign-in form (`POST /login`): before the fix each name was kept twice per
//!    attempt in the throttle and written to a log line;
//! 2. 100 wrong sign-ins with a short name from 100 addresses (what the password checks
//!    alone leave behind), then 5 addresses x 2,000 attempts with the largest name a sign-in
//!    body can carry (~8 KB), each name different, 20 at a time: what the throttle keeps per
//!    name.
//!
//! Prints the statuses, RSS after each phase and 15 and 30 s later, and the log bytes
//! written; exits 1 (`OVER BUDGET`) when either flood of names raises RSS by more than
//! 50 MB, or the 8 KB names leave more than 10 MB behind after 30 s.
//!
//! Run: `cargo bench -p server --bench sign_in_flood`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BUDGET_PEAK_MB: f64 = 50.0;

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
        .stderr(std::fs::File::create(dir.path().join("console.err")).unwrap())
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
    // Just under axum's default 2 MiB body limit (what the form had before issue 29).
    let huge = "x".repeat((2 << 20) - 1024);
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let peak1 = rss_kb(pid);
    // What 100 password checks cost by themselves (short names, 100 addresses, 20 at a
    // time), so the next phase's names are measured on top of it.
    for batch in 0..5 {
        let round = (0..20).map(|i| {
            let (client, base) = (&client, &base);
            let from = format!("192.0.2.{}", batch * 20 + i + 1);
            async move { attempt(client, base, &from, "someone", false).await }
        });
        for status in futures::future::join_all(round).await {
            *statuses.entry(("short json", status)).or_default() += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let checks = rss_kb(pid);
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
    tokio::time::sleep(Duration::from_secs(15)).await;
    let later = rss_kb(pid);
    let log_bytes = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let logged = log_bytes(&log) + log_bytes(&dir.path().join("console.err")) - log_before;
    for ((kind, status), n) in &statuses {
        println!("  {kind}: {n} x HTTP {status}");
    }
    println!(
        "5 x 20 attempts with 2 MB names in {:.2} s, 5 x 2,000 with 8 KB names in {:.2} s",
        phase1.as_secs_f64(),
        phase2.as_secs_f64()
    );
    let over = |kb: u64, base: u64| mb(kb.saturating_sub(base));
    println!(
        "RSS: idle {:.1} MB; after the 2 MB names {:.1} MB (+{:.1} MB over idle); after 100 password checks \
         {:.1} MB; peak with the 8 KB names {:.1} MB (+{:.1} MB over the checks); 15 s later {:.1} MB, 30 s later \
         {:.1} MB (+{:.1} MB over the checks); log written: {logged} bytes",
        mb(idle),
        mb(peak1),
        over(peak1, idle),
        mb(checks),
        mb(peak),
        over(peak, checks),
        mb(after),
        mb(later),
        over(later, checks),
    );
    console.kill().await.ok();
    // The names must cost nothing that stays: the 2 MB flood over idle, the 8 KB names
    // over what the password checks before them left (argon2's 19 MiB buffers, which the
    // allocator keeps: reported, budgeted by the hostile_load bench).
    if over(peak1, idle) > BUDGET_PEAK_MB || over(peak, checks) > BUDGET_PEAK_MB || over(later, checks) > 10.0 {
        println!(
            "OVER BUDGET: each flood of names must stay within +{BUDGET_PEAK_MB} MB, and the 8 KB names' come back \
             within +10 MB of before them"
        );
        std::process::exit(1);
    }
}
