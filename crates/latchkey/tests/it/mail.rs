//! Mail over real SMTP to a loopback sink: magic-link sign-in completing the original OIDC flow,
//! password reset, email verification, identical answers for unknown addresses, throttling, the
//! outbox retrying while the SMTP server is down and surviving a restart, the dev transport, and
//! operator wording.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use crate::mail_kit::{Sink, link_in, parse_message};
use crate::signin::{Flow, browser, csrf_of, location, public_client, query_of};

const FROM: &str = "no-reply@acme.test";

/// An active app whose mail goes to `sink`.
pub(crate) async fn app_with_sink(app: &TestApp, slug: &str, sink: &Sink) {
    app.active_app(slug).await;
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/apps/{slug}"),
            Some(json!({"display_name": "Acme", "smtp": {"url": sink.url(), "from": FROM, "reply_to": "help@acme.test"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Signs up through the hosted page (no authorization request); returns the browser.
pub(crate) async fn sign_up(app: &TestApp, slug: &str, email: &str, password: &str) -> reqwest::Client {
    let flow = Flow::new("none");
    let res = flow
        .submit(&format!("{}/signup", app.issuer(slug)), &[("email", email), ("password", password)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    flow.browser
}

/// GETs `page_url` in `b`, then posts its form (with the page's CSRF token) to `action`.
pub(crate) async fn post_page(
    b: &reqwest::Client,
    page_url: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = b.get(page_url).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK, "{page_url}");
    let csrf = csrf_of(&page.text().await.expect("html"));
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend_from_slice(fields);
    b.post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&form).expect("form"))
        .send()
        .await
        .expect("post")
}

/// A public client that may refresh.
pub(crate) async fn refreshing_client(app: &TestApp, slug: &str) -> String {
    let (s, c) = app
        .admin(
            Method::POST,
            &format!("/apps/{slug}/clients"),
            Some(json!({
                "name": "spa", "redirect_uris": [crate::signin::REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["client_id"].as_str().expect("id").to_string()
}

pub(crate) fn token_of(link: &str) -> String {
    query_of(link)["token"].clone()
}

pub(crate) async fn userinfo(app: &TestApp, slug: &str, access: &str) -> (StatusCode, Value) {
    let res = app
        .http
        .get(format!("{}/userinfo", app.issuer(slug)))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo");
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

async fn magic_link_completes_the_original_flow(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    sign_up(&app, "web", "ann@example.com", "correct horse battery").await;
    let client_id = public_client(&app, "web").await;

    // The client starts a flow; the user picks "email me a link" on the login page.
    let mut flow = Flow::new(&client_id);
    let res = flow.authorize(&app, "web", "&login_hint=ann%40example.com").await;
    let login = location(&res);
    let login_page = flow.browser.get(&login).send().await.expect("login").text().await.expect("html");
    let request = query_of(&login)["request"].clone();
    let magic_page = format!("{}/magic-link?request={request}", app.issuer("web"));
    assert!(login_page.contains("id=\"magic-link\""), "login offers the magic link");
    let started = Instant::now();
    let res = flow.submit(&magic_page, &[("email", "Ann@Example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "asking never waits for SMTP");
    assert!(res.text().await.expect("html").contains("Check your inbox"));

    // The message: from the app's own address and name, both parts, the link escaped in HTML.
    // (Message 1 is the verification mail of the sign-up.)
    let mail = sink.wait_nth("ann@example.com", 2, Duration::from_secs(15)).await;
    assert_eq!(mail.from, FROM);
    assert_eq!(sink.for_rcpt("ann@example.com")[1].envelope_from, FROM, "SMTP envelope sender");
    assert_eq!(mail.from_name.as_deref(), Some("Acme"));
    assert_eq!(mail.reply_to.as_deref(), Some("help@acme.test"));
    assert_eq!(mail.subject, "Your sign-in link for Acme");
    let link = link_in(&mail.text, &format!("{}/magic-link?token=", app.issuer("web")));
    assert!(mail.html.contains(&token_of(&link)), "HTML part carries the same link");
    assert!(mail.text.contains("15 minutes"));

    // Opened in another browser: that browser is signed in and the original flow completes.
    let other = browser();
    let confirm = other.get(&link).send().await.expect("link");
    assert_eq!(confirm.status(), StatusCode::OK, "GET shows a confirmation and spends nothing");
    let csrf = csrf_of(&confirm.text().await.expect("html"));
    let body =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("token", &token_of(&link))]).expect("form");
    let post = |b: reqwest::Client, body: String| {
        let url = format!("{}/magic-link", app.issuer("web"));
        async move {
            b.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("post")
        }
    };
    let res = post(other.clone(), body.clone()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("lk_session="))
    );
    let back = location(&res);
    let q = query_of(&back);
    assert_eq!(q["state"], "st-1", "the original request's state comes back");
    let (s, tokens) = flow.exchange(&app, "web", &q["code"]).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let jwks = format!("{}/jwks", app.issuer("web"));
    let (_, id) = verify_with_jwks(&app.http, &jwks, tokens["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert_eq!(id["amr"], json!(["email"]));
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email_verified"], true, "following the link proved the address");

    // Single use: a second post and a second GET both fail with a friendly page.
    let res = post(other.clone(), body).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.expect("html").contains("used or has expired"));
    assert_eq!(other.get(&link).send().await.expect("again").status(), StatusCode::BAD_REQUEST);

    // Expiry: a link older than 15 minutes does nothing.
    let res =
        flow.submit(&format!("{}/magic-link", app.issuer("web")), &[("email", "ann@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = sink.wait_nth("ann@example.com", 3, Duration::from_secs(15)).await;
    let link = link_in(&mail.text, &format!("{}/magic-link?token=", app.issuer("web")));
    let page = other.get(&link).send().await.expect("fresh link");
    let csrf = csrf_of(&page.text().await.expect("html"));
    app.clock.advance(chrono::Duration::minutes(16));
    let body =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("token", &token_of(&link))]).expect("form");
    assert_eq!(post(other.clone(), body).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(other.get(&link).send().await.expect("expired").status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
both!(magic_link_completes_the_original_flow);

async fn password_reset_ends_other_sessions(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    sign_up(&app, "web", "bob@example.com", "old password 123").await;
    let client_id = refreshing_client(&app, "web").await;

    // Browser A signs in through a client and holds tokens.
    let mut a = Flow::new(&client_id);
    let login = location(&a.authorize(&app, "web", "").await);
    let res = a.submit(&login, &[("email", "bob@example.com"), ("password", "old password 123")]).await;
    let code = query_of(&location(&res))["code"].clone();
    let (_, tokens) = a.exchange(&app, "web", &code).await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    assert_eq!(userinfo(&app, "web", &access).await.0, StatusCode::OK);

    // Browser B asks for a reset from the login page and follows the mailed link.
    let b = browser();
    let reset_page = format!("{}/reset-password", app.issuer("web"));
    let res = post_page(&b, &reset_page, &reset_page, &[("email", "bob@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = sink.wait_nth("bob@example.com", 2, Duration::from_secs(15)).await;
    assert_eq!(mail.subject, "Reset your Acme password");
    assert!(mail.text.contains("30 minutes"));
    let link = link_in(&mail.text, &format!("{}/reset-password?token=", app.issuer("web")));

    // Too short a password is refused without spending the link.
    let token = token_of(&link);
    let res = post_page(&b, &link, &reset_page, &[("token", &token), ("password", "short")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res =
        post_page(&b, &link, &reset_page, &[("token", &token), ("password", "brand new password")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed in after the reset");
    assert!(location(&res).ends_with("/apps/web/account"));

    // Every other session ended: A's access token, refresh token and cookie are dead.
    assert_eq!(userinfo(&app, "web", &access).await.0, StatusCode::UNAUTHORIZED);
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let body = format!("grant_type=refresh_token&refresh_token={refresh}&client_id={client_id}");
    let (s, _, v) = app.form("web", "token", None, &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let res = a.browser.get(format!("{}/account", app.issuer("web"))).send().await.expect("account");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "A is signed out");
    // B is signed in.
    let res = b.get(format!("{}/account", app.issuer("web"))).send().await.expect("account");
    assert_eq!(res.status(), StatusCode::OK);

    // The old password is gone, the new one works; the link is single use.
    let login = format!("{}/login", app.issuer("web"));
    let c = Flow::new("none");
    let res = c.submit(&login, &[("email", "bob@example.com"), ("password", "old password 123")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = c.submit(&login, &[("email", "bob@example.com"), ("password", "brand new password")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(b.get(&link).send().await.expect("reuse").status(), StatusCode::BAD_REQUEST);

    // A reset link expires after 30 minutes.
    let res = post_page(&b, &reset_page, &reset_page, &[("email", "bob@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = sink.wait_nth("bob@example.com", 3, Duration::from_secs(15)).await;
    let link = link_in(&mail.text, &format!("{}/reset-password?token=", app.issuer("web")));
    app.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(b.get(&link).send().await.expect("expired").status(), StatusCode::BAD_REQUEST);

    // The reset is in the audit trail.
    let store = identity_store(&app, "web").await;
    let mut found = 0;
    for _ in 0..50 {
        found = count(&store, "SELECT count(*) FROM audit_events WHERE type = 'password.reset'").await;
        if found > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, 1);
    app.stop().await;
}
both!(password_reset_ends_other_sessions);

async fn verification_link_sets_email_verified(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    let client_id = refreshing_client(&app, "web").await;
    let mut flow = Flow::new(&client_id);
    let signup = location(&flow.authorize(&app, "web", "").await).replace("/login?", "/signup?");
    let res =
        flow.submit(&signup, &[("email", "cy@example.com"), ("password", "correct horse battery")]).await;
    let code = query_of(&location(&res))["code"].clone();
    let (_, tokens) = flow.exchange(&app, "web", &code).await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    assert_eq!(userinfo(&app, "web", &access).await.1["email_verified"], false);

    let mail = sink.wait_for("cy@example.com").await;
    assert_eq!(mail.subject, "Confirm your email address for Acme");
    let link = link_in(&mail.text, &format!("{}/verify-email?token=", app.issuer("web")));
    // The account page offers a re-send while unverified.
    let account = flow.browser.get(format!("{}/account", app.issuer("web"))).send().await.expect("account");
    let html = account.text().await.expect("html");
    assert!(html.contains("Send the confirmation link again"));
    let res = post_page(
        &flow.browser,
        &format!("{}/account", app.issuer("web")),
        &format!("{}/verify-email", app.issuer("web")),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = sink.wait_nth("cy@example.com", 2, Duration::from_secs(15)).await;
    assert_ne!(link_in(&second.text, "http"), link, "a new link");

    let res = browser().get(&link).send().await.expect("verify");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("html").contains("confirmed"));
    let (s, info) = userinfo(&app, "web", &access).await;
    assert_eq!((s, &info["email_verified"]), (StatusCode::OK, &json!(true)), "userinfo follows at once");
    // A second click (a mail scanner got there first) says so instead of "not valid".
    let again = browser().get(&link).send().await.expect("again");
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.expect("html").contains("cy@example.com is already confirmed"));
    assert_eq!(
        browser()
            .get(format!("{}/verify-email?token=forged-token-0123456789", app.issuer("web")))
            .send()
            .await
            .expect("forged")
            .status(),
        StatusCode::BAD_REQUEST
    );
    // Refreshed tokens carry it too.
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client_id}",
        tokens["refresh_token"].as_str().expect("refresh")
    );
    let (s, _, v) = app.form("web", "token", None, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, info) = userinfo(&app, "web", v["access_token"].as_str().expect("access")).await;
    assert_eq!(info["email_verified"], true);
    app.stop().await;
}
both!(verification_link_sets_email_verified);

/// Replaces the address typed so two answers can be compared byte for byte.
fn normalise(html: &str, email: &str) -> String {
    html.replace(email, "EMAIL")
}

async fn unknown_addresses_get_the_same_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    sign_up(&app, "web", "known@example.com", "correct horse battery").await;
    let b = browser();
    for page in ["magic-link", "reset-password"] {
        let url = format!("{}/{page}", app.issuer("web"));
        let mut answers = Vec::new();
        for email in ["known@example.com", "nobody@example.com"] {
            let res = post_page(&b, &url, &url, &[("email", email)]).await;
            let status = res.status();
            let cookies = res.headers().get_all("set-cookie").iter().count();
            answers.push((status, cookies, normalise(&res.text().await.expect("html"), email)));
        }
        assert_eq!(answers[0], answers[1], "{page}: same status, cookies and page");
    }
    // The sign-up's verification mail, then the magic link and the reset link.
    sink.wait_nth("known@example.com", 3, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.for_rcpt("nobody@example.com").is_empty(), "nothing is sent to an unknown address");
    app.stop().await;
}
both!(unknown_addresses_get_the_same_answer);

async fn mail_requests_are_throttled(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    let url = format!("{}/magic-link", app.issuer("web"));
    let b = browser();
    // Per address, the same for an address nobody registered: 5, then a wait.
    for i in 0..5 {
        assert_eq!(
            post_page(&b, &url, &url, &[("email", "x@example.com")]).await.status(),
            StatusCode::OK,
            "#{i}"
        );
    }
    let res = post_page(&b, &url, &url, &[("email", "x@example.com")]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=180).contains(&retry), "{retry}");
    assert!(res.text().await.expect("html").contains("Too many emails"));
    // The reset page shares the per-address budget.
    let reset = format!("{}/reset-password", app.issuer("web"));
    assert_eq!(
        post_page(&b, &reset, &reset, &[("email", "X@example.com")]).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Per client address: other addresses run out at 30 from one client.
    let mut refused = false;
    for i in 0..40 {
        let res = post_page(&b, &url, &url, &[("email", &format!("u{i}@example.com"))]).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert!(refused, "one client address cannot ask for mail to any number of addresses");
    app.stop().await;
}
both!(mail_requests_are_throttled);

pub async fn identity_store(app: &TestApp, slug: &str) -> latchkey::store::IdentityDb {
    let a = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app");
    latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store")
}

pub async fn count(db: &latchkey::store::IdentityDb, sql: &str) -> i64 {
    latchkey::on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).expect("count")
}

async fn outbox_retries_until_smtp_is_up(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::down();
    app_with_sink(&app, "web", &sink).await;
    sign_up(&app, "web", "dee@example.com", "correct horse battery").await;
    let url = format!("{}/magic-link", app.issuer("web"));
    let started = Instant::now();
    let res = post_page(&browser(), &url, &url, &[("email", "dee@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the answer does not wait for the failing SMTP server"
    );

    // Failing attempts are recorded (and counted in /metrics) without losing the message.
    let store = identity_store(&app, "web").await;
    let pending = "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL AND kind = 'magic_link'";
    let mut seen = 0;
    for _ in 0..100 {
        seen = count(&store, pending).await;
        if seen == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "a failed attempt stays queued");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("latchkey_mail_failures_total"), "failures are visible in /metrics");
    assert!(!metrics.contains("token="), "no link in metrics");

    sink.up();
    // The sign-up's verification mail and the magic link, each once.
    sink.wait_nth("dee@example.com", 2, Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = sink.for_rcpt("dee@example.com");
    assert_eq!(got.len(), 2, "each delivered once");
    assert!(got.iter().any(|m| m.parse().text.contains("/magic-link?token=")));
    assert_eq!(
        count(&store, "SELECT count(*) FROM outbox WHERE status = 'sent' AND message_sealed IS NULL").await,
        2
    );
    app.stop().await;
}
both!(outbox_retries_until_smtp_is_up);

async fn nothing_is_lost_across_a_restart(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::down();
    app_with_sink(&app, "web", &sink).await;
    sign_up(&app, "web", "eve@example.com", "correct horse battery").await;
    let url = format!("{}/reset-password", app.issuer("web"));
    let res = post_page(&browser(), &url, &url, &[("email", "eve@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let store = identity_store(&app, "web").await;
    let mut queued = 0;
    for _ in 0..50 {
        queued = count(&store, "SELECT count(*) FROM outbox WHERE status = 'pending'").await;
        if queued == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued, 2, "the verification and the reset mail wait in the outbox");
    let opts = app.same_store();
    app.stop().await;

    // The SMTP server comes back while Latchkey is down; the restarted server delivers.
    sink.up();
    let app = TestApp::start_with(opts).await;
    sink.wait_nth("eve@example.com", 2, Duration::from_secs(40)).await;
    let kinds: Vec<String> = sink.for_rcpt("eve@example.com").iter().map(|m| m.parse().subject).collect();
    assert!(kinds.contains(&"Reset your Acme password".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"Confirm your email address for Acme".to_string()), "{kinds:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.for_rcpt("eve@example.com").len(), 2, "each delivered once");
    app.stop().await;
}
both!(nothing_is_lost_across_a_restart);

async fn default_smtp_and_dev_transport(backend: Backend) {
    // Without any SMTP: an .eml file per message in <data dir>/outbox/.
    let app = TestApp::start(backend).await;
    app.active_app("dev").await;
    sign_up(&app, "dev", "fay@example.com", "correct horse battery").await;
    let outbox = app.dir.path().join("outbox");
    let mut files = Vec::new();
    for _ in 0..100 {
        files = std::fs::read_dir(&outbox)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    let mail = parse_message(&std::fs::read(&files[0]).expect("eml"));
    assert_eq!(mail.to, "fay@example.com");
    assert!(mail.text.contains(&format!("{}/verify-email?token=", app.issuer("dev"))));
    app.stop().await;

    // LATCHKEY_SMTP_URL serves apps without their own SMTP, from LATCHKEY_SMTP_FROM.
    let sink = Sink::start();
    let mut opts = TestApp::options(backend);
    opts.extra_args = vec!["--smtp-url".into(), sink.url(), "--smtp-from".into(), "id@platform.test".into()];
    let app = TestApp::start_with(opts).await;
    app.active_app("shared").await;
    sign_up(&app, "shared", "gus@example.com", "correct horse battery").await;
    let mail = sink.wait_for("gus@example.com").await;
    assert_eq!(mail.from, "id@platform.test");
    assert_eq!(mail.from_name.as_deref(), Some("App shared"));
    assert!(!app.dir.path().join("outbox").exists(), "no dev files when SMTP is configured");
    app.stop().await;
}
both!(default_smtp_and_dev_transport);

async fn operators_set_the_wording(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    // A template without the link, or one that does not compile, is refused.
    for bad in [
        json!({"magic_link": {"text": "no link"}}),
        json!({"magic_link": {"html": "{% if %}"}}),
        json!({"magic_link": {"colour": "red"}}),
        json!({"welcome": {}}),
    ] {
        let (s, v) = app.admin(Method::PATCH, "/apps/web", Some(json!({"email_templates": bad}))).await;
        assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {s} {v}");
        assert!(v["detail"].is_string());
    }
    let templates = json!({"magic_link": {
        "subject": "Bienvenue sur {{ app_name }}",
        "text": "Votre lien : {{ link }} (valable {{ expires_minutes }} minutes)",
        "html": "<p>Bonjour {{ email }}, <a href=\"{{ link }}\">connexion</a></p>"
    }});
    let (s, v) = app.admin(Method::PATCH, "/apps/web", Some(json!({"email_templates": templates}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["email_templates"]["magic_link"]["subject"], "Bienvenue sur {{ app_name }}");
    // The SMTP password is never shown.
    let (s, v) = app
        .admin(
            Method::PATCH,
            "/apps/web",
            Some(json!({"smtp": {"url": format!("smtp://mailer:s3cret-pw@127.0.0.1:{}", sink.port)}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains("s3cret-pw"));
    let (s, v) = app.admin(Method::PATCH, "/apps/web", Some(json!({"smtp": {"url": sink.url()}}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    sign_up(&app, "web", "hal@example.com", "correct horse battery").await;
    let url = format!("{}/magic-link", app.issuer("web"));
    post_page(&browser(), &url, &url, &[("email", "hal@example.com")]).await;
    let mail = sink.wait_nth("hal@example.com", 2, Duration::from_secs(15)).await;
    assert_eq!(mail.subject, "Bienvenue sur Acme");
    assert!(mail.text.starts_with("Votre lien : http"), "{}", mail.text);
    assert!(mail.text.contains("(valable 15 minutes)"));
    assert!(mail.html.contains("connexion"));
    assert!(mail.html.contains("Bonjour hal@example.com"));
    // The verification mail kept the default wording.
    let first = sink.wait_nth("hal@example.com", 1, Duration::from_secs(15)).await;
    assert!(first.subject.starts_with("Confirm your email address"));
    app.stop().await;
}
both!(operators_set_the_wording);

async fn mail_pages_refuse_hostile_input(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "web", &sink).await;
    let issuer = app.issuer("web");
    let b = browser();
    // A page visit for the CSRF cookie and token.
    let page = b.get(format!("{issuer}/magic-link")).send().await.expect("page");
    let csrf = csrf_of(&page.text().await.expect("html"));
    let post = |path: &str, body: String| {
        let req = b
            .post(format!("{issuer}/{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move { req.send().await.expect("post") }
    };
    let long = "a".repeat(10_000);
    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("magic-link", "email=a%40example.com".into(), StatusCode::BAD_REQUEST),
        (
            "magic-link",
            format!("csrf={csrf}&email=a%40example.com&email=b%40example.com"),
            StatusCode::BAD_REQUEST,
        ),
        ("magic-link", format!("csrf={csrf}&email=%FF%FE"), StatusCode::BAD_REQUEST),
        ("magic-link", format!("csrf={csrf}&email={long}"), StatusCode::UNPROCESSABLE_ENTITY),
        ("magic-link", format!("csrf={csrf}&email="), StatusCode::UNPROCESSABLE_ENTITY),
        // An empty token is no token: the form asks for an address.
        ("magic-link", format!("csrf={csrf}&token="), StatusCode::UNPROCESSABLE_ENTITY),
        ("magic-link", format!("csrf={csrf}&token={long}"), StatusCode::BAD_REQUEST),
        ("magic-link", format!("csrf={csrf}&token=lkm_forged0123456789abcdef"), StatusCode::BAD_REQUEST),
        ("magic-link", format!("csrf={csrf}&email={}", "b".repeat(20_000)), StatusCode::PAYLOAD_TOO_LARGE),
        (
            "reset-password",
            format!("csrf={csrf}&token=lkm_forged0123456789abcdef&password=long+enough+pw"),
            StatusCode::BAD_REQUEST,
        ),
        ("reset-password", format!("csrf={csrf}&token=%00%01&password=x"), StatusCode::BAD_REQUEST),
        ("reset-password", "csrf=wrong&email=a%40example.com".to_string(), StatusCode::BAD_REQUEST),
        ("verify-email", "csrf=wrong".to_string(), StatusCode::BAD_REQUEST),
    ];
    for (path, body, want) in cases {
        let res = post(path, body.clone()).await;
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, want, "{path} {}: {text}", &body[..body.len().min(80)]);
        if status != StatusCode::PAYLOAD_TOO_LARGE {
            assert!(ctype.starts_with("text/html"), "{path}: a page, not {ctype}");
        }
    }
    for (query, want) in [
        ("magic-link?token=a&token=b", StatusCode::BAD_REQUEST),
        ("magic-link?token=%ZZ", StatusCode::BAD_REQUEST),
        ("reset-password?token=short", StatusCode::BAD_REQUEST),
        ("verify-email", StatusCode::BAD_REQUEST),
        (&format!("verify-email?token={long}"), StatusCode::BAD_REQUEST),
        ("magic-link?request=%3Cscript%3E", StatusCode::OK),
    ] {
        let res = b.get(format!("{issuer}/{query}")).send().await.expect("get");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, want, "{query}");
        assert!(!text.contains("<script>"), "{query}: nothing echoed unescaped");
    }
    assert!(sink.for_rcpt("a@example.com").is_empty());

    // A disabled app's pages answer 503 and send nothing.
    let (s, _) = app.admin(Method::POST, "/apps/web/disable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    app.wait_status("web", "disabled").await;
    let res = b.get(format!("{issuer}/magic-link")).send().await.expect("get");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;
}
both!(mail_pages_refuse_hostile_input);

// `smtp+starttls://` upgrades before sending and checks the certificate: trusted through
// LATCHKEY_SMTP_CA_FILE it delivers; without it the attempt fails and the message waits.
async fn starttls_with_a_private_ca(backend: Backend) {
    let certs = tempfile::tempdir().expect("tempdir");
    let (sink, ca) = Sink::start_tls(certs.path());
    let url = format!("smtp+starttls://127.0.0.1:{}", sink.port);
    let mut opts = TestApp::options(backend);
    opts.extra_args =
        vec!["--smtp-ca-file".into(), ca.display().to_string(), "--smtp-url".into(), url.clone()];
    let app = TestApp::start_with(opts).await;
    app.active_app("tls").await;
    sign_up(&app, "tls", "kim@example.com", "correct horse battery").await;
    let mail = sink.wait_for("kim@example.com").await;
    assert!(mail.text.contains("/verify-email?token="));
    app.stop().await;

    // The same server certificate, not trusted: nothing is sent in clear instead.
    let mut opts = TestApp::options(backend);
    opts.extra_args = vec!["--smtp-url".into(), url];
    let app = TestApp::start_with(opts).await;
    app.active_app("tls").await;
    sign_up(&app, "tls", "lou@example.com", "correct horse battery").await;
    let store = identity_store(&app, "tls").await;
    let failed =
        "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL";
    let mut seen = 0;
    for _ in 0..100 {
        seen = count(&store, failed).await;
        if seen == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "an untrusted certificate fails the attempt");
    assert!(sink.for_rcpt("lou@example.com").is_empty());
    app.stop().await;
}
both!(starttls_with_a_private_ca);

// `smtps://`: TLS from the first byte (here a TLS front before a plain sink), as an app's own
// SMTP with credentials in the URL.
async fn implicit_tls_for_an_apps_own_smtp(backend: Backend) {
    let certs = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start();
    let (port, ca) = crate::mail_kit::implicit_tls_front(&sink, certs.path()).await;
    let mut opts = TestApp::options(backend);
    opts.extra_args = vec!["--smtp-ca-file".into(), ca.display().to_string()];
    let app = TestApp::start_with(opts).await;
    app.active_app("tls").await;
    let smtp = json!({"url": format!("smtps://127.0.0.1:{port}"), "from": "id@tls.test"});
    let (s, v) = app.admin(Method::PATCH, "/apps/tls", Some(json!({"smtp": smtp}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    sign_up(&app, "tls", "max@example.com", "correct horse battery").await;
    let mail = sink.wait_for("max@example.com").await;
    assert_eq!(mail.from, "id@tls.test");
    app.stop().await;
}
both!(implicit_tls_for_an_apps_own_smtp);
