//! Server-rendered pages: who may see them and what the first paint holds.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;

#[tokio::test]
async fn pages_send_anonymous_visitors_to_the_login_page() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anon = app.anonymous();
    for path in ["/", "/gateways/edge"] {
        let r = anon.get(path).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()["location"], "/login");
    }
    let login = anon.get("/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    let policy = login.headers()["content-security-policy"].to_str().unwrap().to_string();
    let html = login.text().await.unwrap();
    assert!(html.contains("Sign in") && html.contains("name=\"password\""));
    // Plain HTML: the form posts to the server; no script is loaded, nor allowed.
    assert!(html.contains("action=\"/login\"") && !html.contains("<script") && !html.contains(".wasm"), "{html}");
    assert!(policy.starts_with("default-src 'none';") && !policy.contains("script-src"), "{policy}");
}

#[tokio::test]
async fn the_health_page_is_server_rendered_with_the_numbers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;

    let r = responder.get("/").await;

    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    for needle in ["public-edge", "partner-api", "2.14.1", "data-testid=\"rps\"", "responder"] {
        assert!(html.contains(needle), "first paint lacks {needle}");
    }
    assert_eq!(responder.get("/login").await.headers()["location"], "/", "signed-in users skip the login page");
}

#[tokio::test]
async fn the_gateway_page_is_server_rendered_with_its_instances() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;

    let html = viewer.get("/gateways/edge").await.text().await.unwrap();

    assert!(html.contains("public-edge") && html.contains("data-testid=\"instances\""));
    // (Names also appear once more in the serialized data the browser hydrates from.)
    assert_eq!(html.matches("<code>public-edge-").count(), 4, "four instance rows");
    assert!(html.contains("<polyline"), "charts are drawn on the server too");
}

#[tokio::test]
async fn the_login_form_works_before_the_wasm_loads_and_refuses_other_sites() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let form = |password: &'static str| [("username", "admin"), ("password", password)];

    let wrong = app.client().post(app.url("/login")).form(&form("nope")).send().await.unwrap();
    let cross_site = app
        .client()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&form(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let client = app.client();
    let right = client.post(app.url("/login")).form(&form(ADMIN_PASSWORD)).send().await.unwrap();

    assert_eq!(wrong.status(), StatusCode::SEE_OTHER);
    assert_eq!(wrong.headers()["location"], "/login?failed=credentials");
    assert!(wrong.headers().get("set-cookie").is_none());
    assert_error(cross_site, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()["location"], "/");
    assert_eq!(client.get(app.url("/api/v1/session")).send().await.unwrap().status(), StatusCode::OK);
    let page = app.client().get(app.url("/login?failed=credentials")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("invalid username or password"), "the error is rendered without JavaScript");
    // The reason is looked up, never echoed: a crafted link shows a fixed sentence.
    let crafted = app.client().get(app.url("/login?failed=%3Cscript%3Ealert(1)%3C%2Fscript%3E&failed=x")).send().await;
    let crafted = crafted.unwrap().text().await.unwrap();
    assert!(!crafted.contains("<script") && !crafted.contains("alert(1)"), "{crafted}");
    assert!(crafted.contains("invalid username or password"));
}
