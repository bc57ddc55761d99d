//! How the store keeps lines so that search is fast at ten million of them.
//!
//! Lines are kept in segments of [`SEGMENT_LINES`], column by column: timestamps, level,
//! status, gateway / instance / route (as ids into the segment's own small name lists),
//! and the messages back to back in one byte buffer, each followed by `\n`. Beside each
//! segment sits a filter of the 4-byte sequences (4-grams, ASCII case folded) its text
//! holds: one bit per hashed 4-gram, folded in half when the segment is sealed for as
//! long as at most a quarter of the bits are set. Databend's NGRAM index and Code Search's
//! trigram index use the same idea.
//!
//! A query runs in three steps:
//! 1. whole segments are skipped when their time span, levels, status codes, names or
//!    4-gram filter show that no line in them can match;
//! 2. in the others, field filters compare columns, and words, phrases and regexes are
//!    searched in the segment's whole buffer at once (the way ripgrep searches a file),
//!    each match mapped to its line, the search resuming at the next line;
//! 3. the matching lines of every segment are counted into the total and the histogram,
//!    and the newest `limit` below the cursor are turned back into records.
//!
//! Segments are searched on every core. Why this and not tantivy or SQLite FTS5 is in
//! BENCHMARKS.md: both tokenize, so neither answers the substring, case-insensitive
//! matches of `grep -i` without an n-gram index several times the size of the text.

use super::query::Level;
use super::{LogRecord, Matcher};
use std::collections::HashMap;
use std::sync::Arc;

/// Lines in a segment.
pub const SEGMENT_LINES: usize = 4096;
/// Filter size of the segment being filled: 2^19 bits (64 KiB).
const FILTER_BITS: u32 = 19;
/// The smallest a sealed segment's filter is folded to: 2^10 bits.
const FILTER_BITS_MIN: u32 = 10;
/// Bytes a line costs besides its message: columns, separator, a share of the filter.
pub const LINE_OVERHEAD: usize = 40;

/// A set of lines of one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Bits(Vec<u64>);

impl Bits {
    fn empty(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn range(n: usize, from: usize, to: usize) -> Self {
        let mut b = Bits::empty(n);
        for i in from..to {
            b.set(i);
        }
        b
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// How many lines.
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn and_not(&mut self, other: &Bits) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a &= !b);
    }

    fn or(&mut self, other: &Bits) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The lines, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(w, &word)| (0..64).filter(move |b| word & (1 << b) != 0).map(move |b| w * 64 + b))
    }

    /// Keeps the lines for which `f` holds.
    fn retain(&mut self, mut f: impl FnMut(usize) -> bool) {
        for w in 0..self.0.len() {
            let mut word = self.0[w];
            while word != 0 {
                let b = word.trailing_zeros() as usize;
                word &= word - 1;
                if !f(w * 64 + b) {
                    self.0[w] &= !(1 << b);
                }
            }
        }
    }
}

/// The names one segment uses, by id.
#[derive(Clone, Default)]
struct Names {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u16>,
}

impl Names {
    fn intern(&mut self, s: &Arc<str>) -> u16 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u16;
        self.names.push(s.clone());
        self.ids.insert(s.clone(), id);
        id
    }

    fn id(&self, s: &str) -> Option<u16> {
        self.ids.get(s).copied()
    }
}

fn fold_ascii(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

/// Where 4-gram `g` sets its bit, before reducing to the filter's size.
fn slot(g: u32) -> u64 {
    (u64::from(g).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32
}

/// The 4-grams of `s` (ASCII case folded).
fn grams(s: &[u8]) -> Vec<u32> {
    let mut out: Vec<u32> =
        s.windows(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]].map(fold_ascii))).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Lines of one segment, column by column.
#[derive(Clone)]
pub struct Segment {
    ts: Vec<i64>,
    level: Vec<u8>,
    status: Vec<u16>,
    gateway: Vec<u16>,
    instance: Vec<u16>,
    route: Vec<u16>,
    gateways: Names,
    instances: Names,
    routes: Names,
    /// Messages, each followed by `\n`.
    text: Vec<u8>,
    /// Where each message ends in `text` (its separator's offset).
    ends: Vec<u32>,
    min_ts: i64,
    max_ts: i64,
    /// Bit `l` set when a line of level `l` is here.
    levels: u8,
    /// Bit `code` set when a line with that status is here (0 to 639).
    codes: [u64; 10],
    filter: Vec<u64>,
    filter_bits: u32,
}

fn level_code(l: Level) -> u8 {
    match l {
        Level::Error => 0,
        Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => 3,
    }
}

const LEVELS: [Level; 4] = [Level::Error, Level::Warn, Level::Info, Level::Debug];

impl Default for Segment {
    fn default() -> Self {
        Self::new()
    }
}

impl Segment {
    /// An empty segment to fill.
    pub fn new() -> Self {
        Segment {
            ts: Vec::with_capacity(SEGMENT_LINES),
            level: Vec::with_capacity(SEGMENT_LINES),
            status: Vec::with_capacity(SEGMENT_LINES),
            gateway: Vec::with_capacity(SEGMENT_LINES),
            instance: Vec::with_capacity(SEGMENT_LINES),
            route: Vec::with_capacity(SEGMENT_LINES),
            gateways: Names::default(),
            instances: Names::default(),
            routes: Names::default(),
            text: Vec::new(),
            ends: Vec::with_capacity(SEGMENT_LINES),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            levels: 0,
            codes: [0; 10],
            filter: vec![0; 1 << (FILTER_BITS - 6)],
            filter_bits: FILTER_BITS,
        }
    }

    /// Lines held (dropped ones included).
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Whether it holds as many lines as a segment may.
    pub fn is_full(&self) -> bool {
        self.len() >= SEGMENT_LINES
    }

    /// Timestamp of line `i`.
    pub fn ts(&self, i: usize) -> i64 {
        self.ts[i]
    }

    /// Bytes of the filter.
    pub fn filter_bytes(&self) -> usize {
        self.filter.len() * 8
    }

    /// Bytes of the columns and the text.
    pub fn data_bytes(&self) -> usize {
        self.ts.len() * (8 + 1 + 2 + 2 + 2 + 2 + 4) + self.text.len()
    }

    /// Appends a line.
    pub fn push(&mut self, r: &LogRecord) {
        self.ts.push(r.ts_ms);
        self.min_ts = self.min_ts.min(r.ts_ms);
        self.max_ts = self.max_ts.max(r.ts_ms);
        let l = level_code(r.level);
        self.level.push(l);
        self.levels |= 1 << l;
        self.status.push(r.status);
        if let Some(w) = self.codes.get_mut(usize::from(r.status / 64)) {
            *w |= 1 << (r.status % 64);
        }
        let g = self.gateways.intern(&r.gateway);
        self.gateway.push(g);
        let i = self.instances.intern(&r.instance);
        self.instance.push(i);
        let rt = self.routes.intern(&r.route);
        self.route.push(rt);
        let mask = (1u64 << self.filter_bits) - 1;
        let mut window = 0u32;
        for (n, &b) in r.message.as_bytes().iter().enumerate() {
            window = (window >> 8) | (u32::from(fold_ascii(b)) << 24);
            if n >= 3 {
                let bit = slot(window) & mask;
                self.filter[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        self.text.extend_from_slice(r.message.as_bytes());
        self.ends.push(self.text.len() as u32);
        self.text.push(b'\n');
    }

    /// Shrinks what it holds to fit, folding the filter while a quarter or less of it is set.
    pub fn seal(&mut self) {
        while self.filter_bits > FILTER_BITS_MIN {
            let half = self.filter.len() / 2;
            let folded: Vec<u64> = (0..half).map(|i| self.filter[i] | self.filter[i + half]).collect();
            let ones: u32 = folded.iter().map(|w| w.count_ones()).sum();
            if u64::from(ones) * 4 > (half as u64) * 64 {
                break;
            }
            self.filter = folded;
            self.filter_bits -= 1;
        }
        self.text.shrink_to_fit();
    }

    fn has_gram(&self, g: u32) -> bool {
        let bit = slot(g) & ((1u64 << self.filter_bits) - 1);
        self.filter[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] as usize + 1 }
    }

    /// Bytes of line `i`'s message.
    pub fn message_len(&self, i: usize) -> usize {
        self.ends[i] as usize - self.start(i)
    }

    fn message(&self, i: usize) -> &[u8] {
        &self.text[self.start(i)..self.ends[i] as usize]
    }

    /// Line `i` as a record.
    pub fn record(&self, i: usize) -> LogRecord {
        LogRecord {
            ts_ms: self.ts[i],
            gateway: self.gateways.names[usize::from(self.gateway[i])].clone(),
            instance: self.instances.names[usize::from(self.instance[i])].clone(),
            level: LEVELS[usize::from(self.level[i])],
            route: self.routes.names[usize::from(self.route[i])].clone(),
            status: self.status[i],
            message: String::from_utf8_lossy(self.message(i)).into_owned(),
        }
    }

    /// The lines of `plan` among `alive` (lines `alive` leaves out are never returned).
    pub fn eval(&self, plan: &Plan, alive: &Bits) -> Bits {
        let mut out = alive.clone();
        match plan {
            Plan::All => {}
            Plan::Nothing => out = Bits::empty(self.len()),
            Plan::Level(l) => out.retain(|i| self.level[i] == *l),
            Plan::Code(c) => out.retain(|i| self.status[i] == *c),
            Plan::Class(c) => out.retain(|i| self.status[i] / 100 == *c),
            Plan::Since(t) => out.retain(|i| self.ts[i] >= *t),
            Plan::Until(t) => out.retain(|i| self.ts[i] <= *t),
            Plan::Gateway(v) => match self.gateways.id(v) {
                Some(id) => out.retain(|i| self.gateway[i] == id),
                None => out = Bits::empty(self.len()),
            },
            Plan::Instance(v) => match self.instances.id(v) {
                Some(id) => out.retain(|i| self.instance[i] == id),
                None => out = Bits::empty(self.len()),
            },
            Plan::Route(v) => match self.routes.id(v) {
                Some(id) => out.retain(|i| self.route[i] == id),
                None => out = Bits::empty(self.len()),
            },
            Plan::Text(t) => out = self.search(t, alive),
            Plan::Not(inner) => out.and_not(&self.eval(inner, alive)),
            Plan::And(items) => {
                for p in items {
                    if out.is_empty() {
                        break;
                    }
                    out = self.eval(p, &out);
                }
            }
            Plan::Or(items) => {
                let mut rest = alive.clone();
                out = Bits::empty(self.len());
                for p in items {
                    if rest.is_empty() {
                        break;
                    }
                    let found = self.eval(p, &rest);
                    rest.and_not(&found);
                    out.or(&found);
                }
            }
        }
        out
    }

    /// The lines among `alive` whose message `t` matches.
    fn search(&self, t: &TextPlan, alive: &Bits) -> Bits {
        let n = alive.count();
        if n == 0 {
            return alive.clone();
        }
        let mut out = Bits::empty(self.len());
        // A few lines: test each. Many: search the buffer (as grep does a file).
        if t.per_line || n * 16 < self.len() {
            for i in alive.iter() {
                if t.re.is_match(self.message(i)) {
                    out.set(i);
                }
            }
            return out;
        }
        let first = alive.iter().next().unwrap_or(0);
        let last = alive.iter().next_back().unwrap_or(0);
        let hay = &self.text[..self.ends[last] as usize + 1];
        let mut pos = self.start(first);
        while let Some(m) = t.re.find_at(hay, pos) {
            let line = self.ends.partition_point(|&e| (e as usize) < m.start());
            if line > last {
                break;
            }
            // A match inside the message is a match of the message; one that runs over
            // its end is checked against the message alone.
            if alive.get(line) && (m.end() <= self.ends[line] as usize || t.re.is_match(self.message(line))) {
                out.set(line);
            }
            pos = self.ends[line] as usize + 1;
        }
        out
    }

    /// Whether any line here may match `plan` (false only when none can).
    pub fn may_match(&self, plan: &Plan) -> bool {
        match plan {
            Plan::All | Plan::Not(_) => true,
            Plan::Nothing => false,
            Plan::Level(l) => self.levels & (1 << l) != 0,
            Plan::Code(c) => self.codes.get(usize::from(c / 64)).is_some_and(|w| w & (1 << (c % 64)) != 0),
            Plan::Class(c) => (c * 100..c * 100 + 100)
                .any(|code| self.codes.get(usize::from(code / 64)).is_some_and(|w| w & (1 << (code % 64)) != 0)),
            Plan::Since(t) => self.max_ts >= *t,
            Plan::Until(t) => self.min_ts <= *t,
            Plan::Gateway(v) => self.gateways.id(v).is_some(),
            Plan::Instance(v) => self.instances.id(v).is_some(),
            Plan::Route(v) => self.routes.id(v).is_some(),
            Plan::Text(t) => match &t.required {
                None => true,
                Some(alternatives) => alternatives.iter().any(|grams| grams.iter().all(|&g| self.has_gram(g))),
            },
            Plan::And(items) => items.iter().all(|p| self.may_match(p)),
            Plan::Or(items) => items.iter().any(|p| self.may_match(p)),
        }
    }
}

/// A word, phrase or regex ready to search segment buffers.
#[derive(Debug)]
pub struct TextPlan {
    re: regex::bytes::Regex,
    /// Test line by line (the pattern has anchors, which mean other things in a buffer).
    per_line: bool,
    /// A line matches only if it holds every 4-gram of one of these (None: no such set known).
    required: Option<Vec<Vec<u32>>>,
}

/// A query as segments run it.
#[derive(Debug)]
pub enum Plan {
    /// Every line.
    All,
    /// No line.
    Nothing,
    /// Level by code.
    Level(u8),
    /// A status code.
    Code(u16),
    /// A status class.
    Class(u16),
    /// At or after (ms).
    Since(i64),
    /// At or before (ms).
    Until(i64),
    /// A gateway id.
    Gateway(String),
    /// An instance.
    Instance(String),
    /// A route.
    Route(String),
    /// Message text.
    Text(TextPlan),
    /// Negation.
    Not(Box<Plan>),
    /// All of these, cheapest first.
    And(Vec<Plan>),
    /// Any of these.
    Or(Vec<Plan>),
}

impl Plan {
    /// `m` as segments run it.
    pub fn new(m: &Matcher) -> Plan {
        match m {
            Matcher::All => Plan::All,
            Matcher::Text(w) if w.is_empty() => Plan::All,
            Matcher::Text(w) => {
                // Byte by byte: ASCII letters fold case, everything else matches itself,
                // exactly as the reference matcher compares.
                let pattern: String = w
                    .bytes()
                    .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("\\x{b:02x}") })
                    .collect();
                let re = regex::bytes::RegexBuilder::new(&pattern)
                    .case_insensitive(true)
                    .unicode(false)
                    .build()
                    .expect("an escaped literal is a valid pattern");
                let g = grams(w.as_bytes());
                Plan::Text(TextPlan { re, per_line: false, required: (!g.is_empty()).then(|| vec![g]) })
            }
            Matcher::Regex(re) => match super::query::compile_bytes_regex(re.as_str()) {
                Ok(bytes) => Plan::Text(TextPlan {
                    re: bytes,
                    per_line: has_anchors(re.as_str()),
                    required: required_literals(re.as_str()),
                }),
                Err(_) => Plan::Nothing,
            },
            Matcher::Level(v) => match LEVELS.iter().find(|l| l.as_str() == v) {
                Some(l) => Plan::Level(level_code(*l)),
                None => Plan::Nothing,
            },
            Matcher::Gateway(v) => Plan::Gateway(v.clone()),
            Matcher::Instance(v) => Plan::Instance(v.clone()),
            Matcher::Route(v) => Plan::Route(v.clone()),
            Matcher::Code(c) => Plan::Code(*c),
            Matcher::Class(c) => Plan::Class(*c),
            Matcher::Since(t) => Plan::Since(*t),
            Matcher::Until(t) => Plan::Until(*t),
            Matcher::Not(inner) => Plan::Not(Box::new(Plan::new(inner))),
            Matcher::And(items) => {
                let mut plans: Vec<Plan> = items.iter().map(Plan::new).collect();
                plans.sort_by_key(Plan::cost);
                Plan::And(plans)
            }
            Matcher::Or(items) => Plan::Or(items.iter().map(Plan::new).collect()),
        }
    }

    /// Rough cost per line, to run column filters before text searches.
    fn cost(&self) -> u32 {
        match self {
            Plan::All | Plan::Nothing => 0,
            Plan::Text(_) => 10,
            Plan::Not(p) => p.cost(),
            Plan::And(items) | Plan::Or(items) => items.iter().map(Plan::cost).sum(),
            _ => 1,
        }
    }

    /// This plan, and also within `[since, until]`.
    pub fn within(self, since: Option<i64>, until: Option<i64>) -> Plan {
        let mut all = vec![self];
        all.extend(since.map(Plan::Since));
        all.extend(until.map(Plan::Until));
        if all.len() == 1 {
            return all.pop().unwrap_or(Plan::All);
        }
        all.sort_by_key(Plan::cost);
        Plan::And(all)
    }
}

/// Whether a regex has anchors (`^`, `$`, `\A`, `\z`): they mean other things when the
/// pattern runs over many messages at once. (`[^…]` is counted too; it only costs speed.)
fn has_anchors(re: &str) -> bool {
    re.contains('^') || re.contains('$') || re.contains("\\A") || re.contains("\\z")
}

/// Sets of 4-grams one of which every line that `re` matches holds: those of the
/// literals each match must begin with, when there are few enough of them.
fn required_literals(re: &str) -> Option<Vec<Vec<u32>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::Parser::new().parse(re).ok()?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() {
        return None;
    }
    let mut alternatives: Vec<Vec<u32>> = literals.iter().map(|l| grams(l.as_bytes())).collect();
    if alternatives.iter().any(Vec::is_empty) {
        // A literal shorter than four bytes rules nothing out.
        return None;
    }
    alternatives.sort();
    alternatives.dedup();
    Some(alternatives)
}

/// One segment's part of an answer.
pub struct Found {
    /// Index of the segment in the snapshot.
    pub segment: usize,
    /// Its matching lines.
    pub lines: Bits,
}

/// Runs `plan` over `segments` (skipping the first `skip` lines of the first), on every
/// core when there is enough to do.
pub fn run(segments: &[Arc<Segment>], skip: usize, plan: &Plan) -> Vec<Found> {
    let candidates: Vec<usize> = (0..segments.len()).filter(|&i| segments[i].may_match(plan)).collect();
    let eval = |i: usize| {
        let s = &segments[i];
        let alive = Bits::range(s.len(), if i == 0 { skip.min(s.len()) } else { 0 }, s.len());
        Found { segment: i, lines: s.eval(plan, &alive) }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut found: Vec<Found> = if threads < 2 || candidates.len() < 4 {
        candidates.iter().map(|&i| eval(i)).collect()
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let candidates = &candidates;
                    let eval = &eval;
                    scope
                        .spawn(move || candidates.iter().skip(t).step_by(threads).map(|&i| eval(i)).collect::<Vec<_>>())
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        })
    };
    found.retain(|f| !f.lines.is_empty());
    found.sort_by_key(|f| f.segment);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_holds_every_4_gram_of_the_text_in_any_case_and_rules_out_most_others() {
        let mut s = Segment::new();
        for i in 0..SEGMENT_LINES {
            let message = format!("10.0.{}.{} \"GET /api/orders HTTP/1.1\" 200 req={:016x}", i % 256, i % 97, i * 7919);
            s.push(&LogRecord {
                ts_ms: i as i64,
                gateway: "edge".into(),
                instance: "edge-a".into(),
                level: Level::Info,
                route: "/api/orders".into(),
                status: 200,
                message,
            });
        }
        s.seal();
        assert!(s.filter_bits < FILTER_BITS, "folded: {}", s.filter_bits);
        for w in ["/API/ORDERS", "get /api", &format!("{:016x}", 4000 * 7919)] {
            assert!(grams(w.as_bytes()).iter().all(|&g| s.has_gram(g)), "{w}");
        }
        let absent = ["connection refused", "upstream timed out", "panic: runtime", "segmentation"];
        let kept = absent.iter().filter(|w| grams(w.as_bytes()).iter().all(|&g| s.has_gram(g))).count();
        assert_eq!(kept, 0, "words that are not there rule the segment out");
    }

    #[test]
    fn regex_literals_are_extracted_when_every_match_must_begin_with_one() {
        assert_eq!(required_literals("timed out|refused").map(|a| a.len()), Some(2));
        assert_eq!(required_literals(r"\d+ms"), None, "no literal prefix");
        assert_eq!(required_literals("a+"), None, "too short to rule anything out");
        assert!(has_anchors("^GET") && has_anchors(r"x\z") && !has_anchors(r"\bx\b"));
    }
}
