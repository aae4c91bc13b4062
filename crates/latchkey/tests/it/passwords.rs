//! Imported password hashes (SPEC §7): users brought in with bcrypt or PBKDF2 hashes sign in
//! through `/authorize` → `/login`, and their hash becomes our Argon2id on the first success.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::on_db;
use latchkey::store::IdentityDb;
use latchkey::users::{self, Email};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::kit::{Backend, TestApp};

const REDIRECT: &str = "https://client.example.com/cb";
/// `correct horse` under PBKDF2-HMAC-SHA256, 1000 rounds (made with Python's hashlib).
const PBKDF2: &str =
    "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHRzYWx0c2FsdA$BBs+1+PaslLtBPULUr8/lQicvVuHiEPMz0i8MjLCbzM";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn store_of(app: &TestApp, slug: &str) -> IdentityDb {
    let a = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app");
    latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store")
}

async fn stored_hash(store: &IdentityDb, email: &str) -> String {
    on_db!(store, p => sqlx::query_scalar("SELECT password_hash FROM users WHERE email_normalized = $1").bind(email).fetch_one(p).await)
        .expect("hash")
}

/// Runs `/authorize` → `/login` in a fresh browser; the status of the form post and, on
/// success, whether the redirect back to the client carries a code.
async fn sign_in(
    app: &TestApp,
    slug: &str,
    client_id: &str,
    email: &str,
    password: &str,
) -> (StatusCode, bool) {
    let b = browser();
    let verifier = latchkey::crypto::tokens::random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    let redirect: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    let res = b
        .get(format!(
            "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect}&scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256",
            app.issuer(slug)
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = res.headers()["location"].to_str().expect("ascii").to_string();
    let request = url::Url::parse(&login)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "request")
        .map(|(_, v)| v.into_owned())
        .expect("request id");
    let html = b.get(&login).send().await.expect("page").text().await.expect("html");
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("csrf field") + marker.len();
    let csrf = html[at..].split('"').next().expect("value");
    let body = serde_urlencoded::to_string([
        ("csrf", csrf),
        ("request", &request),
        ("email", email),
        ("password", password),
    ])
    .expect("form");
    let res = b
        .post(&login)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post");
    let back = res.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
    (res.status(), back.starts_with(REDIRECT) && back.contains("code="))
}

async fn imported_hashes_sign_in_and_are_upgraded(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("imp").await;
    let (s, c) = app
        .admin(
            Method::POST,
            "/apps/imp/clients",
            Some(json!({
                "name": "spa", "redirect_uris": [REDIRECT], "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let client_id = c["client_id"].as_str().expect("id").to_string();
    let store = store_of(&app, "imp").await;
    // As an import would write them: straight into the identity store.
    let bcrypt_hash = bcrypt::hash("tr0ub4dor&3", 4).expect("bcrypt").replacen("$2b$", "$2y$", 1);
    for (email, hash) in [("bea@example.com", bcrypt_hash.as_str()), ("pia@example.com", PBKDF2)] {
        let email = Email::parse(email).expect("email");
        users::insert(&store, &email, hash, app.state.now()).await.expect("insert").expect("new");
    }

    for (email, password, imported) in [
        ("bea@example.com", "tr0ub4dor&3", bcrypt_hash.as_str()),
        ("pia@example.com", "correct horse", PBKDF2),
    ] {
        // A wrong password leaves the imported hash alone.
        assert_eq!(sign_in(&app, "imp", &client_id, email, "wrong").await, (StatusCode::UNAUTHORIZED, false));
        assert_eq!(stored_hash(&store, email).await, imported);
        // The right one signs in and replaces it with Argon2id…
        assert_eq!(sign_in(&app, "imp", &client_id, email, password).await, (StatusCode::SEE_OTHER, true));
        let upgraded = stored_hash(&store, email).await;
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
        // …which keeps working, and is not rewritten again.
        assert_eq!(sign_in(&app, "imp", &client_id, email, password).await, (StatusCode::SEE_OTHER, true));
        assert_eq!(stored_hash(&store, email).await, upgraded);
    }
    app.stop().await;
}
both!(imported_hashes_sign_in_and_are_upgraded);
