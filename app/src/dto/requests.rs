//! What the pages send: one type per write, so no page builds JSON by hand. The server
//! reads the same fields (and names a bad one in its 422); these types are the pages'
//! side of that contract.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn is_false(b: &bool) -> bool {
    !*b
}

/// `POST /api/v1/gateways/{id}/actions/{action}`: run or preview a mitigation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// Why, for the audit trail.
    pub reason: String,
    /// Preview only.
    pub dry_run: bool,
    /// The incident it belongs to (`INC-<id>`), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incident: String,
    /// The typed confirmation, when the preview asked for one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub confirm: String,
    /// Run now although it needs a second person (on the record, reviewed afterwards).
    #[serde(default, skip_serializing_if = "is_false")]
    pub break_glass: bool,
    /// The action's own fields, as its catalogue entry names them.
    #[serde(flatten)]
    pub params: BTreeMap<String, Param>,
}

/// One field of a mitigation: a whole number, or text (an unparseable number is sent as
/// text, so the server names the field in its answer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Param {
    /// A whole number.
    Number(u64),
    /// Text.
    Text(String),
}

/// `POST /api/v1/actions/{id}/undo`: undo or preview undoing an action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UndoRequest {
    /// Why, for the audit trail.
    pub reason: String,
    /// Preview only.
    pub dry_run: bool,
    /// The typed confirmation.
    pub confirm: String,
}

/// `POST /api/v1/incidents`: declare an incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewIncident {
    /// One line that says what is wrong.
    pub title: String,
    /// `sev1` (worst) to `sev4`.
    pub severity: String,
    /// More, if known.
    pub summary: String,
    /// The gateways it is about.
    pub gateways: Vec<String>,
}

/// `PATCH /api/v1/incidents/{id}`: any of these; absent ones stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    /// A new status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A new severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// A new summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Who commands it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander: Option<String>,
    /// Who keeps its notes now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scribe: Option<String>,
    /// Why, for the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/incidents/{id}/notes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentNote {
    /// What to note on the timeline.
    pub text: String,
}

/// `POST /api/v1/incidents/{id}/pins`: a log line on the timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PinRequest {
    /// The line, as search shows it.
    pub line: String,
    /// Where it came from (the instance).
    pub source: String,
}

/// `POST /api/v1/incidents/{id}/checklist/{step}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRequest {
    /// `done`, `not_applicable` or `open`.
    pub state: String,
    /// Why (required for not applicable).
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_request_is_the_flat_body_the_server_reads() {
        let mut params = BTreeMap::new();
        params.insert("replicas".to_string(), Param::Number(5));
        params.insert("route".to_string(), Param::Text("/api".into()));
        let request = ActionRequest { reason: "surge".into(), dry_run: true, params, ..Default::default() };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"reason":"surge","dry_run":true,"replicas":5,"route":"/api"}"#);
        let back: ActionRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn an_incident_update_sends_only_what_changes() {
        let update = IncidentUpdate { commander: Some("bob".into()), ..Default::default() };
        assert_eq!(serde_json::to_string(&update).unwrap(), r#"{"commander":"bob"}"#);
    }
}
