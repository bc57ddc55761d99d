//! Any input either parses to a query whose canonical text parses back to the same
//! query, or fails with an error positioned inside the input. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/logs/query.rs"]
mod query;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match query::parse(text) {
        Ok(expr) => {
            let canonical = expr.to_string();
            assert_eq!(query::parse(&canonical).as_ref(), Ok(&expr), "{text:?} printed as {canonical:?}");
        }
        Err(e) => assert!(e.position <= text.chars().count(), "{text:?}: {e}"),
    }
});
