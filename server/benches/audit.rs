//! Audit ledger benchmark (not a test): append rate, filtered page latency and full
//! verification on a ledger of N entries in a fresh SQLite file.
//!
//! Run: `cargo bench -p server --bench audit -- [entries=1000000] [database-url] [--unsigned]`
//! Entries are signed with an audit key and a checkpoint file is kept, as the console
//! does; `--unsigned` measures the hash chain alone.
//! Targets (issue 4): append >= 2,000/s on SQLite, filtered page <= 20 ms, verify <= 2 s.

use server::audit::{Actor, Filter, Kind, Ledger, NewEntry, Outcome};
use std::time::{Duration, Instant};

const ACTORS: usize = 50;
const GATEWAYS: [&str; 4] = ["edge", "partner", "internal", "mobile"];
const ACTIONS: [&str; 4] = ["restart", "scale", "rollback", "rate-limit"];

fn entry(i: usize) -> NewEntry {
    let actor = Actor {
        name: format!("sre{:02}", i % ACTORS),
        role: "responder".into(),
        addr: "10.0.0.7".into(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64)".into(),
        request_id: format!("{i:016x}"),
    };
    // Mostly actions with their outcomes, some denials and logins, like a busy console.
    let (kind, outcome) = match i % 20 {
        0 => (Kind::Login, Outcome::Succeeded),
        1 => (Kind::LoginFailure, Outcome::Denied),
        2 => (Kind::ActionIntent, Outcome::Denied),
        n if n % 2 == 0 => (Kind::ActionIntent, Outcome::Pending),
        _ => (Kind::ActionOutcome, Outcome::Succeeded),
    };
    let mut e = NewEntry::new(actor, kind, outcome);
    e.action = ACTIONS[i % ACTIONS.len()].into();
    e.target = GATEWAYS[(i / ACTIONS.len()) % GATEWAYS.len()].into();
    e.params = serde_json::json!({ "replicas": i % 12 + 1 });
    e.reason = format!("incident drill step {i}: p99 over budget on checkout");
    e.incident = format!("INC-{}", i / 1000);
    e
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = args.get(1).cloned().unwrap_or_else(|| format!("sqlite:{}", dir.path().join("bench.db").display()));
    let db = server::db::connect(&url).await.expect("database");
    let dialect = server::db::dialect(&url).expect("sqlite: or postgres: URL");
    let signed = !std::env::args().any(|a| a == "--unsigned");
    let key = server::audit::AuditKey::from_bytes(b"a benchmark audit key of at least thirty-two bytes").unwrap();
    let open = |checkpoint: Option<std::path::PathBuf>| {
        let (db, key) = (db.clone(), key.clone());
        async move {
            let ledger = Ledger::new(db, dialect);
            if signed { ledger.seal(key, checkpoint).await.expect("seal") } else { ledger }
        }
    };
    let ledger = open(Some(dir.path().join("audit.checkpoint"))).await;
    if let Some(c) = ledger.checkpointer() {
        c.spawn(server::audit::checkpoint::LOG_EVERY);
    }
    println!(
        "ledger benchmark: {n} entries, {}, {}",
        server::db::redact(&url),
        if signed { "signed (HMAC-SHA-256, checkpoint file)" } else { "unsigned (hash chain only)" }
    );

    // Appends, one at a time through the real path (each its own transaction).
    let start = Instant::now();
    let mut last_report = Instant::now();
    for i in 0..n {
        ledger.append(entry(i)).await.expect("append");
        if last_report.elapsed() > Duration::from_secs(30) {
            println!("  {i} appended, {:.0}/s so far", i as f64 / start.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
    }
    let append = start.elapsed();
    println!(
        "append: {n} in {:.1} s = {:.0} entries/s (sequential, one transaction each)",
        append.as_secs_f64(),
        n as f64 / append.as_secs_f64()
    );

    // Concurrent appends from 16 tasks (serialized by the ledger; checks the overhead).
    let start = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let ledger = open(None);
            tokio::spawn(async move {
                let ledger = ledger.await;
                for i in 0..500 {
                    // Separate Ledger instances race like replicas; the unique prev_hash keeps one chain.
                    ledger.append(entry(t * 1000 + i)).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    println!("append, 16 racing writers (as replicas would): 8000 in {:.2} s", start.elapsed().as_secs_f64());

    // Filtered pages of 50, newest first, and a page deep in the middle via the cursor.
    let mid = (n / 2) as i64;
    let cases: Vec<(&str, Filter, Option<i64>)> = vec![
        ("no filter", Filter::default(), None),
        ("actor", Filter { actor: Some("sre07".into()), ..Default::default() }, None),
        ("actor, deep cursor", Filter { actor: Some("sre07".into()), ..Default::default() }, Some(mid)),
        ("outcome=denied", Filter { outcome: Some("denied".into()), ..Default::default() }, None),
        (
            "action+target",
            Filter { action: Some("rollback".into()), target: Some("edge".into()), ..Default::default() },
            None,
        ),
        ("incident", Filter { incident: Some("INC-42".into()), ..Default::default() }, None),
        ("time range", Filter { since_ms: Some(0), until_ms: Some(i64::MAX), ..Default::default() }, Some(mid)),
        ("free text q", Filter { q: Some("step 123456:".into()), ..Default::default() }, None),
    ];
    println!("filtered page of 50 (100 runs each):");
    for (name, filter, cursor) in cases {
        let mut times = Vec::with_capacity(100);
        let mut found = 0;
        for _ in 0..100 {
            let t = Instant::now();
            found = ledger.search(&filter, 50, cursor).await.expect("search").entries.len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "  {name:<22} p50 {:>8.2} ms  p99 {:>8.2} ms  ({found} rows)",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    }

    let start = Instant::now();
    let v = ledger.verify().await.expect("verify");
    println!(
        "verify: {} entries in {:.2} s, ok={}, signed from {:?}, problems {:?}",
        v.entries,
        start.elapsed().as_secs_f64(),
        v.ok,
        v.signed_from,
        v.problems
    );
}
