//! The hostile-input matrix. Every malformed, unauthenticated or out-of-range request gets a
//! well-formed 4xx in its surface's error format: RFC 6749 JSON (`error`, `error_description`,
//! `Cache-Control: no-store`) on the OAuth endpoints, RFC 9457 problem details on the admin
//! API. Never a 5xx, never a partial write, never a secret echoed back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{ADMIN_TOKEN, Backend, TestApp};

/// One response, kept whole.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// Sends requests, refuses any 5xx, and keeps every response body to check for leaked secrets.
struct Probe<'a> {
    app: &'a TestApp,
    bodies: Vec<String>,
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// The three client-authenticated OAuth endpoints, each with an otherwise valid body.
const ENDPOINTS: [(&str, &str); 3] =
    [("token", "grant_type=client_credentials"), ("introspect", "token=abc"), ("revoke", "token=abc")];

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

impl<'a> Probe<'a> {
    fn new(app: &'a TestApp) -> Self {
        Probe { app, bodies: Vec::new() }
    }

    async fn send(
        &mut self,
        method: Method,
        url: String,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = self.app.http.request(method.clone(), &url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // The one 5xx allowed: a disabled app's issuer is `temporarily_unavailable`.
        let unavailable =
            status == StatusCode::SERVICE_UNAVAILABLE && json["error"] == "temporarily_unavailable";
        assert!(!status.is_server_error() || unavailable, "{method} {url} answered {status}: {text}");
        self.bodies.push(text.clone());
        Resp { status, headers, text, json }
    }

    /// Any request to an issuer endpoint.
    async fn oauth_raw(
        &mut self,
        method: Method,
        slug: &str,
        endpoint: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let url = format!("{}/{endpoint}", self.app.issuer(slug));
        self.send(method, url, headers, body).await
    }

    /// A form POST to an issuer endpoint with an optional `Authorization` header value.
    async fn form(
        &mut self,
        slug: &str,
        endpoint: &str,
        auth: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Resp {
        let mut headers = vec![("content-type", FORM)];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        self.oauth_raw(Method::POST, slug, endpoint, &headers, Some(body.into())).await
    }

    /// Any request to the admin API.
    async fn admin_raw(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut headers = Vec::new();
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let url = format!("{}/admin/v1{path}", self.app.base);
        self.send(method, url, &headers, body).await
    }

    /// An authenticated admin call with a JSON body (or none).
    async fn admin(&mut self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let token = bearer();
        match body {
            Some(b) => {
                let bytes = serde_json::to_vec(&b).expect("json");
                self.admin_raw(method, path, Some(&token), Some(JSON), Some(bytes)).await
            }
            None => self.admin_raw(method, path, Some(&token), None, None).await,
        }
    }

    /// Slugs of every app (one page of up to 200).
    async fn slugs(&mut self) -> Vec<String> {
        let r = self.admin(Method::GET, "/apps?limit=200", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["slug"].as_str().expect("slug").to_string())
            .collect()
    }

    /// The last response may show a secret (the one that creates it): leave it out of the check.
    fn exempt_last(&mut self) {
        self.bodies.pop();
    }

    /// No response seen so far carries the admin token or any of `secrets`.
    fn assert_no_leaks(&self, secrets: &[&str]) {
        assert!(self.bodies.len() > 1, "nothing was checked");
        for body in &self.bodies {
            assert!(!body.contains(ADMIN_TOKEN), "admin token leaked: {body}");
            for s in secrets {
                assert!(!body.contains(s), "client secret leaked: {body}");
            }
        }
    }
}

/// An RFC 6749 §5.2 error response, with an error code of `error` (any code when `None`).
#[track_caller]
fn oauth_error(r: &Resp, status: StatusCode, error: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.json["error"].is_string(), "no `error`: {}", r.text);
    if let Some(e) = error {
        assert_eq!(r.json["error"], e, "{}", r.text);
    }
    assert!(r.json["error_description"].is_string(), "no `error_description`: {}", r.text);
    assert!(r.header("content-type").starts_with("application/json"), "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), "no-store", "{:?}", r.headers);
    if status == StatusCode::UNAUTHORIZED {
        assert!(r.header("www-authenticate").starts_with("Basic"), "{:?}", r.headers);
    }
}

/// An RFC 9457 problem with one of `statuses` and, if given, that `code`.
#[track_caller]
fn problem_in(r: &Resp, statuses: &[StatusCode], code: Option<&str>) {
    assert!(statuses.contains(&r.status), "expected one of {statuses:?}, got {}: {}", r.status, r.text);
    assert!(r.header("content-type").starts_with("application/problem+json"), "{:?} {}", r.headers, r.text);
    for field in ["type", "title", "detail", "code"] {
        assert!(r.json[field].is_string(), "problem without {field}: {}", r.text);
    }
    assert_eq!(r.json["status"], r.status.as_u16(), "{}", r.text);
    if let Some(c) = code {
        assert_eq!(r.json["code"], c, "{}", r.text);
    }
}

#[track_caller]
fn problem(r: &Resp, status: StatusCode, code: Option<&str>) {
    problem_in(r, &[status], code);
}

// ---------------------------------------------------------------------------------------------
// OAuth endpoints

async fn oauth_unknown_and_disabled_app(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("off").await;
    let (id, secret) = app.machine_client("off").await;
    let auth = basic(&id, &secret);
    let mut p = Probe::new(&app);

    for (endpoint, body) in ENDPOINTS {
        let r = p.form("no-such-app", endpoint, Some(&auth), body).await;
        oauth_error(&r, StatusCode::NOT_FOUND, None);
    }

    app.service_token("off", &id, &secret).await;
    let r = p.admin(Method::POST, "/apps/off/disable", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    for (endpoint, body) in ENDPOINTS {
        let r = p.form("off", endpoint, Some(&auth), body).await;
        oauth_error(&r, StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable"));
    }
    for endpoint in [".well-known/openid-configuration", "jwks"] {
        let r = p.oauth_raw(Method::GET, "off", endpoint, &[], None).await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE].contains(&r.status),
            "{endpoint}: {} {}",
            r.status,
            r.text
        );
    }
    p.assert_no_leaks(&[&secret]);
    app.stop().await;
}
both!(oauth_unknown_and_disabled_app);

async fn oauth_client_authentication(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("ca").await;
    let (id, secret) = app.machine_client("ca").await;
    let access_token = app.service_token("ca", &id, &secret).await;
    let mut p = Probe::new(&app);
    let unauthorized = |r: &Resp| oauth_error(r, StatusCode::UNAUTHORIZED, Some("invalid_client"));

    for (endpoint, body) in ENDPOINTS {
        // Unknown client, wrong secret, no credentials at all.
        unauthorized(&p.form("ca", endpoint, Some(&basic("no-such-client", &secret)), body).await);
        unauthorized(&p.form("ca", endpoint, Some(&basic(&id, "lks_wrong-secret")), body).await);
        unauthorized(&p.form("ca", endpoint, Some(&basic(&id, "")), body).await);
        unauthorized(&p.form("ca", endpoint, None, body).await);
        // A secret without a client_id is no credential either.
        unauthorized(&p.form("ca", endpoint, None, format!("{body}&client_secret={secret}")).await);

        // Malformed Basic credentials: not base64, no colon, not UTF-8, nothing after the scheme.
        let no_colon = format!("Basic {}", STANDARD.encode(format!("{id}{secret}")));
        let not_utf8 = format!("Basic {}", STANDARD.encode(b"\xff\xfe:\xff"));
        for header in ["Basic !!!not-base64!!!", no_colon.as_str(), not_utf8.as_str(), "Basic", "Basic "] {
            let r = p.form("ca", endpoint, Some(header), body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{header}: {}", r.text);
            unauthorized(&r);
        }

        // Another scheme, even with a valid access token of this very client.
        unauthorized(&p.form("ca", endpoint, Some(&format!("Bearer {access_token}")), body).await);
        unauthorized(&p.form("ca", endpoint, Some(&format!("Digest username=\"{id}\"")), body).await);

        // Two authentication methods at once.
        let r = p
            .form(
                "ca",
                endpoint,
                Some(&basic(&id, &secret)),
                format!("{body}&client_id={id}&client_secret={secret}"),
            )
            .await;
        oauth_error(&r, StatusCode::BAD_REQUEST, Some("invalid_request"));

        // A form client_id that contradicts the Basic one; two Authorization headers.
        let r = p
            .form("ca", endpoint, Some(&basic(&id, &secret)), format!("{body}&client_id=someone-else"))
            .await;
        oauth_error(&r, StatusCode::BAD_REQUEST, Some("invalid_request"));
        let (good, bad) = (basic(&id, &secret), basic("no-such-client", "x"));
        let headers =
            [("content-type", FORM), ("authorization", good.as_str()), ("authorization", bad.as_str())];
        let r = p.oauth_raw(Method::POST, "ca", endpoint, &headers, Some(body.into())).await;
        assert!(r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(r.json["error"] == "invalid_request" || r.json["error"] == "invalid_client", "{}", r.text);
        // Not ASCII at all (obs-text bytes in the header value).
        let res = app
            .http
            .post(format!("{}/{endpoint}", app.issuer("ca")))
            .header("content-type", FORM)
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Basic \xe9\xe9").expect("obs-text"),
            )
            .body(body)
            .send()
            .await
            .expect("request");
        let status = res.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "non-ASCII: {status}"
        );

        // Registered for client_secret_basic: client_secret_post is refused, and so is `none`.
        unauthorized(
            &p.form("ca", endpoint, None, format!("{body}&client_id={id}&client_secret={secret}")).await,
        );
        unauthorized(&p.form("ca", endpoint, None, format!("{body}&client_id={id}")).await);
    }

    // The client still works after all that.
    app.service_token("ca", &id, &secret).await;
    p.assert_no_leaks(&[&secret]);
    app.stop().await;
}
both!(oauth_client_authentication);

async fn oauth_request_parameters(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rp").await;
    let (id, secret) = app.machine_client("rp").await;
    let auth = basic(&id, &secret);
    let mut p = Probe::new(&app);
    let bad_request = StatusCode::BAD_REQUEST;

    // 16 KiB exactly is still fine.
    let head = "grant_type=client_credentials&pad=";
    let r = p.form("rp", "token", Some(&auth), format!("{head}{}", "a".repeat(16 * 1024 - head.len()))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Too many parameters.
    let many: Vec<String> = (0..100).map(|i| format!("p{i}=x")).collect();
    let r =
        p.form("rp", "token", Some(&auth), format!("grant_type=client_credentials&{}", many.join("&"))).await;
    oauth_error(&r, bad_request, Some("invalid_request"));

    // grant_type missing, empty, repeated.
    for body in
        ["", "grant_type=", "scope=api:read", "grant_type=client_credentials&grant_type=client_credentials"]
    {
        let r = p.form("rp", "token", Some(&auth), body).await;
        oauth_error(&r, bad_request, Some("invalid_request"));
    }
    // Unsupported grants.
    for grant in ["password", "urn:foo", "urn%3Afoo", "CLIENT_CREDENTIALS", "implicit"] {
        let r = p.form("rp", "token", Some(&auth), format!("grant_type={grant}&username=a&password=b")).await;
        oauth_error(&r, bad_request, Some("unsupported_grant_type"));
    }
    // Scopes the client does not have, or that are not scope tokens at all.
    for scope in ["admin", "api:read+admin", "api:read%20admin", "%22quoted%22", "a%5Cb"] {
        let r =
            p.form("rp", "token", Some(&auth), format!("grant_type=client_credentials&scope={scope}")).await;
        oauth_error(&r, bad_request, Some("invalid_scope"));
    }

    for (endpoint, body) in ENDPOINTS {
        // Not a form body.
        let json_body = br#"{"grant_type":"client_credentials","token":"abc"}"#.to_vec();
        for ct in [Some(JSON), Some("text/plain"), Some("multipart/form-data; boundary=x"), None] {
            let mut headers = vec![("authorization", auth.as_str())];
            if let Some(ct) = ct {
                headers.push(("content-type", ct));
            }
            let r = p.oauth_raw(Method::POST, "rp", endpoint, &headers, Some(json_body.clone())).await;
            oauth_error(&r, bad_request, Some("invalid_request"));
        }
        // Larger than 16 KiB.
        let big = format!("{body}&pad={}", "a".repeat(17 * 1024));
        let r = p.form("rp", endpoint, Some(&auth), big).await;
        oauth_error(&r, StatusCode::PAYLOAD_TOO_LARGE, None);
        // Not UTF-8, percent-encoded or raw, in a value or in a name.
        for raw in
            [&b"grant_type=%ff%fe&token=%ff%fe"[..], b"grant_type=\xff&token=\xff", b"\xff=1&token=abc"]
        {
            let r = p.form("rp", endpoint, Some(&auth), raw.to_vec()).await;
            oauth_error(&r, bad_request, Some("invalid_request"));
        }
        // Wrong methods.
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let r = p.oauth_raw(method, "rp", endpoint, &[("authorization", &auth)], None).await;
            oauth_error(&r, StatusCode::METHOD_NOT_ALLOWED, None);
        }
    }

    // introspect and revoke need a token.
    for endpoint in ["introspect", "revoke"] {
        for body in ["", "token=", "token_type_hint=access_token"] {
            let r = p.form("rp", endpoint, Some(&auth), body).await;
            oauth_error(&r, bad_request, Some("invalid_request"));
        }
    }
    // Garbage tokens: inactive on introspection, 200 on revocation (RFC 7662 §2.2, RFC 7009 §2.2).
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "%00%01"] {
        let r = p.form("rp", "introspect", Some(&auth), format!("token={token}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["active"], false, "{}", r.text);
        let r =
            p.form("rp", "revoke", Some(&auth), format!("token={token}&token_type_hint=refresh_token")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    // Still serving.
    let token = app.service_token("rp", &id, &secret).await;
    assert_eq!(app.introspect("rp", &id, &secret, &token).await["active"], true);
    p.assert_no_leaks(&[&secret]);
    app.stop().await;
}
both!(oauth_request_parameters);

// ---------------------------------------------------------------------------------------------
// Admin API

async fn admin_authentication(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("authz").await;
    let mut p = Probe::new(&app);
    let new_app = serde_json::to_vec(&json!({"slug": "sneaky", "display_name": "Sneaky"})).expect("json");
    let basic_token = basic("admin", ADMIN_TOKEN);
    let raw_basic = format!("Basic {ADMIN_TOKEN}");
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    let headers: [Option<&str>; 8] = [
        None,
        Some("Bearer wrong-token"),
        Some(&wrong),
        Some("Bearer "),
        Some("Bearer"),
        Some(&basic_token),
        Some(&raw_basic),
        Some(ADMIN_TOKEN),
    ];
    let routes = [
        (Method::GET, "/apps"),
        (Method::POST, "/apps"),
        (Method::GET, "/apps/authz"),
        (Method::PATCH, "/apps/authz"),
        (Method::DELETE, "/apps/authz"),
        (Method::POST, "/apps/authz/disable"),
        (Method::POST, "/apps/authz/clients"),
        (Method::GET, "/apps/authz/keys"),
        (Method::POST, "/apps/authz/keys/rotate"),
    ];
    for (method, path) in &routes {
        for auth in headers {
            // Far apart in time, so the wrong-token throttle (hardening.rs) never answers 429.
            app.clock.advance(chrono::Duration::minutes(20));
            let body = (*method != Method::GET).then(|| new_app.clone());
            let r = p.admin_raw(method.clone(), path, auth, Some(JSON), body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} with {auth:?}: {}", r.text);
            problem(&r, StatusCode::UNAUTHORIZED, None);
            assert!(r.header("www-authenticate").starts_with("Bearer"), "{:?}", r.headers);
        }
    }
    // The token is only taken from the Authorization header.
    for path in [format!("/apps?access_token={ADMIN_TOKEN}"), format!("/apps?token={ADMIN_TOKEN}")] {
        let r = p.admin_raw(Method::GET, &path, None, None, None).await;
        problem(&r, StatusCode::UNAUTHORIZED, None);
    }
    // Nothing happened.
    assert_eq!(p.slugs().await, ["authz"]);
    assert_eq!(app.get_app("authz").await["status"], "active");
    let r = p.admin(Method::GET, "/apps/authz/clients", None).await;
    assert_eq!(r.json["items"], json!([]), "{}", r.text);
    p.assert_no_leaks(&[]);
    app.stop().await;
}
both!(admin_authentication);

async fn admin_request_bodies(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("bodies").await;
    let mut p = Probe::new(&app);
    let token = bearer();
    let auth = Some(token.as_str());

    for path in ["/apps", "/apps/bodies"] {
        let method = if path == "/apps" { Method::POST } else { Method::PATCH };
        // Not JSON at all.
        for body in [&b"{\"slug\": "[..], b"not json", b"", b"{\"slug\":\"ab\",}", b"{'slug':'ab'}"] {
            let r = p.admin_raw(method.clone(), path, auth, Some(JSON), Some(body.to_vec())).await;
            problem(&r, StatusCode::BAD_REQUEST, Some("malformed_request"));
        }
        // Deeply nested JSON (serde's recursion limit, not the stack).
        let deep = format!(
            "{{\"slug\":\"deep\",\"display_name\":\"x\",\"policy\":{}{}}}",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let r = p.admin_raw(method.clone(), path, auth, Some(JSON), Some(deep.into_bytes())).await;
        problem_in(&r, &[StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY], None);
        // Invalid UTF-8 inside a JSON string.
        let r = p
            .admin_raw(
                method.clone(),
                path,
                auth,
                Some(JSON),
                Some(b"{\"slug\":\"ab\xff\xfe\",\"display_name\":\"x\xc0\"}".to_vec()),
            )
            .await;
        problem_in(&r, &[StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY], None);
        // Not a JSON content type.
        for ct in [Some("text/plain"), Some(FORM), Some("application/xml"), None] {
            let body = br#"{"slug":"ct","display_name":"x"}"#.to_vec();
            let r = p.admin_raw(method.clone(), path, auth, ct, Some(body)).await;
            problem(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
        }
        // Larger than 64 KiB.
        let big =
            serde_json::to_vec(&json!({"slug": "big", "display_name": "x".repeat(70 * 1024)})).expect("json");
        let r = p.admin_raw(method.clone(), path, auth, Some(JSON), Some(big)).await;
        problem(&r, StatusCode::PAYLOAD_TOO_LARGE, None);
    }

    // 64 KiB exactly is still fine.
    let mut exact = br#"{"display_name": "App bodies"}"#.to_vec();
    exact.resize(64 * 1024, b' ');
    let r = p.admin_raw(Method::PATCH, "/apps/bodies", auth, Some(JSON), Some(exact)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Well-formed JSON of the wrong shape.
    for body in [
        json!({"slug": 5, "display_name": "x"}),
        json!({"slug": "ab", "display_name": ["x"]}),
        json!({"slug": "ab", "display_name": "x", "bogus": 1}),
        json!({"slug": "ab", "display_name": "x", "policy": {"password": {"min_len": 9}}}),
        json!({"slug": "ab"}),
        json!({"display_name": "x"}),
        json!({}),
        json!([]),
        json!("ab"),
        json!(null),
        json!({"slug": "ab", "display_name": "x", "policy": "strict"}),
        json!({"slug": "ab", "display_name": "x", "signing_alg": "none"}),
    ] {
        let r = p.admin(Method::POST, "/apps", Some(body.clone())).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }
    // The same for merge patches.
    for body in [
        json!([1]),
        json!("x"),
        json!({"display_name": 5}),
        json!({"bogus": 1}),
        json!({"policy": {"password": {"min_len": 9}}}),
        json!({"policy": {"signup_policy": "everyone"}}),
        json!({"tokens": {"access_token_ttl_seconds": -1}}),
    ] {
        let r = p.admin(Method::PATCH, "/apps/bodies", Some(body.clone())).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }
    // An optional body still has to be JSON when there is one.
    let r =
        p.admin_raw(Method::POST, "/apps/bodies/keys/rotate", auth, Some(JSON), Some(b"{".to_vec())).await;
    problem(&r, StatusCode::BAD_REQUEST, Some("malformed_request"));
    let r = p.admin(Method::POST, "/apps/bodies/keys/rotate", Some(json!({"grace_seconds": "soon"}))).await;
    problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));

    // No app was created and the existing one is unchanged.
    assert_eq!(p.slugs().await, ["bodies"]);
    let got = app.get_app("bodies").await;
    assert_eq!(got["display_name"], "App bodies");
    assert_eq!(got["policy"]["password"]["min_length"], 8);
    p.assert_no_leaks(&[]);
    app.stop().await;
}
both!(admin_request_bodies);

async fn admin_slugs_and_database_urls(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut p = Probe::new(&app);

    let long = "a".repeat(64);
    for slug in ["A", "a", "-x", "-ab", "a_b", long.as_str(), "ab/c", "", "Ab", "a b", "ä-b", "..", "ab%2F"]
    {
        let r = p.admin(Method::POST, "/apps", Some(json!({"slug": slug, "display_name": "Bad"}))).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }
    assert!(p.slugs().await.is_empty());

    // Duplicate slug: 409, and still exactly one app.
    let r = p.admin(Method::POST, "/apps", Some(json!({"slug": "dup", "display_name": "First"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = p.admin(Method::POST, "/apps", Some(json!({"slug": "dup", "display_name": "Second"}))).await;
    problem(&r, StatusCode::CONFLICT, Some("slug_taken"));
    // Also when the two creations race.
    let body = json!({"slug": "race", "display_name": "Race"});
    let results =
        futures::future::join_all((0..4).map(|_| app.admin(Method::POST, "/apps", Some(body.clone())))).await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{results:?}");
    for (s, v) in &results {
        assert!(
            *s == StatusCode::CREATED || (*s == StatusCode::CONFLICT && v["code"] == "slug_taken"),
            "{s} {v}"
        );
    }
    assert_eq!(p.slugs().await, ["dup", "race"]);
    assert_eq!(app.get_app("dup").await["display_name"], "First");

    // database_url must be PostgreSQL.
    for (i, url) in [
        "mysql://x",
        "not a url",
        "sqlite://x",
        "",
        "postgres",
        "http://db.example.com/x",
        "file:///etc/passwd",
    ]
    .iter()
    .enumerate()
    {
        let slug = format!("db-{i}");
        let r = p
            .admin(
                Method::POST,
                "/apps",
                Some(json!({"slug": slug, "display_name": "Db", "database_url": url})),
            )
            .await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
        let r = p.admin(Method::GET, &format!("/apps/{slug}"), None).await;
        problem(&r, StatusCode::NOT_FOUND, Some("not_found"));
    }
    // database_schema without database_url, or not a schema name.
    for body in [
        json!({"slug": "sch-a", "display_name": "S", "database_schema": "mine"}),
        json!({"slug": "sch-b", "display_name": "S", "database_url": "postgres://u@127.0.0.1:1/db",
               "database_schema": "x\"; DROP SCHEMA public; --"}),
    ] {
        let r = p.admin(Method::POST, "/apps", Some(body)).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }
    assert_eq!(p.slugs().await, ["dup", "race"]);

    // A PostgreSQL URL that does not work: refused at once, nothing created, no password echoed.
    let password = "pw-not-for-display";
    let url = format!("postgres://postgres:{password}@127.0.0.1:1/nothing");
    let r = p
        .admin(
            Method::POST,
            "/apps",
            Some(json!({"slug": "db-down", "display_name": "Down", "database_url": url})),
        )
        .await;
    problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    assert!(
        r.json["detail"].as_str().is_some_and(|d| d.starts_with("could not connect to database")),
        "{}",
        r.text
    );
    assert_eq!(p.slugs().await, ["dup", "race"]);
    p.assert_no_leaks(&[password, "127.0.0.1:1/nothing"]);
    app.stop().await;
}
both!(admin_slugs_and_database_urls);

async fn admin_settings_validation(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cfg").await;
    let mut p = Probe::new(&app);

    let bad: [(&str, Value); 10] = [
        ("policy", json!({"password": {"min_length": 7}})),
        ("policy", json!({"password": {"min_length": 100_000}})),
        ("policy", json!({"session": {"ttl_hours": 0}})),
        ("policy", json!({"allowed_email_domains": ["exa mple.com"]})),
        ("policy", json!({"required_profile_fields": ["shoe_size"]})),
        ("branding", json!({"brand_color": "red;}"})),
        ("branding", json!({"brand_color": "#fff;background:url(x)"})),
        ("branding", json!({"logo_url": "javascript:alert(1)"})),
        ("branding", json!({"logo_url": "http://evil.example/logo.png"})),
        ("smtp", json!({"url": "http://mail.example.com", "from": "a@example.com"})),
    ];
    for (i, (field, value)) in bad.iter().enumerate() {
        let slug = format!("bad-{i}");
        let mut body = json!({"slug": slug, "display_name": "Bad"});
        body[*field] = value.clone();
        let r = p.admin(Method::POST, "/apps", Some(body)).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
        let r = p.admin(Method::PATCH, "/apps/cfg", Some(json!({ *field: value }))).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }
    for patch in [
        json!({"slug": "renamed"}),
        json!({"status": "active"}),
        json!({"issuer": "https://evil.example"}),
        json!({"display_name": ""}),
        json!({"display_name": "a\u{0000}b"}),
        json!({"display_name": "x".repeat(101)}),
        json!({"tokens": {"access_token_ttl_seconds": 1}}),
    ] {
        let r = p.admin(Method::PATCH, "/apps/cfg", Some(patch)).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }

    // An SMTP password never comes back, not even in a refusal.
    let password = "smtp-pw-not-for-display";
    let smtp_url = format!("smtp://mailer:{password}@mail.example.com:587");
    let r = p
        .admin(Method::PATCH, "/apps/cfg", Some(json!({"smtp": {"url": smtp_url, "from": "not-an-address"}})))
        .await;
    problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    let body = json!({"slug": "mail", "display_name": "Mail", "smtp": {"url": smtp_url, "from": "no-reply@example.com"}});
    let r = p.admin(Method::POST, "/apps", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["smtp"]["url"], "smtp://mailer@mail.example.com:587", "{}", r.text);
    let r = p.admin(Method::PATCH, "/apps/mail", Some(json!({"smtp": {"from": "other@example.com"}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.admin(Method::PATCH, "/apps/mail", Some(json!({"smtp": {"reply_to": "bad address"}}))).await;
    problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    p.admin(Method::GET, "/apps/mail", None).await;
    assert_eq!(p.slugs().await, ["cfg", "mail"]);
    p.assert_no_leaks(&[password]);

    // Nothing else was created and nothing changed.
    let got = app.get_app("cfg").await;
    assert_eq!(got["slug"], "cfg");
    assert_eq!(got["display_name"], "App cfg");
    assert_eq!(got["policy"]["password"]["min_length"], 8);
    assert_eq!(got["policy"]["session"]["ttl_hours"], 168);
    assert_eq!(got["branding"], json!({"brand_color": null, "logo_url": null}));
    assert_eq!(got["smtp"], Value::Null);
    assert_eq!(got["tokens"]["access_token_ttl_seconds"], 900);
    p.assert_no_leaks(&[]);
    app.stop().await;
}
both!(admin_settings_validation);

async fn admin_unknown_resources_and_methods(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("known").await;
    let mut p = Probe::new(&app);
    let not_found = |r: &Resp| problem(r, StatusCode::NOT_FOUND, Some("not_found"));

    // Unknown app, on every route that names one.
    let client = json!({"name": "c", "grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "client_secret_basic"});
    for (method, path, body) in [
        (Method::GET, "/apps/nope", None),
        (Method::PATCH, "/apps/nope", Some(json!({"display_name": "x"}))),
        (Method::PATCH, "/apps/nope", Some(json!({}))),
        (Method::DELETE, "/apps/nope", None),
        (Method::DELETE, "/apps/nope?erase_data=true", None),
        (Method::POST, "/apps/nope/enable", None),
        (Method::POST, "/apps/nope/disable", None),
        (Method::GET, "/apps/nope/clients", None),
        (Method::POST, "/apps/nope/clients", Some(client.clone())),
        (Method::GET, "/apps/nope/clients/abc", None),
        (Method::GET, "/apps/nope/keys", None),
        (Method::POST, "/apps/nope/keys/rotate", None),
        (Method::GET, "/apps/NOPE", None),
        (Method::GET, "/apps/..%2Fknown", None),
    ] {
        not_found(&p.admin(method, path, body).await);
    }
    // Unknown client of a known app.
    for (method, path, body) in [
        (Method::GET, "/apps/known/clients/nope", None),
        (Method::PATCH, "/apps/known/clients/nope", Some(json!({"name": "x"}))),
        (Method::DELETE, "/apps/known/clients/nope", None),
        (Method::POST, "/apps/known/clients/nope/secret", None),
    ] {
        not_found(&p.admin(method, path, body).await);
    }
    // A client of another app is unknown here.
    app.active_app("other").await;
    let (other_id, other_secret) = app.machine_client("other").await;
    for (method, path) in [
        (Method::GET, format!("/apps/known/clients/{other_id}")),
        (Method::DELETE, format!("/apps/known/clients/{other_id}")),
        (Method::POST, format!("/apps/known/clients/{other_id}/secret")),
    ] {
        not_found(&p.admin(method, &path, None).await);
    }
    app.service_token("other", &other_id, &other_secret).await;

    // Unknown routes under /admin/v1 (and /admin).
    for path in ["/nope", "", "/", "/apps/known/bogus", "/apps/known/clients/x/y/z", "/APPS"] {
        not_found(&p.admin(Method::GET, path, None).await);
    }
    let r = p.send(Method::GET, format!("{}/admin/v2/apps", app.base), &[], None).await;
    problem(&r, StatusCode::NOT_FOUND, Some("not_found"));

    // Wrong methods.
    for (method, path) in [
        (Method::PUT, "/apps"),
        (Method::DELETE, "/apps"),
        (Method::PATCH, "/apps"),
        (Method::PUT, "/apps/known"),
        (Method::POST, "/apps/known"),
        (Method::GET, "/apps/known/enable"),
        (Method::DELETE, "/apps/known/disable"),
        (Method::PUT, "/apps/known/clients"),
        (Method::GET, "/apps/known/keys/rotate"),
        (Method::DELETE, "/apps/known/keys"),
    ] {
        let r = p.admin(method.clone(), path, None).await;
        problem(&r, StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"));
        assert!(!r.header("allow").is_empty(), "{method} {path}: no Allow header");
    }
    assert_eq!(p.slugs().await, ["known", "other"]);
    p.assert_no_leaks(&[&other_secret]);
    app.stop().await;
}
both!(admin_unknown_resources_and_methods);

async fn admin_client_registration(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("reg").await;
    let mut p = Probe::new(&app);
    let web = |redirect: &str| {
        json!({"name": "Web", "redirect_uris": [redirect], "grant_types": ["authorization_code"],
               "token_endpoint_auth_method": "client_secret_basic"})
    };
    let mut bad = vec![
        web("https://app.example.com/cb#fragment"),
        web("https://app.example.com/cb#"),
        web("http://example.com/cb"),
        web("javascript:alert(1)"),
        web("data:text/html,hi"),
        web("/relative/cb"),
        web("https://user:pw@app.example.com/cb"),
        web(""),
        json!({"name": "Svc", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
        json!({"name": "Svc", "grant_types": [], "token_endpoint_auth_method": "client_secret_basic"}),
        json!({"name": "Svc", "grant_types": ["password"], "token_endpoint_auth_method": "client_secret_basic"}),
        json!({"name": "Svc", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"name": "Svc", "grant_types": ["refresh_token"], "token_endpoint_auth_method": "client_secret_basic"}),
        json!({"name": "", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}),
        json!({"name": "Svc", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic",
               "scopes": ["a b"]}),
        json!({"name": "Svc", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic",
               "client_secret": "lks_chosen-by-me"}),
        json!({"name": "Web", "grant_types": ["authorization_code"], "token_endpoint_auth_method": "none"}),
    ];
    let mut post_logout = web("https://app.example.com/cb");
    post_logout["post_logout_redirect_uris"] = json!(["http://example.com/bye"]);
    bad.push(post_logout);
    for body in bad {
        let r = p.admin(Method::POST, "/apps/reg/clients", Some(body.clone())).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }

    // A confidential client cannot be patched into a public one, nor into anything invalid.
    let r = p.admin(Method::POST, "/apps/reg/clients", Some(web("https://app.example.com/cb"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["client_id"].as_str().expect("client_id").to_string();
    let secret = r.json["client_secret"].as_str().expect("client_secret").to_string();
    p.exempt_last();
    for patch in [
        json!({"token_endpoint_auth_method": "none"}),
        json!({"redirect_uris": ["https://app.example.com/cb#x"]}),
        json!({"redirect_uris": ["http://example.com/cb"]}),
        json!({"redirect_uris": []}),
        json!({"grant_types": []}),
        json!({"grant_types": null}),
        json!({"client_id": "mine"}),
        json!({"client_secret": "lks_mine"}),
        json!([1]),
    ] {
        let r = p.admin(Method::PATCH, &format!("/apps/reg/clients/{id}"), Some(patch.clone())).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"));
    }
    let r = p.admin(Method::GET, &format!("/apps/reg/clients/{id}"), None).await;
    assert_eq!(r.json["token_endpoint_auth_method"], "client_secret_basic", "{}", r.text);
    assert_eq!(r.json["redirect_uris"], json!(["https://app.example.com/cb"]), "{}", r.text);
    assert_eq!(r.json["grant_types"], json!(["authorization_code"]), "{}", r.text);

    // Exactly the one client exists.
    let r = p.admin(Method::GET, "/apps/reg/clients", None).await;
    let ids: Vec<&str> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [id.as_str()], "{}", r.text);
    p.assert_no_leaks(&[&secret]);
    app.stop().await;
}
both!(admin_client_registration);

async fn admin_list_parameters(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("pg").await;
    let (_, secret) = app.machine_client("pg").await;
    let mut p = Probe::new(&app);
    for list in ["/apps", "/apps/pg/clients"] {
        for query in [
            "limit=0",
            "limit=1000",
            "limit=201",
            "limit=-1",
            "limit=abc",
            "limit=1.5",
            "limit=99999999999999999999",
            "limit=1&limit=2",
            "bogus=1",
        ] {
            let r = p.admin(Method::GET, &format!("{list}?{query}"), None).await;
            problem_in(&r, &[StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY], None);
        }
        // The boundaries themselves are fine; any text is a position in a list ordered by name.
        for query in ["limit=1", "limit=200", "cursor=", "cursor=!!!", "cursor=%ff%fe"] {
            let r = p.admin(Method::GET, &format!("{list}?{query}"), None).await;
            assert_eq!(r.status, StatusCode::OK, "{list}?{query}: {}", r.text);
        }
    }
    // Lists ordered by id take an id (or nothing).
    for list in ["/apps/pg/users", "/apps/pg/invitations", "/apps/pg/audit"] {
        for query in ["cursor=!!!", "cursor=01a2", "cursor=1&cursor=2"] {
            let r = p.admin(Method::GET, &format!("{list}?{query}"), None).await;
            problem_in(&r, &[StatusCode::BAD_REQUEST], None);
        }
        let id = uuid::Uuid::now_v7();
        for query in ["cursor=".to_string(), format!("cursor={id}")] {
            let r = p.admin(Method::GET, &format!("{list}?{query}"), None).await;
            assert_eq!(r.status, StatusCode::OK, "{list}?{query}: {}", r.text);
        }
    }
    p.assert_no_leaks(&[&secret]);
    app.stop().await;
}
both!(admin_list_parameters);
