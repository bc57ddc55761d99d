//! Query-string parameters, parsed in one place with one wording for every error.
//!
//! This sits below the console rather than in `http`: server-side rendering hands the
//! console the page's raw query string (the `Operations` interface carries it as text),
//! so the console, not the handler, is where a query string becomes typed values.

use crate::error::{AppError, Result};
use std::collections::HashMap;
use std::ops::RangeInclusive;

/// A request's query parameters. Empty values count as absent.
#[derive(Clone, Debug, Default)]
pub struct Params(HashMap<String, String>);

impl From<HashMap<String, String>> for Params {
    fn from(map: HashMap<String, String>) -> Self {
        Params(map)
    }
}

impl Params {
    /// Parses a raw query string (`a=1&b=two`), as a page's URL carries it.
    pub fn from_query(query: &str) -> Self {
        Params(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    /// The value of `field`, if present and not empty.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A whole number within `range`, if present; 422 naming the field and the range
    /// otherwise.
    pub fn whole(&self, field: &'static str, range: RangeInclusive<i64>) -> Result<Option<i64>> {
        self.text(field)
            .map(|v| match v.parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(AppError::invalid(
                    field,
                    format!("must be a whole number from {} to {}", range.start(), range.end()),
                )),
            })
            .transpose()
    }

    /// A whole number of any size (a timestamp in Unix milliseconds), if present.
    pub fn timestamp(&self, field: &'static str) -> Result<Option<i64>> {
        self.text(field)
            .map(|v| {
                v.parse::<i64>().map_err(|_| AppError::invalid(field, "must be a whole number (Unix milliseconds)"))
            })
            .transpose()
    }

    /// A paging cursor handed out by a previous page, if present.
    pub fn cursor(&self, field: &'static str) -> Result<Option<i64>> {
        self.text(field)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| AppError::invalid(field, "must be a cursor from a previous page"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: AppError) -> String {
        match e {
            AppError::Validation { field, message } => format!("{field} {message}"),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn every_range_error_names_the_field_and_the_range() {
        let p = Params::from_query("limit=0&tail=abc&cursor=-3&since=soon&empty=");
        assert_eq!(message(p.whole("limit", 1..=1000).unwrap_err()), "limit must be a whole number from 1 to 1000");
        assert_eq!(message(p.whole("tail", 1..=10).unwrap_err()), "tail must be a whole number from 1 to 10");
        assert_eq!(message(p.cursor("cursor").unwrap_err()), "cursor must be a cursor from a previous page");
        assert_eq!(message(p.timestamp("since").unwrap_err()), "since must be a whole number (Unix milliseconds)");
        assert_eq!(p.whole("empty", 1..=5).unwrap(), None);
        assert_eq!(p.whole("absent", 1..=5).unwrap(), None);
    }

    #[test]
    fn values_in_range_are_read() {
        let p = Params::from_query("limit=1000&cursor=42&until=1700000000000&q=a%20b");
        assert_eq!(p.whole("limit", 1..=1000).unwrap(), Some(1000));
        assert_eq!(p.cursor("cursor").unwrap(), Some(42));
        assert_eq!(p.timestamp("until").unwrap(), Some(1_700_000_000_000));
        assert_eq!(p.text("q"), Some("a b"));
    }
}

/// A JSON request body's fields, read one by one with the same wording as query
/// parameters; [`Body::done`] refuses any left unread.
#[derive(Debug)]
pub struct Body(serde_json::Map<String, serde_json::Value>);

impl Body {
    /// `body` as an object of fields, or 422 (`body`).
    pub fn parse(body: serde_json::Value) -> Result<Body> {
        match body {
            serde_json::Value::Object(map) => Ok(Body(map)),
            _ => Err(AppError::invalid("body", "must be a JSON object")),
        }
    }

    /// An optional string of at most `max` characters, trimmed (`null` counts as absent).
    pub fn text(&mut self, field: &'static str, max: usize) -> Result<Option<String>> {
        match self.0.remove(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.chars().count() > max => {
                Err(AppError::invalid(field, format!("must be at most {max} characters")))
            }
            Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(AppError::invalid(field, "must be a string")),
        }
    }

    /// Ok when every field was read; otherwise 422 naming the first one left (cut to 64
    /// characters).
    pub fn done(self) -> Result<()> {
        match self.0.keys().next() {
            Some(k) => {
                Err(AppError::invalid("body", format!("unknown field '{}'", k.chars().take(64).collect::<String>())))
            }
            None => Ok(()),
        }
    }

    /// Removes and returns `field`'s raw value (for fields that are not text).
    pub fn take(&mut self, field: &str) -> Option<serde_json::Value> {
        self.0.remove(field)
    }
}
