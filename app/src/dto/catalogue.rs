//! The mitigations this console offers, as its server checks them: names, who may ask,
//! whether a second person must approve, and each field with its bounds. The server serves
//! it (`GET /api/v1/catalogue`) and the gateway page builds its buttons and forms from it,
//! so a form never states a bound the server does not keep.

use super::Role;
use serde::{Deserialize, Serialize};

/// `GET /api/v1/catalogue`: every mitigation, in the order the page offers them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalogue {
    /// The runbook's actions.
    pub actions: Vec<ActionSpec>,
}

/// One mitigation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionSpec {
    /// Its API name (`POST /api/v1/gateways/{id}/actions/{action}`).
    pub action: String,
    /// What a button calls it.
    pub label: String,
    /// The lowest role that may ask for it (a responder may ask for an admin's action
    /// where it needs approval: an admin then runs it).
    pub role: Role,
    /// Whether a second person must approve it here (`--require-approval`).
    pub approval: bool,
    /// Its parameters, in the order the form shows them.
    pub fields: Vec<FieldSpec>,
}

/// One parameter of a mitigation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldSpec {
    /// The body's field name.
    pub name: String,
    /// What the form calls it.
    pub label: String,
    /// A whole number from `min` to `max` (sent as a number); both absent: text.
    #[serde(default)]
    pub min: Option<u64>,
    /// See `min`.
    #[serde(default)]
    pub max: Option<u64>,
    /// A choice of these, the first the default; empty: free input.
    #[serde(default)]
    pub choices: Vec<Choice>,
}

/// One option of a choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Choice {
    /// What is sent ("" sends nothing).
    pub value: String,
    /// What the option says.
    pub label: String,
}

impl FieldSpec {
    /// The label with its range, as the form shows it ("Replicas (1–50)").
    pub fn shown(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("{} ({min}–{max})", self.label),
            _ => self.label.clone(),
        }
    }
}

impl Catalogue {
    /// The mitigation named `action`, if offered.
    pub fn get(&self, action: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.action == action)
    }
}
