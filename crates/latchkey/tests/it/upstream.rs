//! Upstream discovery documents and key sets (SPEC §7a, issue 12 item 1) against a fake
//! upstream on loopback that can be told to misbehave: cached as `Cache-Control` says, keys
//! fetched again for an unknown `kid` (not more than every 30 s), bounded waits and sizes,
//! an issuer that is not the configured one refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use latchkey::clock::{Clock, OffsetClock};
use latchkey::upstream::{UpstreamError, Upstreams};
use parking_lot::Mutex;
use serde_json::json;

/// How the fake answers.
#[derive(Clone)]
struct Behaviour {
    /// The `issuer` its discovery document claims (None: its own URL).
    issuer: Option<String>,
    kids: Vec<&'static str>,
    /// A token endpoint other than the fake's own.
    token_endpoint: Option<String>,
    /// Real public keys, served besides the dummy ones for `kids`.
    keys: Vec<serde_json::Value>,
    cache_control: Option<&'static str>,
    status: u16,
    delay: Duration,
    padding: usize,
}

#[derive(Clone)]
struct Fake {
    base: Arc<Mutex<String>>,
    how: Arc<Mutex<Behaviour>>,
    discovery_hits: Arc<AtomicUsize>,
    jwks_hits: Arc<AtomicUsize>,
}

async fn answer(fake: &Fake, body: serde_json::Value) -> Response {
    let how = fake.how.lock().clone();
    tokio::time::sleep(how.delay).await;
    let status = axum::http::StatusCode::from_u16(how.status).expect("status");
    let mut body = body;
    if how.padding > 0 {
        body["padding"] = json!("x".repeat(how.padding));
    }
    let mut res = (status, axum::Json(body)).into_response();
    if let Some(cc) = how.cache_control {
        res.headers_mut().insert(header::CACHE_CONTROL, cc.parse().expect("header"));
    }
    res
}

async fn discovery(State(fake): State<Fake>) -> Response {
    fake.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let base = fake.base.lock().clone();
    let issuer = fake.how.lock().issuer.clone().unwrap_or_else(|| base.clone());
    let token_endpoint = fake.how.lock().token_endpoint.clone().unwrap_or_else(|| format!("{base}/token"));
    let doc = json!({
        "issuer": issuer, "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": token_endpoint, "jwks_uri": format!("{base}/jwks"),
    });
    answer(&fake, doc).await
}

async fn jwks(State(fake): State<Fake>) -> Response {
    fake.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let (kids, real) = {
        let how = fake.how.lock();
        (how.kids.clone(), how.keys.clone())
    };
    let mut keys: Vec<_> =
        kids.iter().map(|k| json!({"kty": "EC", "crv": "P-256", "kid": k, "x": "x", "y": "y"})).collect();
    keys.extend(real);
    answer(&fake, json!({ "keys": keys })).await
}

async fn start() -> Fake {
    let fake = Fake {
        base: Arc::new(Mutex::new(String::new())),
        how: Arc::new(Mutex::new(Behaviour {
            issuer: None,
            kids: vec!["k1"],
            keys: Vec::new(),
            token_endpoint: None,
            cache_control: Some("public, max-age=120"),
            status: 200,
            delay: Duration::ZERO,
            padding: 0,
        })),
        discovery_hits: Arc::new(AtomicUsize::new(0)),
        jwks_hits: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    *fake.base.lock() = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_keys_are_cached_and_refreshed() {
    let fake = start().await;
    let base = fake.base.lock().clone();
    let clock = Arc::new(OffsetClock::default());
    let up = Upstreams::new(clock.clone(), Duration::from_secs(2)).expect("client");

    let meta = up.metadata(&base).await.expect("discovery");
    assert_eq!(meta.token_endpoint, format!("{base}/token"));
    up.metadata(&format!("{base}/")).await.expect("a trailing slash is the same issuer");
    up.metadata(&base).await.expect("cached");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 1, "max-age=120 is honoured");
    clock.advance(chrono::Duration::seconds(121));
    up.metadata(&base).await.expect("refetched");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 2);

    // Keys: cached; an unknown kid refetches once the set is 30 s old, finding a rotated key.
    let jwks_uri = meta.jwks_uri.clone();
    assert_eq!(up.key(&jwks_uri, "k1").await.expect("k1")["kid"], "k1");
    up.key(&jwks_uri, "k1").await.expect("cached");
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 1);
    fake.how.lock().kids = vec!["k1", "k2"];
    assert!(
        matches!(up.key(&jwks_uri, "k2").await, Err(UpstreamError::UnknownKey { .. })),
        "too soon to refetch"
    );
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 1, "a made-up kid does not make every request a fetch");
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(up.key(&jwks_uri, "k2").await.expect("rotated key")["kid"], "k2");
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 2);
    clock.advance(chrono::Duration::seconds(31));
    assert!(matches!(up.key(&jwks_uri, "nope").await, Err(UpstreamError::UnknownKey { .. })));
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 3);

    // A silly max-age is raised to a minute.
    fake.how.lock().cache_control = Some("max-age=0");
    clock.advance(chrono::Duration::seconds(121));
    up.metadata(&base).await.expect("refetched");
    up.metadata(&base).await.expect("cached for the minimum");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 3);
    clock.advance(chrono::Duration::seconds(61));
    up.metadata(&base).await.expect("refetched");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 4);
    // Without Cache-Control: an hour.
    fake.how.lock().cache_control = None;
    clock.advance(chrono::Duration::seconds(61));
    up.metadata(&base).await.expect("refetched");
    clock.advance(chrono::Duration::minutes(59));
    up.metadata(&base).await.expect("cached");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 5);
    clock.advance(chrono::Duration::minutes(2));
    up.metadata(&base).await.expect("refetched after the hour");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_upstream_is_an_error_in_bounded_time() {
    let fake = start().await;
    let base = fake.base.lock().clone();
    let clock = Arc::new(OffsetClock::default());
    let up = Upstreams::new(clock.clone(), Duration::from_secs(1)).expect("client");

    fake.how.lock().issuer = Some("https://evil.example".into());
    let e = up.metadata(&base).await.expect_err("another issuer");
    assert!(matches!(e, UpstreamError::Invalid { .. }) && e.to_string().contains("evil.example"), "{e}");
    fake.how.lock().issuer = None;

    fake.how.lock().token_endpoint = Some("http://token.example/token".into());
    let e = up.metadata(&base).await.expect_err("an http endpoint elsewhere");
    assert!(e.to_string().contains("token_endpoint"), "{e}");
    fake.how.lock().token_endpoint = None;

    fake.how.lock().status = 500;
    assert!(matches!(up.metadata(&base).await, Err(UpstreamError::Status { status: 500, .. })));
    fake.how.lock().status = 200;

    fake.how.lock().padding = 300 * 1024;
    assert!(matches!(up.metadata(&base).await, Err(UpstreamError::Invalid { .. })), "oversized");
    fake.how.lock().padding = 0;

    fake.how.lock().delay = Duration::from_secs(5);
    let started = Instant::now();
    assert!(matches!(up.metadata(&base).await, Err(UpstreamError::Unreachable { .. })));
    assert!(started.elapsed() < Duration::from_secs(3), "bounded: {:?}", started.elapsed());
    fake.how.lock().delay = Duration::ZERO;

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    assert!(matches!(up.metadata(&closed).await, Err(UpstreamError::Unreachable { .. })));
    // Nothing bad was cached: the upstream, behaving again, is used.
    assert!(up.metadata(&base).await.is_ok());
}

/// An ES256 key pair: the PKCS#8 DER (for jsonwebtoken) and its public JWK with `kid`.
fn es256(kid: &str) -> (Vec<u8>, serde_json::Value) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new())
            .expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    (pkcs8.as_ref().to_vec(), jwk)
}

/// A token signed by jsonwebtoken (not Latchkey's own signing code).
fn sign_es256(pkcs8: &[u8], kid: &str, claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8)).expect("signs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_id_tokens_are_verified() {
    use latchkey::upstream::Expected;
    let fake = start().await;
    let base = fake.base.lock().clone();
    let (key1, jwk1) = es256("e1");
    let rsa = latchkey::keys::material::generate(latchkey::keys::SigningAlg::RS256).expect("rsa");
    let rsa_jwk = latchkey::keys::published_jwk(&rsa.public_jwk, "r1", latchkey::keys::SigningAlg::RS256);
    fake.how.lock().keys = vec![jwk1, rsa_jwk];
    let clock = Arc::new(OffsetClock::default());
    let up = Upstreams::new(clock.clone(), Duration::from_secs(2)).expect("client");
    let meta = up.metadata(&base).await.expect("discovery");
    let now = Clock::now(&*clock);
    let t = now.timestamp();
    let claims = |extra: serde_json::Value| {
        let mut c =
            json!({"iss": base, "aud": "our-client", "sub": "u-1", "nonce": "n-1", "iat": t, "exp": t + 300});
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let expected = Expected { client_id: "our-client", nonce: "n-1", now };

    let ok = up.verify_id_token(&meta, &sign_es256(&key1, "e1", &claims(json!({}))), &expected).await;
    assert_eq!(ok.expect("valid ES256")["sub"], "u-1");
    let signer = latchkey::keys::Signer::from_pkcs8("r1", latchkey::keys::SigningAlg::RS256, &rsa.pkcs8)
        .expect("signer");
    let rs = signer.sign("JWT", &claims(json!({"iat": null, "exp": null})), t, t + 300).expect("signs");
    up.verify_id_token(&meta, &rs, &expected).await.expect("valid RS256");
    let several = claims(json!({"aud": ["other", "our-client"], "azp": "our-client"}));
    up.verify_id_token(&meta, &sign_es256(&key1, "e1", &several), &expected).await.expect("azp names us");
    let late = claims(json!({"exp": t - 30}));
    up.verify_id_token(&meta, &sign_es256(&key1, "e1", &late), &expected).await.expect("within the leeway");

    for (why, c) in [
        ("wrong aud", claims(json!({"aud": "someone-else"}))),
        ("several audiences without azp", claims(json!({"aud": ["other", "our-client"]}))),
        ("azp of another client", claims(json!({"azp": "other"}))),
        ("wrong iss", claims(json!({"iss": "https://evil.example"}))),
        ("expired", claims(json!({"exp": t - 120}))),
        ("no exp", claims(json!({"exp": null}))),
        ("from the future", claims(json!({"iat": t + 600}))),
        ("wrong nonce", claims(json!({"nonce": "n-2"}))),
        ("no nonce", claims(json!({"nonce": null}))),
        ("no sub", claims(json!({"sub": ""}))),
    ] {
        let r = up.verify_id_token(&meta, &sign_es256(&key1, "e1", &c), &expected).await;
        assert!(matches!(r, Err(UpstreamError::Token(_))), "{why}: {r:?}");
    }
    // Forged: another key under the same kid, a tampered payload, alg none, a MAC.
    let (other_key, _) = es256("e1");
    let forged = sign_es256(&other_key, "e1", &claims(json!({})));
    assert!(matches!(up.verify_id_token(&meta, &forged, &expected).await, Err(UpstreamError::Token(_))));
    let good = sign_es256(&key1, "e1", &claims(json!({})));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        claims(json!({"sub": "admin"})).to_string(),
    );
    assert!(up.verify_id_token(&meta, &parts.join("."), &expected).await.is_err(), "tampered");
    let b64 = |v: serde_json::Value| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string())
    };
    let none = format!("{}.{}.", b64(json!({"alg": "none", "kid": "e1"})), b64(claims(json!({}))));
    assert!(up.verify_id_token(&meta, &none, &expected).await.is_err(), "alg none");
    let mac = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("e1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"public-key-as-secret"),
    )
    .expect("mac");
    assert!(up.verify_id_token(&meta, &mac, &expected).await.is_err(), "HS256");
    // A properly signed ES256 token naming an RSA key that carries no `alg`: the key's type
    // decides, and it does not verify ES256.
    let unmarked = {
        let mut jwk =
            latchkey::keys::published_jwk(&rsa.public_jwk, "r-noalg", latchkey::keys::SigningAlg::RS256);
        jwk.as_object_mut().expect("jwk").remove("alg");
        jwk
    };
    fake.how.lock().keys.push(unmarked);
    clock.advance(chrono::Duration::seconds(31));
    let expected = Expected { client_id: "our-client", nonce: "n-1", now: Clock::now(&*clock) };
    let confused = sign_es256(&key1, "r-noalg", &claims(json!({})));
    let r = up.verify_id_token(&meta, &confused, &expected).await;
    assert!(matches!(r, Err(UpstreamError::Token(_))), "an RSA key cannot check ES256: {r:?}");

    // A key the upstream rotated in: found after a refetch.
    let (key2, jwk2) = es256("e2");
    fake.how.lock().keys.push(jwk2);
    clock.advance(chrono::Duration::seconds(31));
    let expected = Expected { client_id: "our-client", nonce: "n-1", now: Clock::now(&*clock) };
    let t2 = Clock::now(&*clock).timestamp();
    let rotated = sign_es256(&key2, "e2", &claims(json!({"iat": t2, "exp": t2 + 300})));
    up.verify_id_token(&meta, &rotated, &expected).await.expect("rotated key");

    // Microsoft multi-tenant: the issuer is the template filled with the token's own tenant.
    let ms = latchkey::upstream::Metadata {
        issuer: "https://login.microsoftonline.com/{tenantid}/v2.0".into(),
        ..(*meta).clone()
    };
    let tenant_iss = "https://login.microsoftonline.com/9188040d/v2.0";
    let c = claims(json!({"iss": tenant_iss, "tid": "9188040d", "iat": t2, "exp": t2 + 300}));
    up.verify_id_token(&ms, &sign_es256(&key2, "e2", &c), &expected).await.expect("tenant issuer");
    let c = claims(json!({"iss": tenant_iss, "tid": "other", "iat": t2, "exp": t2 + 300}));
    assert!(up.verify_id_token(&ms, &sign_es256(&key2, "e2", &c), &expected).await.is_err(), "tid mismatch");
}

/// A fake token endpoint and GitHub API that record what they were sent.
#[derive(Clone, Default)]
struct Seen {
    form: Arc<Mutex<Vec<(String, String)>>>,
    authorization: Arc<Mutex<Option<String>>>,
}

async fn start_backchannel() -> (String, Seen) {
    use axum::extract::Form;
    use axum::http::HeaderMap;
    let seen = Seen::default();
    let token = |State(seen): State<Seen>, headers: HeaderMap, Form(form): Form<Vec<(String, String)>>| async move {
        *seen.authorization.lock() =
            headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let code = form.iter().find(|(k, _)| k == "code").map(|(_, v)| v.clone()).unwrap_or_default();
        *seen.form.lock() = form;
        match code.as_str() {
            "good" => {
                axum::Json(json!({"access_token": "at-1", "id_token": "h.p.s", "token_type": "Bearer"}))
                    .into_response()
            }
            "github-style-error" => {
                axum::Json(json!({"error": "bad_verification_code", "error_description": "code good?"}))
                    .into_response()
            }
            "garbage" => "<html>oops</html>".into_response(),
            _ => (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"})))
                .into_response(),
        }
    };
    let user = |headers: HeaderMap| async move {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer gh-token") {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        axum::Json(json!({"id": 583231, "login": "octocat", "name": "The Octocat"})).into_response()
    };
    let emails = || async {
        axum::Json(json!([
            {"email": "octo@old.example", "primary": false, "verified": true},
            {"email": "octocat@github.example", "primary": true, "verified": true},
        ]))
    };
    let app = Router::new()
        .route("/token", axum::routing::post(token))
        .route("/api/user", get(user))
        .route("/api/user/emails", get(emails))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_exchange_github_and_apple_secrets() {
    use latchkey::upstream::exchange::{ClientAuth, CodeExchange};
    let (base, seen) = start_backchannel().await;
    let clock = Arc::new(OffsetClock::default());
    let up = Upstreams::new(clock.clone(), Duration::from_secs(2)).expect("client");
    let secret = secrecy::SecretString::from("s3cr:et/+".to_string());
    let endpoint = format!("{base}/token");
    let x = |code: &'static str, auth: ClientAuth| CodeExchange {
        token_endpoint: &endpoint,
        client_id: "client id",
        client_secret: &secret,
        auth,
        code,
        redirect_uri: "https://idp.example/apps/a/oauth/oidc/callback",
        code_verifier: Some("verifier-123"),
    };

    let tokens = up.exchange(&x("good", ClientAuth::Basic)).await.expect("exchanged");
    assert_eq!(tokens.id_token.as_deref(), Some("h.p.s"));
    // RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
    let basic = seen.authorization.lock().clone().expect("basic");
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        basic.trim_start_matches("Basic "),
    )
    .expect("b64");
    assert_eq!(String::from_utf8(decoded).expect("utf8"), "client+id:s3cr%3Aet%2F%2B");
    let form = seen.form.lock().clone();
    for pair in [("grant_type", "authorization_code"), ("code_verifier", "verifier-123"), ("code", "good")] {
        assert!(form.iter().any(|(k, v)| (k.as_str(), v.as_str()) == pair), "{pair:?} in {form:?}");
    }
    assert!(!form.iter().any(|(k, _)| k == "client_secret"), "Basic keeps the secret out of the form");
    up.exchange(&x("good", ClientAuth::Post)).await.expect("exchanged");
    assert!(seen.form.lock().iter().any(|(k, v)| k == "client_secret" && v == "s3cr:et/+"));
    assert!(seen.authorization.lock().is_none());

    for (code, what) in
        [("bad", "a 400"), ("github-style-error", "an error with 200"), ("garbage", "not JSON")]
    {
        let e =
            up.exchange(&x(code, ClientAuth::Post)).await.err().unwrap_or_else(|| panic!("{what} accepted"));
        assert!(!e.to_string().contains("good?"), "the upstream's description is not repeated: {e}");
    }

    let user = up.github_user(&format!("{base}/api/"), "gh-token").await.expect("github user");
    assert_eq!((user.id, user.login.as_str()), (583231, "octocat"));
    assert_eq!(
        user.verified_email.as_deref(),
        Some("octocat@github.example"),
        "the verified primary address"
    );
    assert!(matches!(
        up.github_user(&format!("{base}/api"), "wrong").await,
        Err(UpstreamError::Status { status: 401, .. })
    ));

    // Apple's client secret: an ES256 JWT from the app's key, checked with its public key.
    let (pkcs8, jwk) = es256("KEY1234567");
    let pem = {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pkcs8);
        let lines: Vec<&str> =
            b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
        format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
    };
    let now = Clock::now(&*clock);
    let jwt = latchkey::upstream::apple::client_secret(
        &pem,
        "TEAM123456",
        "KEY1234567",
        "com.example.web",
        "https://appleid.apple.com",
        now,
    )
    .expect("client secret");
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y"),
    )
    .expect("key");
    let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    rules.set_audience(&["https://appleid.apple.com"]);
    rules.set_issuer(&["TEAM123456"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &rules).expect("verifies");
    assert_eq!(data.header.kid.as_deref(), Some("KEY1234567"));
    assert_eq!(data.claims["sub"], "com.example.web");
    assert!(data.claims["exp"].as_i64().expect("exp") - now.timestamp() <= 300);
    assert!(latchkey::upstream::apple::client_secret("nope", "T", "K", "c", "a", now).is_err());
}
