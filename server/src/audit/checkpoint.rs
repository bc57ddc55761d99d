//! The checkpoint: the newest entry this console appended (id and hash), signed with the
//! audit key, kept in a file outside the database.
//!
//! Deleting the newest entries leaves a chain that links and hashes perfectly; only
//! something outside the database can tell it was longer. Verification compares the
//! chain with this file ("3 entries missing after #37"), and start-up compares it before
//! anything is appended, keeping what it found in the file (`breaks`) so that a restart
//! does not wash a cut away. The console also logs the checkpoint every few minutes, so
//! a log pipeline holds copies an attacker of the database cannot reach.
//!
//! Per process: each replica keeps its own file with the newest entry *it* appended,
//! which the shared ledger must still hold.

use super::key::AuditKey;
use crate::db::now_ms;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Format name written into each checkpoint.
pub const FORMAT: &str = "gatewarden-audit-checkpoint/1";
/// Most recorded breaks kept (the oldest go first).
const MAX_BREAKS: usize = 16;
/// Shortest time between two writes of the file.
const WRITE_EVERY: Duration = Duration::from_millis(250);
/// Time between two checkpoint lines in the log.
pub const LOG_EVERY: Duration = Duration::from_secs(300);

/// What the checkpoint says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// [`FORMAT`].
    pub format: String,
    /// Id of the key that signs it.
    pub key_id: String,
    /// The entry from which every entry must be signed (the newest key marker).
    pub auth_from: i64,
    /// Newest entry appended.
    pub head_id: i64,
    /// Its hash.
    pub head_hash: String,
    /// When this was written, Unix ms.
    pub written_ms: i64,
    /// Differences found between an earlier checkpoint and the database at start-up.
    #[serde(default)]
    pub breaks: Vec<Break>,
}

/// A difference between a checkpoint and the ledger, found at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Break {
    /// When it was found, Unix ms.
    pub found_ms: i64,
    /// `truncation`, `checkpoint` or `key`.
    pub check: String,
    /// The entry concerned.
    pub id: i64,
    /// What was found, as a sentence.
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    body: Body,
    mac: String,
}

fn encode(body: &Body) -> Vec<u8> {
    serde_json::to_vec(body).expect("a checkpoint serializes")
}

/// The checkpoint file as text: the body and its HMAC.
pub fn to_text(key: &AuditKey, body: &Body) -> String {
    let signed = Signed { mac: key.sign(&encode(body)), body: body.clone() };
    format!("{}\n", serde_json::to_string(&signed).expect("a checkpoint serializes"))
}

/// Reads the checkpoint at `path`: `Ok(None)` when there is no file, `Err` (a sentence)
/// when it cannot be believed.
pub fn read(path: &Path, key: &AuditKey) -> Result<Option<Body>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("the checkpoint file {} cannot be read: {e}", path.display())),
    };
    let signed: Signed = serde_json::from_str(&text)
        .map_err(|e| format!("the checkpoint file {} is not a checkpoint: {e}", path.display()))?;
    if signed.body.key_id != key.id() {
        return Err(format!(
            "the checkpoint file {} was signed with audit key {}, not this console's key {}",
            path.display(),
            signed.body.key_id,
            key.id()
        ));
    }
    if !key.check(&encode(&signed.body), &signed.mac) {
        return Err(format!("the checkpoint file {} does not carry the audit key's signature", path.display()));
    }
    Ok(Some(signed.body))
}

/// The running checkpoint of this process: moved on by each append, written to its file
/// by a background task at most every [`WRITE_EVERY`].
pub struct Checkpointer {
    path: Option<PathBuf>,
    key: AuditKey,
    body: std::sync::Mutex<Body>,
    dirty: tokio::sync::Notify,
    /// Held across each write, so that two writers (the background task and the final
    /// flush at a stop) cannot finish in the wrong order and leave an older head behind.
    writing: std::sync::Mutex<()>,
}

impl Checkpointer {
    /// A checkpoint starting at `body`, kept in `path` (none: in memory only).
    pub fn new(path: Option<PathBuf>, key: AuditKey, body: Body) -> Arc<Self> {
        Arc::new(Checkpointer {
            path,
            key,
            body: std::sync::Mutex::new(body),
            dirty: tokio::sync::Notify::new(),
            writing: std::sync::Mutex::new(()),
        })
    }

    /// The checkpoint as it stands.
    pub fn body(&self) -> Body {
        self.body.lock().expect("checkpoint lock").clone()
    }

    /// Where it is kept.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Entry `id` with `hash` was appended.
    pub fn advance(&self, id: i64, hash: &str) {
        let mut body = self.body.lock().expect("checkpoint lock");
        if id > body.head_id {
            body.head_id = id;
            body.head_hash = hash.to_string();
            drop(body);
            self.dirty.notify_one();
        }
    }

    /// Records a break found at start-up.
    pub fn record(&self, found: Break) {
        let mut body = self.body.lock().expect("checkpoint lock");
        body.breaks.push(found);
        let excess = body.breaks.len().saturating_sub(MAX_BREAKS);
        body.breaks.drain(..excess);
    }

    /// Writes the file now. The head is read after this writer's turn comes, so the last
    /// write to finish holds the newest head.
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let _turn = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut body = self.body();
        body.written_ms = now_ms();
        crate::files::replace_private(path, &to_text(&self.key, &body))
    }

    /// One log line with the signed checkpoint (a copy for the log pipeline).
    pub fn log(&self) {
        let body = self.body();
        tracing::info!(
            target: "gatewarden::audit",
            head_id = body.head_id,
            head_hash = %body.head_hash,
            auth_from = body.auth_from,
            checkpoint = %to_text(&self.key, &body).trim_end(),
            "audit checkpoint"
        );
    }

    /// Writes the file after appends (at most every [`WRITE_EVERY`]) and logs the
    /// checkpoint every `log_every`.
    pub fn spawn(self: &Arc<Self>, log_every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut log = tokio::time::interval(log_every);
            log.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = this.dirty.notified() => {
                        match this.flush() {
                            Ok(()) => failing = false,
                            Err(e) if !failing => {
                                failing = true;
                                tracing::error!(error = %e, path = ?this.path, "could not write the audit checkpoint");
                            }
                            Err(_) => {}
                        }
                        tokio::time::sleep(WRITE_EVERY).await;
                    }
                    _ = log.tick() => this.log(),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> AuditKey {
        AuditKey::from_bytes(format!("{text} padded to at least thirty-two bytes").as_bytes()).unwrap()
    }

    /// A checkpoint of key `k` from `auth_from`, its head `head_id` with a hash of `byte`s.
    fn body(k: &AuditKey, auth_from: i64, head_id: i64, byte: &str) -> Body {
        Body {
            format: FORMAT.into(),
            key_id: k.id().into(),
            auth_from,
            head_id,
            head_hash: byte.repeat(32),
            written_ms: 1,
            breaks: Vec::new(),
        }
    }

    #[test]
    fn a_checkpoint_reads_back_only_unchanged_and_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.checkpoint");
        let k = key("one");
        assert_eq!(read(&path, &k), Ok(None));
        let cp = Checkpointer::new(Some(path.clone()), k.clone(), body(&k, 3, 40, "ab"));
        cp.advance(41, &"cd".repeat(32));
        cp.advance(39, &"ef".repeat(32));
        cp.flush().unwrap();
        let back = read(&path, &k).unwrap().unwrap();
        assert_eq!((back.head_id, back.head_hash.as_str()), (41, "cd".repeat(32).as_str()));

        assert!(read(&path, &key("two")).unwrap_err().contains("not this console's key"));
        let edited = std::fs::read_to_string(&path).unwrap().replace("\"head_id\":41", "\"head_id\":30");
        std::fs::write(&path, edited).unwrap();
        assert!(read(&path, &k).unwrap_err().contains("signature"));
    }

    #[test]
    fn a_write_still_under_way_never_leaves_an_older_head_behind_the_final_flush() {
        // The background task may be writing (its fsync slow on a busy disk) when the
        // console stops and flushes; the file must end with the newest head either way.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.checkpoint");
        let k = key("one");
        for round in 0..40_i64 {
            let cp = Checkpointer::new(Some(path.clone()), k.clone(), body(&k, 1, 1, "00"));
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let background = {
                let (cp, stop) = (cp.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        cp.flush().unwrap();
                    }
                })
            };
            for id in 2..20 {
                cp.advance(id, &format!("{id:064x}"));
            }
            cp.flush().unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            background.join().unwrap();
            assert_eq!(read(&path, &k).unwrap().unwrap().head_id, 19, "round {round}");
        }
    }
}
