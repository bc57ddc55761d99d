//! Verification: every link, hash and signature recomputed, oldest first, a page at a
//! time; then the chain compared with the checkpoint kept outside the database.
//!
//! The same [`Verifier`] checks the database (`GET /api/v1/audit/verify`) and an
//! exported JSONL file (`gatewarden audit verify FILE`).

use super::checkpoint::Body as Checkpoint;
use super::hash::hash_into;
use super::key::AuditKey;
use super::{COLUMNS, GENESIS, Kind, Ledger};
use crate::db::Dialect;
use crate::error::{AppError, Result};
use app::dto::{AuditEntry, AuditProblem, AuditVerification};

/// Entries per verification page.
pub(super) const VERIFY_PAGE: i64 = 10000;

/// Which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// An entry does not name the hash of the one before it.
    Link,
    /// An entry does not match its own hash.
    Hash,
    /// An entry that must be signed with the audit key is not.
    Key,
    /// The chain ends before the checkpoint's entry.
    Truncation,
    /// The checkpoint's entry is not the one in the chain.
    Checkpoint,
}

impl Check {
    /// Name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Link => "link",
            Check::Hash => "hash",
            Check::Key => "key",
            Check::Truncation => "truncation",
            Check::Checkpoint => "checkpoint",
        }
    }
}

fn problem(check: Check, id: i64, message: String) -> AuditProblem {
    AuditProblem { check: check.as_str().into(), id, message }
}

/// Checks entries fed to it in chain order.
pub struct Verifier {
    key: Option<AuditKey>,
    /// A console verifying its own ledger: some entry must carry its key.
    expect_signed: bool,
    checkpoint: Option<Checkpoint>,
    count: i64,
    first_id: Option<i64>,
    last_id: i64,
    head: String,
    chain: Option<AuditProblem>,
    /// Newest key marker that carries the key: every entry after it must too.
    marker: Option<i64>,
    unsigned_after_marker: Option<i64>,
    /// First unsigned entry at or after the checkpoint's `auth_from`.
    unsigned_required: Option<i64>,
    checkpoint_entry: Option<bool>,
    buf: Vec<u8>,
}

impl Verifier {
    /// A verifier of a chain that starts at the first entry.
    pub fn new(key: Option<AuditKey>, checkpoint: Option<Checkpoint>) -> Self {
        Verifier {
            key,
            expect_signed: false,
            checkpoint,
            count: 0,
            first_id: None,
            last_id: 0,
            head: GENESIS.into(),
            chain: None,
            marker: None,
            unsigned_after_marker: None,
            unsigned_required: None,
            checkpoint_entry: None,
            buf: Vec::with_capacity(1024),
        }
    }

    /// The same, failing when no entry carries the key (the console's own ledger always
    /// has a key marker: start-up writes one).
    pub fn expecting_signatures(mut self) -> Self {
        self.expect_signed = self.key.is_some();
        self
    }

    /// Takes a chain that starts after an earlier entry (an export of part of the ledger):
    /// the first entry's link is believed.
    pub fn starting_anywhere(mut self) -> Self {
        self.head = String::new();
        self
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) {
        self.count += 1;
        self.first_id.get_or_insert(e.id);
        if self.head.is_empty() {
            self.head = e.prev_hash.clone();
        }
        if self.chain.is_none() {
            if e.prev_hash != self.head {
                self.chain = Some(problem(
                    Check::Link,
                    e.id,
                    format!(
                        "entry #{} does not follow the entry before it: an entry was removed, inserted or \
                         reordered there",
                        e.id
                    ),
                ));
            } else if hash_into(e, &mut self.buf) != e.hash {
                self.chain = Some(problem(
                    Check::Hash,
                    e.id,
                    format!("entry #{} does not match its hash: it was changed after it was written", e.id),
                ));
            }
        }
        if let Some(key) = &self.key {
            let signed = key.check(e.hash.as_bytes(), &e.mac);
            if signed && e.kind == Kind::AuditKey.as_str() {
                // A signed entry vouches for every hash before it.
                self.marker = Some(e.id);
                self.unsigned_after_marker = None;
            } else if !signed {
                if self.marker.is_some() && self.unsigned_after_marker.is_none() {
                    self.unsigned_after_marker = Some(e.id);
                }
                let required = self.checkpoint.as_ref().is_some_and(|c| e.id >= c.auth_from);
                if required && self.unsigned_required.is_none() {
                    self.unsigned_required = Some(e.id);
                }
            }
        }
        if let Some(c) = &self.checkpoint
            && c.head_id == e.id
        {
            self.checkpoint_entry = Some(c.head_hash == e.hash);
        }
        self.last_id = e.id;
        self.head.clone_from(&e.hash);
    }

    /// The result, with the checkpoint's recorded breaks.
    pub fn finish(self) -> AuditVerification {
        let mut problems: Vec<AuditProblem> = self.chain.into_iter().collect();
        let unsigned = match (self.unsigned_after_marker, self.unsigned_required) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(id) = unsigned {
            problems.push(problem(
                Check::Key,
                id,
                format!(
                    "entry #{id} is not signed with the audit key: it was rewritten, or written by something \
                     other than the console"
                ),
            ));
        } else if self.expect_signed && self.marker.is_none() && self.count > 0 {
            problems.push(problem(
                Check::Key,
                self.first_id.unwrap_or(1),
                "no entry is signed with this console's audit key: the ledger was rewritten, or the key is not \
                 the one it was written with"
                    .into(),
            ));
        }
        if let Some(c) = &self.checkpoint {
            match self.checkpoint_entry {
                Some(true) => {}
                Some(false) => problems.push(problem(
                    Check::Checkpoint,
                    c.head_id,
                    format!(
                        "entry #{} is not the entry the checkpoint recorded: the ledger was rewritten at or before it",
                        c.head_id
                    ),
                )),
                None if c.head_id > self.last_id => problems.push(problem(
                    Check::Truncation,
                    self.last_id,
                    format!(
                        "{} {} missing after #{}: the checkpoint recorded entry #{}",
                        c.head_id - self.last_id,
                        if c.head_id - self.last_id == 1 { "entry" } else { "entries" },
                        self.last_id,
                        c.head_id
                    ),
                )),
                None => problems.push(problem(
                    Check::Checkpoint,
                    c.head_id,
                    format!("entry #{}, which the checkpoint recorded, is missing", c.head_id),
                )),
            }
            for b in &c.breaks {
                problems.push(AuditProblem {
                    check: b.check.clone(),
                    id: b.id,
                    message: format!("found when the console started: {}", b.message),
                });
            }
        }
        AuditVerification {
            ok: problems.is_empty(),
            entries: self.count,
            first_bad_id: problems.iter().map(|p| p.id).min(),
            head_hash: if self.count == 0 { GENESIS.into() } else { self.head },
            signed_from: self.marker,
            checkpoint_head_id: self.checkpoint.as_ref().map(|c| c.head_id),
            problems,
        }
    }
}

impl Ledger {
    /// Recomputes every hash, link and signature, oldest first, and compares the chain
    /// with this process's checkpoint.
    pub async fn verify(&self) -> Result<AuditVerification> {
        // The checkpoint is taken first: entries appended meanwhile are read too.
        let checkpoint = self.checkpoint.as_ref().map(|c| c.body());
        let mut verifier = Verifier::new(self.key.clone(), checkpoint);
        if self.checkpoint.is_some() {
            verifier = verifier.expecting_signatures();
        }
        let mut verifier = Some(verifier);
        let mut checking: Option<tokio::task::JoinHandle<Result<Verifier>>> = None;
        let mut after = 0i64;
        loop {
            // The next page is read while the previous one is parsed and checked.
            let (json, last_id) = self.verify_page(after).await?;
            if let Some(task) = checking.take() {
                verifier = Some(task.await.map_err(|e| AppError::Internal(format!("verify task: {e}")))??);
            }
            let Some(last_id) = last_id else { break };
            after = last_id;
            let mut v = verifier.take().expect("the previous page's check handed the verifier back");
            checking = Some(tokio::task::spawn_blocking(move || {
                // A derived Deserialize reads a struct from an array in field order, and
                // AuditEntry's fields are in COLUMNS order.
                let entries: Vec<AuditEntry> =
                    serde_json::from_str(&json).map_err(|e| AppError::Internal(format!("verify page: {e}")))?;
                for e in &entries {
                    v.push(e);
                }
                Ok(v)
            }));
        }
        Ok(verifier.expect("the last page's check handed the verifier back").finish())
    }

    /// Up to `VERIFY_PAGE` entries after id `after`, oldest first, as one JSON array of
    /// arrays, and the page's last id. The database packs the page so that one row
    /// crosses the driver per page rather than one per entry (the per-row cost dominated
    /// verification); JSON carries text and integers exactly.
    async fn verify_page(&self, after: i64) -> Result<(String, Option<i64>)> {
        let sql = match self.dialect {
            Dialect::Sqlite => format!(
                "select json_group_array(json_array({COLUMNS})), max(id) from \
                 (select {COLUMNS} from audit_log where id > $1 order by id limit {})",
                self.verify_page
            ),
            Dialect::Postgres => format!(
                "select coalesce(json_agg(json_build_array({COLUMNS}) order by id), '[]')::text, max(id) from \
                 (select {COLUMNS} from audit_log where id > $1 order by id limit {}) page",
                self.verify_page
            ),
        };
        Ok(sqlx::query_as(&sql).bind(after).fetch_one(&self.db).await?)
    }
}

/// Verifies an exported JSONL ledger read from `lines` (an export of the whole ledger
/// starts at the first entry; a filtered one is checked from where it starts).
pub fn verify_lines(
    lines: impl Iterator<Item = std::io::Result<String>>,
    key: Option<AuditKey>,
    checkpoint: Option<Checkpoint>,
) -> std::result::Result<AuditVerification, String> {
    let mut verifier = Verifier::new(key, checkpoint).starting_anywhere();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: AuditEntry =
            serde_json::from_str(&line).map_err(|e| format!("line {} is not an audit entry: {e}", n + 1))?;
        verifier.push(&entry);
    }
    Ok(verifier.finish())
}
