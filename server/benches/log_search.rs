//! Log search at ten million lines (not a test).
//!
//! Generates a day of logs of 20 gateways (5 pods each): nginx-style access lines with
//! request ids, a background of refused connections and auth warnings, and three
//! incidents (upstream timeouts on gw-03, a panicking rollout on gw-11, a broken auth
//! layer on gw-17). Feeds them to the store, writes the same messages to a plain file,
//! and times representative queries against `grep -c` and `rg -c` on that file.
//!
//! Run: `cargo bench -p server --bench log_search -- [lines=10000000] [dir=/tmp]`
//! Targets (issue 6): indexed query p50 <= 50 ms; a full scan no slower than 2x ripgrep.
//! `--fts5` also loads the first million lines into SQLite FTS5 (trigram tokenizer) and
//! times the same text queries there, for the comparison in BENCHMARKS.md.

use server::logs::query::{Level, parse};
use server::logs::{LogRecord, LogStore, Matcher, Retention};
use server::rng::SplitMix64;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: i64 = 24 * 3600 * 1000;
const START: i64 = 1_795_910_400_000; // 2026-11-24T00:00:00Z
const ROUTES: &[(&str, &str)] = &[
    ("/api/v1/payments", "payments"),
    ("/api/v1/orders", "orders"),
    ("/api/v1/users", "users"),
    ("/api/v1/search", "search"),
    ("/api/v1/cart", "cart"),
    ("/api/v1/inventory", "inventory"),
    ("/api/v1/shipping", "shipping"),
    ("/api/v1/auth/token", "auth"),
    ("/api/v1/recommendations", "recs"),
    ("/api/v1/notifications", "notify"),
    ("/healthz", "gateway"),
    ("/api/v2/checkout", "checkout"),
];
const AGENTS: &[&str] =
    &["okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/2.0", "python-requests/2.32.3"];

/// Incident windows: (gateway, start, end) as fractions of the day.
const TIMEOUTS: (usize, f64, f64) = (3, 0.40, 0.42);
const PANICS: (usize, f64, f64) = (11, 0.61, 0.625);
const AUTH: (usize, f64, f64) = (17, 0.83, 0.84);

struct Gen {
    rng: SplitMix64,
    gateways: Vec<Arc<str>>,
    pods: Vec<Vec<Arc<str>>>,
    routes: Vec<Arc<str>>,
    /// The request id of line `needle_at`, to search for.
    needle_at: u64,
    needle: String,
}

impl Gen {
    fn new(needle_at: u64) -> Self {
        let gateways: Vec<Arc<str>> = (0..20).map(|g| Arc::from(format!("gw-{g:02}"))).collect();
        let pods = (0..20).map(|g| (0..5).map(|p| Arc::from(format!("gw-{g:02}-7f9c6d-{p}x{g}q"))).collect()).collect();
        Gen {
            rng: SplitMix64::new(2026),
            gateways,
            pods,
            routes: ROUTES.iter().map(|r| Arc::from(r.0)).collect(),
            needle_at,
            needle: String::new(),
        }
    }

    fn in_window(frac: f64, w: (usize, f64, f64), g: usize) -> bool {
        g == w.0 && frac >= w.1 && frac < w.2
    }

    /// Line `n` of `total`.
    fn line(&mut self, n: u64, total: u64) -> LogRecord {
        let frac = n as f64 / total as f64;
        let ts = START + (frac * DAY_MS as f64) as i64;
        let rng = &mut self.rng;
        let g = rng.below(20) as usize;
        let pod = self.pods[g][rng.below(5) as usize].clone();
        let r = rng.below(ROUTES.len() as u64) as usize;
        let (path, service) = ROUTES[r];
        let req_id = format!("{:016x}", rng.next_u64());
        if n == self.needle_at {
            self.needle = req_id.clone();
        }
        let client = format!("10.{}.{}.{}", rng.below(256), rng.below(256), 1 + rng.below(254));
        let method = if rng.below(4) == 0 { "POST" } else { "GET" };
        let clock = format!(
            "24/Nov/2026:{:02}:{:02}:{:02}.{:03} +0000",
            (ts - START) / 3_600_000,
            (ts - START) / 60_000 % 60,
            (ts - START) / 1000 % 60,
            (ts - START) % 1000
        );
        let roll = rng.below(10_000);
        let timeouts = Self::in_window(frac, TIMEOUTS, g) && path == "/api/v1/payments";
        let panics = Self::in_window(frac, PANICS, g) && roll < 3_000;
        let auth = Self::in_window(frac, AUTH, g) && roll < 6_000;
        let (status, level, message) = if timeouts && roll < 7_000 {
            (
                504,
                Level::Error,
                format!(
                    "{clock} [error] 31#31: *{n} upstream timed out (110: Connection timed out) while reading response header from upstream, client: {client}, request: \"{method} {path} HTTP/1.1\", upstream: \"http://{service}:8080{path}\", req_id={req_id}"
                ),
            )
        } else if panics {
            (
                500,
                Level::Error,
                format!(
                    "{clock} [error] panic: runtime error: invalid memory address or nil pointer dereference (gateway v2.14.0) unhandled exception in route.(*Table).Match, request: \"{method} {path} HTTP/1.1\", req_id={req_id}\n\tgoroutine 4127 [running]:\n\t/src/internal/route/table.go:88 +0x1c"
                ),
            )
        } else if auth {
            (
                401,
                Level::Warn,
                format!(
                    "{clock} [warn] auth: token validation failed: dial tcp auth.internal:443: connect: connection refused, request: \"{method} {path} HTTP/1.1\", req_id={req_id}"
                ),
            )
        } else if roll < 25 {
            (
                502,
                Level::Error,
                format!(
                    "{clock} [error] 31#31: *{n} connect() failed (111: Connection refused) while connecting to upstream, client: {client}, upstream: \"http://{service}:8080{path}\", req_id={req_id}"
                ),
            )
        } else {
            let status = match roll {
                25..=224 => 404,
                225..=264 => 429,
                _ => 200,
            };
            let bytes = 200 + rng.below(4000);
            let agent = AGENTS[rng.below(AGENTS.len() as u64) as usize];
            let latency = rng.below(250) as f64 / 1000.0 + 0.001;
            let level = if status >= 400 { Level::Warn } else { Level::Info };
            (
                status,
                level,
                format!(
                    "{client} - - [{clock}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\" {latency:.3} upstream={service}:8080 req_id={req_id}"
                ),
            )
        };
        LogRecord {
            ts_ms: ts,
            gateway: self.gateways[g].clone(),
            instance: pod,
            level,
            route: self.routes[r].clone(),
            status,
            message,
        }
    }
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Median of three runs of a command that prints a count; (time, count).
fn external(cmd: &str, args: &[&str]) -> Option<(Duration, String)> {
    let mut times = Vec::new();
    let mut out = String::new();
    for _ in 0..3 {
        let t = Instant::now();
        let o = std::process::Command::new(cmd).args(args).env("LC_ALL", "C").output().ok()?;
        times.push(t.elapsed());
        out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    }
    times.sort();
    Some((times[1], out))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let fts5 = std::env::args().any(|a| a == "--fts5");
    let total: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let dir = args.get(1).cloned().unwrap_or_else(|| "/tmp".into());
    let file = format!("{dir}/gatewarden-bench-logs.txt");
    println!(
        "lines: {total}, plain file: {file}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let store = LogStore::new(Retention { max_bytes: usize::MAX, max_age_ms: i64::MAX });
    let mut generator = Gen::new(total * 37 / 100);
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).expect("create the plain file"));
    let mut ingest = Duration::ZERO;
    let mut text_bytes = 0u64;
    let mut first_million: Vec<LogRecord> = Vec::new();
    let mut n = 0;
    while n < total {
        let batch: Vec<LogRecord> = (n..(n + 10_000).min(total)).map(|i| generator.line(i, total)).collect();
        for r in &batch {
            out.write_all(r.message.as_bytes()).and_then(|_| out.write_all(b"\n")).expect("write");
            text_bytes += r.message.len() as u64 + 1;
        }
        if fts5 && first_million.len() < 1_000_000 {
            first_million.extend(batch.iter().cloned());
        }
        n += batch.len() as u64;
        let t = Instant::now();
        store.extend(batch);
        ingest += t.elapsed();
    }
    out.flush().expect("flush");
    drop(out);
    let (kept, _, _) = store.stats();
    let (data, filters) = store.footprint();
    println!(
        "ingest: {kept} lines, {:.2} GB of text, {:.1} s in the store = {:.0} lines/s ({:.0} MB/s)",
        text_bytes as f64 / 1e9,
        ingest.as_secs_f64(),
        kept as f64 / ingest.as_secs_f64(),
        text_bytes as f64 / 1e6 / ingest.as_secs_f64()
    );
    println!(
        "store: columns + text {:.0} MB, 4-gram filters (the index) {:.1} MB = {:.1} % of the text; process RSS {:.0} MB",
        data as f64 / 1e6,
        filters as f64 / 1e6,
        filters as f64 * 100.0 / text_bytes as f64,
        rss_mb()
    );

    let last_15m = START + DAY_MS - 15 * 60_000;
    let queries: Vec<(&str, String)> = vec![
        ("incident lines of one gateway", "\"upstream timed out\" gateway:gw-03".into()),
        ("recent errors", format!("level:error since:{last_15m}")),
        ("5xx of one route", "status:5xx route:/api/v1/payments".into()),
        ("one request id", generator.needle.clone()),
        ("the runbook's grep (full scan)", "error OR exception OR failed".into()),
        ("a regex (full scan)", "/Connection (refused|timed out)/".into()),
    ];
    let now = START + DAY_MS;
    println!("\n| query | text | matches | p50 | p95 |");
    println!("|---|---|---|---|---|");
    let mut p50s = Vec::new();
    for (name, q) in &queries {
        let expr = parse(q).expect("a valid query");
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let m = Matcher::new(&expr, now);
            let page = store.search(&m, None, None, 100, None);
            times.push(t.elapsed());
            found = page.total;
        }
        times.sort();
        p50s.push(percentile(&times, 0.5));
        println!("| {name} | `{q}` | {found} | {} | {} |", ms(percentile(&times, 0.5)), ms(percentile(&times, 0.95)));
    }

    println!("\nThe same text searches on the plain file (LC_ALL=C, median of 3, file in the page cache):");
    println!("| search | tool | matching lines | time | store's p50 | ratio |");
    println!("|---|---|---|---|---|---|");
    let scans: [(&str, usize, &[&str], &[&str]); 3] = [
        ("runbook grep", 4, &["-c", "-i", "error\\|exception\\|failed"], &["-c", "-i", "error|exception|failed"]),
        ("regex", 5, &["-c", "-E", "Connection (refused|timed out)"], &["-c", "Connection (refused|timed out)"]),
        ("request id", 3, &["-c", "-i", generator.needle.as_str()], &["-c", "-i", generator.needle.as_str()]),
    ];
    for (name, qi, grep_args, rg_args) in scans {
        for (tool, args) in [("grep", grep_args), ("rg", rg_args)] {
            let mut a: Vec<&str> = args.to_vec();
            a.push(&file);
            match external(tool, &a) {
                Some((t, count)) => println!(
                    "| {name} | {tool} | {count} | {} | {} | {:.2} |",
                    ms(t),
                    ms(p50s[qi]),
                    p50s[qi].as_secs_f64() / t.as_secs_f64()
                ),
                None => println!("| {name} | {tool} | not installed | | | |"),
            }
        }
    }

    if fts5 {
        fts5_comparison(&first_million, &generator.needle);
    }
    if std::env::args().all(|a| a != "--keep") {
        let _ = std::fs::remove_file(&file);
    }
}

/// SQLite FTS5 with its trigram tokenizer (the only FTS5 tokenizer that answers
/// substring, case-insensitive matches like `grep -i`) on the first million lines.
fn fts5_comparison(lines: &[LogRecord], needle: &str) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let path = "/tmp/gatewarden-bench-fts5.db";
        let _ = std::fs::remove_file(path);
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{path}?mode=rwc")).await.expect("sqlite");
        sqlx::query("PRAGMA journal_mode=OFF").execute(&mut db).await.expect("pragma");
        sqlx::query("PRAGMA synchronous=OFF").execute(&mut db).await.expect("pragma");
        sqlx::query("CREATE VIRTUAL TABLE logs USING fts5(message, gateway UNINDEXED, ts UNINDEXED, tokenize='trigram')")
            .execute(&mut db)
            .await
            .expect("FTS5 with the trigram tokenizer");
        let t = Instant::now();
        for chunk in lines.chunks(10_000) {
            let mut tx = db.begin().await.expect("tx");
            for r in chunk {
                sqlx::query("INSERT INTO logs(message, gateway, ts) VALUES (?, ?, ?)")
                    .bind(&r.message)
                    .bind(&*r.gateway)
                    .bind(r.ts_ms)
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
            }
            tx.commit().await.expect("commit");
        }
        let took = t.elapsed();
        let text: u64 = lines.iter().map(|r| r.message.len() as u64 + 1).sum();
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        println!(
            "\nSQLite FTS5 (trigram), first {} lines ({:.0} MB of text): ingest {:.0} lines/s, database {:.0} MB ({:.1}x the text)",
            lines.len(),
            text as f64 / 1e6,
            lines.len() as f64 / took.as_secs_f64(),
            size as f64 / 1e6,
            size as f64 / text as f64
        );
        let store = LogStore::new(Retention { max_bytes: usize::MAX, max_age_ms: i64::MAX });
        let t = Instant::now();
        store.extend(lines.iter().cloned());
        let ours = t.elapsed();
        let (_, filters) = store.footprint();
        println!(
            "this store, same lines: ingest {:.0} lines/s, filters {:.1} MB ({:.3}x the text)",
            lines.len() as f64 / ours.as_secs_f64(),
            filters as f64 / 1e6,
            filters as f64 / text as f64
        );
        println!("| query | FTS5 count, p50 | store count, p50 |");
        println!("|---|---|---|");
        let cases = [
            ("\"upstream timed out\"", "\"upstream timed out\"".to_string()),
            ("one request id", format!("\"{needle}\"")),
            ("error OR exception OR failed", "error OR exception OR failed".to_string()),
        ];
        for (q, fts) in cases {
            let ours_q = if q == "one request id" { needle.to_string() } else { q.to_string() };
            let mut times = Vec::new();
            let mut count = 0i64;
            for _ in 0..5 {
                let t = Instant::now();
                count = sqlx::query_scalar("SELECT count(*) FROM logs WHERE logs MATCH ?")
                    .bind(&fts)
                    .fetch_one(&mut db)
                    .await
                    .expect("match");
                // A page of the newest hundred, as the console shows.
                let _: Vec<(String,)> =
                    sqlx::query_as("SELECT message FROM logs WHERE logs MATCH ? ORDER BY rowid DESC LIMIT 100")
                        .bind(&fts)
                        .fetch_all(&mut db)
                        .await
                        .expect("page");
                times.push(t.elapsed());
            }
            times.sort();
            let m = Matcher::new(&parse(&ours_q).expect("query"), 0);
            let mut ours_t = Vec::new();
            let mut ours_n = 0;
            for _ in 0..5 {
                let t = Instant::now();
                ours_n = store.search(&m, None, None, 100, None).total;
                ours_t.push(t.elapsed());
            }
            ours_t.sort();
            println!("| {q} | {count}, {} | {ours_n}, {} |", ms(times[2]), ms(ours_t[2]));
        }
        let _ = std::fs::remove_file(path);
    });
}
