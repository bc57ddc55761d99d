//! The query language: parsing, errors, bounds, and printing back.

use super::*;
use crate::rng::SplitMix64;

#[test]
fn deep_nesting_is_refused_at_the_level_that_crosses_the_bound_without_recursing_further() {
    // 100,000 levels would overflow the stack of a worker thread if parsed recursively.
    for open in ["(", "-", "NOT "] {
        let deep = format!("{}x", open.repeat(100_000));
        let deep = &deep[..deep.len().min(2000)];
        let e = parse(deep).unwrap_err();
        assert!(e.expected.contains("at most 32 levels"), "{open}: {e}");
        assert_eq!(e.position, open.chars().count() * MAX_DEPTH, "{open}: where level 33 opens");
    }
    let at_bound = format!("{}x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(parse(&at_bound).unwrap(), term("x"));
    let nots = format!("{}x", "NOT ".repeat(MAX_DEPTH));
    assert!(parse(&nots).is_ok());
}

#[test]
fn long_queries_and_many_or_large_regexes_are_refused_naming_the_bound() {
    let long = "a ".repeat(MAX_QUERY_BYTES);
    let e = parse(&long).unwrap_err();
    assert!(e.expected.contains("at most 2048 bytes") && e.found == "4096 bytes", "{e}");
    assert_eq!(e.position, MAX_QUERY_BYTES);
    assert!(parse(&"a".repeat(MAX_QUERY_BYTES)).is_ok());

    let nine = (0..9).map(|i| format!("/r{i}/")).collect::<Vec<_>>().join(" ");
    let e = parse(&nine).unwrap_err();
    assert!(e.expected.contains("at most 8 regular expressions"), "{e}");
    assert!(parse(&(0..8).map(|i| format!("/r{i}/")).collect::<Vec<_>>().join(" ")).is_ok());

    // Small text, huge program: a counted repetition of a Unicode class.
    let e = parse(r"/\w{500}\w{500}/").unwrap_err();
    assert!(e.found.contains("size limit"), "{e}");
}

fn term(s: &str) -> Expr {
    Expr::Term(s.into())
}

#[test]
fn words_phrases_fields_and_booleans_parse_as_written() {
    assert_eq!(parse("").unwrap(), Expr::All);
    assert_eq!(parse("  ").unwrap(), Expr::All);
    assert_eq!(parse("timeout").unwrap(), term("timeout"));
    assert_eq!(parse("upstream timeout").unwrap(), Expr::And(vec![term("upstream"), term("timeout")]));
    assert_eq!(
        parse(r#"level:error AND ("connection refused" OR /time(d )?out/) -status:4xx"#).unwrap(),
        Expr::And(vec![
            Expr::Field(Field::Level, "error".into()),
            Expr::Or(vec![Expr::Phrase("connection refused".into()), Expr::Regex("time(d )?out".into())]),
            Expr::Not(Box::new(Expr::Status(Status::Class(4)))),
        ])
    );
    assert_eq!(
        parse("a OR b c").unwrap(),
        Expr::Or(vec![term("a"), Expr::And(vec![term("b"), term("c")])]),
        "AND binds tighter than OR"
    );
    assert_eq!(parse("NOT NOT x").unwrap(), Expr::Not(Box::new(Expr::Not(Box::new(term("x"))))));
    assert_eq!(parse("status:503").unwrap(), Expr::Status(Status::Code(503)));
    assert_eq!(parse("route:/api/payments").unwrap(), Expr::Field(Field::Route, "/api/payments".into()));
    assert_eq!(parse(r#"gateway:"public edge""#).unwrap(), Expr::Field(Field::Gateway, "public edge".into()));
    assert_eq!(parse("level:WARNING").unwrap(), Expr::Field(Field::Level, "warn".into()));
    assert_eq!(parse("and or not").unwrap(), Expr::And(vec![term("and"), term("or"), term("not")]));
    assert_eq!(parse(r#""say \"hi\"""#).unwrap(), Expr::Phrase(r#"say "hi""#.into()));
    assert_eq!(parse(r"/a\/b\d/").unwrap(), Expr::Regex(r"a/b\d".into()));
}

#[test]
fn time_ranges_take_times_and_ages() {
    assert_eq!(parse("since:15m").unwrap(), Expr::Since(TimeBound::Ago(900)));
    assert_eq!(parse("until:now").unwrap(), Expr::Until(TimeBound::Ago(0)));
    assert_eq!(parse("since:2026-11-24T06:00:00Z").unwrap(), Expr::Since(TimeBound::At(1_795_500_000_000)));
    assert_eq!(parse("until:1795500000000").unwrap(), Expr::Until(TimeBound::At(1_795_500_000_000)));
    assert_eq!(TimeBound::Ago(60).resolve(1_000_000), 940_000);
}

fn error(q: &str) -> (usize, String) {
    let e = parse(q).unwrap_err();
    (e.position, e.to_string())
}

#[test]
fn syntax_errors_say_where_and_what_was_expected() {
    let (at, msg) = error("level:error AND (timeout");
    assert_eq!(at, 24);
    assert!(msg.contains("expected ')'") && msg.contains("end of the query"), "{msg}");
    assert_eq!(error("a OR").0, 4);
    assert_eq!(error("(a) )").0, 4);
    assert!(error("(a) )").1.contains("')' without '('"));
    let (at, msg) = error("foo:bar");
    assert_eq!(at, 0);
    assert!(msg.contains("a field (level, gateway"), "{msg}");
    let (at, msg) = error("level:loud");
    assert_eq!(at, 6);
    assert!(msg.contains("a level (error, warn, info, debug)") && msg.contains("'loud'"), "{msg}");
    assert_eq!(error("status:600").0, 7);
    assert_eq!(error("since:yesterday").0, 6);
    let (at, msg) = error(r#"x "unclosed"#);
    assert_eq!(at, 11);
    assert!(msg.contains("closing '\"'"), "{msg}");
    let (at, msg) = error("ok /a(b/");
    assert_eq!(at, 3);
    assert!(msg.contains("a valid regular expression"), "{msg}");
    assert_eq!(error("gateway:").0, 8);
    assert_eq!(error("AND x").0, 0);
    assert_eq!(error("é é é (").0, 7, "positions count characters, not bytes");
}

/// Any text: a query or an error inside the text, never a panic.
#[test]
fn arbitrary_text_parses_or_fails_with_a_position_inside_it() {
    const PIECES: &[&str] = &[
        "a", "Ω", " ", "(", ")", "\"", "\\", "/", "-", ":", "AND", "OR", "NOT", "level:", "status:", "5xx", "since:",
        "15m", "route:", "*", "[", "{", "é", "\t",
    ];
    let mut rng = SplitMix64::new(1);
    for _ in 0..20_000 {
        let n = rng.below(12) as usize;
        let q: String = (0..n).map(|_| PIECES[rng.below(PIECES.len() as u64) as usize]).collect();
        if let Err(e) = parse(&q) {
            assert!(e.position <= q.chars().count(), "{q:?}: {e}");
        }
    }
}

fn gen_word(rng: &mut SplitMix64) -> String {
    const W: &[&str] = &["timeout", "502", "upstream", "é-x", "a.b", "refused", "and", "x_y", "GET"];
    W[rng.below(W.len() as u64) as usize].to_string()
}

/// A random query over the words the index tests' corpus uses.
pub(crate) fn arbitrary(rng: &mut SplitMix64, depth: u32) -> Expr {
    let leaf = depth == 0 || rng.below(3) == 0;
    if leaf {
        match rng.below(9) {
            0 => Expr::Term(gen_word(rng)),
            1 => Expr::Phrase(
                ["connection refused", "say \"hi\"", "back\\slash", "", "a:b (c)"][rng.below(5) as usize].into(),
            ),
            2 => Expr::Regex([r"time(d )?out", r"a/b", r"\d{3}", r"x\\y"][rng.below(4) as usize].into()),
            3 => Expr::Field(Field::Gateway, ["public-edge", "a b", "x:y"][rng.below(3) as usize].into()),
            4 => Expr::Field(Field::Level, Level::Warn.as_str().into()),
            5 => Expr::Status(if rng.below(2) == 0 { Status::Code(503) } else { Status::Class(5) }),
            6 => Expr::Since(TimeBound::Ago(rng.below(100_000) as i64)),
            7 => Expr::Until(TimeBound::At(1_795_500_000_000 + rng.below(1000) as i64)),
            _ => Expr::Field(Field::Route, "/api/payments".into()),
        }
    } else {
        match rng.below(3) {
            0 => Expr::Not(Box::new(arbitrary(rng, depth - 1))),
            k => {
                let items = (0..2 + rng.below(3)).map(|_| arbitrary(rng, depth - 1)).collect();
                if k == 1 { Expr::And(items) } else { Expr::Or(items) }
            }
        }
    }
}

/// Whether `e`'s canonical text is within the length and regex bounds.
pub(crate) fn within_bounds(e: &Expr) -> bool {
    fn regexes(e: &Expr) -> usize {
        match e {
            Expr::Regex(_) => 1,
            Expr::Not(e) => regexes(e),
            Expr::And(items) | Expr::Or(items) => items.iter().map(regexes).sum(),
            _ => 0,
        }
    }
    e.to_string().len() <= MAX_QUERY_BYTES && regexes(e) <= MAX_REGEXES
}

/// The canonical text of any query parses back to the same query.
#[test]
fn printing_a_query_and_parsing_it_back_gives_the_same_query() {
    let mut rng = SplitMix64::new(7);
    let mut refused = 0;
    for _ in 0..5_000 {
        let e = arbitrary(&mut rng, 4);
        let text = e.to_string();
        if within_bounds(&e) {
            assert_eq!(parse(&text).as_ref(), Ok(&e), "{text}");
        } else {
            let err = parse(&text).unwrap_err();
            assert!(err.expected.starts_with("at most") || err.expected.starts_with("a query of at most"), "{err}");
            refused += 1;
        }
    }
    assert!(refused < 500, "most generated queries are within the bounds: {refused} refused");
}
