//! The API's description (issue 19): every route of the table is in the OpenAPI document,
//! with its path parameters; the document and its reference page are public. (Schemathesis,
//! run by `make test`, checks the answers against it.)

use crate::support::{Backend, TestApp, assert_error};
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn every_route_is_described_with_its_parameters_and_who_may_call_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anon = app.anonymous();
    let doc: Value = anon.get_json("/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = server::http::api::table();
    for route in &routes {
        let op = &doc["paths"][format!("/api/v1{}", route.path)][route.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} is described", route.method, route.path);
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let in_path: Vec<&str> =
            route.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        assert_eq!(params, in_path, "{}", route.path);
        assert!(op["responses"]["4XX"]["content"]["application/json"]["schema"].is_object());
    }
    let count: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(count, routes.len(), "nothing described that is not served");
    // Every referenced schema is there.
    let text = doc.to_string();
    for name in text.split("#/components/schemas/").skip(1).map(|s| s.split('"').next().unwrap()) {
        assert!(doc["components"]["schemas"][name].is_object(), "{name} is defined");
    }
    assert_eq!(
        doc["paths"]["/api/v1/users"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"],
        serde_json::json!(["username", "password", "role"])
    );

    let page = anon.get("/api/v1/reference").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<code>/api/v1/users/{username}/revoke-sessions</code>"), "{html}");
    assert!(html.contains("At least the admin role."));
}

#[tokio::test]
async fn a_malformed_path_is_a_json_400_and_a_missing_capability_a_409() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let message =
        assert_error(viewer.get("/api/v1/actions/not-a-number").await, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(message.contains("not-a-number"), "{message}");
    // The simulator has no pods to read logs from: a refusal that says where to look.
    let message = assert_error(viewer.get("/api/v1/gateways/edge/logs").await, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("search the log view"), "{message}");
}
