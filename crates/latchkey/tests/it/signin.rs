//! The authorization code flow over HTTP, as a browser without JavaScript would drive it:
//! `/authorize` → hosted sign-up/sign-in forms → redirect with `code` → token exchange with
//! PKCE → ID token verified against the JWKS → userinfo. Browser-driven runs are in browser.rs.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};

pub(crate) const REDIRECT: &str = "https://client.example.com/cb";

pub(crate) struct Flow {
    pub(crate) browser: reqwest::Client,
    pub(crate) verifier: String,
    pub(crate) client_id: String,
}

pub(crate) fn pkce() -> (String, String) {
    let verifier = latchkey::crypto::tokens::random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    (verifier, challenge)
}

pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").expect("Location").to_str().expect("ascii").to_string()
}

pub(crate) fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).expect("url").query_pairs().into_owned().collect()
}

/// The value of the hidden `csrf` field in a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().expect("value").to_string()
}

pub(crate) async fn public_client(app: &TestApp, slug: &str) -> String {
    let (s, c) = app
        .admin(
            Method::POST,
            &format!("/apps/{slug}/clients"),
            Some(json!({
                "name": "spa", "redirect_uris": [REDIRECT], "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["client_id"].as_str().expect("id").to_string()
}

impl Flow {
    pub(crate) fn new(client_id: &str) -> Flow {
        Flow { browser: browser(), verifier: String::new(), client_id: client_id.into() }
    }

    /// GET /authorize with PKCE; returns the response (not followed).
    pub(crate) async fn authorize(&mut self, app: &TestApp, slug: &str, extra: &str) -> reqwest::Response {
        let (verifier, challenge) = pkce();
        self.verifier = verifier;
        let scope = if extra.contains("&scope=") { "" } else { "&scope=openid%20email%20profile" };
        let url = format!(
            "{}/authorize?response_type=code&client_id={}&redirect_uri={}{scope}&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
            app.issuer(slug),
            self.client_id,
            urlencode(REDIRECT)
        );
        self.browser.get(url).send().await.expect("authorize")
    }

    pub(crate) async fn submit(&self, page_url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let page = self.browser.get(page_url).send().await.expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .expect("ascii")
                .contains("frame-ancestors 'none'")
        );
        let html = page.text().await.expect("html");
        let csrf = csrf_of(&html);
        let action = page_url.to_string();
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend_from_slice(fields);
        let request = query_of(&action).get("request").cloned().unwrap_or_default();
        let body = serde_urlencoded::to_string(
            form.iter().chain([("request", request.as_str())].iter()).collect::<Vec<_>>(),
        )
        .expect("form");
        self.browser
            .post(action)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post")
    }

    pub(crate) async fn exchange(&self, app: &TestApp, slug: &str, code: &str) -> (StatusCode, Value) {
        let body = serde_urlencoded::to_string([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", &self.client_id),
            ("code_verifier", &self.verifier),
        ])
        .expect("form");
        let (s, _, v) = app.form(slug, "token", None, &body).await;
        (s, v)
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn sign_up_then_code_flow(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("web").await;
    let client_id = public_client(&app, "web").await;
    let mut flow = Flow::new(&client_id);

    let res = flow.authorize(&app, "web", "").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = location(&res);
    assert!(login.starts_with(&format!("{}/login?request=", app.issuer("web"))), "{login}");
    let signup = login.replace("/login?", "/signup?");
    let res =
        flow.submit(&signup, &[("email", "Ada@Example.com"), ("password", "correct horse battery")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .find(|c| c.starts_with("lk_session="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/apps/web"),
        "{cookie}"
    );
    let back = location(&res);
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.issuer("web"));

    let (s, tokens) = flow.exchange(&app, "web", &q["code"]).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access");
    let id_token = tokens["id_token"].as_str().expect("id token");
    let jwks = format!("{}/jwks", app.issuer("web"));
    let (_, id) = verify_with_jwks(&app.http, &jwks, id_token).await.expect("ID token verifies");
    assert_eq!(id["iss"], app.issuer("web"));
    assert_eq!(id["aud"], client_id);
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email"], "Ada@example.com");
    assert_eq!(id["email_verified"], false);
    assert_eq!(id["amr"], json!(["pwd"]));
    let digest = digest::digest(&digest::SHA256, access.as_bytes());
    assert_eq!(id["at_hash"], URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    let (_, at) = verify_with_jwks(&app.http, &jwks, access).await.expect("access token verifies");
    assert_eq!(at["sid"], id["sid"]);
    assert_eq!(at["sub"], id["sub"]);

    let info: Value = app
        .http
        .get(format!("{}/userinfo", app.issuer("web")))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["email"], "Ada@example.com");

    // The code is single use, and its reuse revokes what it issued.
    let (s, v) = flow.exchange(&app, "web", &q["code"]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let res = app
        .http
        .get(format!("{}/userinfo", app.issuer("web")))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().expect("ascii").starts_with("Bearer"));

    // Signed in: the next authorization answers at once (single sign-on)…
    let res = flow.authorize(&app, "web", "").await;
    let back = location(&res);
    assert!(back.starts_with(REDIRECT), "{back}");
    let (s, _) = flow.exchange(&app, "web", &query_of(&back)["code"]).await;
    assert_eq!(s, StatusCode::OK);
    // …unless the client asks for a fresh sign-in.
    let res = flow.authorize(&app, "web", "&prompt=login").await;
    assert!(location(&res).contains("/login?request="));
    app.stop().await;
}
both!(sign_up_then_code_flow);

async fn sign_in_errors_reveal_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("pw").await;
    let client_id = public_client(&app, "pw").await;
    let mut flow = Flow::new(&client_id);
    let res = flow.authorize(&app, "pw", "").await;
    let login = location(&res);
    let res = flow
        .submit(
            &login.replace("/login?", "/signup?"),
            &[("email", "bo@example.com"), ("password", "long enough pw")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let mut other = Flow::new(&client_id);
    let login = location(&other.authorize(&app, "pw", "").await);
    let wrong_pw =
        other.submit(&login, &[("email", "bo@example.com"), ("password", "not the password")]).await;
    let unknown =
        other.submit(&login, &[("email", "nobody@example.com"), ("password", "not the password")]).await;
    assert_eq!(wrong_pw.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let strip = |h: String| h.replace("bo@example.com", "").replace("nobody@example.com", "");
    let (a, b) = (strip(wrong_pw.text().await.expect("t")), strip(unknown.text().await.expect("t")));
    // Same page apart from the CSRF token and the echoed address.
    let without_csrf = |h: &str| h.split("name=\"csrf\"").next().map(str::to_string).unwrap_or_default();
    assert_eq!(without_csrf(&a), without_csrf(&b));

    // A too-short password is refused beside its field.
    let res = other
        .submit(&login.replace("/login?", "/signup?"), &[("email", "cy@example.com"), ("password", "short")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.expect("t").contains("id=\"password-error\""));

    // No CSRF token, or one from another browser: refused.
    let res = other
        .browser
        .post(&login)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=bo%40example.com&password=long+enough+pw")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let foreign_page = flow.browser.get(&login).send().await.expect("page").text().await.expect("html");
    let foreign = csrf_of(&foreign_page);
    let res = other
        .browser
        .post(&login)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={foreign}&email=bo%40example.com&password=long+enough+pw"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
both!(sign_in_errors_reveal_nothing);

async fn authorize_request_validation(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("az").await;
    let client_id = public_client(&app, "az").await;
    let issuer = app.issuer("az");
    let b = browser();
    let get = |q: String| {
        let b = b.clone();
        let url = format!("{issuer}/authorize?{q}");
        async move { b.get(url).send().await.expect("authorize") }
    };
    let base = |redirect: &str| {
        format!(
            "response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s",
            urlencode(redirect)
        )
    };
    let (_, challenge) = pkce();
    let pk = format!("&code_challenge={challenge}&code_challenge_method=S256");

    // Near-miss redirect URIs: an error page, never a redirect.
    for bad in [
        "https://client.example.com/cb/",
        "https://client.example.com/cb?x=1",
        "https://client.example.com/CB",
        "https://client.example.com.evil.com/cb",
        "https://client.example.com/cb/../cb",
        "https://client.example.com/cb%2e",
        "https://client.example.com:8443/cb",
        "http://client.example.com/cb",
        "https://user@client.example.com/cb",
        "https://client.example.com/cb#x",
        "javascript:alert(1)",
        "data:text/html,x",
        "https://evil.example/cb",
        "https://client.example.com/cb/..;/x",
        "https://client.example.com/c",
        "https://CLIENT.example.com/cb",
        "//client.example.com/cb",
        "https://client.example.com/cb%3F",
        "https://client.example.com/%63b",
        "",
    ] {
        let res = get(format!("{}{pk}", base(bad))).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(res.headers().get("location").is_none(), "redirected to {bad}");
    }
    let res = get(format!("response_type=code&client_id=nope&redirect_uri={}", urlencode(REDIRECT))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // After the redirect URI is trusted, errors go back to it with state and iss.
    for (q, error) in [
        (base(REDIRECT), "invalid_request"), // public client without PKCE
        (
            format!("{}&code_challenge={challenge}&code_challenge_method=plain", base(REDIRECT)),
            "invalid_request",
        ),
        (
            format!("{}{pk}", base(REDIRECT).replace("response_type=code", "response_type=token")),
            "unsupported_response_type",
        ),
        (format!("{}{pk}", base(REDIRECT).replace("response_type=code&", "")), "invalid_request"),
        (format!("{}{pk}&scope=admin", base(REDIRECT).replace("&scope=openid", "")), "invalid_scope"),
        (format!("{}{pk}&prompt=none", base(REDIRECT)), "login_required"),
        (format!("{}{pk}&max_age=-1", base(REDIRECT)), "invalid_request"),
    ] {
        let res = get(q.clone()).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{q}");
        let l = location(&res);
        assert!(l.starts_with(REDIRECT), "{l}");
        let p = query_of(&l);
        assert_eq!(p["error"], error, "{q}");
        assert_eq!(p["state"], "s");
        assert_eq!(p["iss"], issuer);
    }
    // A repeated parameter is refused (error page: which value would be trusted?).
    let res = get(format!("{}{pk}&state=again", base(REDIRECT))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
both!(authorize_request_validation);

async fn code_exchange_rules(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cx").await;
    let client_id = public_client(&app, "cx").await;
    let other_client = public_client(&app, "cx").await;
    let mut flow = Flow::new(&client_id);
    let login = location(&flow.authorize(&app, "cx", "").await);
    let res = flow
        .submit(
            &login.replace("/login?", "/signup?"),
            &[("email", "dee@example.com"), ("password", "long enough pw")],
        )
        .await;
    let code = query_of(&location(&res))["code"].clone();

    let enc = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).expect("form");
    // Wrong verifier, missing verifier, wrong redirect_uri, other client: invalid_grant.
    for body in [
        enc(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &"x".repeat(43)),
        ]),
        enc(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
        ]),
        enc(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://client.example.com/other"),
            ("client_id", &client_id),
            ("code_verifier", &flow.verifier),
        ]),
        enc(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &other_client),
            ("code_verifier", &flow.verifier),
        ]),
    ] {
        let (s, _, v) = app.form("cx", "token", None, &body).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    }
    // Each failed attempt used the code up.
    let (s, v) = flow.exchange(&app, "cx", &code).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    // Of 20 parallel redemptions of a fresh code exactly one succeeds.
    let res = flow.authorize(&app, "cx", "").await;
    let code = query_of(&location(&res))["code"].clone();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (http, url, body) = (
            app.http.clone(),
            format!("{}/token", app.issuer("cx")),
            enc(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", &client_id),
                ("code_verifier", &flow.verifier),
            ]),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);

    // A code lives at most 60 s.
    let res = flow.authorize(&app, "cx", "").await;
    let code = query_of(&location(&res))["code"].clone();
    app.clock.advance(chrono::Duration::seconds(61));
    let (s, v) = flow.exchange(&app, "cx", &code).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    app.stop().await;
}
both!(code_exchange_rules);

async fn refresh_rotation_and_reuse(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rt").await;
    let (s, c) = app
        .admin(Method::POST, "/apps/rt/clients", Some(json!({
            "name": "web", "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none"
        })))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let client_id = c["client_id"].as_str().expect("id").to_string();
    let other = public_client(&app, "rt").await;
    let mut flow = Flow::new(&client_id);
    let login = location(&flow.authorize(&app, "rt", "&scope=openid%20email%20offline_access").await);
    let res = flow
        .submit(
            &login.replace("/login?", "/signup?"),
            &[("email", "eve@example.com"), ("password", "long enough pw")],
        )
        .await;
    let code = query_of(&location(&res))["code"].clone();
    let (s, t) = flow.exchange(&app, "rt", &code).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let r1 = t["refresh_token"].as_str().expect("refresh token").to_string();
    assert!(r1.starts_with("lkr_") && r1.len() >= 47);

    let refresh = |rt: String, client: String, scope: Option<&'static str>| {
        let app = &app;
        async move {
            let mut pairs = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", rt),
                ("client_id", client),
            ];
            if let Some(s) = scope {
                pairs.push(("scope", s.to_string()));
            }
            let (s, _, v) =
                app.form("rt", "token", None, &serde_urlencoded::to_string(&pairs).expect("form")).await;
            (s, v)
        }
    };
    // Another client cannot use it.
    let (s, v) = refresh(r1.clone(), other.clone(), None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // Rotation: a new refresh token and access token.
    let (s, v) = refresh(r1.clone(), client_id.clone(), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r2 = v["refresh_token"].as_str().expect("rt").to_string();
    assert_ne!(r1, r2);
    let access = v["access_token"].as_str().expect("at").to_string();
    let info =
        app.http.get(format!("{}/userinfo", app.issuer("rt"))).bearer_auth(&access).send().await.expect("ui");
    assert_eq!(info.status(), StatusCode::OK);
    // A racing duplicate within the grace window gets the same successor, not a revocation.
    let (s, v) = refresh(r1.clone(), client_id.clone(), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["refresh_token"], r2.as_str());
    // Scope can narrow, never widen.
    let (s, v) = refresh(r2.clone(), client_id.clone(), Some("openid profile")).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (s, v) = refresh(r2.clone(), client_id.clone(), Some("openid")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["scope"], "openid");
    let r3 = v["refresh_token"].as_str().expect("rt").to_string();

    // After the grace window, a rotated token coming back revokes the whole family.
    app.clock.advance(chrono::Duration::seconds(11));
    let (s, v) = refresh(r1.clone(), client_id.clone(), None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (s, _) = refresh(r3.clone(), client_id.clone(), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the live descendant must die with its family");
    let a = latchkey::apps::service::get(&app.state.apps, "rt").await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    let mut seen = 0i64;
    for _ in 0..50 {
        seen = latchkey::on_db!(&store, p => sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE type = 'refresh.reuse_detected'").fetch_one(p).await).expect("count");
        if seen > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1);

    // Revocation (RFC 7009) of a fresh family.
    let login = location(&flow.authorize(&app, "rt", "&scope=openid%20offline_access").await);
    assert!(login.starts_with(REDIRECT), "{login}");
    let (_, t) = flow.exchange(&app, "rt", &query_of(&login)["code"]).await;
    let fresh = t["refresh_token"].as_str().expect("rt").to_string();
    let (s, _, _) = app.form("rt", "revoke", None, &format!("token={fresh}&client_id={client_id}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = refresh(fresh, client_id.clone(), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    app.stop().await;
}
both!(refresh_rotation_and_reuse);

/// The `…/account/sessions/{sid}/revoke` form actions on an account page.
fn revoke_actions(html: &str) -> Vec<String> {
    html.match_indices("/account/sessions/")
        .filter_map(|(i, _)| html[i..].split('"').next().map(str::to_string))
        .collect()
}

pub(crate) async fn post_form(b: &reqwest::Client, url: &str, csrf: &str, extra: &str) -> reqwest::Response {
    b.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}{extra}"))
        .send()
        .await
        .expect("post")
}

async fn account_sessions_and_sign_out(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("acct").await;
    let issuer = app.issuer("acct");
    // Opening /account directly: sign in first, then land there.
    let a = browser();
    let res = a.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{issuer}/login"));
    let flow_a = Flow { browser: a.clone(), verifier: String::new(), client_id: String::new() };
    let res = flow_a
        .submit(&format!("{issuer}/signup"), &[("email", "fay@example.com"), ("password", "long enough pw")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{issuer}/account"));
    // A second device.
    let b = browser();
    let flow_b = Flow { browser: b.clone(), verifier: String::new(), client_id: String::new() };
    let res = flow_b
        .submit(&format!("{issuer}/login"), &[("email", "fay@example.com"), ("password", "long enough pw")])
        .await;
    assert_eq!(location(&res), format!("{issuer}/account"));

    let page = a.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("fay@example.com"));
    assert!(html.contains("(this device)"));
    let actions = revoke_actions(&html);
    assert_eq!(actions.len(), 1, "one other session: {actions:?}");
    let csrf = csrf_of(&html);
    // Sign out the other device: its cookie stops working at once.
    let res = post_form(&a, &format!("{issuer}{}", actions[0]), &csrf, "").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    let res = b.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "device B must be signed out");
    // Without the CSRF token nothing happens.
    let res = post_form(&a, &format!("{issuer}/account/logout-all"), "wrong", "").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Profile.
    let res = post_form(&a, &format!("{issuer}/account/profile"), &csrf, "&name=Fay+Doe").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("html").contains("value=\"Fay Doe\""));
    // Sign out everywhere.
    let res = post_form(&a, &format!("{issuer}/account/logout-all"), &csrf, "").await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = a.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both!(account_sessions_and_sign_out);

async fn rp_initiated_logout(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("bye").await;
    let issuer = app.issuer("bye");
    let (s, c) = app
        .admin(Method::POST, "/apps/bye/clients", Some(json!({
            "name": "web", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["https://client.example.com/bye"],
            "grant_types": ["authorization_code"], "token_endpoint_auth_method": "none"
        })))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let client_id = c["client_id"].as_str().expect("id").to_string();
    let mut flow = Flow::new(&client_id);
    let login = location(&flow.authorize(&app, "bye", "").await);
    let res = flow
        .submit(
            &login.replace("/login?", "/signup?"),
            &[("email", "gus@example.com"), ("password", "long enough pw")],
        )
        .await;
    let (_, t) = flow.exchange(&app, "bye", &query_of(&location(&res))["code"]).await;
    let (id_token, access) = (
        t["id_token"].as_str().expect("id").to_string(),
        t["access_token"].as_str().expect("at").to_string(),
    );

    // A post_logout_redirect_uri that is not registered: an error page, never a redirect.
    let res = flow
        .browser
        .get(format!(
            "{issuer}/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
            urlencode("https://evil.example/bye")
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    // Still signed in after the refused request.
    let info = app.http.get(format!("{issuer}/userinfo")).bearer_auth(&access).send().await.expect("ui");
    assert_eq!(info.status(), StatusCode::OK);

    let res = flow
        .browser
        .get(format!(
            "{issuer}/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=xyz",
            urlencode("https://client.example.com/bye")
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "https://client.example.com/bye?state=xyz");
    assert!(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().is_ok_and(|c| c.starts_with("lk_session=;")))
    );
    let info = app.http.get(format!("{issuer}/userinfo")).bearer_auth(&access).send().await.expect("ui");
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED, "tokens of the ended session stop working");

    // Without a hint the user confirms first.
    let mut again = Flow::new(&client_id);
    let login = location(&again.authorize(&app, "bye", "").await);
    again.submit(&login, &[("email", "gus@example.com"), ("password", "long enough pw")]).await;
    let page = again.browser.get(format!("{issuer}/logout")).send().await.expect("logout");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let csrf = csrf_of(&html);
    let res = post_form(&again.browser, &format!("{issuer}/logout"), &csrf, "&confirm=yes").await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = again.browser.get(format!("{issuer}/account")).send().await.expect("account");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both!(rp_initiated_logout);

async fn tampered_or_planted_session_cookies_are_ignored(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("tam").await;
    let client_id = public_client(&app, "tam").await;
    let issuer = app.issuer("tam");
    let mut flow = Flow::new(&client_id);
    let login = location(&flow.authorize(&app, "tam", "").await);
    let res = flow
        .submit(
            &login.replace("/login?", "/signup?"),
            &[("email", "hal@example.com"), ("password", "long enough pw")],
        )
        .await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("lk_session=").and_then(|c| c.split(';').next()).map(str::to_string))
        .expect("session cookie");
    let (sid, secret) = cookie.split_once('.').expect("sid.secret");
    let mut flipped = secret.to_string();
    let last = flipped.pop().expect("char");
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let (_, challenge) = pkce();
    let url = format!(
        "{issuer}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    for bad in [
        format!("{sid}.{flipped}"),
        sid.to_string(),
        format!("nope.{secret}"),
        "garbage".into(),
        format!("{sid}."),
    ] {
        let res = browser()
            .get(&url)
            .header("cookie", format!("lk_session={bad}"))
            .send()
            .await
            .expect("authorize");
        assert!(location(&res).contains("/login?request="), "cookie {bad:?} must not count as a session");
    }
    // The genuine cookie still works (single sign-on).
    let res =
        browser().get(&url).header("cookie", format!("lk_session={cookie}")).send().await.expect("authorize");
    assert!(location(&res).starts_with(REDIRECT));
    // A new session id at every sign-in: signing in again never reuses the old sid.
    let login = location(&flow.authorize(&app, "tam", "&prompt=login").await);
    let res = flow.submit(&login, &[("email", "hal@example.com"), ("password", "long enough pw")]).await;
    let again = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lk_session="))
        .expect("cookie")
        .to_string();
    assert!(!again.contains(sid), "a fresh session id");
    app.stop().await;
}
both!(tampered_or_planted_session_cookies_are_ignored);
