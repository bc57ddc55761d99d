//! The console under attack and under load at once (not a test; issue 13's proof).
//!
//! Starts the release `gatewarden` binary on the embedded simulator, then:
//! 1. from idle, 200 wrong sign-ins at once, each from its own forwarded address (the
//!    worst case for memory: none is throttled, every one wants an argon2 check): the
//!    peak RSS above idle (target < 150 MB);
//! 2. for 60 s at once: 1,000 open event streams (100 users x 10), a wave of 200 parallel
//!    wrong sign-ins every 2 s, and 2,000 requests per second of `GET /api/v1/gateways`
//!    from a signed-in admin. Reports read errors (target 0), read p50/p99, peak and
//!    final RSS (targets < 300 MB peak, final within 10 % of the start) and how much the
//!    audit ledger grew.
//!
//! Run: `cargo bench -p server --bench hostile_load -- [seconds=60] [rps=2000] [streams=1000]`
//! (`BENCH_DATABASE_URL=postgres://...` for PostgreSQL instead of a fresh SQLite file).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-admin-password";
const USER_PASSWORD: &str = "bench user password";

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Established TCP connections to the console's `port` (from /proc/net/tcp{,6}).
fn established(port: u16) -> usize {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[1].ends_with(&local) && cols[3] == "01"
        })
        .count()
}

/// Samples VmRSS every 100 ms; returns the largest seen when stopped.
fn sample_peak(pid: u32, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kb(pid, "VmRSS:"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    })
}

async fn sign_in(base: &str, username: &str, password: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = client
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "sign-in of {username}: {}", r.status());
    let csrf = r.json::<serde_json::Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    (client, csrf)
}

/// 200 wrong sign-ins at once, each from its own forwarded address; returns
/// (answered 401, answered 429, other).
async fn wave(base: &str, wave: u32) -> (u32, u32, u32) {
    let client = reqwest::Client::new();
    let attempts = (0..200u32).map(|i| {
        let client = client.clone();
        let url = format!("{base}/api/v1/session");
        async move {
            client
                .post(url)
                .header("x-forwarded-for", format!("10.{}.{}.{}", wave % 250, i / 250, i % 250 + 1))
                .json(&serde_json::json!({"username": "admin", "password": format!("guess {wave} {i}")}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let mut counts = (0, 0, 0);
    for status in futures::future::join_all(attempts).await {
        match status {
            401 => counts.0 += 1,
            429 => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    counts
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(60);
    let rps = args.get(1).copied().unwrap_or(2000);
    let streams = args.get(2).copied().unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut console = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatewarden"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--trusted-proxy", "127.0.0.1"])
        // The simulator writes log lines all the time: a small store fills during the
        // warm-up, so growth in RSS is the load's, not the log store's (256 MB by default).
        .args(["--log-retention-mb", "8"])
        .arg("--database-url")
        .arg(
            std::env::var("BENCH_DATABASE_URL")
                .unwrap_or_else(|_| format!("sqlite:{}", dir.path().join("bench.db").display())),
        )
        // Signs the audit ledger (needed with PostgreSQL; with SQLite it would be created).
        .arg("--audit-key-file")
        .arg({
            let key = dir.path().join("audit.key");
            std::fs::write(&key, "a benchmark audit key of at least thirty-two bytes\n").unwrap();
            key
        })
        .env("GATEWARDEN_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into()))
        .stdout(std::process::Stdio::null())
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
    let (admin, csrf) = sign_in(&base, "admin", PASSWORD).await;
    let users = streams.div_ceil(10);
    for i in 0..users {
        let r = admin
            .post(format!("{base}/api/v1/users"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({"username": format!("watcher{i}"), "password": USER_PASSWORD, "role": "viewer", "reason": "load test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let entries = |admin: reqwest::Client| {
        let url = format!("{base}/api/v1/audit/verify");
        async move {
            let v: serde_json::Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            v["entries"].as_i64().unwrap()
        }
    };
    // Warm up: the log store fills (8 MB) and the simulator's buffers reach their size.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let idle = rss_kb(pid, "VmRSS:");
    println!("idle: {:.1} MB RSS (after {users} accounts were created)", mb(idle));

    // 1. One wave of 200 parallel wrong sign-ins from idle.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = sample_peak(pid, stop.clone());
    let t = Instant::now();
    let (checked, refused, other) = wave(&base, 0).await;
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap().max(rss_kb(pid, "VmRSS:"));
    println!(
        "200 parallel wrong sign-ins from 200 addresses: {checked} checked (401), {refused} turned away (429), \
         {other} other, in {:.2} s; peak RSS {:.1} MB = {:.1} MB above idle",
        took.as_secs_f64(),
        mb(peak),
        mb(peak.saturating_sub(idle))
    );

    // 2. Everything at once.
    let ledger_before = entries(admin.clone()).await;
    let mut holders = Vec::new();
    let stream_bytes = Arc::new(AtomicU64::new(0));
    let open_streams = Arc::new(AtomicU64::new(0));
    for u in 0..users {
        let (client, _) = sign_in(&base, &format!("watcher{u}"), USER_PASSWORD).await;
        for _ in 0..10.min(streams - u * 10) {
            let (client, url) = (client.clone(), format!("{base}/api/v1/events"));
            let (bytes, open) = (stream_bytes.clone(), open_streams.clone());
            holders.push(tokio::spawn(async move {
                use futures::StreamExt;
                let response = client.get(url).send().await.unwrap();
                assert_eq!(response.status(), 200, "an event stream opens");
                open.fetch_add(1, Ordering::Relaxed);
                let mut body = response.bytes_stream();
                while let Some(Ok(chunk)) = body.next().await {
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }));
        }
    }
    while open_streams.load(Ordering::Relaxed) < streams {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start_rss = rss_kb(pid, "VmRSS:");
    println!("{streams} event streams open: {:.1} MB RSS", mb(start_rss));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = sample_peak(pid, stop.clone());
    let waves = {
        let (base, stop) = (base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut totals = (0, 0, 0);
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                let (a, b, c) = wave(&base, n).await;
                totals = (totals.0 + a, totals.1 + b, totals.2 + c);
                n += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            totals
        })
    };
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity((rps * seconds) as usize)));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let per_tick = (rps / 100).max(1);
    // Reads go through their own client, whose connections close when the load ends.
    let (reader, _) = sign_in(&base, "admin", PASSWORD).await;
    let load_started = Instant::now();
    let mut reads = Vec::new();
    while load_started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        for _ in 0..per_tick {
            let (client, url) = (reader.clone(), format!("{base}/api/v1/gateways"));
            let (errors, latencies) = (errors.clone(), latencies.clone());
            reads.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = match client.get(url).send().await {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    latencies.lock().unwrap().push(t.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let sent = reads.len();
    for r in reads {
        let _ = r.await;
    }
    let elapsed = load_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (checked, refused, other) = waves.await.unwrap();
    let peak = peak.await.unwrap();
    let hwm = rss_kb(pid, "VmHWM:");
    for h in &holders {
        h.abort();
    }
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{sent} reads of GET /api/v1/gateways in {:.1} s ({:.0}/s): {} errors; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "wrong sign-ins during the load: {checked} checked, {refused} turned away, {other} other; \
         event stream bytes read: {:.1} MB",
        stream_bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let open_rss = rss_kb(pid, "VmRSS:");
    let connections = established(port);
    drop(reader);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let final_rss = rss_kb(pid, "VmRSS:");
    println!(
        "10 s after the load: {:.1} MB ({:+.1} % of start) with the readers' {connections} keep-alive connections \
         still open; {} left open after they close",
        mb(open_rss),
        (open_rss as f64 / start_rss as f64 - 1.0) * 100.0,
        established(port)
    );
    let ledger_after = entries(admin.clone()).await;
    println!(
        "RSS: start {:.1} MB, peak {:.1} MB (sampled; VmHWM {:.1} MB), final {:.1} MB ({:+.1} % of start) 10 s \
         after the load's connections closed",
        mb(start_rss),
        mb(peak),
        mb(hwm),
        mb(final_rss),
        (final_rss as f64 / start_rss as f64 - 1.0) * 100.0
    );
    // Diagnosis: how much of what is left is memory the allocator keeps after it was
    // freed (glibc returns little of it by itself). Needs gdb; changes nothing else.
    if std::env::var_os("BENCH_TRIM").is_some() {
        let trimmed = std::process::Command::new("gdb")
            .args(["-p", &pid.to_string(), "-batch", "-ex", "call (int) malloc_trim(0)"])
            .output();
        match trimmed {
            Ok(o) if o.status.success() => {
                let after = rss_kb(pid, "VmRSS:");
                println!(
                    "after malloc_trim(0) through gdb: {:.1} MB ({:+.1} % of start)",
                    mb(after),
                    (after as f64 / start_rss as f64 - 1.0) * 100.0
                );
            }
            other => println!("malloc_trim through gdb failed: {other:?}"),
        }
    }
    println!(
        "ledger: {ledger_before} -> {ledger_after} entries (+{}) for {} wrong sign-ins",
        ledger_after - ledger_before,
        checked + refused + other
    );
    let _ = console.kill().await;
}
