//! The OpenAPI 3.1 document of `/api/v1`, built from the route table the router is built
//! from (paths, methods, who may call them) and the wire types' JSON Schemas (derived with
//! `utoipa` on the DTOs): a route cannot be served without being described, and a test
//! (Schemathesis, in `make test`) checks the answers against the descriptions.

use super::pages::escape;
use app::dto::Role;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// What a route's body or answer is.
#[derive(Clone, Copy)]
pub enum Shape {
    /// JSON of a described type (its schema, gathering what it refers to).
    Json(fn(&mut Map<String, Value>) -> Value),
    /// Any JSON object (the route's own validation names a bad field).
    Object,
    /// No body.
    Empty,
    /// Text of this media type (CSV, Markdown, JSON lines).
    Text(&'static str),
    /// Server-sent events.
    Events,
}

/// A described type: its schema, with the schemas it refers to added to `components`.
pub fn json<T: ToSchema>() -> Shape {
    Shape::Json(|components| {
        let mut refs = Vec::new();
        T::schemas(&mut refs);
        for (name, schema) in refs {
            components.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        serde_json::to_value(T::schema()).unwrap_or(Value::Null)
    })
}

/// How a route is described: its body, its answer (status and shape), its query.
#[derive(Clone, Copy)]
pub struct Doc {
    /// One line on what it does.
    pub summary: &'static str,
    /// The request body.
    pub body: Shape,
    /// The success status (or a range, `2XX`, when it depends: a preview is 200, a run 202).
    pub status: &'static str,
    /// The success answer.
    pub answer: Shape,
    /// Query parameters: name and JSON type.
    pub query: &'static [(&'static str, &'static str)],
}

impl Doc {
    /// A `GET` answering `answer` with 200.
    pub const fn get(summary: &'static str, answer: Shape) -> Doc {
        Doc { summary, body: Shape::Empty, status: "200", answer, query: &[] }
    }
}

/// The JSON type of a path parameter (ids of records are integers; gateways are named).
fn path_param_type(path: &str, name: &str) -> &'static str {
    match name {
        "id" if path.starts_with("/gateways") => "string",
        "id" | "entry" => "integer",
        _ => "string",
    }
}

fn content(shape: Shape, components: &mut Map<String, Value>) -> Option<Value> {
    match shape {
        Shape::Json(schema) => Some(json!({ "application/json": { "schema": schema(components) } })),
        Shape::Object => Some(json!({ "application/json": { "schema": { "type": "object" } } })),
        Shape::Empty => None,
        Shape::Text(media) => Some(json!({ media: { "schema": { "type": "string" } } })),
        Shape::Events => Some(json!({ "text/event-stream": { "schema": { "type": "string" } } })),
    }
}

/// One operation to describe: a route of the table (`http::api::table`).
pub struct Operation {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path under `/api/v1`.
    pub path: &'static str,
    /// The least role that may call it; none: anyone.
    pub role: Option<Role>,
    /// What it takes and answers.
    pub doc: Doc,
}

/// The document for `routes`.
pub fn document(routes: &[Operation]) -> Value {
    let mut components = Map::new();
    let error = json::<app::dto::ApiError>();
    let error_schema = content(error, &mut components);
    let mut paths = Map::new();
    for route in routes {
        let doc = route.doc;
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true,
                        "schema": { "type": path_param_type(route.path, name) } })
            })
            .collect();
        parameters.extend(
            doc.query.iter().map(|(name, ty)| json!({ "name": name, "in": "query", "schema": { "type": ty } })),
        );
        let mut responses = Map::new();
        let mut ok = json!({ "description": "done" });
        if let Some(c) = content(doc.answer, &mut components) {
            ok["content"] = c;
        }
        responses.insert(doc.status.to_string(), ok);
        // Every refusal is the one error shape, whatever its status.
        let mut refused = json!({ "description": "refused: the message says why" });
        if let Some(c) = &error_schema {
            refused["content"] = c.clone();
        }
        responses.insert("4XX".into(), refused.clone());
        responses.insert("5XX".into(), refused);
        let who = match route.role {
            None => "Anyone.".to_string(),
            Some(role) => format!("At least the {role} role."),
        };
        let mut operation = json!({
            "summary": doc.summary,
            "description": who,
            "operationId": format!("{} {}", route.method, route.path),
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(body) = content(doc.body, &mut components) {
            operation["requestBody"] = json!({ "required": true, "content": body });
        }
        if route.role.is_some() {
            operation["security"] = json!([{ "session": [], "csrf": [] }]);
        }
        let item = paths.entry(format!("/api/v1{}", route.path)).or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gatewarden",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The incident console's API. Sign in with POST /api/v1/session; the answer's csrf_token goes in X-CSRF-Token on every change. Errors are {\"error\": CODE, \"message\": TEXT}.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": "gatewarden_session" },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token" },
            },
        },
    })
}

/// A schema's name for the reference: the type it refers to, or what it is.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => format!("list of {}", schema.get("items").map(schema_name).unwrap_or_default()),
        Some(t) => t.to_string(),
        None => "JSON".into(),
    }
}

fn shape_of(content: Option<&Value>) -> String {
    let Some(Value::Object(content)) = content else { return "—".into() };
    content
        .iter()
        .map(|(media, c)| match c.get("schema") {
            Some(s) if media == "application/json" => {
                // An inline schema of a named type carries its title.
                s.get("title").and_then(Value::as_str).map(String::from).unwrap_or_else(|| schema_name(s))
            }
            _ => media.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /api/v1/reference`: the document as a page people read (no script).
pub fn reference_page(document: &Value) -> String {
    let mut rows = String::new();
    if let Some(Value::Object(paths)) = document.get("paths") {
        for (path, item) in paths {
            let Value::Object(ops) = item else { continue };
            for (method, op) in ops {
                let params: Vec<String> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "query")
                            .filter_map(|p| p["name"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let answer = op["responses"]
                    .as_object()
                    .and_then(|r| r.iter().find(|(k, _)| k.starts_with('2')))
                    .map(|(status, r)| format!("{status} {}", shape_of(r.get("content"))))
                    .unwrap_or_default();
                rows.push_str(&format!(
                    "<tr><td><code>{}</code></td><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&method.to_uppercase()),
                    escape(path),
                    if params.is_empty() { String::new() } else { format!("<br><small>?{}</small>", escape(&params.join("&"))) },
                    escape(op["summary"].as_str().unwrap_or("")),
                    escape(op["description"].as_str().unwrap_or("")),
                    escape(&shape_of(op.pointer("/requestBody/content"))),
                    escape(&answer),
                ));
            }
        }
    }
    let main = format!(
        "<h1>API reference</h1><p>{}</p><p>The machine-readable document: \
         <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> (OpenAPI 3.1). Refusals answer 4xx with \
         <code>{{\"error\", \"message\"}}</code>.</p><table class=\"grid\" data-testid=\"api-reference\"><thead>\
         <tr><th>method</th><th>path</th><th>what</th><th>who</th><th>takes</th><th>answers</th></tr></thead>\
         <tbody>{rows}</tbody></table>",
        escape(document.pointer("/info/description").and_then(Value::as_str).unwrap_or("")),
    );
    super::pages::plain_page("API reference", "", "page", &main)
}
