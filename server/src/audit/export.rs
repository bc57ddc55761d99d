//! Export: every matching entry, oldest first, streamed a page at a time, as CSV or
//! JSONL.

use super::search::{Bind, bind_all};
use super::{COLUMNS, Filter, Ledger, from_row};
use crate::error::{AppError, Result};
use app::dto::AuditEntry;
use futures::{Stream, TryStreamExt};

impl Ledger {
    /// Every matching entry, oldest first, read a page at a time (for export).
    pub fn stream(&self, filter: Filter) -> impl Stream<Item = Result<AuditEntry>> + Send + 'static {
        let (db, dialect) = (self.db.clone(), self.dialect);
        futures::stream::try_unfold((db, filter, Some(0i64)), move |(db, filter, after)| async move {
            let Some(after) = after else { return Ok::<_, AppError>(None) };
            let (clause, mut binds) = filter.clause(None, None, dialect);
            binds.push(Bind::Int(after));
            let and = if clause.is_empty() { "where" } else { "and" };
            let sql =
                format!("select {COLUMNS} from audit_log {clause} {and} id > ${} order by id limit 1000", binds.len());
            let rows = bind_all(sqlx::query(&sql), binds).fetch_all(&db).await?;
            let page = rows.iter().map(from_row).collect::<std::result::Result<Vec<_>, _>>()?;
            let next = if page.len() == 1000 { page.last().map(|e| e.id) } else { None };
            Ok(Some((futures::stream::iter(page.into_iter().map(Ok)), (db, filter, next))))
        })
        .try_flatten()
    }
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
///
/// A cell a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or
/// a carriage return: a failed sign-in's submitted name reaches the export) is prefixed
/// with `'`, so it shows as text. CSV is for reading; JSONL is the exact export.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// The CSV header line of an export.
pub const CSV_HEADER: &str = "id,ts_ms,actor,actor_role,client_addr,user_agent,request_id,kind,action,target,params,reason,incident,outcome,intent_id,before_state,after_state,prev_hash,hash\n";

/// One entry as a CSV line.
pub fn csv_line(e: &AuditEntry) -> String {
    let intent = e.intent_id.map(|i| i.to_string()).unwrap_or_default();
    let fields = [
        e.id.to_string(),
        e.ts_ms.to_string(),
        csv_field(&e.actor),
        csv_field(&e.actor_role),
        csv_field(&e.client_addr),
        csv_field(&e.user_agent),
        csv_field(&e.request_id),
        csv_field(&e.kind),
        csv_field(&e.action),
        csv_field(&e.target),
        csv_field(&e.params),
        csv_field(&e.reason),
        csv_field(&e.incident),
        csv_field(&e.outcome),
        intent,
        csv_field(&e.before_state),
        csv_field(&e.after_state),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    let mut line = fields.join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_and_newlines_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_text() {
        assert_eq!(csv_field("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        for bad in ["+1", "-1+2", "@SUM(A1)", "\tcmd", "\rcmd"] {
            assert!(csv_field(bad).trim_start_matches('"').starts_with('\''), "{bad:?}");
        }
        assert_eq!(csv_field("alice"), "alice");
        assert_eq!(csv_field("a=b"), "a=b", "only a leading sign counts");
    }
}

/// The formats the trail is exported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header row (the default).
    Csv,
    /// One JSON object a line.
    Jsonl,
}

impl Format {
    /// `format=` of an export: absent or `csv`, or `jsonl`; anything else is a 422 naming it.
    pub fn parse(text: Option<&str>) -> crate::error::Result<Format> {
        match text {
            None | Some("csv") => Ok(Format::Csv),
            Some("jsonl") => Ok(Format::Jsonl),
            Some(other) => Err(crate::error::AppError::invalid(
                "format",
                format!("'{}' is not csv or jsonl", other.chars().take(32).collect::<String>()),
            )),
        }
    }
}
