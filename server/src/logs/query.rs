//! The log search query language.
//!
//! ```text
//! query   = or?
//! or      = and ("OR" and)*
//! and     = unary (["AND"] unary)*          juxtaposition means AND
//! unary   = ("NOT" | "-") unary | primary
//! primary = "(" or ")" | FIELD ":" value | PHRASE | REGEX | WORD
//! FIELD   = level | gateway | instance | route | status | since | until
//! value   = WORD | PHRASE
//! PHRASE  = '"' ( [^"\\] | '\' any )* '"'
//! REGEX   = '/' ( [^/\\] | '\' any )* '/'
//! WORD    = a run of characters other than space, ( ) " and, at its start, / and -
//! ```
//!
//! `status:` takes a code (`503`) or a class (`5xx`); `level:` one of error, warn, info,
//! debug; `since:`/`until:` an RFC 3339 time, Unix milliseconds, `now`, or an age such
//! as `15m`, `2h`, `7d`. Keywords are upper case; `and` is an ordinary word. A syntax
//! error says where (a character offset) and what was expected.
//!
//! Every query is bounded before it can cost anything: at most [`MAX_QUERY_BYTES`] long,
//! [`MAX_DEPTH`] levels of parentheses and NOT deep (the parser recurses), and
//! [`MAX_REGEXES`] regular expressions of at most [`REGEX_SIZE_LIMIT`] compiled bytes
//! each. Past a bound the error names it and where it was crossed.

use std::fmt;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 2048;
/// Deepest nesting of parentheses and NOT (or `-`) accepted.
pub const MAX_DEPTH: usize = 32;
/// Most regular expressions in one query.
pub const MAX_REGEXES: usize = 8;
/// Largest compiled program of one regular expression (the regex crate's size limit).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Compiles a query's regular expression within [`REGEX_SIZE_LIMIT`].
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(2 * REGEX_SIZE_LIMIT).build()
}

/// The same, over bytes (the index searches whole buffers).
pub fn compile_bytes_regex(pattern: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(2 * REGEX_SIZE_LIMIT).build()
}

/// A field filter's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `level:`
    Level,
    /// `gateway:`
    Gateway,
    /// `instance:`
    Instance,
    /// `route:`
    Route,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Level => "level",
            Field::Gateway => "gateway",
            Field::Instance => "instance",
            Field::Route => "route",
        }
    }
}

/// Log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Information.
    Info,
    /// Debugging.
    Debug,
}

impl Level {
    /// Parses a level name (any case).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// `status:` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// One code.
    Code(u16),
    /// A class: `5` for 5xx.
    Class(u8),
}

/// A point in time for `since:`/`until:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    /// Unix milliseconds.
    At(i64),
    /// This many seconds before the query runs (`0` is now).
    Ago(i64),
}

impl TimeBound {
    /// The time in Unix milliseconds, given the time the query runs.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeBound::At(ms) => ms,
            TimeBound::Ago(s) => now_ms - s * 1000,
        }
    }
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Matches every line (the empty query).
    All,
    /// A word, matched case-insensitively.
    Term(String),
    /// An exact phrase, matched case-insensitively.
    Phrase(String),
    /// A regular expression over the message (already checked to compile).
    Regex(String),
    /// `level:`, `gateway:`, `instance:` or `route:` with its value.
    Field(Field, String),
    /// `status:`
    Status(Status),
    /// `since:`
    Since(TimeBound),
    /// `until:`
    Until(TimeBound),
    /// Negation.
    Not(Box<Expr>),
    /// All of these (two or more).
    And(Vec<Expr>),
    /// Any of these (two or more).
    Or(Vec<Expr>),
}

/// Why a query does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Offset (in characters) where the problem is.
    pub position: usize,
    /// What the parser expected there.
    pub expected: String,
    /// What it found.
    pub found: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: expected {}, found {}", self.position, self.expected, self.found)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Minus,
    Word(String),
    Phrase(String),
    Regex(String),
}

fn describe(t: Option<&(usize, Tok)>) -> String {
    match t {
        None => "the end of the query".into(),
        Some((_, Tok::LParen)) => "'('".into(),
        Some((_, Tok::RParen)) => "')'".into(),
        Some((_, Tok::And)) => "AND".into(),
        Some((_, Tok::Or)) => "OR".into(),
        Some((_, Tok::Not)) => "NOT".into(),
        Some((_, Tok::Minus)) => "'-'".into(),
        Some((_, Tok::Word(w))) => format!("'{w}'"),
        Some((_, Tok::Phrase(p))) => format!("\"{p}\""),
        Some((_, Tok::Regex(r))) => format!("/{r}/"),
    }
}

fn err(position: usize, expected: impl Into<String>, found: impl Into<String>) -> ParseError {
    ParseError { position, expected: expected.into(), found: found.into() }
}

/// Reads a delimited literal starting after its opening `delim` at `chars[i]`;
/// returns the text (escapes resolved for phrases, kept for regexes) and the index
/// after the closing delimiter.
fn delimited(chars: &[char], start: usize, delim: char, keep_escapes: bool) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                if keep_escapes && chars[i + 1] != delim {
                    out.push('\\');
                }
                out.push(chars[i + 1]);
                i += 2;
            }
            c if c == delim => return Ok((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    let what = if delim == '"' { "a closing '\"'" } else { "a closing '/'" };
    Err(err(chars.len(), what, "the end of the query"))
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut regexes = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((i, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((i, Tok::RParen));
                i += 1;
            }
            '"' => {
                let (text, next) = delimited(&chars, i, '"', false)?;
                out.push((i, Tok::Phrase(text)));
                i = next;
            }
            '/' => {
                regexes += 1;
                if regexes > MAX_REGEXES {
                    return Err(err(
                        i,
                        format!("at most {MAX_REGEXES} regular expressions in one query"),
                        format!("regular expression number {regexes}"),
                    ));
                }
                let (text, next) = delimited(&chars, i, '/', true)?;
                if let Err(e) = compile_regex(&text) {
                    let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                    return Err(err(i, "a valid regular expression", format!("/{text}/ ({first})")));
                }
                out.push((i, Tok::Regex(text)));
                i = next;
            }
            '-' => {
                out.push((i, Tok::Minus));
                i += 1;
            }
            _ => {
                let start = i;
                let mut word = String::new();
                while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | '"') {
                    // A field's value may be a phrase: `route:"/api/pay"`.
                    word.push(chars[i]);
                    i += 1;
                }
                let tok = match word.as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => Tok::Word(word),
                };
                out.push((start, tok));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    /// Parentheses and NOTs open around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.toks.get(self.pos)
    }

    fn at(&self) -> usize {
        self.peek().map_or(self.end, |(p, _)| *p)
    }

    /// One more level of nesting at `at`, refused past [`MAX_DEPTH`] (the parser recurses
    /// once per level, so this bounds its stack).
    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                at,
                format!("at most {MAX_DEPTH} levels of nesting (parentheses and NOT)"),
                format!("level {}", self.depth),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and()?];
        while let Some((_, Tok::Or)) = self.peek() {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                Some((_, Tok::And)) => {
                    self.pos += 1;
                    items.push(self.unary()?);
                }
                None | Some((_, Tok::Or | Tok::RParen)) => break,
                Some(_) => items.push(self.unary()?),
            }
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(&(at, Tok::Not | Tok::Minus)) => {
                self.enter(at)?;
                self.pos += 1;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        const WANT: &str = "a word, \"phrase\", /regex/, field:value, NOT or '('";
        let Some((at, tok)) = self.toks.get(self.pos).cloned() else {
            return Err(err(self.end, WANT, "the end of the query"));
        };
        self.pos += 1;
        match tok {
            Tok::LParen => {
                self.enter(at)?;
                let inner = self.or()?;
                match self.peek() {
                    Some((_, Tok::RParen)) => {
                        self.pos += 1;
                        self.depth -= 1;
                        Ok(inner)
                    }
                    other => Err(err(self.at(), "')'", describe(other))),
                }
            }
            Tok::Phrase(p) => Ok(Expr::Phrase(p)),
            Tok::Regex(r) => Ok(Expr::Regex(r)),
            Tok::Word(w) => self.word(at, w),
            other => Err(err(at, WANT, describe(Some(&(at, other))))),
        }
    }

    /// A word: a plain term, or `field:value` (the value may be the next token, a phrase).
    fn word(&mut self, at: usize, w: String) -> Result<Expr, ParseError> {
        let Some((name, rest)) = w.split_once(':') else { return Ok(Expr::Term(w)) };
        let value_at = at + name.chars().count() + 1;
        let value = if rest.is_empty() {
            match self.peek().cloned() {
                Some((_, Tok::Phrase(p))) => {
                    self.pos += 1;
                    p
                }
                other => return Err(err(value_at, format!("a value after '{name}:'"), describe(other.as_ref()))),
            }
        } else {
            rest.to_string()
        };
        let field = |f| Ok(Expr::Field(f, value.clone()));
        match name {
            "gateway" => field(Field::Gateway),
            "instance" => field(Field::Instance),
            "route" => field(Field::Route),
            "level" => match Level::parse(&value) {
                Some(l) => Ok(Expr::Field(Field::Level, l.as_str().into())),
                None => Err(err(value_at, "a level (error, warn, info, debug)", format!("'{value}'"))),
            },
            "status" => status(&value)
                .map(Expr::Status)
                .ok_or_else(|| err(value_at, "a status code (503) or class (5xx)", format!("'{value}'"))),
            "since" | "until" => {
                let bound = time_bound(&value).ok_or_else(|| {
                    err(value_at, "a time (RFC 3339, Unix ms, now) or an age (15m, 2h, 7d)", format!("'{value}'"))
                })?;
                Ok(if name == "since" { Expr::Since(bound) } else { Expr::Until(bound) })
            }
            other => Err(err(
                at,
                "a field (level, gateway, instance, route, status, since, until) or a \"quoted phrase\"",
                format!("'{other}:'"),
            )),
        }
    }
}

fn status(v: &str) -> Option<Status> {
    let b = v.as_bytes();
    if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
        return None;
    }
    if v[1..].eq_ignore_ascii_case("xx") {
        return Some(Status::Class(b[0] - b'0'));
    }
    v.parse().ok().map(Status::Code)
}

fn time_bound(v: &str) -> Option<TimeBound> {
    if v == "now" {
        return Some(TimeBound::Ago(0));
    }
    if let Ok(t) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Some(TimeBound::At((t.unix_timestamp_nanos() / 1_000_000) as i64));
    }
    if v.len() >= 10 && v.bytes().all(|c| c.is_ascii_digit()) {
        return v.parse().ok().map(TimeBound::At);
    }
    let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale).map(TimeBound::Ago)
}

/// Parses a query; the empty (or all-blank) query is [`Expr::All`].
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    if input.len() > MAX_QUERY_BYTES {
        let position = input.char_indices().take_while(|(byte, _)| *byte < MAX_QUERY_BYTES).count();
        return Err(err(
            position,
            format!("a query of at most {MAX_QUERY_BYTES} bytes"),
            format!("{} bytes", input.len()),
        ));
    }
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Ok(Expr::All);
    }
    let mut p = Parser { toks, pos: 0, end: input.chars().count(), depth: 0 };
    let expr = p.or()?;
    match p.peek() {
        None => Ok(expr),
        Some((at, Tok::RParen)) => Err(err(*at, "an operator or the end of the query", "')' without '('")),
        other => Err(err(p.at(), "the end of the query", describe(other))),
    }
}

fn quote(s: &str, delim: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(delim);
    for c in s.chars() {
        if c == delim || (c == '\\' && delim == '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(delim);
    out
}

/// Whether `w` reads back as the same word.
fn plain_word(w: &str) -> bool {
    !w.is_empty()
        && !w.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"' | ':'))
        && !w.starts_with(['/', '-'])
        && !matches!(w, "AND" | "OR" | "NOT")
}

impl fmt::Display for Expr {
    /// The canonical text of the query, which parses back to the same `Expr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |e: &Expr, f: &mut fmt::Formatter<'_>| match e {
            Expr::And(_) | Expr::Or(_) => write!(f, "({e})"),
            _ => write!(f, "{e}"),
        };
        match self {
            Expr::All => Ok(()),
            Expr::Term(w) if plain_word(w) => write!(f, "{w}"),
            Expr::Term(w) | Expr::Phrase(w) => write!(f, "{}", quote(w, '"')),
            Expr::Regex(r) => write!(f, "{}", quote(r, '/')),
            Expr::Field(field, v)
                if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"')) =>
            {
                write!(f, "{}:{v}", field.name())
            }
            Expr::Field(field, v) => write!(f, "{}:{}", field.name(), quote(v, '"')),
            Expr::Status(Status::Code(c)) => write!(f, "status:{c}"),
            Expr::Status(Status::Class(c)) => write!(f, "status:{c}xx"),
            Expr::Since(b) | Expr::Until(b) => {
                let name = if matches!(self, Expr::Since(_)) { "since" } else { "until" };
                match b {
                    TimeBound::At(ms) => write!(f, "{name}:{ms}"),
                    TimeBound::Ago(0) => write!(f, "{name}:now"),
                    TimeBound::Ago(s) => write!(f, "{name}:{s}s"),
                }
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                group(e, f)
            }
            Expr::And(items) | Expr::Or(items) => {
                let op = if matches!(self, Expr::And(_)) { " AND " } else { " OR " };
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    group(e, f)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
