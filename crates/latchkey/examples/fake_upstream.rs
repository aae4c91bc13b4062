//! A fake upstream OpenID provider for the "upstream sign-in" phase of `scripts/bench.sh`: just
//! enough of one for Latchkey's `/oauth/oidc/start` → upstream → `/oauth/oidc/callback` round
//! trip, and cheap enough to share the load generator's core.
//!
//! ```text
//! cargo build --release -p latchkey --example fake_upstream
//! taskset -c 1 $CARGO_TARGET_DIR/release/examples/fake_upstream 127.0.0.1:8095 \
//!     [--client-id bench-rp] [--client-secret bench-secret-0123456789]
//! ```
//!
//! Prints `listening http://ADDR` once bound, then serves:
//! - `/.well-known/openid-configuration` and `/jwks` (one ES256 P-256 key made at start), both
//!   `Cache-Control: max-age=3600`;
//! - `GET /authorize`: consents at once: remembers the code's nonce, PKCE challenge,
//!   redirect URI and `login_hint`, and answers 302 to `redirect_uri?code&state`;
//! - `POST /token`: `client_secret_basic` (form-encoded id and secret), the code (single use),
//!   PKCE S256 and the redirect URI checked; the ID token (ES256) says `sub` = `sub-` +
//!   `login_hint` (`sub-anon` without one) and `email` = the hint, verified.
//!
//! Not a real provider: no sessions, no consent, no TLS. Listen on loopback only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use parking_lot::Mutex;
use serde_json::{Value, json};

const KID: &str = "bench-1";
/// Codes never redeemed (failed flows) are forgotten all at once beyond this many.
const MAX_CODES: usize = 100_000;

/// A fake upstream OpenID provider for the benchmark (loopback only).
#[derive(Parser)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8095.
    bind: SocketAddr,
    /// The one client it knows (Latchkey's client id here).
    #[arg(long, default_value = "bench-rp")]
    client_id: String,
    /// That client's secret (`client_secret_basic` at `/token`).
    #[arg(long, default_value = "bench-secret-0123456789")]
    client_secret: String,
}

/// What `/authorize` remembers of a code for `/token`.
struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    login_hint: Option<String>,
}

struct Fake {
    base: String,
    client_id: String,
    client_secret: String,
    key: jsonwebtoken::EncodingKey,
    jwks: Value,
    codes: Mutex<HashMap<String, Grant>>,
}

type Shared = State<Arc<Fake>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (pkcs8, jwk) = es256();
    let fake = Arc::new(Fake {
        base: base.clone(),
        client_id: args.client_id,
        client_secret: args.client_secret,
        key: jsonwebtoken::EncodingKey::from_ec_der(&pkcs8),
        jwks: json!({ "keys": [jwk] }),
        codes: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(fake);
    println!("listening {base}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// An ES256 key pair: PKCS#8 DER and the public JWK.
fn es256() -> (Vec<u8>, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (pkcs8.as_ref().to_vec(), jwk)
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).expect("random bytes");
    URL_SAFE_NO_PAD.encode(buf)
}

/// The parameter `name` of a query or form ("" when absent).
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or("")
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(json!({ "error": error }))).into_response()
}

async fn discovery(State(f): Shared) -> Response {
    let base = &f.base;
    let doc = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    });
    ([(header::CACHE_CONTROL, "max-age=3600")], axum::Json(doc)).into_response()
}

async fn jwks(State(f): Shared) -> Response {
    ([(header::CACHE_CONTROL, "max-age=3600")], axum::Json(f.jwks.clone())).into_response()
}

/// `GET /authorize`: consent at once, 302 back with a code.
async fn authorize(State(f): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let ok = param(&q, "client_id") == f.client_id
        && param(&q, "response_type") == "code"
        && param(&q, "code_challenge_method") == "S256"
        && !param(&q, "code_challenge").is_empty();
    let redirect_uri = param(&q, "redirect_uri");
    let Some(mut back) = url::Url::parse(redirect_uri).ok().filter(|_| ok) else {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    };
    let code = random_b64(16);
    let grant = Grant {
        nonce: param(&q, "nonce").to_string(),
        challenge: param(&q, "code_challenge").to_string(),
        redirect_uri: redirect_uri.to_string(),
        login_hint: q.get("login_hint").filter(|h| !h.is_empty()).cloned(),
    };
    {
        let mut codes = f.codes.lock();
        if codes.len() >= MAX_CODES {
            codes.clear();
        }
        codes.insert(code.clone(), grant);
    }
    back.query_pairs_mut().append_pair("code", &code).append_pair("state", param(&q, "state"));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// The client id and secret of an HTTP Basic header, each form-decoded (RFC 6749 §2.3.1).
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let raw = String::from_utf8(STANDARD.decode(value.strip_prefix("Basic ")?).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    Some((dec(id), dec(secret)))
}

/// `POST /token`: the authorization code grant, with PKCE.
async fn token(State(f): Shared, headers: HeaderMap, body: String) -> Response {
    let authenticated =
        basic_client(&headers).is_some_and(|(id, secret)| id == f.client_id && secret == f.client_secret);
    if !authenticated {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if param(&form, "grant_type") != "authorization_code" {
        return refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let grant = f.codes.lock().remove(param(&form, "code"));
    let Some(grant) = grant else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = param(&form, "code_verifier");
    let s256 = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    if s256 != grant.challenge || param(&form, "redirect_uri") != grant.redirect_uri {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "iss": f.base, "aud": f.client_id,
        "sub": format!("sub-{}", grant.login_hint.as_deref().unwrap_or("anon")),
        "email_verified": true, "nonce": grant.nonce, "iat": now, "exp": now + 300,
    });
    if let Some(hint) = &grant.login_hint {
        claims["email"] = json!(hint);
    }
    let mut jws_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    jws_header.kid = Some(KID.into());
    let id_token = match jsonwebtoken::encode(&jws_header, &claims, &f.key) {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let answer = json!({
        "access_token": random_b64(24), "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(answer)).into_response()
}
