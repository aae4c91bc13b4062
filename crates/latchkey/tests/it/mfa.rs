//! TOTP second factor over HTTP (the browser run is in browser.rs): enrolment confirmed by a
//! first code, sign-in held at `/mfa` with no session or code before the second factor, replay
//! refused, recovery codes usable once, throttling, removal, and an operator's reset. Codes are
//! computed with `totp-lite`, independent of the server's TOTP library.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use crate::mail::{count, identity_store, post_page, refreshing_client};
use crate::signin::{Flow, location, query_of};

/// The code an authenticator app shows for `secret` (base32) at the server's current time.
pub fn code_now(app: &TestApp, secret: &str) -> String {
    use latchkey::clock::Clock;
    let key = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret).expect("base32 secret");
    let t = u64::try_from(app.clock.now().timestamp()).expect("time");
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &key, t)
}

/// The next 30-second step, so a new code is not a replay of the last one.
pub fn next_step(app: &TestApp) {
    app.clock.advance(chrono::Duration::seconds(30));
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html.find(start).unwrap_or_else(|| panic!("{start} not in page")) + start.len();
    &html[at..at + html[at..].find(end).expect("end")]
}

fn has_session_cookie(res: &reqwest::Response) -> bool {
    res.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap_or("").starts_with("lk_session="))
}

/// Enrols TOTP for the signed-in browser; returns the secret and the recovery codes.
pub(crate) async fn enrol(app: &TestApp, slug: &str, b: &reqwest::Client) -> (String, Vec<String>) {
    let account = format!("{}/account", app.issuer(slug));
    let res = post_page(b, &account, &format!("{account}/mfa/setup"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("html");
    assert!(html.contains("<svg"), "a QR code drawn on the server");
    let secret = between(&html, "<code id=\"totp-secret\">", "</code>").to_string();
    // A wrong first code does not turn it on.
    let confirm = format!("{account}/mfa/confirm");
    let res = post_page(b, &account, &confirm, &[("code", "000000")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = post_page(b, &account, &confirm, &[("code", &code_now(app, &secret))]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("html");
    let list = between(&html, "<ul class=\"codes\" id=\"recovery-codes\">", "</ul>");
    let codes: Vec<String> =
        list.split("<code>").skip(1).map(|c| c.split("</code>").next().expect("code").to_string()).collect();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
    (secret, codes)
}

/// Password sign-in through a client; returns the flow and the response (held at /mfa or not).
async fn first_factor(app: &TestApp, slug: &str, client: &str, email: &str) -> (Flow, reqwest::Response) {
    let mut flow = Flow::new(client);
    let login = location(&flow.authorize(app, slug, "").await);
    let res = flow.submit(&login, &[("email", email), ("password", "correct horse battery")]).await;
    (flow, res)
}

async fn second_factor(app: &TestApp, slug: &str, flow: &Flow, step: &str, code: &str) -> reqwest::Response {
    let mfa = format!("{}/mfa", app.issuer(slug));
    post_page(&flow.browser, &mfa, &mfa, &[("step", step), ("code", code)]).await
}

async fn amr_after(app: &TestApp, slug: &str, flow: &Flow, res: &reqwest::Response) -> Value {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (s, tokens) = flow.exchange(app, slug, &query_of(&location(res))["code"]).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let (_, id) = verify_with_jwks(
        &app.http,
        &format!("{}/jwks", app.issuer(slug)),
        tokens["id_token"].as_str().expect("id"),
    )
    .await
    .expect("verifies");
    id["amr"].clone()
}

async fn totp_sign_in_replay_and_recovery(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("otp").await;
    let me = crate::mail::sign_up(&app, "otp", "tia@example.com", "correct horse battery").await;
    let (secret, codes) = enrol(&app, "otp", &me).await;
    let store = identity_store(&app, "otp").await;
    let sealed: String = latchkey::on_db!(&store, p => sqlx::query_scalar("SELECT secret_sealed FROM mfa_totp").fetch_one(p).await).expect("row");
    assert!(sealed.starts_with("lk1$") && !sealed.contains(&secret), "the secret is sealed at rest");
    let account = me
        .get(format!("{}/account", app.issuer("otp")))
        .send()
        .await
        .expect("acct")
        .text()
        .await
        .expect("html");
    assert!(account.contains("10 recovery codes left"));
    let client = refreshing_client(&app, "otp").await;

    // The first factor alone gets no session and no code: the browser is sent to /mfa.
    let (flow, res) = first_factor(&app, "otp", &client, "tia@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).ends_with("/apps/otp/mfa"), "{}", location(&res));
    assert!(!has_session_cookie(&res));
    // The code used for enrolment is spent: the same window's code is refused.
    let res = second_factor(&app, "otp", &flow, "totp", &code_now(&app, &secret)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a code cannot be used twice");
    let res = second_factor(&app, "otp", &flow, "totp", "123456").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    next_step(&app);
    let code = code_now(&app, &secret);
    let res = second_factor(&app, "otp", &flow, "totp", &code).await;
    assert!(has_session_cookie(&res));
    assert_eq!(amr_after(&app, "otp", &flow, &res).await, json!(["pwd", "otp", "mfa"]));

    // Replay in another sign-in within the same window: refused.
    let (flow, _) = first_factor(&app, "otp", &client, "tia@example.com").await;
    assert_eq!(second_factor(&app, "otp", &flow, "totp", &code).await.status(), StatusCode::UNAUTHORIZED);
    // A recovery code works once.
    let res = second_factor(&app, "otp", &flow, "recovery", &codes[0].to_uppercase()).await;
    assert_eq!(amr_after(&app, "otp", &flow, &res).await, json!(["pwd", "mfa"]));
    let (flow, _) = first_factor(&app, "otp", &client, "tia@example.com").await;
    assert_eq!(
        second_factor(&app, "otp", &flow, "recovery", &codes[0]).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Guessing is throttled.
    let mut throttled = None;
    for _ in 0..12 {
        let res = second_factor(&app, "otp", &flow, "totp", "000001").await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(res.headers()["retry-after"].to_str().expect("ascii").to_string());
            break;
        }
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(throttled.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)), "429 with Retry-After");
    let mut failed = 0;
    for _ in 0..50 {
        failed = count(&store, "SELECT count(*) FROM audit_events WHERE type = 'mfa.failed'").await;
        if failed >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(failed >= 3, "mfa.failed is audited");
    assert_eq!(count(&store, "SELECT count(*) FROM audit_events WHERE type = 'mfa.enrolled'").await, 1);
    app.stop().await;
}
both!(totp_sign_in_replay_and_recovery);

async fn removal_needs_a_fresh_code_and_operators_can_reset(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rm").await;
    let me = crate::mail::sign_up(&app, "rm", "uma@example.com", "correct horse battery").await;
    let (secret, codes) = enrol(&app, "rm", &me).await;
    let account = format!("{}/account", app.issuer("rm"));
    let remove = format!("{account}/mfa/remove");
    assert_eq!(
        post_page(&me, &account, &remove, &[("code", "999999")]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // New recovery codes need a fresh code and replace the old ones.
    next_step(&app);
    let res = post_page(
        &me,
        &account,
        &format!("{account}/mfa/recovery-codes"),
        &[("code", &code_now(&app, &secret))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        post_page(&me, &account, &remove, &[("code", &codes[1])]).await.status(),
        StatusCode::UNAUTHORIZED,
        "old codes are gone"
    );
    next_step(&app);
    let res = post_page(&me, &account, &remove, &[("code", &code_now(&app, &secret))]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("html").contains("Two-step verification is off."));
    let client = refreshing_client(&app, "rm").await;
    let (_, res) = first_factor(&app, "rm", &client, "uma@example.com").await;
    assert!(has_session_cookie(&res), "no second factor any more");

    // An operator resets a user who lost their device.
    next_step(&app);
    enrol(&app, "rm", &me).await;
    let (_, users) = app.admin(Method::GET, "/apps/rm/users?email=uma", None).await;
    let id = users["items"][0]["id"].as_str().expect("id").to_string();
    assert_eq!(app.admin(Method::GET, &format!("/apps/rm/users/{id}"), None).await.1["mfa"]["totp"], true);
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/rm/users/{id}/mfa"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        app.admin(Method::GET, &format!("/apps/rm/users/{id}"), None).await.1["mfa"],
        json!({"totp": false, "recovery_codes_left": 0})
    );
    let (_, res) = first_factor(&app, "rm", &client, "uma@example.com").await;
    assert!(has_session_cookie(&res));
    let store = identity_store(&app, "rm").await;
    let mut removed = 0;
    for _ in 0..50 {
        removed = count(&store, "SELECT count(*) FROM audit_events WHERE type = 'mfa.removed'").await;
        if removed == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(removed, 2, "by the user, then by the operator");
    app.stop().await;
}
both!(removal_needs_a_fresh_code_and_operators_can_reset);

// Someone who knows the password but not the second factor cannot use the other sign-in steps
// (a password change, profile fields) to get around it.
async fn other_steps_cannot_skip_the_second_factor(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("skip").await;
    let me = crate::mail::sign_up(&app, "skip", "vic@example.com", "correct horse battery").await;
    enrol(&app, "skip", &me).await;
    let (s, v) = app
        .admin(
            Method::PATCH,
            "/apps/skip",
            Some(
                json!({"policy": {"password": {"expiry_days": 1}, "required_profile_fields": ["nickname"]}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.clock.advance(chrono::Duration::days(2));
    let client = refreshing_client(&app, "skip").await;
    let (flow, res) = first_factor(&app, "skip", &client, "vic@example.com").await;
    assert!(location(&res).ends_with("/mfa"));
    let cont = format!("{}/continue", app.issuer("skip"));
    for fields in [
        vec![("step", "password"), ("password", "An entirely new one 1")],
        vec![("step", "profile"), ("nickname", "vee")],
        vec![("step", "check")],
    ] {
        let res = post_page(&flow.browser, &cont, &cont, &fields).await;
        assert_eq!(res.status(), StatusCode::OK, "{fields:?}");
        assert!(!has_session_cookie(&res));
        assert!(res.text().await.expect("html").contains("Enter your verification code"), "{fields:?}");
    }
    let store = identity_store(&app, "skip").await;
    let changed = count(&store, "SELECT count(*) FROM users WHERE CAST(profile AS TEXT) LIKE '%vee%'").await;
    assert_eq!(changed, 0, "the profile was not touched");
    let (_, res) = first_factor(&app, "skip", &client, "vic@example.com").await;
    assert!(location(&res).ends_with("/mfa"), "the old password still is the first factor");
    app.stop().await;
}
both!(other_steps_cannot_skip_the_second_factor);
