//! Any input either parses to a query whose canonical text parses back to the same
//! query, or fails with an error positioned inside the input. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/logs/query.rs"]
mod query;

fn check(text: &str) {
    match query::parse(text) {
        Ok(expr) => {
            let canonical = expr.to_string();
            // Canonical text can be longer ("a b" prints as "a AND b"); past the length
            // bound it is refused, which is not a round-trip failure.
            if canonical.len() <= query::MAX_QUERY_BYTES {
                assert_eq!(query::parse(&canonical).as_ref(), Ok(&expr), "{text:?} printed as {canonical:?}");
            }
        }
        Err(e) => assert!(e.position <= text.chars().count(), "{text:?}: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    // The same input nested past the depth bound and repeated past the length bound:
    // refused with an error, never a stack overflow.
    for open in ["(", "-", "NOT "] {
        check(&format!("{}{text}", open.repeat(query::MAX_DEPTH + 1)));
        check(&format!("{}{text}{}", open.repeat(10_000), ")".repeat(10_000)));
    }
    if !text.is_empty() {
        check(&text.repeat(query::MAX_QUERY_BYTES / text.len() + 1));
    }
});
