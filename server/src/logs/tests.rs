//! Queries against a known corpus return exactly the expected lines.

use super::query::{Level, parse};
use super::*;

fn line(ts: i64, gateway: &str, instance: &str, level: Level, status: u16, message: &str) -> LogRecord {
    LogRecord {
        ts_ms: ts,
        gateway: gateway.into(),
        instance: instance.into(),
        level,
        // Access lines read "METHOD ROUTE STATUS ...".
        route: if status > 0 { message.split_whitespace().nth(1).unwrap_or_default().into() } else { "".into() },
        status,
        message: message.into(),
    }
}

fn corpus() -> LogStore {
    let store = LogStore::new(Retention::default());
    store.extend([
        line(1_000, "edge", "edge-a", Level::Info, 200, "GET /api/payments 200 12ms upstream=payments"),
        line(
            2_000,
            "edge",
            "edge-b",
            Level::Error,
            502,
            "GET /api/payments 502 connect() failed (111: Connection refused)",
        ),
        line(3_000, "partner", "partner-a", Level::Warn, 429, "POST /api/orders 429 quota exceeded"),
        line(
            4_000,
            "edge",
            "edge-a",
            Level::Error,
            0,
            "panic: runtime error: nil pointer dereference\n\tat handler.go:42",
        ),
        line(
            5_000,
            "edge",
            "edge-b",
            Level::Error,
            504,
            "GET /api/payments 504 upstream timed out (110: Connection timed out)",
        ),
        line(6_000, "partner", "partner-a", Level::Info, 200, "GET /api/users 200 9ms"),
    ]);
    store
}

/// The timestamps of the lines `q` finds, newest first.
fn find(store: &LogStore, q: &str) -> Vec<i64> {
    let m = Matcher::new(&parse(q).unwrap(), 10_000);
    store.search(&m, None, None, 100, None).hits.iter().map(|h| h.record.ts_ms).collect()
}

#[test]
fn queries_find_exactly_the_matching_lines_newest_first() {
    let s = corpus();
    assert_eq!(find(&s, ""), vec![6_000, 5_000, 4_000, 3_000, 2_000, 1_000]);
    assert_eq!(find(&s, "level:error"), vec![5_000, 4_000, 2_000]);
    assert_eq!(find(&s, "status:5xx"), vec![5_000, 2_000]);
    assert_eq!(find(&s, "status:429"), vec![3_000]);
    assert_eq!(find(&s, "CONNECTION"), vec![5_000, 2_000], "words match case-insensitively");
    assert_eq!(find(&s, r#""connection refused""#), vec![2_000]);
    assert_eq!(find(&s, "gateway:edge AND NOT status:5xx"), vec![4_000, 1_000]);
    assert_eq!(find(&s, "instance:partner-a OR panic"), vec![6_000, 4_000, 3_000]);
    assert_eq!(find(&s, r"/\b\d{2}ms\b/"), vec![1_000]);
    assert_eq!(find(&s, "(timed OR refused) -instance:edge-a"), vec![5_000, 2_000]);
    assert_eq!(find(&s, "route:/api/payments level:info"), vec![1_000]);
    assert_eq!(find(&s, "since:1970-01-01T00:00:03Z until:1970-01-01T00:00:05Z"), vec![5_000, 4_000, 3_000]);
    assert_eq!(find(&s, "since:7s"), vec![6_000, 5_000, 4_000, 3_000], "7 s before now (10 s)");
    assert_eq!(find(&s, "nothing-like-this"), Vec::<i64>::new());
}

#[test]
fn pages_count_every_match_and_continue_from_the_cursor() {
    let s = corpus();
    let m = Matcher::new(&parse("gateway:edge").unwrap(), 0);
    let first = s.search(&m, None, None, 2, None);
    assert_eq!(first.total, 4);
    assert_eq!(first.hits.iter().map(|h| h.record.ts_ms).collect::<Vec<_>>(), vec![5_000, 4_000]);
    let second = s.search(&m, None, None, 2, first.next_cursor);
    assert_eq!(second.hits.iter().map(|h| h.record.ts_ms).collect::<Vec<_>>(), vec![2_000, 1_000]);
    assert_eq!(second.next_cursor, None);
    let window = s.search(&m, Some(2_000), Some(4_000), 10, None);
    assert_eq!((window.total, window.hits.len()), (2, 2));
}

#[test]
fn highlights_mark_the_words_phrases_and_regex_matches() {
    let m = Matcher::new(&parse(r#"connect "connection refused" /\d+:/ -nothing"#).unwrap(), 0);
    let text = "GET /api/payments 502 connect() failed (111: Connection refused)";
    let spans: Vec<&str> = m.highlights(text).iter().map(|&(a, b)| &text[a..b]).collect();
    assert_eq!(spans, vec!["connect", "111:", "Connection refused"]);
}

#[test]
fn retention_drops_the_oldest_lines_by_age_and_by_size() {
    let s = LogStore::new(Retention { max_bytes: usize::MAX, max_age_ms: 2_500 });
    s.extend((0..6).map(|i| line(i * 1_000, "edge", "edge-a", Level::Info, 200, "x")));
    assert_eq!(find(&s, ""), vec![5_000, 4_000, 3_000]);
    assert_eq!(s.stats().2, 3, "three dropped");
    let page = s.search(&Matcher::All, None, None, 10, None);
    assert_eq!((page.oldest, page.dropped), (Some(3_000), 3), "a search says what is no longer kept");

    let one = line(0, "edge", "edge-a", Level::Info, 200, "0123456789").size();
    let s = LogStore::new(Retention { max_bytes: one * 4, max_age_ms: i64::MAX });
    s.extend((0..10).map(|i| line(i, "edge", "edge-a", Level::Info, 200, "0123456789")));
    let (kept, bytes, dropped) = s.stats();
    assert_eq!((kept, dropped), (4, 6));
    assert!(bytes <= one * 4);
}

#[test]
fn the_histogram_counts_every_match_in_time_buckets() {
    let s = corpus();
    let m = Matcher::new(&parse("level:error").unwrap(), 0);
    let page = s.search(&m, None, None, 1, None);
    let bars: Vec<(i64, u64)> = page.histogram.iter().map(|&(start, _, n)| (start, n)).collect();
    assert_eq!(bars, vec![(1_000, 0), (2_000, 1), (3_000, 0), (4_000, 1), (5_000, 1), (6_000, 0)]);
    assert_eq!(page.histogram.iter().map(|b| b.2).sum::<u64>(), page.total, "one page of hits, every match counted");
    let zoomed = s.search(&m, Some(4_000), Some(5_000), 10, None);
    assert_eq!(
        zoomed.histogram.iter().map(|&(start, _, n)| (start, n)).collect::<Vec<_>>(),
        vec![(4_000, 1), (5_000, 1)]
    );
}

/// The lines the reference matcher finds by looking at every kept line, newest first,
/// with their sequence numbers.
fn reference(kept: &[(u64, LogRecord)], m: &Matcher, since: Option<i64>, until: Option<i64>) -> Vec<u64> {
    kept.iter()
        .rev()
        .filter(|(_, r)| since.is_none_or(|s| r.ts_ms >= s) && until.is_none_or(|u| r.ts_ms <= u) && m.matches(r))
        .map(|(seq, _)| *seq)
        .collect()
}

fn random_line(rng: &mut crate::rng::SplitMix64, ts: i64) -> LogRecord {
    const WORDS: &[&str] = &[
        "timeout",
        "TimeOut",
        "502",
        "upstream",
        "é-x",
        "a.b",
        "refused",
        "REFUSED",
        "and",
        "x_y",
        "GET",
        "get",
        "time out",
        "timed out",
        "a/b",
        "x\\y",
        "123",
        "connection refused",
        "say \"hi\"",
        "back\\slash",
        "a:b (c)",
        "\n\tat handler.go:42",
        "Ω",
        "payments",
    ];
    let n = 1 + rng.below(6);
    let message: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
    let pick = |rng: &mut crate::rng::SplitMix64, from: &[&str]| -> Arc<str> {
        from[rng.below(from.len() as u64) as usize].into()
    };
    LogRecord {
        ts_ms: ts,
        gateway: pick(rng, &["public-edge", "a b", "x:y", "partner"]),
        instance: pick(rng, &["public-edge-1", "public-edge-2", "-"]),
        level: [Level::Error, Level::Warn, Level::Info, Level::Debug][rng.below(4) as usize],
        route: pick(rng, &["/api/payments", "/api/orders", ""]),
        status: [0, 200, 404, 429, 502, 503, 504][rng.below(7) as usize],
        message: message.join(if rng.below(2) == 0 { " " } else { "" }),
    }
}

/// Whatever the query, the index finds exactly the lines the reference matcher does, in
/// the same order, pages the same way and counts the same histogram, across segments,
/// with lines already dropped by retention and timestamps slightly out of order.
#[test]
fn the_index_finds_exactly_what_looking_at_every_line_finds() {
    use crate::rng::SplitMix64;
    let mut rng = SplitMix64::new(42);
    const BASE: i64 = 1_795_500_000_000;
    let lines: Vec<LogRecord> = (0..20_000)
        .map(|i| {
            let jitter = rng.below(25) as i64;
            random_line(&mut rng, BASE + i * 10 + jitter)
        })
        .collect();
    let store = LogStore::new(Retention { max_bytes: usize::MAX, max_age_ms: 150_000 });
    for chunk in lines.chunks(700) {
        store.extend(chunk.iter().cloned());
    }
    let (kept_n, _, dropped) = store.stats();
    assert!(dropped > index::SEGMENT_LINES as u64 / 2 && kept_n > 2 * index::SEGMENT_LINES, "{kept_n} {dropped}");
    let kept: Vec<(u64, LogRecord)> =
        lines.iter().cloned().enumerate().skip(dropped as usize).map(|(i, r)| (i as u64, r)).collect();

    let mut queries: Vec<String> = std::iter::repeat_with(|| super::query::tests::arbitrary(&mut rng, 3))
        .filter(super::query::tests::within_bounds)
        .take(150)
        .map(|e| e.to_string())
        .collect();
    queries.extend(
        [
            "",
            "/^GET/",
            "/refused$/",
            r"/(?m)^\tat/",
            "/[^a-z]out/",
            "/x*/",
            "é-x",
            "Ω",
            "ti",
            "a.b",
            r#""d o""#,
            "/(?i)TIMED OUT|refused/",
            "NOT timeout",
            "status:5xx OR level:debug",
            "gateway:nowhere",
        ]
        .map(String::from),
    );
    for q in &queries {
        let m = Matcher::new(&parse(q).unwrap(), BASE + 150_000);
        for (since, until) in [(None, None), (Some(BASE + 90_000), Some(BASE + 140_000))] {
            let want = reference(&kept, &m, since, until);
            let page = store.search(&m, since, until, usize::MAX, None);
            let got: Vec<u64> = page.hits.iter().map(|h| h.seq).collect();
            assert_eq!(got, want, "{q} {since:?}..{until:?}");
            assert_eq!(page.total, want.len() as u64, "{q}");
            for h in &page.hits {
                assert_eq!(h.record, kept[(h.seq - dropped) as usize].1, "{q}: the record comes back whole");
            }
            // Pages walk the same lines.
            let mut walked = Vec::new();
            let mut cursor = None;
            loop {
                let p = store.search(&m, since, until, 1009, cursor);
                walked.extend(p.hits.iter().map(|h| h.seq));
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(walked, want, "{q}: paged");
            assert_eq!(page.histogram.iter().map(|b| b.2).sum::<u64>(), page.total, "{q}: every match in a bar");
        }
    }
}
