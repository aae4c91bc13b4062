//! A fake upstream identity provider on loopback, for the sign-in flows of SPEC §7a: one server
//! that plays an OpenID Connect provider (Google, Microsoft, Apple and generic kinds: discovery,
//! `/authorize`, `/token`, JWKS) and GitHub (`/login/oauth/*`, `/user`, `/user/emails`). It
//! checks what a real one checks (redirect URI, PKCE S256, client authentication, Apple's
//! client-secret JWT against the app's public key) and can be told to misbehave.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Who the fake says signed in.
#[derive(Clone)]
pub struct Person {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: Value,
    /// More ID-token claims (`name`, `given_name`, …).
    pub claims: Value,
}

impl Person {
    pub fn new(sub: &str, email: &str) -> Person {
        Person { sub: sub.into(), email: Some(email.into()), email_verified: json!(true), claims: json!({}) }
    }
}

/// How the fake misbehaves (all off by default).
#[derive(Clone, Default)]
pub struct Faults {
    pub wrong_aud: bool,
    pub wrong_iss: bool,
    pub expired: bool,
    pub bad_signature: bool,
    pub wrong_nonce: bool,
    /// Sign with a key the JWKS does not hold yet (until `rotate`).
    pub new_kid: bool,
    /// The user refuses consent at `/authorize`.
    pub deny: bool,
    /// `/token` answers with this status and no tokens.
    pub token_status: Option<u16>,
    /// `/token` answers garbage.
    pub token_garbage: bool,
    /// `/token` waits this long.
    pub token_delay: Duration,
    /// The ID token carries no end-user claims; `/userinfo` has them (as oidc-provider does).
    pub claims_at_userinfo: bool,
    /// `/userinfo` speaks of another subject.
    pub userinfo_other_sub: bool,
}

#[derive(Default)]
struct Inner {
    base: String,
    client_id: String,
    client_secret: String,
    /// Apple: the app's public key (JWK) that client-secret JWTs must verify with.
    apple_key: Option<Value>,
    person: Option<Person>,
    faults: Faults,
    /// Whether the JWKS holds the second key.
    rotated: bool,
    /// code → (nonce, code_challenge, redirect_uri)
    codes: HashMap<String, (String, String, String)>,
    /// access token → person (GitHub)
    access: HashMap<String, Person>,
    /// The last authorization request's query.
    last_authorize: HashMap<String, String>,
    /// Apple client secrets seen (claims), and client auth methods seen.
    apple_secrets: Vec<Value>,
    auth_methods: Vec<&'static str>,
    token_calls: usize,
    /// Apple: the `user` JSON posted back the first time only.
    apple_user_sent: bool,
}

#[derive(Clone)]
pub struct FakeUpstream {
    inner: Arc<Mutex<Inner>>,
    key1: Arc<(Vec<u8>, Value)>,
    key2: Arc<(Vec<u8>, Value)>,
    other: Arc<(Vec<u8>, Value)>,
}

/// An ES256 key pair: PKCS#8 DER and the public JWK with `kid`.
pub fn es256(kid: &str) -> (Vec<u8>, Value) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (pkcs8.as_ref().to_vec(), jwk)
}

/// PKCS#8 DER as PEM (`PRIVATE KEY`).
pub fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

fn sign(der: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(der)).expect("signs")
}

impl FakeUpstream {
    pub async fn start(client_id: &str, client_secret: &str) -> FakeUpstream {
        let fake = FakeUpstream {
            inner: Arc::new(Mutex::new(Inner {
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                ..Inner::default()
            })),
            key1: Arc::new(es256("fake-1")),
            key2: Arc::new(es256("fake-2")),
            other: Arc::new(es256("fake-1")),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .route("/userinfo", get(userinfo))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        fake.inner.lock().base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn base(&self) -> String {
        self.inner.lock().base.clone()
    }

    pub fn person(&self, p: Person) {
        self.inner.lock().person = Some(p);
    }

    pub fn faults(&self, f: Faults) {
        self.inner.lock().faults = f;
    }

    pub fn rotate(&self) {
        self.inner.lock().rotated = true;
    }

    pub fn apple_key(&self, jwk: Value) {
        self.inner.lock().apple_key = Some(jwk);
    }

    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.inner.lock().last_authorize.clone()
    }

    pub fn apple_secrets(&self) -> Vec<Value> {
        self.inner.lock().apple_secrets.clone()
    }

    pub fn auth_methods(&self) -> Vec<&'static str> {
        self.inner.lock().auth_methods.clone()
    }

    pub fn token_calls(&self) -> usize {
        self.inner.lock().token_calls
    }
}

async fn discovery(State(f): State<FakeUpstream>) -> Response {
    let base = f.base();
    axum::Json(json!({
        "issuer": base, "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"), "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
    .into_response()
}

async fn jwks(State(f): State<FakeUpstream>) -> Response {
    let mut keys = vec![f.key1.1.clone()];
    if f.inner.lock().rotated {
        keys.push(f.key2.1.clone());
    }
    ([("cache-control", "max-age=3600")], axum::Json(json!({ "keys": keys }))).into_response()
}

async fn authorize(State(f): State<FakeUpstream>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = f.inner.lock();
    inner.last_authorize = q.clone();
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    if q.get("client_id") != Some(&inner.client_id) || redirect.is_empty() {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let state = q.get("state").cloned().unwrap_or_default();
    let mut params: Vec<(String, String)> = vec![("state".into(), state)];
    if inner.faults.deny {
        params.push(("error".into(), "access_denied".into()));
    } else {
        let code = latchkey::crypto::tokens::random_b64(16);
        let nonce = q.get("nonce").cloned().unwrap_or_default();
        let challenge = q.get("code_challenge").cloned().unwrap_or_default();
        inner.codes.insert(code.clone(), (nonce, challenge, redirect.clone()));
        params.push(("code".into(), code));
    }
    if q.get("response_mode").map(String::as_str) == Some("form_post") {
        // Apple: the answer is a form the browser posts; the name comes only the first time.
        if !inner.apple_user_sent && !inner.faults.deny {
            inner.apple_user_sent = true;
            let user = json!({"name": {"firstName": "Ada", "lastName": "Lovelace"}});
            params.push(("user".into(), user.to_string()));
        }
        let fields: String = params
            .iter()
            .map(|(k, v)| {
                let v = v.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
                format!(r#"<input type="hidden" name="{k}" value="{v}">"#)
            })
            .collect();
        let page = format!(
            r#"<!doctype html><title>Apple</title><form method="post" action="{redirect}">{fields}<button type="submit" id="continue">Continue</button></form>"#
        );
        return Html(page).into_response();
    }
    let mut url = url::Url::parse(&redirect).expect("redirect uri");
    url.query_pairs_mut().extend_pairs(params.iter());
    Redirect::to(url.as_str()).into_response()
}

async fn token(State(f): State<FakeUpstream>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let faults = f.inner.lock().faults.clone();
    tokio::time::sleep(faults.token_delay).await;
    let mut inner = f.inner.lock();
    inner.token_calls += 1;
    if let Some(status) = faults.token_status {
        return (StatusCode::from_u16(status).expect("status"), "upstream trouble").into_response();
    }
    if faults.token_garbage {
        return (StatusCode::OK, "<html>not json</html>").into_response();
    }
    let refuse = |why: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": why}))).into_response();
    // Client authentication: Basic (form-encoded, RFC 6749 §2.3.1) or in the form; Apple's
    // secret is a JWT signed with the app's key.
    let (id, secret, method) = match headers.get("authorization").and_then(|h| h.to_str().ok()) {
        Some(h) if h.starts_with("Basic ") => {
            let raw = String::from_utf8(STANDARD.decode(&h[6..]).expect("b64")).expect("utf8");
            let (i, s) = raw.split_once(':').expect("colon");
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().expect("x").1.into_owned()
            };
            (dec(i), dec(s), "client_secret_basic")
        }
        _ => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
            "client_secret_post",
        ),
    };
    inner.auth_methods.push(method);
    if id != inner.client_id {
        return refuse("invalid_client");
    }
    if let Some(jwk) = inner.apple_key.clone() {
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            jwk["x"].as_str().expect("x"),
            jwk["y"].as_str().expect("y"),
        )
        .expect("key");
        let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        rules.set_audience(&[inner.base.clone()]);
        rules.set_issuer(&["TEAM123456"]);
        match jsonwebtoken::decode::<Value>(&secret, &key, &rules) {
            Ok(d) if d.claims["sub"] == inner.client_id.as_str() => inner.apple_secrets.push(d.claims),
            _ => return refuse("invalid_client"),
        }
    } else if secret != inner.client_secret {
        return refuse("invalid_client");
    }
    let Some((nonce, challenge, redirect)) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let s256 = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    if s256 != challenge || form.get("redirect_uri") != Some(&redirect) {
        return refuse("invalid_grant");
    }
    let person = inner.person.clone().expect("a person is set");
    let access = latchkey::crypto::tokens::random_b64(16);
    inner.access.insert(access.clone(), person.clone());
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": if faults.wrong_iss { "https://evil.example".to_string() } else { inner.base.clone() },
        "aud": if faults.wrong_aud { "someone-else".to_string() } else { inner.client_id.clone() },
        "sub": person.sub, "nonce": if faults.wrong_nonce { "not-yours".to_string() } else { nonce },
        "iat": now - if faults.expired { 7200 } else { 0 },
        "exp": now + if faults.expired { -3600 } else { 300 },
        "email_verified": person.email_verified,
    });
    if faults.claims_at_userinfo {
        claims.as_object_mut().expect("object").remove("email_verified");
    } else {
        if let Some(email) = &person.email {
            claims["email"] = json!(email);
        }
        if let Some(extra) = person.claims.as_object() {
            for (k, v) in extra {
                claims[k] = v.clone();
            }
        }
    }
    let id_token = if faults.bad_signature {
        sign(&f.other.0, "fake-1", &claims)
    } else if faults.new_kid {
        sign(&f.key2.0, "fake-2", &claims)
    } else {
        sign(&f.key1.0, "fake-1", &claims)
    };
    axum::Json(json!({"access_token": access, "token_type": "Bearer", "id_token": id_token})).into_response()
}

fn github_person(f: &FakeUpstream, headers: &HeaderMap) -> Option<Person> {
    let token = headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    f.inner.lock().access.get(token).cloned()
}

async fn github_user(State(f): State<FakeUpstream>, headers: HeaderMap) -> Response {
    let Some(p) = github_person(&f, &headers) else { return StatusCode::UNAUTHORIZED.into_response() };
    let id: u64 = p.sub.parse().expect("GitHub ids are numbers");
    axum::Json(json!({"id": id, "login": "octo-ada", "name": p.claims["name"]})).into_response()
}

async fn userinfo(State(f): State<FakeUpstream>, headers: HeaderMap) -> Response {
    let Some(p) = github_person(&f, &headers) else { return StatusCode::UNAUTHORIZED.into_response() };
    let other = f.inner.lock().faults.userinfo_other_sub;
    let mut info = json!({"sub": if other { "someone-else".to_string() } else { p.sub.clone() }, "email_verified": p.email_verified});
    if let Some(e) = p.email {
        info["email"] = json!(e);
    }
    if let Some(extra) = p.claims.as_object() {
        for (k, v) in extra {
            info[k] = v.clone();
        }
    }
    axum::Json(info).into_response()
}

async fn github_emails(State(f): State<FakeUpstream>, headers: HeaderMap) -> Response {
    let Some(p) = github_person(&f, &headers) else { return StatusCode::UNAUTHORIZED.into_response() };
    let verified = p.email_verified == json!(true);
    let mut list = vec![json!({"email": "old@elsewhere.example", "primary": false, "verified": true})];
    if let Some(e) = p.email {
        list.push(json!({"email": e, "primary": true, "verified": verified}));
    }
    axum::Json(list).into_response()
}
