//! Argon2id password hashing, always off the async runtime (each hash takes tens of
//! milliseconds of CPU by design).
//!
//! Each argon2id computation needs its parameters' worth of memory (19 MiB with the
//! crate's OWASP-level defaults). Allocated per call on whichever blocking thread runs it,
//! that memory stays with the allocator's per-thread arena after it is freed: a burst of
//! sign-ins left the process ~480 MB larger (measured, BENCHMARKS.md). So the memory comes
//! from a small pool of buffers that are reused, never freed: at most [`POOLED`] of them
//! exist while the sign-in gate lets no more than that run at once.

use crate::error::AppError;
use argon2::password_hash::{Output, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Mutex;

/// Buffers kept for reuse (the sign-in gate's default concurrency; a computation that
/// finds none free allocates its own and frees it afterwards).
pub const POOLED: usize = 4;

static POOL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `f` with `blocks` argon2 blocks of memory from the pool.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let taken = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut memory = match taken {
        Some(m) if m.len() >= blocks => m,
        _ => vec![Block::default(); blocks],
    };
    let result = f(&mut memory[..blocks]);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOLED {
        pool.push(memory);
    }
    result
}

fn internal(what: &str) -> impl Fn(argon2::password_hash::Error) -> AppError + '_ {
    move |e| AppError::Internal(format!("{what}: {e}"))
}

/// Hashes `password` with a fresh salt (argon2id, the crate's OWASP-level defaults) into
/// a PHC string.
pub async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut raw_salt = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut raw_salt).map_err(internal("salt"))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        with_memory(params.block_count(), |memory| {
            argon.hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, memory)
        })
        .map_err(|e| AppError::Internal(format!("hashing failed: {e}")))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: (&params).try_into().map_err(internal("params"))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(internal("output"))?),
        };
        Ok(phc.to_string())
    })
    .await
    .map_err(|e| AppError::Internal(format!("hashing task failed: {e}")))?
}

/// Checks `password` against a stored PHC string. Unknown users are checked against a
/// dummy hash so that both failures take the same time.
pub async fn verify(password: String, stored: String) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| AppError::Internal(format!("bad stored hash: {e}")))?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(internal("stored algorithm"))?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| AppError::Internal(format!("stored version: {e}")))?;
        let params = Params::try_from(&parsed).map_err(internal("stored params"))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(AppError::Internal("stored hash has no salt or output".into()));
        };
        let mut raw_salt = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut raw_salt).map_err(internal("stored salt"))?;
        let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
        let mut out = vec![0u8; expected.len()];
        with_memory(params.block_count(), |memory| {
            argon.hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, memory)
        })
        .map_err(|e| AppError::Internal(format!("verifying failed: {e}")))?;
        // Output's equality is constant-time.
        Ok(Output::new(&out).map_err(internal("output"))? == expected)
    })
    .await
    .map_err(|e| AppError::Internal(format!("verify task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_verify_both_ways_with_the_reference_implementation() {
        let ours = hash("correct horse".into()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok(), "the crate accepts ours");
        assert!(verify("correct horse".into(), ours.clone()).await.unwrap());
        assert!(!verify("wrong horse".into(), ours).await.unwrap());

        use argon2::PasswordHasher;
        let theirs =
            Argon2::default().hash_password(b"battery", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(verify("battery".into(), theirs.clone()).await.unwrap(), "we accept the crate's");
        assert!(!verify("staple".into(), theirs).await.unwrap());
        assert!(POOL.lock().unwrap().len() <= POOLED);
    }
}
