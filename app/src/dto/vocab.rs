//! Closed vocabularies the server and the pages share, each word spelled here once; and
//! the reason rule, once.
//! On the wire they are the same lowercase words as before; the server checks a query or
//! body against `NAMES`, the pages build their choices from `ALL`.

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every word, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every word as it is written.
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            /// As written on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// The word `text` names, if it is one.
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Where an incident is in its life, in order.
    IncidentStatus {
        /// Declared; the cause is not known.
        Investigating = "investigating",
        /// The cause is known.
        Identified = "identified",
        /// The users' pain has stopped.
        Mitigated = "mitigated",
        /// Fixed.
        Resolved = "resolved",
        /// Reviewed; it changes no more.
        Closed = "closed",
    }
}

vocabulary! {
    /// How bad an incident is: sev1 is the worst.
    Severity {
        /// The worst: many users cannot work.
        Sev1 = "sev1",
        /// Serious.
        Sev2 = "sev2",
        /// Noticeable.
        Sev3 = "sev3",
        /// Minor.
        Sev4 = "sev4",
    }
}

vocabulary! {
    /// Where a request for a second person's approval is.
    ApprovalStatus {
        /// Waits for someone who may approve.
        AwaitingApproval = "awaiting_approval",
        /// Approved, and run.
        Approved = "approved",
        /// Denied, with a reason.
        Denied = "denied",
        /// Nobody decided in time.
        Expired = "expired",
        /// The gateway changed since: what was approved is no longer what would run.
        Refused = "refused",
        /// Run without a second person; waits for a review.
        BreakGlass = "break_glass",
        /// A break-glass run, reviewed.
        Reviewed = "reviewed",
    }
}

vocabulary! {
    /// The runbook's mitigations, by API name (`POST /api/v1/gateways/{id}/actions/{action}`).
    ActionName {
        /// `kubectl rollout restart`.
        Restart = "restart",
        /// `kubectl scale`, or an autoscaler's bounds.
        Scale = "scale",
        /// `kubectl rollout undo`.
        Rollback = "rollback",
        /// An emergency rate limit.
        RateLimit = "rate-limit",
        /// Timeouts and retries.
        Timeouts = "timeouts",
        /// A circuit breaker.
        CircuitBreaker = "circuit-breaker",
        /// Route a service around the gateway.
        Bypass = "bypass",
    }
}

impl ActionName {
    /// The lowest role allowed to run it (a lower one may ask, where it needs approval).
    pub fn role(self) -> super::Role {
        match self {
            ActionName::Rollback | ActionName::Bypass => super::Role::Admin,
            _ => super::Role::Responder,
        }
    }
}

/// Why a change is made, for the audit trail: trimmed, said, and at most
/// [`Reason::MAX_CHARS`] characters. The rule is here once, for the server that enforces
/// it and the pages that say it before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// The longest reason kept.
    pub const MAX_CHARS: usize = 1000;

    /// `text`, trimmed, as a reason; else what is wrong with it (a sentence's end, for
    /// "reason ...").
    pub fn parse(text: &str) -> Result<Reason, &'static str> {
        Self::optional(text).and_then(|r| if r.is_empty() { Err(Self::MISSING) } else { Ok(Reason(r)) })
    }

    /// `text`, trimmed, where a reason may be left out (empty), still bounded.
    pub fn optional(text: &str) -> Result<String, &'static str> {
        let text = text.trim();
        if text.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 1000 characters");
        }
        Ok(text.to_string())
    }

    /// What is said of a reason left out.
    pub const MISSING: &'static str = "is required: say why, for the audit trail";

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself() {
        for s in IncidentStatus::ALL {
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Severity::NAMES, ["sev1", "sev2", "sev3", "sev4"]);
        assert_eq!(ApprovalStatus::parse("break_glass"), Some(ApprovalStatus::BreakGlass));
        assert!(IncidentStatus::parse("closed ").is_none());
    }

    #[test]
    fn a_reason_is_said_trimmed_and_bounded() {
        assert_eq!(Reason::parse("  surge  ").unwrap().as_str(), "surge");
        assert_eq!(Reason::parse("   "), Err(Reason::MISSING));
        assert!(Reason::parse(&"x".repeat(1000)).is_ok());
        assert_eq!(Reason::parse(&"x".repeat(1001)), Err("must be at most 1000 characters"));
        assert_eq!(Reason::optional(" "), Ok(String::new()));
    }
}
