//! End-to-end through a real browser: headless Chromium on the hosted pages (SPEC §7) and the
//! authorization code flow (SPEC §5) driven by the `openidconnect` crate as the relying party.
//! Screenshots land in `<target dir>/screenshots/` (CI keeps them).

use std::time::Duration;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use url::Url;

use crate::both;
use crate::browser_kit::{Browser, PHONE, RedirectTarget};
use crate::kit::{Backend, TestApp};

/// The harness itself: chromedriver + Chromium start, navigation, the redirect target records
/// what the browser brought it, screenshots are written at both sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_smoke() {
    let app = TestApp::start(Backend::Sqlite).await;
    let target = RedirectTarget::start().await;
    let browser = Browser::start("harness_smoke").await;
    eprintln!("browser ready in {:?} (chromedriver port {})", browser.started_in, browser.driver_port());

    browser.goto(&format!("{}?code=abc&state=xyz", target.url("/cb"))).await;
    let cb = target.last().expect("the redirect target saw the browser");
    assert_eq!(cb.path, "/cb");
    assert_eq!(cb.query, "code=abc&state=xyz");
    assert_eq!((cb.get("code"), cb.get("state"), cb.get("iss")), (Some("abc"), Some("xyz"), None));
    assert!(browser.current_url().await.as_str().starts_with(&target.base));
    assert_eq!(browser.text("#param-code").await, "abc");
    assert_eq!(browser.text("#param-state").await, "xyz");
    assert_eq!(browser.client().title().await.expect("title"), "Redirect target");
    assert_eq!(target.all().len(), 1, "one request per navigation: {:?}", target.all());

    let healthz = format!("{}/healthz", app.base);
    browser.goto(&healthz).await;
    let at = browser.wait_for_url_prefix(&healthz, Duration::from_secs(5)).await;
    assert_eq!(at.as_str(), healthz);
    let shots = browser.screenshot_sizes("healthz").await;
    for shot in &shots {
        let png = std::fs::read(shot).unwrap_or_else(|e| panic!("read {}: {e}", shot.display()));
        assert!(png.len() > 100, "{} is {} bytes", shot.display(), png.len());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", shot.display());
    }
    // The phone size really is the layout viewport (what the pages' media queries see).
    browser.set_window_size(PHONE.0, PHONE.1).await;
    let vp = browser.eval("return [window.innerWidth, window.innerHeight];").await;
    assert_eq!(vp, json!([PHONE.0, PHONE.1]));

    drop(browser);
    app.stop().await;
}

/// The relying party as `openidconnect` builds it from discovery.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One authorization request in flight: what the RP must keep to finish it.
struct Pending {
    url: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn authorize_request(rp: &Rp) -> Pending {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    Pending { url, state, nonce, verifier }
}

/// Reads the authorization response the browser delivered to the redirect target, checks
/// `state` and `iss` (RFC 9207), redeems the code with the PKCE verifier and verifies the ID
/// token (signature via JWKS, iss, aud, exp, nonce). Returns the ID token's `sub`.
async fn finish(
    app: &TestApp,
    rp: &Rp,
    target: &RedirectTarget,
    issuer: &str,
    p: Pending,
    email: &str,
) -> String {
    let cb = target.last().expect("the browser reached the redirect target");
    assert_eq!(cb.path, "/cb", "{cb:?}");
    assert!(cb.get("error").is_none(), "authorization error: {cb:?}");
    assert_eq!(cb.get("state"), Some(p.state.secret().as_str()), "{cb:?}");
    assert_eq!(cb.get("iss"), Some(issuer), "{cb:?}");
    let code = cb.get("code").expect("code in the authorization response");

    let res = rp
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .expect("discovery lists a token endpoint")
        .set_pkce_verifier(p.verifier)
        .request_async(&app.http)
        .await
        .expect("code redeemed");
    assert!(!res.access_token().secret().is_empty());
    let id_token = res.id_token().expect("an ID token for scope openid");
    let claims = id_token.claims(&rp.id_token_verifier(), &p.nonce).expect("ID token verifies");
    assert_eq!(claims.issuer().as_str(), issuer);
    assert_eq!(claims.email().map(|e| e.as_str()), Some(email));
    let sub = claims.subject().as_str().to_string();

    // userinfo with the access token, then a refresh with the client library.
    let info: serde_json::Value = app
        .http
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(res.access_token().secret())
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["email"], email);
    let refresh = res.refresh_token().expect("a refresh token");
    let refreshed = rp
        .exchange_refresh_token(refresh)
        .expect("token endpoint")
        .request_async(&app.http)
        .await
        .expect("refresh grant");
    assert_ne!(refreshed.refresh_token().map(|r| r.secret()), Some(refresh.secret()), "rotated");
    sub
}

// GET /authorize → /login → /signup → redirect_uri, then a second authorize → /login with the
// new password, for two apps with different branding.
async fn password_signup_and_sign_in_through_authorize(backend: Backend) {
    let app = TestApp::start(backend).await;
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("signup-{backend:?}")).await;
    for (slug, color) in [("teal", "#0f766e"), ("violet", "#7c3aed")] {
        signup_then_sign_in(&app, &target, &browser, slug, color).await;
    }
    drop(browser);
    app.stop().await;
}

async fn signup_then_sign_in(
    app: &TestApp,
    target: &RedirectTarget,
    browser: &Browser,
    slug: &str,
    color: &str,
) {
    let display_name = format!("App {slug}");
    app.create_app(json!({
        "slug": slug, "display_name": display_name,
        "branding": {"brand_color": color, "logo_url": "http://localhost/logo.png"}
    }))
    .await;
    app.wait_status(slug, "active").await;
    let redirect_uri = target.url("/cb");
    let (s, c) = app
        .admin(
            Method::POST,
            &format!("/apps/{slug}/clients"),
            Some(json!({
                "name": "spa", "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert!(c.get("client_secret").is_none_or(|v| v.is_null()), "a public client has no secret: {c}");
    let client_id = c["client_id"].as_str().expect("client_id").to_string();

    let issuer = app.issuer(slug);
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).expect("url"), &app.http)
        .await
        .expect("OIDC discovery");
    let rp = CoreClient::from_provider_metadata(meta, ClientId::new(client_id), None)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.clone()).expect("redirect url"));
    let email = format!("ada+{slug}@example.com");
    let password = "Correct-Horse-Battery-9";
    let themed = |html: &str| {
        let html = html.to_ascii_lowercase();
        assert!(html.contains(color), "page not themed with {color}");
        assert!(html.contains(&display_name.to_ascii_lowercase()), "page does not name {display_name}");
    };

    // Sign up: /authorize sends the browser to /login, which links to /signup.
    let signup = authorize_request(&rp);
    browser.goto(signup.url.as_str()).await;
    browser.wait_for_url_prefix(&format!("{issuer}/login"), Duration::from_secs(10)).await;
    themed(&browser.source().await);
    browser.screenshot_sizes(&format!("{slug}-login")).await;
    browser.click(r#"a[href*="signup"]"#).await;
    browser.wait_for_url_prefix(&format!("{issuer}/signup"), Duration::from_secs(10)).await;
    themed(&browser.source().await);
    browser.screenshot_sizes(&format!("{slug}-signup")).await;
    browser.fill("input[name=email]", &email).await;
    browser.fill("input[name=password]", password).await;
    if browser.exists("input[name=password_confirm]").await {
        browser.fill("input[name=password_confirm]", password).await;
    }
    browser.screenshot(&format!("{slug}-signup-filled")).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    browser.screenshot(&format!("{slug}-callback")).await;
    let signed_up = finish(app, &rp, target, &issuer, signup, &email).await;

    // Sign in again from a cookie-less browser: /authorize → /login → the password just set.
    browser.clear_cookies(&format!("{issuer}/jwks")).await;
    let signin = authorize_request(&rp);
    browser.goto(signin.url.as_str()).await;
    browser.wait_for_url_prefix(&format!("{issuer}/login"), Duration::from_secs(10)).await;
    browser.fill("input[name=email]", &email).await;
    browser.fill("input[name=password]", password).await;
    browser.screenshot_sizes(&format!("{slug}-login-filled")).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    let signed_in = finish(app, &rp, target, &issuer, signin, &email).await;
    assert_eq!(signed_in, signed_up, "sign-in finds the user sign-up created");
}
both!(password_signup_and_sign_in_through_authorize);

// Magic link and password reset in the browser: /authorize → /login → "email me a link" → the
// mailed link (delivered over SMTP) opened with no cookies → back at the client; then
// "forgot your password?" → the mailed link → a new password → back at the client.
async fn magic_link_and_password_reset_in_the_browser(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = crate::mail_kit::Sink::start();
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("mail-{backend:?}")).await;
    let (rp, issuer, redirect_uri) = policy_app(&app, &sink, &target, "mail", json!({})).await;
    let (s, v) =
        app.admin(Method::PATCH, "/apps/mail", Some(json!({"branding": {"brand_color": "#b45309"}}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let email = "ivy@example.com";
    crate::mail::sign_up(&app, "mail", email, "first password 1").await;
    let link_of = |text: &str, page: &str| crate::mail_kit::link_in(text, &format!("{issuer}/{page}?token="));

    // Magic link.
    let pending = authorize_request(&rp);
    browser.goto(pending.url.as_str()).await;
    browser.wait_for_url_prefix(&format!("{issuer}/login"), Duration::from_secs(10)).await;
    browser.click("#magic-link").await;
    browser.wait_for_url_prefix(&format!("{issuer}/magic-link"), Duration::from_secs(10)).await;
    assert!(browser.source().await.contains("#b45309"), "themed");
    browser.screenshot_sizes("mail-magic-link").await;
    browser.fill("input[name=email]", email).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Check your inbox", Duration::from_secs(10)).await;
    browser.screenshot("mail-check-inbox").await;
    // Message 1 is the sign-up's verification mail.
    let mail = sink.wait_nth(email, 2, Duration::from_secs(15)).await;
    let link = link_of(&mail.text, "magic-link");
    // How the message itself looks (its HTML part, as a mail client would show it).
    let shown = crate::mail_kit::save_html(&mail.html, &format!("mail-{backend:?}-magic-link-message.html"));
    browser.goto(&format!("file://{}", shown.display())).await;
    browser.screenshot_sizes("mail-magic-link-message").await;
    browser.clear_cookies(&format!("{issuer}/jwks")).await;
    browser.goto(&link).await;
    browser.screenshot_sizes("mail-magic-confirm").await;
    browser.click("#continue").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    finish(&app, &rp, &target, &issuer, pending, email).await;

    // Password reset, asked for from the login page of a new authorization request.
    browser.clear_cookies(&format!("{issuer}/jwks")).await;
    let pending = authorize_request(&rp);
    browser.goto(pending.url.as_str()).await;
    browser.wait_for_url_prefix(&format!("{issuer}/login"), Duration::from_secs(10)).await;
    browser.click(r#"a[href*="reset-password"]"#).await;
    browser.wait_for_url_prefix(&format!("{issuer}/reset-password"), Duration::from_secs(10)).await;
    browser.screenshot_sizes("mail-reset-request").await;
    browser.fill("input[name=email]", email).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Check your inbox", Duration::from_secs(10)).await;
    let mail = sink.wait_nth(email, 3, Duration::from_secs(15)).await;
    browser.goto(&link_of(&mail.text, "reset-password")).await;
    browser.fill("input[name=password]", "second password 2").await;
    browser.screenshot_sizes("mail-reset-password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    finish(&app, &rp, &target, &issuer, pending, email).await;

    drop(browser);
    app.stop().await;
}
both!(magic_link_and_password_reset_in_the_browser);

/// An app with `policy` (mail to `sink`), a public client redirecting to `target`, and the
/// relying party built from discovery.
async fn policy_app(
    app: &TestApp,
    sink: &crate::mail_kit::Sink,
    target: &RedirectTarget,
    slug: &str,
    policy: serde_json::Value,
) -> (Rp, String, String) {
    crate::mail::app_with_sink(app, slug, sink).await;
    let (s, v) = app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(json!({"policy": policy}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let redirect_uri = target.url("/cb");
    let (s, c) = app
        .admin(
            Method::POST,
            &format!("/apps/{slug}/clients"),
            Some(json!({
                "name": "web", "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let issuer = app.issuer(slug);
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).expect("url"), &app.http)
        .await
        .expect("OIDC discovery");
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(c["client_id"].as_str().expect("id").into()),
        None,
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.clone()).expect("redirect url"));
    (rp, issuer, redirect_uri)
}

/// /authorize → /login (cookies cleared first); returns the request to finish.
async fn to_login(browser: &Browser, rp: &Rp, issuer: &str) -> Pending {
    browser.clear_cookies(&format!("{issuer}/jwks")).await;
    let p = authorize_request(rp);
    browser.goto(p.url.as_str()).await;
    browser.wait_for_url_prefix(&format!("{issuer}/login"), Duration::from_secs(10)).await;
    p
}

async fn sign_in_with_password(browser: &Browser, email: &str, password: &str, redirect_uri: &str) {
    browser.fill("input[name=email]", email).await;
    browser.fill("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(redirect_uri, Duration::from_secs(15)).await;
}

// An open consumer app that asks for a name at sign-up.
async fn scenario_open_b2c(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = crate::mail_kit::Sink::start();
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("b2c-{backend:?}")).await;
    let (rp, issuer, redirect_uri) = policy_app(
        &app,
        &sink,
        &target,
        "shop",
        json!({"signup_policy": "open", "required_profile_fields": ["name"]}),
    )
    .await;
    let pending = to_login(&browser, &rp, &issuer).await;
    browser.click(r#"a[href*="signup"]"#).await;
    browser.wait_for_url_prefix(&format!("{issuer}/signup"), Duration::from_secs(10)).await;
    browser.fill("input[name=email]", "cleo@example.com").await;
    browser.fill("input[name=name]", "Cleo Shopper").await;
    browser.fill("input[name=password]", "Window Shopping 24").await;
    browser.screenshot_sizes("b2c-signup").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    finish(&app, &rp, &target, &issuer, pending, "cleo@example.com").await;
    // Later: a plain sign-in.
    let pending = to_login(&browser, &rp, &issuer).await;
    sign_in_with_password(&browser, "cleo@example.com", "Window Shopping 24", &redirect_uri).await;
    finish(&app, &rp, &target, &issuer, pending, "cleo@example.com").await;
    drop(browser);
    app.stop().await;
}
both!(scenario_open_b2c);

// An enterprise app: only its own domain, and every account approved by an operator.
async fn scenario_enterprise_with_approval(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = crate::mail_kit::Sink::start();
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("corp-{backend:?}")).await;
    let policy = json!({"signup_policy": "admin_approval", "allowed_email_domains": ["corp.test"],
                        "password": {"min_length": 12, "require_symbol": true}});
    let (rp, issuer, redirect_uri) = policy_app(&app, &sink, &target, "corp", policy).await;
    to_login(&browser, &rp, &issuer).await;
    browser.click(r#"a[href*="signup"]"#).await;
    browser.wait_for_url_prefix(&format!("{issuer}/signup"), Duration::from_secs(10)).await;
    assert!(browser.source().await.contains("with a symbol"), "the rules are stated up front");
    browser.fill("input[name=email]", "dan@gmail.test").await;
    browser.fill("input[name=password]", "Quarterly-Report-9").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("cannot be created here", Duration::from_secs(10)).await;
    browser.screenshot_sizes("corp-domain-refused").await;
    browser.fill("input[name=email]", "dan@corp.test").await;
    browser.fill("input[name=password]", "Quarterly-Report-9").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("waiting for approval", Duration::from_secs(10)).await;
    browser.screenshot_sizes("corp-awaiting-approval").await;

    let store = crate::mail::identity_store(&app, "corp").await;
    let id: uuid::Uuid = latchkey::on_db!(&store, p => sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = 'dan@corp.test'").fetch_one(p).await).expect("user");
    let (s, v) = app.admin(Method::POST, &format!("/apps/corp/users/{id}/approve"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pending = to_login(&browser, &rp, &issuer).await;
    sign_in_with_password(&browser, "dan@corp.test", "Quarterly-Report-9", &redirect_uri).await;
    finish(&app, &rp, &target, &issuer, pending, "dan@corp.test").await;
    drop(browser);
    app.stop().await;
}
both!(scenario_enterprise_with_approval);

// An invite-only app: the operator invites, the invitee registers from the mailed link.
async fn scenario_invite_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = crate::mail_kit::Sink::start();
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("invite-{backend:?}")).await;
    let (rp, issuer, redirect_uri) =
        policy_app(&app, &sink, &target, "club", json!({"signup_policy": "invite_only"})).await;
    to_login(&browser, &rp, &issuer).await;
    assert!(!browser.exists(r#"a[href*="signup"]"#).await, "no open sign-up");
    let (s, inv) =
        app.admin(Method::POST, "/apps/club/invitations", Some(json!({"email": "gia@example.com"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let mail = sink.wait_for("gia@example.com").await;
    assert_eq!(mail.subject, "You are invited to Acme");
    let link = crate::mail_kit::link_in(&mail.text, &format!("{issuer}/signup?invitation="));
    browser.goto(&link).await;
    assert!(browser.source().await.contains("The invitation is for this address."));
    browser.fill("input[name=password]", "members only 2024").await;
    browser.screenshot_sizes("invite-signup").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&format!("{issuer}/account"), Duration::from_secs(10)).await;
    let pending = to_login(&browser, &rp, &issuer).await;
    sign_in_with_password(&browser, "gia@example.com", "members only 2024", &redirect_uri).await;
    finish(&app, &rp, &target, &issuer, pending, "gia@example.com").await;
    drop(browser);
    app.stop().await;
}
both!(scenario_invite_only);

// A suite member provisioned on first access: no sign-up step, just the emailed link.
async fn scenario_auto_provisioned_member(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = crate::mail_kit::Sink::start();
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("suite-{backend:?}")).await;
    let policy = json!({"signup_policy": "auto_on_first_access", "allowed_email_domains": ["suite.test"]});
    let (rp, issuer, redirect_uri) = policy_app(&app, &sink, &target, "suite", policy).await;
    let pending = to_login(&browser, &rp, &issuer).await;
    browser.click("#magic-link").await;
    browser.wait_for_url_prefix(&format!("{issuer}/magic-link"), Duration::from_secs(10)).await;
    browser.fill("input[name=email]", "hal@suite.test").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Check your inbox", Duration::from_secs(10)).await;
    let mail = sink.wait_for("hal@suite.test").await;
    browser.goto(&crate::mail_kit::link_in(&mail.text, &format!("{issuer}/magic-link?token="))).await;
    browser.screenshot_sizes("suite-first-access").await;
    browser.click("#continue").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    finish(&app, &rp, &target, &issuer, pending, "hal@suite.test").await;
    drop(browser);
    app.stop().await;
}
both!(scenario_auto_provisioned_member);

// TOTP in the browser: enrol on /account (the key read from the page, codes computed with
// totp-lite), then a sign-in through /authorize is held at /mfa until the code is entered.
async fn totp_enrolment_and_sign_in_in_the_browser(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = crate::mail_kit::Sink::start();
    let target = RedirectTarget::start().await;
    let browser = Browser::start(&format!("totp-{backend:?}")).await;
    let (rp, issuer, redirect_uri) = policy_app(&app, &sink, &target, "vault", json!({})).await;
    let email = "ada@example.com";
    let password = "correct horse battery";
    let pending = to_login(&browser, &rp, &issuer).await;
    browser.click(r#"a[href*="signup"]"#).await;
    browser.wait_for_url_prefix(&format!("{issuer}/signup"), Duration::from_secs(10)).await;
    browser.fill("input[name=email]", email).await;
    browser.fill("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    finish(&app, &rp, &target, &issuer, pending, email).await;

    browser.goto(&format!("{issuer}/account")).await;
    browser.click("#mfa-setup").await;
    browser.wait_for_text("Scan this code", Duration::from_secs(10)).await;
    assert!(browser.exists("figure.qr svg").await, "the QR code is an inline SVG");
    browser.screenshot_sizes("totp-setup").await;
    let secret = browser.text("#totp-secret").await;
    browser.fill("input[name=code]", &crate::mfa::code_now(&app, &secret)).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Save your recovery codes", Duration::from_secs(10)).await;
    browser.screenshot_sizes("totp-recovery-codes").await;

    crate::mfa::next_step(&app);
    let pending = to_login(&browser, &rp, &issuer).await;
    browser.fill("input[name=email]", email).await;
    browser.fill("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url_prefix(&format!("{issuer}/mfa"), Duration::from_secs(10)).await;
    assert!(
        target.last().is_none_or(|cb| cb.get("state") != Some(pending.state.secret().as_str())),
        "nothing reached the client yet"
    );
    browser.screenshot_sizes("totp-challenge").await;
    browser.fill("input[name=code]", &crate::mfa::code_now(&app, &secret)).await;
    browser.click("#code ~ button[type=submit]").await;
    browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(15)).await;
    finish(&app, &rp, &target, &issuer, pending, email).await;
    drop(browser);
    app.stop().await;
}
both!(totp_enrolment_and_sign_in_in_the_browser);
