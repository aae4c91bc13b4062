//! What an attacker and third-party relying parties found (issue 11), each replayed as it was
//! seen: refresh replay and a rotation that fails half-way, logout CSRF through a foreign
//! `id_token_hint`, loopback near-misses, operator tokens and their throttle, userinfo per
//! RFC 6750, an honest discovery document, and an oversized body on a hosted page.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp};
use crate::signin::{Flow, REDIRECT, csrf_of, location, pkce, query_of, urlencode};

const BYE: &str = "https://client.example.com/bye";

/// A public client with refresh tokens and a post-logout address.
async fn web_client(app: &TestApp, slug: &str) -> String {
    let (s, c) = app
        .admin(
            Method::POST,
            &format!("/apps/{slug}/clients"),
            Some(json!({
                "name": "web", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [BYE],
                "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["client_id"].as_str().expect("id").to_string()
}

/// Signs `email` up in a browser of its own; returns the browser (signed in) and its tokens.
async fn sign_up(app: &TestApp, slug: &str, client_id: &str, email: &str) -> (Flow, Value) {
    let mut flow = Flow::new(client_id);
    let login = location(&flow.authorize(app, slug, "&scope=openid%20offline_access").await);
    let res = flow
        .submit(&login.replace("/login?", "/signup?"), &[("email", email), ("password", "long enough pw")])
        .await;
    let code = query_of(&location(&res))["code"].clone();
    let (s, t) = flow.exchange(app, slug, &code).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    (flow, t)
}

async fn refresh(app: &TestApp, slug: &str, client_id: &str, token: &str) -> (StatusCode, Value) {
    let body = serde_urlencoded::to_string([
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", client_id),
    ])
    .expect("form");
    let (s, _, v) = app.form(slug, "token", None, &body).await;
    (s, v)
}

fn refresh_token(v: &Value) -> String {
    v["refresh_token"].as_str().unwrap_or_else(|| panic!("no refresh token: {v}")).to_string()
}

/// Refreshes and expects a new token.
async fn rotate(app: &TestApp, slug: &str, client_id: &str, token: &str) -> String {
    let (s, v) = refresh(app, slug, client_id, token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    refresh_token(&v)
}

async fn refused(app: &TestApp, slug: &str, client_id: &str, token: &str, why: &str) {
    let (s, v) = refresh(app, slug, client_id, token).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{why}: {v}");
}

/// Replaying an older token never walks the chain to a live one: it kills the family. Only a
/// duplicate of the newest rotation, while its successor is unused, gets that successor again.
async fn refresh_replay_kills_the_family(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rr").await;
    let client = web_client(&app, "rr").await;

    let (_, t) = sign_up(&app, "rr", &client, "ann@example.com").await;
    let r0 = refresh_token(&t);
    let r1 = rotate(&app, "rr", &client, &r0).await;
    let r2 = rotate(&app, "rr", &client, &r1).await;
    // All within the grace window: R0's successor R1 was used, so R0 is a stolen token.
    refused(&app, "rr", &client, &r0, "R0 after R1 was used").await;
    refused(&app, "rr", &client, &r2, "the live head dies with its family").await;
    refused(&app, "rr", &client, &r1, "R1 in its own window").await;

    let (_, t) = sign_up(&app, "rr", &client, "bob@example.com").await;
    let q0 = refresh_token(&t);
    let q1 = rotate(&app, "rr", &client, &q0).await;
    // Two tabs: the duplicate of the newest rotation gets the very same successor.
    assert_eq!(rotate(&app, "rr", &client, &q0).await, q1);
    let q2 = rotate(&app, "rr", &client, &q1).await;
    // Once the successor itself was used, the duplicate is reuse.
    refused(&app, "rr", &client, &q0, "Q0 after Q1 was used").await;
    refused(&app, "rr", &client, &q2, "the family is revoked").await;

    // A stolen, already-rotated token kills its family even when the rest of the request is
    // wrong too (a scope never granted).
    let (_, t) = sign_up(&app, "rr", &client, "cy@example.com").await;
    let s0 = refresh_token(&t);
    let s1 = rotate(&app, "rr", &client, &s0).await;
    let s2 = rotate(&app, "rr", &client, &s1).await;
    let body = format!("grant_type=refresh_token&refresh_token={s0}&client_id={client}&scope=admin");
    let (s, _, v) = app.form("rr", "token", None, &body).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    refused(&app, "rr", &client, &s2, "the family is revoked").await;
    app.stop().await;
}
both!(refresh_replay_kills_the_family);

/// A rotation that fails half-way (here: the successor's INSERT, made to fail by a trigger)
/// changes nothing: after the grace window the client's retry with the same token succeeds
/// instead of being taken for a thief.
async fn failed_rotation_leaves_the_token_usable(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("atom").await;
    let client = web_client(&app, "atom").await;
    let (_, t) = sign_up(&app, "atom", &client, "cat@example.com").await;
    let r0 = refresh_token(&t);

    let a = latchkey::apps::service::get(&app.state.apps, "atom").await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    let (install, remove): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER fail_refresh BEFORE INSERT ON refresh_tokens BEGIN SELECT RAISE(ABORT, 'injected'); END",
            ],
            &["DROP TRIGGER fail_refresh"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION fail_refresh() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$",
                "CREATE TRIGGER fail_refresh BEFORE INSERT ON refresh_tokens FOR EACH ROW EXECUTE FUNCTION fail_refresh()",
            ],
            &["DROP TRIGGER fail_refresh ON refresh_tokens", "DROP FUNCTION fail_refresh()"],
        ),
    };
    for sql in install {
        latchkey::on_db!(&store, p => sqlx::query(sql).execute(p).await.map(|_| ()))
            .expect("install trigger");
    }
    let (s, v) = refresh(&app, "atom", &client, &r0).await;
    assert!(s.is_server_error(), "the injected failure must fail the rotation: {s} {v}");
    for sql in remove {
        latchkey::on_db!(&store, p => sqlx::query(sql).execute(p).await.map(|_| ())).expect("remove trigger");
    }
    app.clock.advance(chrono::Duration::seconds(11));
    let r1 = rotate(&app, "atom", &client, &r0).await;
    assert_ne!(r1, r0);
    rotate(&app, "atom", &client, &r1).await;
    app.stop().await;
}
both!(failed_rotation_leaves_the_token_usable);

/// `GET /logout?id_token_hint=<someone else's ID token>` in the victim's browser asks first; the
/// victim's own hint still signs out at once.
async fn logout_with_a_foreign_hint_asks_first(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("lo").await;
    let issuer = app.issuer("lo");
    let client = web_client(&app, "lo").await;
    let (victim, own) = sign_up(&app, "lo", &client, "vic@example.com").await;
    let (_, attacker) = sign_up(&app, "lo", &client, "mal@example.com").await;

    let logout = |hint: &str| {
        format!("{issuer}/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=s", urlencode(BYE))
    };
    let res = victim
        .browser
        .get(logout(attacker["id_token"].as_str().expect("id token")))
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK, "a confirmation page, not a redirect");
    assert!(res.headers().get("location").is_none());
    let html = res.text().await.expect("html");
    assert!(!csrf_of(&html).is_empty() && html.contains("name=\"confirm\""), "{html}");
    let account = victim.browser.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(account.status(), StatusCode::OK, "the victim is still signed in");

    let res =
        victim.browser.get(logout(own["id_token"].as_str().expect("id token"))).send().await.expect("logout");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{BYE}?state=s"));
    let account = victim.browser.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(account.status(), StatusCode::SEE_OTHER, "signed out");
    app.stop().await;
}
both!(logout_with_a_foreign_hint_asks_first);

/// A native client's loopback URI matches with any port (RFC 8252 §7.3) and otherwise only as
/// the same string: none of the near-misses the attacker tried gets a redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_redirects_differ_only_by_port() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.active_app("cli").await;
    let (s, c) = app
        .admin(
            Method::POST,
            "/apps/cli/clients",
            Some(json!({
                "name": "cli", "redirect_uris": ["http://127.0.0.1/cb"],
                "grant_types": ["authorization_code"], "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["client_id"].as_str().expect("id");
    let (_, challenge) = pkce();
    let authorize = |uri: &str| {
        let url = format!(
            "{}/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256",
            app.issuer("cli"),
            urlencode(uri)
        );
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("authorize") }
    };
    let res = authorize("http://127.0.0.1:51234/cb").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with(&format!("{}/login?", app.issuer("cli"))), "{}", location(&res));
    for near_miss in [
        "http://127.0.0.1:51234/x/../cb",
        "http://127.0.0.1:51234/%2e%2e/cb",
        "http://127.0.0.1:51234/cb/",
        "http://127.1:51234/cb",
        "http://0x7f000001:51234/cb",
        "http://2130706433:51234/cb",
        "http://127.0.0.1:0/cb",
        "http://127.0.0.1:051234/cb",
        "http://localhost:51234/cb",
        "http://[::1]:51234/cb",
        "http://127.0.0.1:51234@evil.example/cb",
    ] {
        let res = authorize(near_miss).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{near_miss}");
        assert!(res.headers().get("location").is_none(), "{near_miss} redirected");
    }
    app.stop().await;
}

async fn admin_as(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, format!("{}/admin/v1{path}", app.base)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("admin request");
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Named operator tokens: shown once, listed with their last use (never the token), unique
/// names, revocation that takes effect on the next request; the last stored token stays unless
/// `LATCHKEY_ADMIN_TOKEN` is another way in.
async fn operator_tokens(backend: Backend) {
    let mut opts = TestApp::options(backend);
    opts.admin_token = false;
    let app = TestApp::start_with(opts).await;
    // The generated "initial" token exists (printed once); a test token of our own beside it.
    let own = latchkey::crypto::tokens::new_secret(latchkey::crypto::tokens::ADMIN_TOKEN_PREFIX);
    let own_hash = latchkey::crypto::tokens::sha256_hex(&own);
    let own = secrecy::ExposeSecret::expose_secret(&own).to_string();
    latchkey::operators::repo::create(&app.control(), "test", &own_hash, app.state.now())
        .await
        .expect("stored");

    let (s, made) = admin_as(&app, &own, Method::POST, "/tokens", Some(json!({"name": "ci deploy"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let ci = made["token"].as_str().expect("token shown once").to_string();
    assert!(ci.starts_with("lka_") && ci.len() >= 40, "{ci}");
    assert_eq!(made["last_used_at"], Value::Null);
    let (s, v) = admin_as(&app, &ci, Method::GET, "/apps", None).await;
    assert_eq!(s, StatusCode::OK, "the new token works: {v}");

    let (s, list) = admin_as(&app, &own, Method::GET, "/tokens", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names.len(), 3, "{list}");
    for name in ["initial", "test", "ci deploy"] {
        assert!(names.contains(&name), "{name} in {list}");
    }
    let listed =
        list["items"].as_array().expect("items").iter().find(|t| t["name"] == "ci deploy").expect("ci");
    assert!(listed["last_used_at"].is_string(), "last use recorded: {listed}");
    assert!(listed.get("token").is_none() && !list.to_string().contains(&ci), "never the token: {list}");

    let (s, v) = admin_as(&app, &own, Method::POST, "/tokens", Some(json!({"name": "ci deploy"}))).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::CONFLICT, Some("name_taken")), "{v}");
    for bad in
        [json!({"name": ""}), json!({"name": "x".repeat(65)}), json!({}), json!({"name": "a", "extra": 1})]
    {
        let (s, v) = admin_as(&app, &own, Method::POST, "/tokens", Some(bad.clone())).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{bad}: {s} {v}");
    }

    // Revocation: the next request is refused.
    let id = made["id"].as_str().expect("id");
    let (s, v) = admin_as(&app, &own, Method::DELETE, &format!("/tokens/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(admin_as(&app, &ci, Method::GET, "/apps", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin_as(&app, &own, Method::DELETE, &format!("/tokens/{id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    // The generated token can go too; the last one cannot (no LATCHKEY_ADMIN_TOKEN here).
    let initial = names_to_id(&app, &own, "initial").await;
    assert_eq!(
        admin_as(&app, &own, Method::DELETE, &format!("/tokens/{initial}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    let last = names_to_id(&app, &own, "test").await;
    let (s, v) = admin_as(&app, &own, Method::DELETE, &format!("/tokens/{last}"), None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::CONFLICT, Some("last_token")), "{v}");
    assert_eq!(admin_as(&app, &own, Method::GET, "/tokens", None).await.0, StatusCode::OK);

    // The operator audit has both changes.
    let actions: Vec<String> = latchkey::on_db!(&app.control(), p => sqlx::query_scalar(
        "SELECT action FROM operator_audit WHERE action LIKE 'token.%' ORDER BY time").fetch_all(p).await)
    .expect("audit");
    assert_eq!(actions, ["token.created", "token.revoked", "token.revoked"]);
    app.stop().await;
}
both!(operator_tokens);

async fn names_to_id(app: &TestApp, token: &str, name: &str) -> String {
    let (_, list) = admin_as(app, token, Method::GET, "/tokens", None).await;
    let item = list["items"].as_array().expect("items").iter().find(|t| t["name"] == name).cloned();
    item.and_then(|t| t["id"].as_str().map(str::to_string)).unwrap_or_else(|| panic!("{name} in {list}"))
}

/// Wrong admin tokens from one address: ten are answered 401, then 429 with Retry-After while
/// the right token still gets in; the wait ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_tokens_are_throttled() {
    let app = TestApp::start(Backend::Sqlite).await;
    for i in 0..10 {
        let (s, v) =
            admin_as(&app, &format!("lka_wrong-{i:02}-0123456789"), Method::GET, "/apps", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}: {v}");
    }
    let res = app
        .http
        .get(format!("{}/admin/v1/apps", app.base))
        .bearer_auth("lka_wrong-10-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.expect("problem");
    assert_eq!(body["code"], "too_many_attempts");
    // The right token still gets in from the same address (a shared proxy cannot be used to
    // lock operators out); wrong ones keep waiting.
    let (s, v) = app.admin(Method::GET, "/apps", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let wrong = admin_as(&app, "lka_wrong-11-0123456789", Method::GET, "/apps", None).await;
    assert_eq!(wrong.0, StatusCode::TOO_MANY_REQUESTS, "{}", wrong.1);
    app.clock.advance(chrono::Duration::seconds(i64::try_from(wait).expect("small")));
    let wrong = admin_as(&app, "lka_wrong-12-0123456789", Method::GET, "/apps", None).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "after the wait: {}", wrong.1);
    app.stop().await;
}

/// userinfo per RFC 6750: the token in a POST form body (§2.2, pyoidc's default); no token at
/// all is a bare challenge (§3.1); a token in two places is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_follows_rfc_6750() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.active_app("ui").await;
    let client = web_client(&app, "ui").await;
    let (_, t) = sign_up(&app, "ui", &client, "uma@example.com").await;
    let access = t["access_token"].as_str().expect("access token");
    let url = format!("{}/userinfo", app.issuer("ui"));
    let form = |body: String| {
        app.http.post(&url).header("content-type", "application/x-www-form-urlencoded").body(body)
    };

    let res = form(format!("access_token={access}")).send().await.expect("userinfo");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.json::<Value>().await.expect("claims")["sub"].is_string());

    for res in
        [app.http.get(&url).send().await.expect("get"), form(String::new()).send().await.expect("post")]
    {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "a bare challenge");
        assert!(res.text().await.expect("body").is_empty());
    }

    let res = form(format!("access_token={access}")).bearer_auth(access).send().await.expect("both");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let challenge = res.headers()["www-authenticate"].to_str().expect("ascii").to_string();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );

    let res = app.http.get(&url).bearer_auth("not-a-token").send().await.expect("bad token");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));
    app.stop().await;
}

/// Discovery advertises no JWT client authentication signing algorithms, since there is no
/// `*_jwt` client authentication (RFC 8414 §2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_only_what_exists() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.active_app("disc").await;
    let doc: Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.issuer("disc")))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let methods = doc["token_endpoint_auth_methods_supported"].as_array().expect("methods");
    assert!(methods.iter().all(|m| !m.as_str().unwrap_or("").ends_with("_jwt")), "{doc}");
    assert!(doc.get("token_endpoint_auth_signing_alg_values_supported").is_none(), "{doc}");
    app.stop().await;
}

/// A 1 MB body on `POST /logout` gets the hosted 413 page, not a plain-text error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_logout_body_gets_the_hosted_page() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.active_app("big").await;
    let res = app
        .http
        .post(format!("{}/logout", app.issuer("big")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("confirm=yes&csrf={}", "a".repeat(1 << 20)))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = res.text().await.expect("html");
    assert!(html.contains("<html") && html.contains("App big"), "themed page: {html}");
    app.stop().await;
}

/// `latchkey token create|list|revoke`: the same operator tokens from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tokens_from_the_cli() {
    let app = TestApp::start(Backend::Sqlite).await;
    let cli = |args: &'static [&'static str]| crate::cli::run(&app, args);
    let made = cli(&["token", "create", "deploy bot", "--json"]).await.json();
    let token = made["token"].as_str().expect("token shown once").to_string();
    let id = made["id"].as_str().expect("id").to_string();
    assert_eq!(admin_as(&app, &token, Method::GET, "/apps", None).await.0, StatusCode::OK);

    let list = cli(&["token", "list", "--json"]).await.json();
    assert!(
        list.as_array().or(list["items"].as_array()).expect("list").iter().any(|t| t["name"] == "deploy bot"),
        "{list}"
    );
    assert!(!list.to_string().contains(&token), "{list}");
    let table = cli(&["token", "list"]).await;
    assert!(table.ok().stdout.contains("deploy bot") && !table.stdout.contains(&token), "{}", table.stdout);

    crate::cli::run(&app, &["token", "revoke", &id]).await.ok();
    assert_eq!(admin_as(&app, &token, Method::GET, "/apps", None).await.0, StatusCode::UNAUTHORIZED);
    let again = crate::cli::run(&app, &["token", "revoke", &id]).await;
    assert_ne!(again.code, Some(0), "{again:?}");
    app.stop().await;
}
