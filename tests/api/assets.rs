//! The site's files sent precompressed and revalidated; pages and JSON answers
//! compressed, except those carrying a secret (issue 19).

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use std::io::{Read, Write};

/// A site folder holding an entry file (with brotli and gzip copies made here, as the
/// site build makes them) and a chunk without copies.
fn site() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    // Compressible, like code: repeated words with some variety.
    let wasm: Vec<u8> = (0..40_000u32).flat_map(|i| format!("fn{} ", i % 997).into_bytes()).collect();
    std::fs::write(pkg.join("gatewarden.wasm"), &wasm).unwrap();
    let mut br = Vec::new();
    brotli::BrotliCompress(&mut &wasm[..], &mut br, &brotli::enc::BrotliEncoderParams::default()).unwrap();
    std::fs::write(pkg.join("gatewarden.wasm.br"), &br).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&wasm).unwrap();
    std::fs::write(pkg.join("gatewarden.wasm.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(pkg.join("split___gateway_route_view_12141165978205790797.wasm"), b"chunk").unwrap();
    (dir, wasm)
}

async fn app_on(site: &tempfile::TempDir) -> TestApp {
    let mut options = Options::new(Backend::Sqlite);
    options.site_root = site.path().to_str().unwrap().into();
    TestApp::spawn_with(options).await
}

async fn fetch(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    let request = reqwest::Client::new().get(format!("http://{}{path}", app.addr));
    let request = if accept.is_empty() { request } else { request.header("accept-encoding", accept) };
    request.send().await.unwrap()
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).unwrap();
    out
}

fn ungzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn the_sites_files_go_out_precompressed_as_the_browser_accepts_and_are_revalidated() {
    let (site, wasm) = site();
    let app = app_on(&site).await;

    let br = fetch(&app, "/pkg/gatewarden.wasm", "gzip, deflate, br, zstd").await;
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(br.headers()["content-encoding"], "br");
    assert_eq!(br.headers()["content-type"], "application/wasm");
    assert_eq!(br.headers()["vary"], "accept-encoding");
    assert_eq!(br.headers()["cache-control"], "no-cache", "kept, and revalidated: names outlive builds");
    // Never sniffed; but no document's headers (framing, features), which mean nothing here.
    assert_eq!(br.headers()["x-content-type-options"], "nosniff");
    assert!(br.headers().get("x-frame-options").is_none() && br.headers().get("permissions-policy").is_none());
    let modified = br.headers()["last-modified"].clone();
    let body = br.bytes().await.unwrap();
    assert!(body.len() * 10 < wasm.len(), "{} of {} bytes", body.len(), wasm.len());
    assert_eq!(unbrotli(&body), wasm);

    let gz = fetch(&app, "/pkg/gatewarden.wasm", "gzip").await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(ungzip(&gz.bytes().await.unwrap()), wasm);

    let plain = fetch(&app, "/pkg/gatewarden.wasm", "").await;
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    assert_eq!(plain.bytes().await.unwrap(), wasm);

    // Unchanged since the browser's copy: 304, nothing sent again.
    let again = reqwest::Client::new()
        .get(format!("http://{}/pkg/gatewarden.wasm", app.addr))
        .header("accept-encoding", "br")
        .header("if-modified-since", modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    // A split chunk's number is not documented as a content hash: revalidated too.
    let chunk = fetch(&app, "/pkg/split___gateway_route_view_12141165978205790797.wasm", "br").await;
    assert_eq!(chunk.headers()["cache-control"], "no-cache");
    assert!(chunk.headers().get("content-encoding").is_none(), "no copy: sent as is");
    assert_eq!(&chunk.bytes().await.unwrap()[..], b"chunk");

    assert_eq!(fetch(&app, "/pkg/missing.wasm", "br").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn copies_older_than_their_source_are_never_sent() {
    let (site, wasm) = site();
    // The site rebuilt without compressing again: the copies describe old code.
    let source = std::fs::File::options().write(true).open(site.path().join("pkg/gatewarden.wasm")).unwrap();
    source.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60)).unwrap();
    let app = app_on(&site).await;
    let response = fetch(&app, "/pkg/gatewarden.wasm", "br, gzip").await;
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(response.bytes().await.unwrap(), wasm);
}

#[tokio::test]
async fn json_answers_are_compressed_but_never_one_carrying_the_csrf_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let get =
        |path: &str, accept: &'static str| viewer.client.get(viewer.url(path)).header("accept-encoding", accept).send();

    let gateways = get("/api/v1/gateways", "br").await.unwrap();
    assert_eq!(gateways.headers()["content-encoding"], "br");
    let json: serde_json::Value = serde_json::from_slice(&unbrotli(&gateways.bytes().await.unwrap())).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    let audit = get("/api/v1/audit", "gzip").await.unwrap();
    assert_eq!(audit.headers()["content-encoding"], "gzip");
    let json: serde_json::Value = serde_json::from_slice(&ungzip(&audit.bytes().await.unwrap())).unwrap();
    assert!(json["entries"].is_array());

    // The session's answer holds the CSRF token: its size must not depend on what else
    // a request puts in the answer, so it is sent as is.
    let session = get("/api/v1/session", "br, gzip").await.unwrap();
    assert!(session.headers().get("content-encoding").is_none());
    let json: serde_json::Value = session.json().await.unwrap();
    assert_eq!(json["csrf_token"], viewer.csrf.as_str());
    // Event streams are never compressed (a compressor would hold events back).
    let events = get("/api/v1/events", "br, gzip").await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert!(events.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn pages_go_out_compressed_and_carry_no_csrf_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    for path in ["/", "/audit", "/logs?q=timeout"] {
        let page = responder.client.get(responder.url(path)).header("accept-encoding", "br").send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(page.headers()["content-encoding"], "br", "{path}");
        let html = String::from_utf8(unbrotli(&page.bytes().await.unwrap())).unwrap();
        // The page was rendered for this account (its name in the top bar)…
        assert!(html.contains("current-user") && html.contains(">responder-"), "{path}: {html}");
        // …and holds no secret a compressed size could give away.
        assert!(!html.contains(responder.csrf.as_str()), "{path}: the CSRF token is in the page");
    }
    // The browser gets the token where it is never compressed, and writes with it.
    let session: serde_json::Value =
        responder.client.get(responder.url("/api/v1/session")).send().await.unwrap().json().await.unwrap();
    assert_eq!(session["csrf_token"], responder.csrf.as_str());
}

#[tokio::test]
async fn the_first_download_goes_out_under_its_content_name_kept_for_a_year_and_pages_link_it() {
    let (site, wasm) = site();
    let pkg = site.path().join("pkg");
    let name = "gatewarden.0123456789abcdef";
    for ext in ["wasm", "js", "css"] {
        std::fs::write(pkg.join(format!("{name}.{ext}")), &wasm).unwrap();
    }
    std::fs::write(pkg.join("site.json"), format!("{{\"name\":\"{name}\"}}\n")).unwrap();
    let app = app_on(&site).await;

    let hashed = fetch(&app, &format!("/pkg/{name}.wasm"), "br").await;
    assert_eq!(hashed.status(), StatusCode::OK);
    assert_eq!(hashed.headers()["cache-control"], "public, max-age=31536000, immutable");
    // The fixed names (older pages, the lazily loaded chunks) are revalidated.
    assert_eq!(fetch(&app, "/pkg/gatewarden.wasm", "br").await.headers()["cache-control"], "no-cache");
    let chunk = fetch(&app, "/pkg/split___gateway_route_view_12141165978205790797.wasm", "").await;
    assert_eq!(chunk.headers()["cache-control"], "no-cache");

    // The pages name the content-named files.
    let admin = app.signed_in(Role::Admin).await;
    let page = admin.get("/").await.text().await.unwrap();
    assert!(page.contains(&format!("/pkg/{name}.css")), "the stylesheet");
    assert!(page.contains(&format!("/pkg/{name}.js")) && page.contains(&format!("/pkg/{name}.wasm")), "the module");

    // A site.json naming files that are not there is ignored: the fixed names are used.
    std::fs::write(pkg.join("site.json"), "{\"name\":\"gatewarden.ffffffffffffffff\"}\n").unwrap();
    let app = app_on(&site).await;
    let admin = app.signed_in(Role::Admin).await;
    let page = admin.get("/").await.text().await.unwrap();
    assert!(page.contains("/pkg/gatewarden.css") && !page.contains("ffffffffffffffff"));
}
