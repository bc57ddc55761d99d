//! The built site's files under `/pkg` (issue 19): the wasm, JS and CSS the site build
//! precompressed (`.ci/compress-site.mjs`) are sent as they are, brotli or gzip as the
//! browser accepts, with `Vary: Accept-Encoding`. The first download goes out under
//! names carrying a hash of its content (`gatewarden.<hash>.wasm`, `.js`, `.css`, made by
//! the site build, named in `site.json`), cached for a year as immutable. Every other
//! file is `no-cache`: a browser keeps it and revalidates it (304 from `Last-Modified`
//! when unchanged, no body), because its name (`chunk_9.wasm`, the split loader) comes
//! back with new code after an upgrade.

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
        let path = request.uri().path().to_string();
        let mut response = match self.dir.clone().oneshot(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        };
        if response.status().is_success() || response.status() == axum::http::StatusCode::NOT_MODIFIED {
            let policy = if content_named(&path) { "public, max-age=31536000, immutable" } else { "no-cache" };
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
            // Every answer may differ by encoding, even one sent uncompressed.
            response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response.into_response()
    }
}

/// Whether `path` (under `/pkg`) names a file by its content: `gatewarden.<16 hex>.<ext>`.
pub fn content_named(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut parts = name.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("gatewarden"), Some(hash), Some("js" | "wasm" | "css"), None)
            if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    )
}

/// The first download's name as the site build wrote it in `pkg/site.json`
/// (`gatewarden.<hash>`), or `gatewarden` for a site built without it.
pub fn main_name(pkg: &Path) -> String {
    std::fs::read_to_string(pkg.join("site.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["name"].as_str().map(String::from))
        .filter(|name| content_named(&format!("{name}.js")) && pkg.join(format!("{name}.wasm")).exists())
        .unwrap_or_else(|| "gatewarden".into())
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

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_hashed_first_download_is_immutable() {
        assert!(super::content_named("/gatewarden.0123456789abcdef.wasm"));
        assert!(super::content_named("/gatewarden.0123456789abcdef.css"));
        for other in [
            "/gatewarden.wasm",
            "/gatewarden.0123456789ABCDEF.js",
            "/gatewarden.0123456789abcdef.wasm.br",
            "/chunk_9.wasm",
            "/__wasm_split.______________________.js",
            "/gatewarden.0123456789abcde.js",
        ] {
            assert!(!super::content_named(other), "{other}");
        }
    }
}
