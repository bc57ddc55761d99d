//! The audit key: a secret outside the database that authenticates each entry.
//!
//! Anyone who can write the database can rewrite the ledger and recompute every
//! SHA-256 after the change; they cannot compute an HMAC-SHA-256 without this key. Each
//! entry's `mac` is HMAC(key, its hash); since the hash covers the previous hash, one
//! authentic entry vouches for the whole chain before it.

use super::hash::hex;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Shortest key accepted, bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A loaded key.
#[derive(Clone)]
pub struct AuditKey {
    mac: Hmac<Sha256>,
    id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("audit key file {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file holds too little.
    #[error(
        "audit key file {0} holds fewer than {MIN_KEY_BYTES} bytes; create one with \
         `head -c 32 /dev/urandom | base64 > FILE`"
    )]
    TooShort(PathBuf),
}

impl AuditKey {
    /// A key from its bytes (surrounding whitespace is not part of it, so a file written
    /// by `echo` and one written without a newline give the same key).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes = bytes.trim_ascii();
        if bytes.len() < MIN_KEY_BYTES {
            return None;
        }
        let mac = Hmac::<Sha256>::new_from_slice(bytes).expect("HMAC takes a key of any length");
        // The id names the key in the ledger and the checkpoint without revealing it.
        let id = hex(&Sha256::digest([b"gatewarden-audit-key-id:".as_slice(), bytes].concat())[..8]);
        Some(AuditKey { mac, id })
    }

    /// A fresh random key that is never written anywhere (an in-memory database's ledger
    /// lives and dies with the process, and so does its key).
    pub fn ephemeral() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::from_bytes(hex(&bytes).as_bytes()).expect("64 bytes")
    }

    /// The key in `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io { path: path.into(), source })?;
        Self::from_bytes(&bytes).ok_or_else(|| KeyError::TooShort(path.into()))
    }

    /// The key in `path`, created there (readable only by its owner) if there is no file.
    /// Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                let text = hex(&bytes);
                crate::files::create_private(path, &format!("{text}\n"))
                    .map_err(|source| KeyError::Io { path: path.into(), source })?;
                Ok((Self::from_bytes(text.as_bytes()).expect("64 bytes"), true))
            }
            other => other.map(|k| (k, false)),
        }
    }

    /// Short public name of the key (a hash of it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA-256 of `data`, hex.
    pub fn sign(&self, data: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(data);
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `mac` (hex) is this key's HMAC of `data` (compared in constant time).
    pub fn check(&self, data: &[u8], mac: &str) -> bool {
        let Some(bytes) = unhex(mac) else { return false };
        let mut m = self.mac.clone();
        m.update(data);
        m.verify_slice(&bytes).is_ok()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_checks_only_with_its_key_and_its_data() {
        let a = AuditKey::from_bytes(b"an audit key of at least thirty-two bytes\n").unwrap();
        let same = AuditKey::from_bytes(b"  an audit key of at least thirty-two bytes").unwrap();
        let b = AuditKey::from_bytes(b"another audit key of at least thirty-two bytes").unwrap();
        let mac = a.sign(b"hash-1");
        assert_eq!(mac.len(), 64);
        assert!(same.check(b"hash-1", &mac), "whitespace around a key is not part of it");
        assert_eq!(a.id(), same.id());
        assert!(!a.check(b"hash-2", &mac));
        assert!(!b.check(b"hash-1", &mac));
        assert_ne!(a.id(), b.id());
        assert!(!a.check(b"hash-1", ""));
        assert!(!a.check(b"hash-1", &"zz".repeat(32)));
        assert!(AuditKey::from_bytes(b"too short").is_none());
    }

    #[test]
    fn a_missing_key_file_is_created_for_its_owner_only_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let (first, created) = AuditKey::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = AuditKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(AuditKey::load(&path), Err(KeyError::TooShort(_))));
    }
}
