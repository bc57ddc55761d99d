//! Log search across every gateway instance.
//!
//! Lines arrive from the simulator or from followed pod log streams (`--fleet kube`,
//! `fleet::cluster::logs`) into a [`LogStore`]: an
//! in-memory store bounded by size and age, kept in column segments with 4-gram filters
//! ([`index`]). Search parses the query language in [`query`]; [`Matcher::matches`] is
//! the meaning of a query for one line (live tails use it, and the index is tested to
//! agree with it).

pub mod index;
pub mod query;

use query::{Expr, Field, Level, Status, TimeBound};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One log line of one gateway instance.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// When, Unix milliseconds.
    pub ts_ms: i64,
    /// Gateway id.
    pub gateway: Arc<str>,
    /// Pod name.
    pub instance: Arc<str>,
    /// Severity.
    pub level: Level,
    /// Route path of an access line ("" otherwise).
    pub route: Arc<str>,
    /// HTTP status of an access line (0 otherwise).
    pub status: u16,
    /// The text as the gateway wrote it (may span lines: stack traces).
    pub message: String,
}

impl LogRecord {
    /// The line as the API shows it, with the spans `m` matched.
    pub fn hit(&self, m: &Matcher) -> app::dto::LogHit {
        app::dto::LogHit {
            ts: self.ts_ms,
            gateway: self.gateway.to_string(),
            instance: self.instance.to_string(),
            level: self.level.as_str().into(),
            message: self.message.clone(),
            highlights: m.highlights(&self.message),
        }
    }

    /// What keeping it costs the store, for retention: the message and
    /// [`index::LINE_OVERHEAD`].
    pub fn size(&self) -> usize {
        index::LINE_OVERHEAD + self.message.len()
    }
}

/// How much the store keeps; the oldest lines go first when either bound is passed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    /// Bytes of lines kept (see [`LogRecord::size`]).
    pub max_bytes: usize,
    /// Age of the oldest line kept, milliseconds.
    pub max_age_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_bytes: 256 << 20, max_age_ms: 24 * 3600 * 1000 }
    }
}

struct Inner {
    /// Oldest first; the last is being filled, the others are sealed.
    segments: VecDeque<Arc<index::Segment>>,
    /// Sequence number of the first line of `segments[0]`.
    first_seq: u64,
    /// Lines of `segments[0]` already dropped by retention.
    skip: usize,
    /// Lines kept.
    lines: usize,
    bytes: usize,
    dropped: u64,
}

impl Inner {
    fn oldest(&self) -> Option<i64> {
        self.segments.front().filter(|s| self.skip < s.len()).map(|s| s.ts(self.skip))
    }

    fn newest(&self) -> Option<i64> {
        self.segments.back().filter(|s| !s.is_empty()).map(|s| s.ts(s.len() - 1))
    }
}

/// The lines of every gateway instance, newest last.
pub struct LogStore {
    inner: Mutex<Inner>,
    retention: Retention,
    /// Each appended batch, for live tails.
    tail: tokio::sync::broadcast::Sender<Arc<Vec<LogRecord>>>,
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Sequence number (the cursor of the next page is the last hit's).
    pub seq: u64,
    /// The line (`LogRecord::hit` gives it with its highlights).
    pub record: LogRecord,
}

/// A page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Newest first.
    pub hits: Vec<Hit>,
    /// Every matching line in the store.
    pub total: u64,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<u64>,
    /// Matches over time: `(start ms, width ms, count)`, oldest first, covering the
    /// searched window (or the lines kept).
    pub histogram: Vec<(i64, i64, u64)>,
    /// Time of the oldest line kept.
    pub oldest: Option<i64>,
    /// Lines dropped by retention so far.
    pub dropped: u64,
}

/// A live tail: the batches of lines appended to a store.
pub type Tail = tokio::sync::broadcast::Receiver<Arc<Vec<LogRecord>>>;

/// What a live tail sends.
#[derive(Clone, Debug, PartialEq)]
pub enum TailEvent {
    /// A new line that matches.
    Line(app::dto::LogHit),
    /// This many batches were missed by a client too slow to keep up.
    Lagged(u64),
}

/// The new lines of `tail` that `m` matches, as they are appended; ends with the store.
pub fn follow_matches(tail: Tail, m: Matcher) -> impl futures::Stream<Item = TailEvent> {
    use futures::StreamExt;
    futures::stream::unfold((tail, m), |(mut tail, m)| async move {
        loop {
            let events: Vec<TailEvent> = match tail.recv().await {
                Ok(batch) => batch.iter().filter(|r| m.matches(r)).map(|r| TailEvent::Line(r.hit(&m))).collect(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => vec![TailEvent::Lagged(n)],
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            if !events.is_empty() {
                return Some((futures::stream::iter(events), (tail, m)));
            }
        }
    })
    .flatten()
}

/// Bars in a histogram.
pub const HISTOGRAM_BARS: i64 = 60;

impl LogStore {
    /// An empty store.
    pub fn new(retention: Retention) -> Self {
        LogStore {
            inner: Mutex::new(Inner {
                segments: VecDeque::new(),
                first_seq: 0,
                skip: 0,
                lines: 0,
                bytes: 0,
                dropped: 0,
            }),
            retention,
            tail: tokio::sync::broadcast::channel(64).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every batch appended from now on (a slow receiver skips batches, and is told so).
    pub fn subscribe(&self) -> Tail {
        self.tail.subscribe()
    }

    /// Appends lines (in time order) and drops what retention no longer keeps.
    pub fn extend(&self, records: impl IntoIterator<Item = LogRecord>) {
        let batch: Vec<LogRecord> = records.into_iter().collect();
        if batch.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for r in &batch {
            if inner.segments.back().is_none_or(|s| s.is_full()) {
                if let Some(last) = inner.segments.back_mut() {
                    Arc::make_mut(last).seal();
                }
                inner.segments.push_back(Arc::new(index::Segment::new()));
            }
            let Some(last) = inner.segments.back_mut() else { unreachable!("a segment was just ensured") };
            // Copies the segment only while a search is reading it.
            Arc::make_mut(last).push(r);
            inner.bytes += r.size();
            inner.lines += 1;
        }
        if self.tail.receiver_count() > 0 {
            let _ = self.tail.send(Arc::new(batch));
        }
        let newest = inner.newest().unwrap_or(0);
        while let Some(oldest) = inner.oldest() {
            let too_old = newest - oldest > self.retention.max_age_ms;
            if !too_old && inner.bytes <= self.retention.max_bytes {
                break;
            }
            let front = &inner.segments[0];
            let size = index::LINE_OVERHEAD + front.message_len(inner.skip);
            let len = front.len();
            inner.skip += 1;
            inner.bytes -= size;
            inner.lines -= 1;
            inner.dropped += 1;
            if inner.skip == len && inner.segments.len() > 1 {
                inner.segments.pop_front();
                inner.first_seq += len as u64;
                inner.skip = 0;
            }
        }
    }

    /// Bytes the store holds: (columns and text, 4-gram filters).
    pub fn footprint(&self) -> (usize, usize) {
        let inner = self.lock();
        inner.segments.iter().fold((0, 0), |(d, f), s| (d + s.data_bytes(), f + s.filter_bytes()))
    }

    /// (lines kept, bytes, lines dropped by retention so far).
    pub fn stats(&self) -> (usize, usize, u64) {
        let inner = self.lock();
        (inner.lines, inner.bytes, inner.dropped)
    }

    /// Lines matching `m` in `[since, until]` (Unix ms), newest first, `limit` per page,
    /// starting below sequence number `cursor`.
    pub fn search(
        &self,
        m: &Matcher,
        since: Option<i64>,
        until: Option<i64>,
        limit: usize,
        cursor: Option<u64>,
    ) -> Page {
        // A snapshot: sealed segments are shared, the one being filled is copied only if
        // lines arrive while the search runs.
        let (segments, first_seq, skip, oldest, newest, dropped) = {
            let inner = self.lock();
            let segments: Vec<Arc<index::Segment>> = inner.segments.iter().cloned().collect();
            (segments, inner.first_seq, inner.skip, inner.oldest(), inner.newest(), inner.dropped)
        };
        // The window the bars cover: what was asked for, within what is kept.
        let (first, last) = (oldest.unwrap_or(0), newest.unwrap_or(0));
        let (from, to) = (since.unwrap_or(first).max(first), until.unwrap_or(last).min(last));
        // Whole seconds per bar, at least one.
        let width = ((to - from).max(0) / HISTOGRAM_BARS / 1000 + 1) * 1000;
        let bars = if to >= from { ((to - from) / width + 1) as usize } else { 0 };
        let mut counts = vec![0u64; bars];

        let plan = index::Plan::new(m).within(since, until);
        let found = index::run(&segments, skip, &plan);
        let mut total = 0u64;
        let mut seq_of = Vec::with_capacity(segments.len());
        let mut seq = first_seq;
        for s in &segments {
            seq_of.push(seq);
            seq += s.len() as u64;
        }
        for f in &found {
            let s = &segments[f.segment];
            for i in f.lines.iter() {
                total += 1;
                // Lines a little out of order may fall before the first kept line's time:
                // they count in the first bar.
                let bar = ((s.ts(i) - from) / width).clamp(0, bars as i64 - 1);
                if let Some(c) = counts.get_mut(bar as usize) {
                    *c += 1;
                }
            }
        }
        let mut hits = Vec::new();
        let mut next_cursor = None;
        'segments: for f in found.iter().rev() {
            let s = &segments[f.segment];
            for i in f.lines.iter().rev() {
                let seq = seq_of[f.segment] + i as u64;
                if cursor.is_some_and(|c| seq >= c) {
                    continue;
                }
                if hits.len() == limit {
                    next_cursor = hits.last().map(|h: &Hit| h.seq);
                    break 'segments;
                }
                hits.push(Hit { seq, record: s.record(i) });
            }
        }
        let histogram = counts.into_iter().enumerate().map(|(i, n)| (from + i as i64 * width, width, n)).collect();
        Page { hits, total, next_cursor, histogram, oldest, dropped }
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || find_ci(haystack, needle, 0).is_some()
}

/// Byte offset of the first case-insensitive (ASCII) occurrence of `needle` at or after `from`.
fn find_ci(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (from..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n) && haystack.is_char_boundary(i))
}

/// A query ready to run: regexes compiled, relative times resolved.
pub enum Matcher {
    /// Everything.
    All,
    /// A word or phrase (case-insensitive).
    Text(String),
    /// A regular expression over the message.
    Regex(regex::Regex),
    /// `level:`
    Level(String),
    /// `gateway:`
    Gateway(String),
    /// `instance:`
    Instance(String),
    /// `route:`
    Route(String),
    /// `status:503`
    Code(u16),
    /// `status:5xx`
    Class(u16),
    /// `since:` as Unix ms.
    Since(i64),
    /// `until:` as Unix ms.
    Until(i64),
    /// Negation.
    Not(Box<Matcher>),
    /// All of these.
    And(Vec<Matcher>),
    /// Any of these.
    Or(Vec<Matcher>),
}

impl Matcher {
    /// Compiles `e` at time `now_ms` (the parser has checked every regex).
    pub fn new(e: &Expr, now_ms: i64) -> Self {
        let all = |items: &[Expr]| items.iter().map(|i| Matcher::new(i, now_ms)).collect();
        match e {
            Expr::All => Matcher::All,
            Expr::Term(w) | Expr::Phrase(w) => Matcher::Text(w.clone()),
            Expr::Regex(re) => query::compile_regex(re).map_or(Matcher::Not(Box::new(Matcher::All)), Matcher::Regex),
            Expr::Field(Field::Level, v) => Matcher::Level(v.clone()),
            Expr::Field(Field::Gateway, v) => Matcher::Gateway(v.clone()),
            Expr::Field(Field::Instance, v) => Matcher::Instance(v.clone()),
            Expr::Field(Field::Route, v) => Matcher::Route(v.clone()),
            Expr::Status(Status::Code(c)) => Matcher::Code(*c),
            Expr::Status(Status::Class(c)) => Matcher::Class(u16::from(*c)),
            Expr::Since(b) => Matcher::Since(b.resolve(now_ms)),
            Expr::Until(b) => Matcher::Until(b.resolve(now_ms)),
            Expr::Not(inner) => Matcher::Not(Box::new(Matcher::new(inner, now_ms))),
            Expr::And(items) => Matcher::And(all(items)),
            Expr::Or(items) => Matcher::Or(all(items)),
        }
    }

    /// Whether line `r` matches.
    pub fn matches(&self, r: &LogRecord) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Text(w) => contains_ci(&r.message, w),
            Matcher::Regex(re) => re.is_match(&r.message),
            Matcher::Level(v) => r.level.as_str() == v,
            Matcher::Gateway(v) => &*r.gateway == v,
            Matcher::Instance(v) => &*r.instance == v,
            Matcher::Route(v) => &*r.route == v,
            Matcher::Code(c) => r.status == *c,
            Matcher::Class(c) => r.status / 100 == *c,
            Matcher::Since(t) => r.ts_ms >= *t,
            Matcher::Until(t) => r.ts_ms <= *t,
            Matcher::Not(inner) => !inner.matches(r),
            Matcher::And(items) => items.iter().all(|i| i.matches(r)),
            Matcher::Or(items) => items.iter().any(|i| i.matches(r)),
        }
    }

    /// Byte ranges of `message` that the query's (non-negated) words, phrases and
    /// regexes match, sorted and merged.
    pub fn highlights(&self, message: &str) -> Vec<(usize, usize)> {
        fn collect(m: &Matcher, message: &str, out: &mut Vec<(usize, usize)>) {
            match m {
                Matcher::Text(w) if !w.is_empty() => {
                    let mut from = 0;
                    while let Some(at) = find_ci(message, w, from) {
                        out.push((at, at + w.len()));
                        from = at + w.len();
                    }
                }
                Matcher::Regex(re) => {
                    out.extend(re.find_iter(message).filter(|m| !m.is_empty()).map(|m| (m.start(), m.end())))
                }
                Matcher::And(items) | Matcher::Or(items) => items.iter().for_each(|i| collect(i, message, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        collect(self, message, &mut out);
        out.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(out.len());
        for (s, t) in out {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(t),
                _ => merged.push((s, t)),
            }
        }
        merged
    }
}

/// A `since`/`until` request parameter in the query language's time syntax.
pub fn time_param(v: &str) -> Option<TimeBound> {
    match query::parse(&format!("since:{v}")) {
        Ok(Expr::Since(b)) => Some(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
