//! Per-app policy (SPEC §8): every rule and signup mode, the allowed path and the refused path,
//! refused server-side over plain HTTP (not only hidden on a page); a change applies to the very
//! next request.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use crate::mail::{app_with_sink, count, identity_store, post_page, refreshing_client, userinfo};
use crate::mail_kit::{Sink, link_in};
use crate::signin::{Flow, browser, location, query_of};

async fn set_policy(app: &TestApp, slug: &str, policy: Value) -> Value {
    let (s, v) = app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(json!({ "policy": policy }))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Posts the sign-up form of `slug` (fresh browser); returns the response and the browser.
async fn signup(app: &TestApp, slug: &str, fields: &[(&str, &str)]) -> (reqwest::Response, reqwest::Client) {
    let flow = Flow::new("none");
    let res = flow.submit(&format!("{}/signup", app.issuer(slug)), fields).await;
    (res, flow.browser)
}

async fn login(
    app: &TestApp,
    slug: &str,
    email: &str,
    password: &str,
) -> (reqwest::Response, reqwest::Client) {
    let flow = Flow::new("none");
    let res = flow
        .submit(&format!("{}/login", app.issuer(slug)), &[("email", email), ("password", password)])
        .await;
    (res, flow.browser)
}

fn has_session_cookie(res: &reqwest::Response) -> bool {
    res.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap_or("").starts_with("lk_session="))
}

async fn policy_is_validated_returned_and_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("pol").await;
    for (bad, says) in [
        (json!({"allowed_providers": ["facebook"]}), "facebook"),
        (json!({"session": {"ttl_hours": -1}}), "ttl_hours"),
        (json!({"session": {"ttl_hours": 0}}), "ttl_hours"),
        (
            json!({"allowed_email_domains": ["acme.com"], "blocked_email_domains": ["ACME.com"]}),
            "both allowed and blocked",
        ),
        (json!({"password": {"min_length": 7}}), "min_length"),
        (json!({"password": {"expiry_days": 0}}), "expiry_days"),
        (json!({"required_profile_fields": ["shoe_size"]}), "shoe_size"),
        (json!({"signup_policy": "everyone"}), "everyone"),
        (json!({"allowed_email_domains": ["not a domain"]}), "not a domain"),
    ] {
        let (s, v) = app.admin(Method::PATCH, "/apps/pol", Some(json!({ "policy": bad }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(v["detail"].as_str().unwrap_or("").contains(says), "{bad}: {v}");
    }
    // Nested objects merge; GET returns what was set; defaults fill the rest.
    set_policy(&app, "pol", json!({"password": {"min_length": 12}})).await;
    let v = set_policy(
        &app,
        "pol",
        json!({"password": {"require_symbol": true}, "signup_policy": "invite_only"}),
    )
    .await;
    assert_eq!(
        v["policy"]["password"],
        json!({"min_length": 12, "require_uppercase": false, "require_symbol": true, "expiry_days": null})
    );
    assert_eq!(app.get_app("pol").await["policy"]["signup_policy"], "invite_only");
    assert_eq!(app.get_app("pol").await["policy"]["session"]["ttl_hours"], 168);
    // Set at creation too.
    let created = app
        .create_app(json!({"slug": "pol2", "display_name": "P2", "policy": {"signup_policy": "admin_approval", "allowed_email_domains": ["Acme.COM"]}}))
        .await;
    assert_eq!(created["policy"]["allowed_email_domains"], json!(["acme.com"]));
    // The OpenAPI document describes it.
    let doc: Value = app
        .http
        .get(format!("{}/admin/v1/openapi.json", app.base))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let policy = &doc["components"]["schemas"]["Policy"]["properties"];
    for field in [
        "allowed_providers",
        "signup_policy",
        "allowed_email_domains",
        "blocked_email_domains",
        "password",
        "session",
        "require_email_verification",
        "required_profile_fields",
    ] {
        assert!(policy.get(field).is_some(), "Policy.{field} documented");
    }
    // Who changed what, in the control-plane audit (no token, only its fingerprint).
    let rows: Vec<String> = latchkey::on_db!(&app.control(), p => sqlx::query_scalar::<_, String>(
        "SELECT CAST(data AS TEXT) FROM operator_audit WHERE action = 'app.updated' AND app_slug = 'pol' ORDER BY time")
        .fetch_all(p).await).expect("audit");
    let last: Value = serde_json::from_str(rows.last().expect("an audit row")).expect("json");
    assert!(last["actor"].as_str().expect("actor").starts_with("token:"), "{last}");
    assert_eq!(last["changes"]["policy"]["signup_policy"], "invite_only", "{last}");
    assert!(!rows.iter().any(|r| r.contains(crate::kit::ADMIN_TOKEN)));
    app.stop().await;
}
both!(policy_is_validated_returned_and_audited);

async fn allowed_providers_are_enforced_server_side(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("prov").await;
    crate::mail::sign_up(&app, "prov", "ann@example.com", "correct horse battery").await;
    set_policy(&app, "prov", json!({"allowed_providers": ["google"]})).await;
    let issuer = app.issuer("prov");
    let b = browser();
    let page = b.get(format!("{issuer}/login")).send().await.expect("login");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(!html.contains("name=\"password\""), "no password form offered");
    assert!(html.contains("No sign-in method"));
    // Refused on the server, whatever a client posts (a CSRF token from another page).
    let csrf = crate::signin::csrf_of(
        &b.get(format!("{issuer}/logout")).send().await.expect("p").text().await.unwrap_or_default(),
    )
    .to_string();
    for (path, body) in [
        ("login", format!("csrf={csrf}&email=ann%40example.com&password=correct+horse+battery")),
        ("signup", format!("csrf={csrf}&email=new%40example.com&password=correct+horse+battery")),
        ("magic-link", format!("csrf={csrf}&email=ann%40example.com")),
        ("reset-password", format!("csrf={csrf}&email=ann%40example.com")),
    ] {
        let res = b
            .post(format!("{issuer}/{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(!has_session_cookie(&res));
    }
    for path in ["signup", "magic-link", "reset-password"] {
        assert_eq!(
            b.get(format!("{issuer}/{path}")).send().await.expect("get").status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // Allowed again: the very next request signs in.
    set_policy(&app, "prov", json!({"allowed_providers": ["email", "google"]})).await;
    let (res, _) = login(&app, "prov", "ann@example.com", "correct horse battery").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both!(allowed_providers_are_enforced_server_side);

async fn email_domains_are_exact_and_case_insensitive(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("dom").await;
    set_policy(&app, "dom", json!({"allowed_email_domains": ["acme.com"]})).await;
    let pw = "correct horse battery";
    let (res, _) = signup(&app, "dom", &[("email", "Bob@ACME.com"), ("password", pw)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "an allowed domain, any case");
    for refused in ["bob@sub.acme.com", "bob@acme.com.evil.test", "bob@other.com"] {
        let (res, _) = signup(&app, "dom", &[("email", refused), ("password", pw)]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert!(res.text().await.expect("html").contains("cannot be created here"), "{refused}");
    }
    set_policy(&app, "dom", json!({"allowed_email_domains": null, "blocked_email_domains": ["other.com"]}))
        .await;
    let (res, _) = signup(&app, "dom", &[("email", "eve@Other.COM"), ("password", pw)]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (res, _) = signup(&app, "dom", &[("email", "eve@sub.other.com"), ("password", pw)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "a subdomain is not the blocked domain");
    // Invitations are checked too.
    let (s, v) =
        app.admin(Method::POST, "/apps/dom/invitations", Some(json!({"email": "x@other.com"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    app.stop().await;
}
both!(email_domains_are_exact_and_case_insensitive);

async fn invite_only_registration(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "inv", &sink).await;
    set_policy(&app, "inv", json!({"signup_policy": "invite_only"})).await;
    let issuer = app.issuer("inv");
    let pw = "correct horse battery";
    // No invitation: refused on the page and on a direct post.
    assert_eq!(
        browser().get(format!("{issuer}/signup")).send().await.expect("get").status(),
        StatusCode::FORBIDDEN
    );
    let page = browser();
    let csrf = crate::signin::csrf_of(
        &page.get(format!("{issuer}/login")).send().await.expect("p").text().await.expect("html"),
    );
    let res = page
        .post(format!("{issuer}/signup"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&email=gate%40example.com&password=correct+horse+battery"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let login_html = page.get(format!("{issuer}/login")).send().await.expect("p").text().await.expect("html");
    assert!(!login_html.contains("Create an account"), "no sign-up link on an invite-only app");

    for (bad, want) in [
        (json!({"email": "not-an-address"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"email": "a@example.com", "expires_in": 10}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"email": "a@example.com", "role": "admin"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, v) = app.admin(Method::POST, "/apps/inv/invitations", Some(bad.clone())).await;
        assert!(s == want || s == StatusCode::BAD_REQUEST, "{bad}: {s} {v}");
    }
    let (s, inv) = app
        .admin(
            Method::POST,
            "/apps/inv/invitations",
            Some(json!({"email": "Ivy@Example.com", "expires_in": 3600})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["email"], "Ivy@example.com");
    assert_eq!(inv["status"], "pending");
    let link = inv["link"].as_str().expect("link").to_string();
    assert!(link.starts_with(&format!("{issuer}/signup?invitation=")), "{link}");
    // Also mailed, with the same link.
    let mail = sink.wait_for("Ivy@example.com").await;
    assert_eq!(link_in(&mail.text, &format!("{issuer}/signup?invitation=")), link);
    assert!(mail.text.contains("1 hours") || mail.text.contains("60 minutes"), "{}", mail.text);

    // The invited address is the one that registers, whatever is typed.
    let b = browser();
    let html = b.get(&link).send().await.expect("invitation").text().await.expect("html");
    assert!(html.contains("readonly") && html.contains("Ivy@example.com"));
    let res = post_page(
        &b,
        &link,
        &format!("{issuer}/signup"),
        &[("invitation", &query_of(&link)["invitation"]), ("email", "mallory@example.com"), ("password", pw)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    let (res, _) = login(&app, "inv", "ivy@example.com", pw).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the invited address signs in");
    let (res, _) = login(&app, "inv", "mallory@example.com", pw).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the typed address got nothing");
    // Single use.
    assert_eq!(browser().get(&link).send().await.expect("again").status(), StatusCode::BAD_REQUEST);
    let (s, _) =
        app.admin(Method::POST, "/apps/inv/invitations", Some(json!({"email": "ivy@example.com"}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "already registered");

    // Revoke: the link stops working; listing shows each state.
    let (_, second) =
        app.admin(Method::POST, "/apps/inv/invitations", Some(json!({"email": "jo@example.com"}))).await;
    let id = second["id"].as_str().expect("id");
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/inv/invitations/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/inv/invitations/{id}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) =
        app.admin(Method::DELETE, "/apps/inv/invitations/0190a4e2-0000-7000-8000-000000000000", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        browser().get(second["link"].as_str().expect("link")).send().await.expect("revoked").status(),
        StatusCode::BAD_REQUEST
    );
    let (s, list) = app.admin(Method::GET, "/apps/inv/invitations", None).await;
    assert_eq!(s, StatusCode::OK);
    let states: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["status"].as_str().expect("status"))
        .collect();
    assert_eq!(states, ["revoked", "used"]);
    assert!(list["items"][1]["user_id"].is_string());
    assert!(
        list["items"].as_array().expect("items").iter().all(|i| i["link"].is_null()),
        "no link once used or revoked"
    );
    let (_, third) =
        app.admin(Method::POST, "/apps/inv/invitations", Some(json!({"email": "kit@example.com"}))).await;
    let (_, list) = app.admin(Method::GET, "/apps/inv/invitations", None).await;
    assert_eq!(list["items"][0]["link"], third["link"], "a pending invitation lists its link");
    let store = identity_store(&app, "inv").await;
    let token = query_of(third["link"].as_str().expect("link"))["invitation"].clone();
    let leaked = count(
        &store,
        &format!(
            "SELECT count(*) FROM invitations WHERE token_sealed LIKE '%{token}%' OR token_hash = '{token}'"
        ),
    )
    .await;
    assert_eq!(leaked, 0, "the token is stored sealed and hashed, never plain");
    app.stop().await;
}
both!(invite_only_registration);

async fn admin_approval_gates_sign_in(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "appr", &sink).await;
    set_policy(&app, "appr", json!({"signup_policy": "admin_approval"})).await;
    let pw = "correct horse battery";
    let (res, _) = signup(&app, "appr", &[("email", "pat@example.com"), ("password", pw)]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!has_session_cookie(&res));
    assert!(res.text().await.expect("html").contains("waiting for approval"));
    // The right password says so; a wrong one answers like any failure; no magic link either.
    let (res, _) = login(&app, "appr", "pat@example.com", pw).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!has_session_cookie(&res));
    let (res, _) = login(&app, "appr", "pat@example.com", "wrong password here").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let url = format!("{}/magic-link", app.issuer("appr"));
    post_page(&browser(), &url, &url, &[("email", "pat@example.com")]).await;

    let store = identity_store(&app, "appr").await;
    let id: uuid::Uuid = latchkey::on_db!(&store, p => sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = 'pat@example.com'").fetch_one(p).await).expect("user");
    assert_eq!(count(&store, "SELECT count(*) FROM users WHERE status = 'pending_approval'").await, 1);
    let (s, v) = app.admin(Method::POST, &format!("/apps/appr/users/{id}/approve"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "active");
    assert!(v.get("password_hash").is_none());
    let (s, _) = app.admin(Method::POST, &format!("/apps/appr/users/{id}/approve"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "only a pending user can be approved");
    let (s, _) = app.admin(Method::POST, "/apps/appr/users/not-a-uuid/approve", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (res, _) = login(&app, "appr", "pat@example.com", pw).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "approved users sign in");
    let mut found = 0;
    for _ in 0..50 {
        found = count(&store, "SELECT count(*) FROM audit_events WHERE type = 'user.approved'").await;
        if found == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, 1, "user.approved is audited");
    // Only the verification mail went out: no magic link while pending.
    assert!(sink.for_rcpt("pat@example.com").iter().all(|m| !m.parse().text.contains("/magic-link?token=")));

    // Rejected: disabled, and signs in like nobody.
    signup(&app, "appr", &[("email", "rex@example.com"), ("password", pw)]).await;
    let rid: uuid::Uuid = latchkey::on_db!(&store, p => sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = 'rex@example.com'").fetch_one(p).await).expect("user");
    let (s, v) = app.admin(Method::POST, &format!("/apps/appr/users/{rid}/reject"), None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("disabled")));
    let (res, _) = login(&app, "appr", "rex@example.com", pw).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Back to open: new sign-ups are active at once.
    set_policy(&app, "appr", json!({"signup_policy": "open"})).await;
    let (res, _) = signup(&app, "appr", &[("email", "sam@example.com"), ("password", pw)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both!(admin_approval_gates_sign_in);

async fn auto_on_first_access_creates_members(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "suite", &sink).await;
    set_policy(
        &app,
        "suite",
        json!({"signup_policy": "auto_on_first_access", "blocked_email_domains": ["rival.test"]}),
    )
    .await;
    let client_id = refreshing_client(&app, "suite").await;
    let mut flow = Flow::new(&client_id);
    let login_url = location(&flow.authorize(&app, "suite", "").await);
    let request = query_of(&login_url)["request"].clone();
    let magic = format!("{}/magic-link?request={request}", app.issuer("suite"));
    let res = flow.submit(&magic, &[("email", "new.member@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = sink.wait_for("new.member@example.com").await;
    let link = link_in(&mail.text, &format!("{}/magic-link?token=", app.issuer("suite")));
    let res = post_page(
        &flow.browser,
        &link,
        &format!("{}/magic-link", app.issuer("suite")),
        &[("token", &crate::mail::token_of(&link))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(&res));
    let (s, tokens) = flow.exchange(&app, "suite", &q["code"]).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let (_, id) = verify_with_jwks(
        &app.http,
        &format!("{}/jwks", app.issuer("suite")),
        tokens["id_token"].as_str().expect("id"),
    )
    .await
    .expect("verifies");
    assert_eq!(id["email"], "new.member@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["amr"], json!(["email"]));
    // A blocked domain gets no link (and the same answer).
    let url = format!("{}/magic-link", app.issuer("suite"));
    let res = post_page(&browser(), &url, &url, &[("email", "spy@rival.test")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(sink.for_rcpt("spy@rival.test").is_empty());
    // Under `open`, an unknown address gets no first-access link.
    set_policy(&app, "suite", json!({"signup_policy": "open"})).await;
    post_page(&browser(), &url, &url, &[("email", "other@example.com")]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(sink.for_rcpt("other@example.com").is_empty());
    app.stop().await;
}
both!(auto_on_first_access_creates_members);

async fn password_rules_and_expiry(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("pw").await;
    set_policy(
        &app,
        "pw",
        json!({"password": {"min_length": 12, "require_uppercase": true, "require_symbol": true}}),
    )
    .await;
    let page = browser()
        .get(format!("{}/signup", app.issuer("pw")))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("At least 12 characters, with an uppercase letter and a symbol."),
        "rules shown before typing"
    );
    for (weak, says) in
        [("Short!1", "at least 12"), ("no uppercase here!", "uppercase"), ("No Symbols Here 123", "symbol")]
    {
        let (res, _) = signup(&app, "pw", &[("email", "pia@example.com"), ("password", weak)]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
        assert!(res.text().await.expect("html").to_lowercase().contains(says), "{weak}");
    }
    let (res, _) =
        signup(&app, "pw", &[("email", "pia@example.com"), ("password", "Strong & Long 2024")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Expiry: an old password must be changed at the next sign-in, before any session or code.
    set_policy(&app, "pw", json!({"password": {"expiry_days": 30}})).await;
    app.clock.advance(chrono::Duration::days(31));
    let client_id = refreshing_client(&app, "pw").await;
    let mut flow = Flow::new(&client_id);
    let login_url = location(&flow.authorize(&app, "pw", "").await);
    let res =
        flow.submit(&login_url, &[("email", "pia@example.com"), ("password", "Strong & Long 2024")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let next = location(&res);
    assert!(next.ends_with("/apps/pw/continue"), "{next}");
    assert!(!has_session_cookie(&res), "no session before the change");
    let cont = format!("{}/continue", app.issuer("pw"));
    let html = flow.browser.get(&cont).send().await.expect("continue").text().await.expect("html");
    assert!(html.contains("Your password has expired"));
    let res =
        post_page(&flow.browser, &cont, &cont, &[("step", "password"), ("password", "Strong & Long 2024")])
            .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "the expired password is not accepted again");
    let res = post_page(&flow.browser, &cont, &cont, &[("step", "password"), ("password", "weak")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "the rules apply");
    let res =
        post_page(&flow.browser, &cont, &cont, &[("step", "password"), ("password", "Fresh & New 2025!")])
            .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(has_session_cookie(&res));
    let q = query_of(&location(&res));
    assert_eq!(q["state"], "st-1", "the original request completes");
    let (s, _) = flow.exchange(&app, "pw", &q["code"]).await;
    assert_eq!(s, StatusCode::OK);
    // Without a pending sign-in, /continue is a friendly dead end.
    assert_eq!(browser().get(&cont).send().await.expect("get").status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
both!(password_rules_and_expiry);

async fn session_limits_and_idle_timeout(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("ses").await;
    let pw = "correct horse battery";
    crate::mail::sign_up(&app, "ses", "sid@example.com", pw).await;
    set_policy(&app, "ses", json!({"session": {"max_concurrent": 2}})).await;
    let account = format!("{}/account", app.issuer("ses"));
    let mut browsers = Vec::new();
    for _ in 0..3 {
        let (res, b) = login(&app, "ses", "sid@example.com", pw).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        browsers.push(b);
    }
    // The sign-up session and the first sign-in are the oldest: both ended.
    assert_eq!(browsers[0].get(&account).send().await.expect("a").status(), StatusCode::SEE_OTHER);
    assert_eq!(browsers[1].get(&account).send().await.expect("b").status(), StatusCode::OK);
    let html = browsers[2].get(&account).send().await.expect("c").text().await.expect("html");
    assert!(html.contains("older session"), "the newest session says why others ended");

    // Idle timeout: unused for longer than 10 minutes is dead for cookie, userinfo and refresh.
    set_policy(&app, "ses", json!({"session": {"max_concurrent": null, "idle_timeout_minutes": 10}})).await;
    let client_id = refreshing_client(&app, "ses").await;
    let mut flow = Flow::new(&client_id);
    let login_url = location(&flow.authorize(&app, "ses", "").await);
    let res = flow.submit(&login_url, &[("email", "sid@example.com"), ("password", pw)]).await;
    let (_, tokens) = flow.exchange(&app, "ses", &query_of(&location(&res))["code"]).await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let refresh = tokens["refresh_token"].as_str().expect("refresh").to_string();
    // Activity (a refresh) at minute 6 keeps it alive at minute 12.
    app.clock.advance(chrono::Duration::minutes(6));
    let body = format!("grant_type=refresh_token&refresh_token={refresh}&client_id={client_id}");
    let (s, _, t2) = app.form("ses", "token", None, &body).await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    app.clock.advance(chrono::Duration::minutes(6));
    assert_eq!(userinfo(&app, "ses", &access).await.0, StatusCode::OK);
    // Then 11 quiet minutes: dead everywhere.
    app.clock.advance(chrono::Duration::minutes(11));
    let access2 = t2["access_token"].as_str().expect("access");
    assert_eq!(userinfo(&app, "ses", access2).await.0, StatusCode::UNAUTHORIZED);
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client_id}",
        t2["refresh_token"].as_str().expect("r")
    );
    let (s, _, v) = app.form("ses", "token", None, &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(flow.browser.get(&account).send().await.expect("acct").status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both!(session_limits_and_idle_timeout);

async fn email_verification_required_then_not(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "ver", &sink).await;
    set_policy(&app, "ver", json!({"require_email_verification": true})).await;
    let client_id = refreshing_client(&app, "ver").await;
    let mut flow = Flow::new(&client_id);
    let signup_url = location(&flow.authorize(&app, "ver", "").await).replace("/login?", "/signup?");
    let res = flow
        .submit(&signup_url, &[("email", "val@example.com"), ("password", "correct horse battery")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).ends_with("/continue"));
    assert!(!has_session_cookie(&res));
    let cont = format!("{}/continue", app.issuer("ver"));
    let html = flow.browser.get(&cont).send().await.expect("continue").text().await.expect("html");
    assert!(html.contains("Send the link again"), "a re-send is offered");
    // Not confirmed yet: "continue" stays on the step.
    let res = post_page(&flow.browser, &cont, &cont, &[("step", "check")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!has_session_cookie(&res));
    let res = post_page(&flow.browser, &cont, &cont, &[("step", "resend")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = sink.wait_nth("val@example.com", 2, Duration::from_secs(15)).await;
    let link = link_in(&mail.text, &format!("{}/verify-email?token=", app.issuer("ver")));
    assert_eq!(browser().get(&link).send().await.expect("verify").status(), StatusCode::OK);
    // Confirmed in another tab: coming back to the step page completes the sign-in.
    let res = flow.browser.get(&cont).send().await.expect("continue");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "confirmed: the sign-in completes");
    assert!(has_session_cookie(&res));
    assert_eq!(query_of(&location(&res))["state"], "st-1");

    // A policy change is seen by the very next request: unverified users pass once it is off.
    let (res, _) =
        signup(&app, "ver", &[("email", "wes@example.com"), ("password", "correct horse battery")]).await;
    assert!(location(&res).ends_with("/continue"));
    set_policy(&app, "ver", json!({"require_email_verification": false})).await;
    let (res, _) = login(&app, "ver", "wes@example.com", "correct horse battery").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(has_session_cookie(&res), "signed in at once");
    app.stop().await;
}
both!(email_verification_required_then_not);

async fn required_profile_fields(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("prof").await;
    let pw = "correct horse battery";
    crate::mail::sign_up(&app, "prof", "old@example.com", pw).await;
    set_policy(&app, "prof", json!({"required_profile_fields": ["given_name", "phone_number"]})).await;
    let page = browser()
        .get(format!("{}/signup", app.issuer("prof")))
        .send()
        .await
        .expect("p")
        .text()
        .await
        .expect("html");
    assert!(page.contains("name=\"given_name\"") && page.contains("name=\"phone_number\""));
    let (res, _) =
        signup(&app, "prof", &[("email", "new@example.com"), ("password", pw), ("given_name", "Nia")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "a missing field");
    let (res, _) = signup(
        &app,
        "prof",
        &[("email", "new@example.com"), ("password", pw), ("given_name", "Nia"), ("phone_number", "call me")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "a malformed phone number");
    let client_id = refreshing_client(&app, "prof").await;
    let mut flow = Flow::new(&client_id);
    let signup_url = location(&flow.authorize(&app, "prof", "&scope=openid%20profile%20phone").await)
        .replace("/login?", "/signup?");
    let res = flow
        .submit(
            &signup_url,
            &[
                ("email", "new@example.com"),
                ("password", pw),
                ("given_name", "Nia"),
                ("phone_number", "+44 20 7946 0000"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, tokens) = flow.exchange(&app, "prof", &query_of(&location(&res))["code"]).await;
    let (s, info) = userinfo(&app, "prof", tokens["access_token"].as_str().expect("access")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (info["given_name"].as_str(), info["phone_number"].as_str()),
        (Some("Nia"), Some("+44 20 7946 0000"))
    );

    // An existing user lacking a field is asked at sign-in; the ID token then carries it.
    let mut flow = Flow::new(&client_id);
    let login_url = location(&flow.authorize(&app, "prof", "&scope=openid%20profile").await);
    let res = flow.submit(&login_url, &[("email", "old@example.com"), ("password", pw)]).await;
    assert!(location(&res).ends_with("/continue"));
    let cont = format!("{}/continue", app.issuer("prof"));
    let res = post_page(&flow.browser, &cont, &cont, &[("step", "profile"), ("given_name", "Olu")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "both fields are needed");
    let res = post_page(
        &flow.browser,
        &cont,
        &cont,
        &[("step", "profile"), ("given_name", "Olu"), ("phone_number", "555 0100 200")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, tokens) = flow.exchange(&app, "prof", &query_of(&location(&res))["code"]).await;
    let (_, id) = verify_with_jwks(
        &app.http,
        &format!("{}/jwks", app.issuer("prof")),
        tokens["id_token"].as_str().expect("id"),
    )
    .await
    .expect("verifies");
    assert_eq!(id["given_name"], "Olu");
    assert!(id.get("phone_number").is_none(), "phone only with the phone scope");
    app.stop().await;
}
both!(required_profile_fields);

async fn account_password_change_follows_the_rules(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("chg").await;
    set_policy(&app, "chg", json!({"password": {"min_length": 10, "require_uppercase": true}})).await;
    let me = crate::mail::sign_up(&app, "chg", "cat@example.com", "Original pass 1").await;
    let (_, other) = login(&app, "chg", "cat@example.com", "Original pass 1").await;
    let account = format!("{}/account", app.issuer("chg"));
    let change = format!("{}/account/password", app.issuer("chg"));
    let html = me.get(&account).send().await.expect("account").text().await.expect("html");
    assert!(html.contains("At least 10 characters, with an uppercase letter."), "rules stated");
    let res = post_page(
        &me,
        &account,
        &change,
        &[("current_password", "wrong one here"), ("new_password", "Brand new pass 2")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = post_page(
        &me,
        &account,
        &change,
        &[("current_password", "Original pass 1"), ("new_password", "weak")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = post_page(
        &me,
        &account,
        &change,
        &[("current_password", "Original pass 1"), ("new_password", "Brand new pass 2")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(me.get(&account).send().await.expect("me").status(), StatusCode::OK, "this session stays");
    assert_eq!(
        other.get(&account).send().await.expect("other").status(),
        StatusCode::SEE_OTHER,
        "others end"
    );
    assert_eq!(
        login(&app, "chg", "cat@example.com", "Original pass 1").await.0.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "chg", "cat@example.com", "Brand new pass 2").await.0.status(),
        StatusCode::SEE_OTHER
    );
    let store = identity_store(&app, "chg").await;
    let mut n = 0;
    for _ in 0..50 {
        n = count(&store, "SELECT count(*) FROM audit_events WHERE type = 'password.change'").await;
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 1);
    app.stop().await;
}
both!(account_password_change_follows_the_rules);
