//! The OpenAPI document at `/admin/v1/openapi.json` is a valid OpenAPI 3 document and matches
//! the implementation both ways: every documented operation is routed (and answers with a
//! documented status), every route SPEC §4 requires for apps, clients and keys is documented,
//! and every documented error is a problem document.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{ADMIN_TOKEN, Backend, TestApp};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// What SPEC §4 requires for signup policies (checked for documentation; the sweep only sees
/// that they answer without a 5xx, as it has no user or invitation to name).
const REQUIRED_POLICY: &[(&str, &str)] =
    &[("post", "/admin/v1/apps/{slug}/invitations"), ("post", "/admin/v1/apps/{slug}/users/{id}/approve")];

/// What SPEC §4 requires for apps, clients and keys.
const REQUIRED: [(&str, &str); 15] = [
    ("post", "/admin/v1/apps"),
    ("get", "/admin/v1/apps"),
    ("get", "/admin/v1/apps/{slug}"),
    ("patch", "/admin/v1/apps/{slug}"),
    ("delete", "/admin/v1/apps/{slug}"),
    ("post", "/admin/v1/apps/{slug}/enable"),
    ("post", "/admin/v1/apps/{slug}/disable"),
    ("post", "/admin/v1/apps/{slug}/clients"),
    ("get", "/admin/v1/apps/{slug}/clients"),
    ("get", "/admin/v1/apps/{slug}/clients/{client_id}"),
    ("patch", "/admin/v1/apps/{slug}/clients/{client_id}"),
    ("delete", "/admin/v1/apps/{slug}/clients/{client_id}"),
    ("post", "/admin/v1/apps/{slug}/clients/{client_id}/secret"),
    ("get", "/admin/v1/apps/{slug}/keys"),
    ("post", "/admin/v1/apps/{slug}/keys/rotate"),
];

/// The document as served, without credentials.
async fn fetch_doc(app: &TestApp) -> Value {
    let res = app.http.get(format!("{}/admin/v1/openapi.json", app.base)).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    res.json().await.expect("the document is JSON")
}

/// Every (method, path, operation) in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("path item is an object") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` anywhere under `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

async fn document_is_valid_openapi(backend: Backend) {
    let app = TestApp::start(backend).await;
    let doc = fetch_doc(&app).await;

    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "openapi: {}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string(), "info: {}", doc["info"]);
    let scheme = &doc["components"]["securitySchemes"]["admin_token"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert!(scheme["scheme"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("bearer")), "{scheme}");
    // The admin token is required everywhere (globally, as operations do not override it).
    assert!(
        doc["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("admin_token").is_some())),
        "security: {}",
        doc["security"]
    );

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }

    // The problem schema has the RFC 9457 members and the stable `code`.
    let problem = &doc["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(problem["properties"].get(field).is_some(), "Problem lacks {field}: {problem}");
    }

    let ops = operations(&doc);
    assert!(!ops.is_empty(), "no operations");
    let mut seen_ids = BTreeSet::new();
    for (method, path, op) in &ops {
        assert!(path.starts_with("/admin/v1/"), "{path}");
        if let Some(security) = op.get("security") {
            let ok = security.as_array().is_some_and(|s| s.iter().any(|r| r.get("admin_token").is_some()));
            assert!(ok, "{method} {path} overrides security: {security}");
        }
        if let Some(id) = op["operationId"].as_str() {
            assert!(seen_ids.insert(id.to_string()), "operationId {id} used twice");
        }
        // Path parameters are exactly the template's, and required (OpenAPI 3.1 §4.8.12.1);
        // everything else is a query parameter.
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| s.trim_start_matches('{').trim_end_matches('}'))
            .collect();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let mut declared = BTreeSet::new();
        for p in &params {
            let name = p["name"].as_str().expect("parameter name");
            match p["in"].as_str() {
                Some("path") => {
                    assert!(in_template.contains(name), "{method} {path}: {name} is not in the path");
                    assert_eq!(p["required"], true, "{method} {path}: path parameter {name} not required");
                    declared.insert(name);
                }
                Some("query" | "header" | "cookie") => {}
                other => panic!("{method} {path}: parameter {name} in {other:?}"),
            }
        }
        assert_eq!(declared, in_template, "{method} {path}: path parameters");
        // At least one response, and each error response is a problem document.
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path} declares no response");
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} declares no success");
        for (status, response) in responses {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let response = match response.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(&doc, r).expect("response ref"),
                None => response,
            };
            let content = response["content"].as_object();
            assert!(content.is_some_and(|c| !c.is_empty()), "{method} {path} {status}: no content");
            for (media, body) in content.into_iter().flatten() {
                assert_eq!(
                    body["schema"]["$ref"], "#/components/schemas/Problem",
                    "{method} {path} {status} ({media}) is not a Problem"
                );
            }
        }
    }

    // Every route SPEC §4 requires for apps, clients, keys and (so far) invitations and
    // approvals is documented with that method.
    for (method, path) in REQUIRED.iter().chain(REQUIRED_POLICY) {
        assert!(
            doc["paths"][path].get(method).is_some(),
            "{} {path} is not documented",
            method.to_uppercase()
        );
    }
    app.stop().await;
}
both!(document_is_valid_openapi);

/// A body the operation accepts, with the content type the document gives for it.
fn body_for(method: &str, template: &str, op: &Value) -> Option<(String, Value)> {
    let content = op["requestBody"]["content"].as_object()?;
    let media = if content.contains_key("application/json") {
        "application/json".to_string()
    } else {
        content.keys().next().expect("a request body has a media type").clone()
    };
    let body = match (method, template) {
        ("post", "/admin/v1/apps") => json!({"slug": "oa-created", "display_name": "Created by the sweep"}),
        ("post", "/admin/v1/apps/{slug}/clients") => json!({
            "name": "Sweep", "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic", "scopes": ["api:read"]
        }),
        ("patch", "/admin/v1/apps/{slug}") => json!({"display_name": "Patched by the sweep"}),
        ("patch", "/admin/v1/apps/{slug}/clients/{client_id}") => json!({"name": "Patched"}),
        ("post", "/admin/v1/apps/{slug}/keys/rotate") => json!({"grace_seconds": 60}),
        _ => json!({}),
    };
    Some((media, body))
}

/// When the sweep runs an operation: destructive ones last, the app itself at the very end.
fn order(method: &str, template: &str) -> u8 {
    match method {
        "delete" if template == "/admin/v1/apps/{slug}" => 3,
        "delete" => 2,
        "post" if template.ends_with("/disable") => 1,
        _ => 0,
    }
}

/// Operations the sweep knows a valid request for, so it can expect a success.
fn known(method: &str, template: &str) -> bool {
    REQUIRED.iter().any(|(m, p)| *m == method && *p == template)
}

async fn every_documented_operation_is_routed(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("oa").await;
    let (client_id, _) = app.machine_client("oa").await;
    let doc = fetch_doc(&app).await;

    let mut ops = operations(&doc);
    ops.sort_by_key(|(m, p, _)| order(m, p));
    for (method, template, op) in &ops {
        let mut path = template.replace("{slug}", "oa").replace("{client_id}", &client_id);
        // Any other parameter (users, sessions, …): a well-formed id that names nothing.
        while let (Some(start), Some(end)) = (path.find('{'), path.find('}')) {
            path.replace_range(start..=end, "00000000-0000-7000-8000-000000000000");
        }
        // Documented query parameters are accepted (with a sample value where the schema allows).
        let query: Vec<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| {
                let types = &p["schema"]["type"];
                let has = |t: &str| types == t || types.as_array().is_some_and(|a| a.iter().any(|x| x == t));
                let name = p["name"].as_str()?;
                if has("integer") {
                    Some(format!("{name}=1"))
                } else if has("boolean") {
                    Some(format!("{name}=false"))
                } else {
                    None
                }
            })
            .collect();
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let url = format!("{}{path}", app.base);
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let body = body_for(method, template, op);
        let request = |auth: bool| {
            let mut req = app.http.request(m.clone(), &url);
            if auth {
                req = req.bearer_auth(ADMIN_TOKEN);
            }
            if let Some((media, b)) = &body {
                req = req.header("content-type", media.as_str()).body(b.to_string());
            }
            req
        };

        // The document says the admin token is required; the route agrees.
        let res = request(false).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {template} without a token");

        let res = request(true).send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template} is documented but not routed: {text}"
        );
        let route_missing = status == StatusCode::NOT_FOUND
            && v["code"] == "not_found"
            && v["detail"].as_str().is_some_and(|d| d.contains("route"));
        assert!(!route_missing, "{method} {template} is documented but not routed: {text}");
        assert!(!status.is_server_error(), "{method} {template}: {status} {text}");
        if known(method, template) {
            assert!(status.is_success(), "{method} {template} refused the sweep's request: {status} {text}");
        }
        if status.is_success() {
            let documented = op["responses"].get(status.as_str()).is_some();
            assert!(documented, "{method} {template} answered {status}, which it does not document");
        }
    }

    // Conversely, no documented path takes a method the document does not list (the sweep
    // deleted "oa"; a fresh app for this).
    app.active_app("ob").await;
    let (client_id, _) = app.machine_client("ob").await;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let documented: BTreeSet<String> = item
            .as_object()
            .expect("item")
            .keys()
            .filter(|k| METHODS.contains(&k.as_str()))
            .cloned()
            .collect();
        let url = format!("{}{}", app.base, path.replace("{slug}", "ob").replace("{client_id}", &client_id));
        for method in ["put", "patch", "delete", "post", "get"] {
            if documented.contains(method) {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let res = app.http.request(m, &url).bearer_auth(ADMIN_TOKEN).send().await.expect("request");
            assert_eq!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed but not documented"
            );
            let allow: BTreeSet<String> = res
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty() && s != "head")
                .collect();
            assert_eq!(allow, documented, "Allow of {path} differs from the document");
        }
    }

    // Documented bounds of integer query parameters are the implemented ones (read-only routes).
    let mut bounds_checked = 0;
    let (s, org) = app
        .admin(Method::POST, "/apps/ob/organizations", Some(serde_json::json!({"slug": "o", "name": "O"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    let org_id = org["id"].as_str().expect("id").to_string();
    for (method, template, op) in operations(&doc).iter().filter(|(m, _, _)| m == "get") {
        let path = template
            .replace("{slug}", "ob")
            .replace("{client_id}", &client_id)
            .replace("/organizations/{id}", &format!("/organizations/{org_id}"));
        for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().expect("name");
            let schema = &p["schema"];
            for (bound, step) in [("minimum", -1), ("maximum", 1)] {
                let Some(b) = schema[bound].as_i64() else { continue };
                for (value, ok) in [(b, true), (b + step, false)] {
                    let url = format!("{}{path}?{name}={value}", app.base);
                    let res = app.http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.expect("request");
                    let status = res.status();
                    assert_eq!(
                        status.is_success(),
                        ok,
                        "{method} {template}: {name}={value} answered {status} but the document's {bound} is {b}"
                    );
                    assert!(!status.is_server_error(), "{name}={value}: {status}");
                    bounds_checked += 1;
                }
            }
        }
    }
    assert!(bounds_checked >= 4, "the list routes document no bounds for `limit`");
    app.stop().await;
}
both!(every_documented_operation_is_routed);
