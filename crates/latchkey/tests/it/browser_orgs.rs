//! Organization invitations in headless Chromium (SPEC §10, issue 13): under each signup
//! policy an operator adds an address without an account to an organization; the person opens
//! the mailed link, sets a password on the themed page and becomes a member (under
//! `admin_approval` the account still waits for approval); `/account` lists the organization.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::browser_kit::Browser;
use crate::kit::{Backend, TestApp};

const WAIT: Duration = Duration::from_secs(15);

async fn admin(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let (s, v) = app.admin(method, path, Some(body)).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

async fn organization_invitations_in_the_browser(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("club").await;
    let issuer = app.issuer("club");
    admin(&app, Method::POST, "/apps/club/roles", json!({"name": "member", "permissions": ["docs:read"]}))
        .await;
    let org =
        admin(&app, Method::POST, "/apps/club/organizations", json!({"slug": "acme", "name": "Acme Rowing"}))
            .await;
    let members = format!("/apps/club/organizations/{}/members", org["id"].as_str().expect("id"));
    let browser = Browser::start(&format!("org-invite-{backend:?}")).await;
    for policy in ["open", "invite_only", "admin_approval", "auto_on_first_access"] {
        admin(&app, Method::PATCH, "/apps/club", json!({"policy": {"signup_policy": policy}})).await;
        let email = format!("{}@example.com", policy.replace('_', "-"));
        let invited = admin(&app, Method::POST, &members, json!({"email": email, "roles": ["member"]})).await;
        let link = invited["link"].as_str().expect("link").to_string();
        browser.clear_cookies(&format!("{issuer}/jwks")).await;
        browser.goto(&link).await;
        let shown = browser.eval("return document.getElementById('email').value;").await;
        assert_eq!(shown, json!(email), "{policy}: the invited address, fixed");
        browser.fill("#password", "correct horse battery").await;
        browser.screenshot(&format!("org-invite-{policy}")).await;
        browser.click("button[type='submit']").await;
        if policy == "admin_approval" {
            browser.wait_for_text("waiting for approval", WAIT).await;
        } else {
            browser.wait_for_url_prefix(&format!("{issuer}/account"), WAIT).await;
            browser.wait_for_text("Acme Rowing", WAIT).await;
        }
        let (s, users) = app.admin(Method::GET, &format!("/apps/club/users?email={email}"), None).await;
        assert_eq!(s, StatusCode::OK);
        let want = if policy == "admin_approval" { "pending_approval" } else { "active" };
        assert_eq!(users["items"][0]["status"], want, "{policy}: {users}");
        let id = users["items"][0]["id"].as_str().expect("id").to_string();
        let (_, list) = app.admin(Method::GET, &members, None).await;
        let member =
            list["items"].as_array().expect("a").iter().find(|m| m["user_id"] == id.as_str()).cloned();
        assert_eq!(member.expect("a member")["roles"], json!(["member"]), "{policy}");
    }
    browser.screenshot_sizes("org-account").await;
    drop(browser);
    app.stop().await;
}
both!(organization_invitations_in_the_browser);
