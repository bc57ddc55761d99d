//! The built site's files under `/pkg` (issue 19): the wasm, JS and CSS the site build
//! precompressed (`.ci/compress-site.mjs`) are sent as they are, brotli or gzip as the
//! browser accepts, with `Vary: Accept-Encoding`. Every file is `no-cache`: a browser
//! keeps it and revalidates it (304 from `Last-Modified` when unchanged, no body). None
//! can be cached as immutable: most of a split build's names (`gatewarden.wasm`,
//! `gatewarden.js`, `chunk_9.wasm`) come back with new code under the same name after an
//! upgrade, and the number in `split___<route>_<number>.wasm` is not documented as a
//! content hash.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// What `/pkg` is served from, and whether the precompressed copies can be trusted.
#[derive(Clone)]
pub struct Assets {
    dir: ServeDir,
}

impl Assets {
    /// The files under `dir`. A `.br` or `.gz` older than the file it was made from (a
    /// site rebuilt without compressing again) would send old code for new: then none
    /// is used, and the log says which was stale.
    pub fn new(dir: PathBuf) -> Assets {
        let serve = ServeDir::new(&dir);
        let serve = match stale_copy(&dir) {
            None => serve.precompressed_br().precompressed_gzip(),
            Some(stale) => {
                tracing::warn!(
                    file = %stale.display(),
                    "a precompressed site file is older than its source: sending the site uncompressed \
                     (build it with `make site`)"
                );
                serve
            }
        };
        Assets { dir: serve }
    }

    /// Answers `request` (its path relative to the folder).
    pub async fn serve(&self, request: Request) -> Response {
        let mut response = match self.dir.clone().oneshot(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        };
        if response.status().is_success() || response.status() == axum::http::StatusCode::NOT_MODIFIED {
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // Every answer may differ by encoding, even one sent uncompressed.
            response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response.into_response()
    }
}

/// The first `.br` / `.gz` in `dir` older than its source, if any.
fn stale_copy(dir: &Path) -> Option<PathBuf> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { continue };
        if ext != "br" && ext != "gz" {
            continue;
        }
        let source = path.with_extension("");
        let (copy, original): (Option<SystemTime>, Option<SystemTime>) = (modified(&path), modified(&source));
        match (copy, original) {
            (Some(copy), Some(original)) if copy < original => return Some(path),
            _ => {}
        }
    }
    None
}
