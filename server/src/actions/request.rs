//! An action request's body read field by field: the common envelope (reason, incident,
//! dry run, confirmation, break-glass) and the typed readers of an action's parameters,
//! each refusing with the field's name and its bound.

use crate::error::{AppError, Result};
use app::dto::Reason;
use serde_json::{Map, Value};

/// The common fields of an action request; the rest are the action's parameters.
#[derive(Debug)]
pub struct Envelope {
    /// Why, for the audit trail.
    pub reason: String,
    /// The incident it belongs to, if any.
    pub incident: String,
    /// Preview only.
    pub dry_run: bool,
    /// The typed confirmation.
    pub confirm: Option<String>,
    /// Run at once although the action needs a second person's approval (audited as
    /// break-glass, reviewed afterwards).
    pub break_glass: bool,
    /// The action's own parameters.
    pub params: Map<String, Value>,
}

/// Splits a request body into the common fields and the action's parameters.
pub fn envelope(body: Value) -> Result<Envelope> {
    let Value::Object(mut map) = body else {
        return Err(AppError::invalid("body", "must be a JSON object"));
    };
    let text = |map: &mut Map<String, Value>, field: &'static str| -> Result<Option<String>> {
        match map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AppError::invalid(field, "must be a string")),
        }
    };
    let reason = text(&mut map, "reason")?.unwrap_or_default();
    let reason = Reason::parse(&reason).map_err(|why| AppError::invalid("reason", why))?.into_string();
    let incident = text(&mut map, "incident")?.unwrap_or_default();
    if incident.len() > 128 {
        return Err(AppError::invalid("incident", "must be at most 128 characters"));
    }
    let dry_run = match map.remove("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(AppError::invalid("dry_run", "must be true or false")),
    };
    let confirm = text(&mut map, "confirm")?;
    let break_glass = match map.remove("break_glass") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(AppError::invalid("break_glass", "must be true or false")),
    };
    Ok(Envelope { reason, incident, dry_run, confirm, break_glass, params: map })
}

/// Reads an optional whole number within `range`.
pub(super) fn number(
    params: &mut Map<String, Value>,
    field: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>> {
    match params.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(AppError::invalid(
                field,
                format!("must be a whole number from {} to {}", range.start(), range.end()),
            )),
        },
        Some(_) => Err(AppError::invalid(field, "must be a number")),
    }
}

/// Reads an optional string that must be one of `allowed` (a route or a service of the
/// gateway); `what` names the kind for the message.
pub(super) fn one_of(
    params: &mut Map<String, Value>,
    field: &'static str,
    allowed: &[String],
    what: &str,
    gateway: &str,
) -> Result<Option<String>> {
    match params.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(x)) if allowed.contains(&x) => Ok(Some(x)),
        Some(Value::String(x)) => Err(AppError::invalid(field, format!("'{x}' is not a {what} of {gateway}"))),
        Some(_) => Err(AppError::invalid(field, "must be a string")),
    }
}

/// Refuses parameters nobody read.
pub fn no_more(params: &Map<String, Value>) -> Result<()> {
    match params.keys().next() {
        Some(k) => Err(AppError::Validation { field: "params", message: format!("unknown parameter '{k}'") }),
        None => Ok(()),
    }
}
