//! The canonical encoding of an entry and its SHA-256.

use app::dto::AuditEntry;
use sha2::{Digest, Sha256};

/// SHA-256 of the canonical encoding of `e` (its `hash` field is not part of it).
pub fn entry_hash(e: &AuditEntry) -> String {
    let mut buf = Vec::with_capacity(512);
    hash_into(e, &mut buf)
}

/// The canonical encoding: the fields as a compact JSON array, in this order, written
/// straight into `buf` (reused across entries; verification hashes millions).
fn canonical(e: &AuditEntry, buf: &mut Vec<u8>) {
    use std::io::Write;
    buf.clear();
    let text = |buf: &mut Vec<u8>, s: &str| serde_json::to_writer(&mut *buf, s).expect("writing to a Vec cannot fail");
    let _ = write!(buf, "[{},{},", e.id, e.ts_ms);
    for s in [&e.actor, &e.actor_role, &e.client_addr, &e.user_agent, &e.request_id, &e.kind, &e.action, &e.target] {
        text(buf, s);
        buf.push(b',');
    }
    for s in [&e.params, &e.reason, &e.incident, &e.outcome] {
        text(buf, s);
        buf.push(b',');
    }
    match e.intent_id {
        Some(id) => {
            let _ = write!(buf, "{id},");
        }
        None => buf.extend_from_slice(b"null,"),
    }
    for s in [&e.before_state, &e.after_state] {
        text(buf, s);
        buf.push(b',');
    }
    text(buf, &e.prev_hash);
    buf.push(b']');
}

pub(super) fn hash_into(e: &AuditEntry, buf: &mut Vec<u8>) -> String {
    canonical(e, buf);
    hex(&Sha256::digest(&buf[..]))
}

/// Lowercase hex of `bytes` (hashes, signatures and key ids are all written this way).
pub(super) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// The canonical encoding spelled out with `serde_json::json!`, the definition the fast
/// writer above must match byte for byte (checked in the tests).
#[cfg(test)]
fn canonical_reference(e: &AuditEntry) -> String {
    serde_json::json!([
        e.id,
        e.ts_ms,
        e.actor,
        e.actor_role,
        e.client_addr,
        e.user_agent,
        e.request_id,
        e.kind,
        e.action,
        e.target,
        e.params,
        e.reason,
        e.incident,
        e.outcome,
        e.intent_id,
        e.before_state,
        e.after_state,
        e.prev_hash,
    ])
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::GENESIS;

    #[test]
    fn the_fast_encoding_is_byte_for_byte_the_reference_one() {
        let e = AuditEntry {
            id: 42,
            ts_ms: -7,
            actor: "ana \"the\" sre".into(),
            actor_role: "admin".into(),
            client_addr: "::1".into(),
            user_agent: "curl/8 \u{1F680}".into(),
            request_id: "ab\ncd".into(),
            kind: "action_intent".into(),
            action: "scale".into(),
            target: "edge".into(),
            params: "{\"replicas\":8}".into(),
            reason: "tab\there, back\\slash".into(),
            incident: String::new(),
            outcome: "pending".into(),
            intent_id: Some(41),
            before_state: "{}".into(),
            after_state: String::new(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            mac: String::new(),
        };
        let mut buf = Vec::new();
        canonical(&e, &mut buf);
        assert_eq!(String::from_utf8(buf).unwrap(), canonical_reference(&e));
        let none = AuditEntry { intent_id: None, ..e };
        let mut buf = Vec::new();
        canonical(&none, &mut buf);
        assert_eq!(String::from_utf8(buf).unwrap(), canonical_reference(&none));
    }

    #[test]
    fn the_hash_covers_every_field() {
        let mut e = AuditEntry {
            id: 1,
            ts_ms: 2,
            actor: "a".into(),
            actor_role: "admin".into(),
            client_addr: "127.0.0.1".into(),
            user_agent: "ua".into(),
            request_id: "r".into(),
            kind: "login".into(),
            action: String::new(),
            target: String::new(),
            params: "{}".into(),
            reason: String::new(),
            incident: String::new(),
            outcome: "succeeded".into(),
            intent_id: None,
            before_state: String::new(),
            after_state: String::new(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            mac: String::new(),
        };
        let h = entry_hash(&e);
        assert_eq!(h.len(), 64);
        e.reason = "x".into();
        assert_ne!(entry_hash(&e), h);
        e.reason.clear();
        e.intent_id = Some(1);
        assert_ne!(entry_hash(&e), h);
    }
}
