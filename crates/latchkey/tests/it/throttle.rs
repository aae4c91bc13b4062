//! Brute-force protection on sign-in (SPEC §7) over HTTP: growing lock-outs with 429 and
//! `Retry-After`, the right password refused while locked, unknown and known emails alike,
//! audit events and metrics. Per-address isolation is unit-tested in `login::throttle` (every
//! client of the test server is 127.0.0.1).

use std::time::Duration;

use latchkey::on_db;
use latchkey::users::{self, Email};
use reqwest::StatusCode;
use secrecy::SecretString;

use crate::both;
use crate::kit::{Backend, TestApp};

const RIGHT: &str = "right password 1";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// GETs the form at `url` for its CSRF token, then posts `email` and `password` to it.
async fn attempt(b: &reqwest::Client, url: &str, email: &str, password: &str) -> reqwest::Response {
    let html = b.get(url).send().await.expect("page").text().await.expect("html");
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("csrf field") + marker.len();
    let csrf = html[at..].split('"').next().expect("value");
    let body = serde_urlencoded::to_string([("csrf", csrf), ("email", email), ("password", password)])
        .expect("form");
    b.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post")
}

fn signed_in(res: &reqwest::Response) -> bool {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().is_ok_and(|c| c.starts_with("lk_session=") && !c.starts_with("lk_session=;")))
}

fn retry_after(res: &reqwest::Response) -> Option<u64> {
    res.headers().get("retry-after")?.to_str().ok()?.parse().ok()
}

async fn add_user(app: &TestApp, slug: &str, email: &str) {
    let a = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    let hash = app.state.passwords.hash(&SecretString::from(RIGHT)).await.expect("hash");
    let email = Email::parse(email).expect("email");
    users::insert(&store, &email, &hash, app.state.now()).await.expect("insert").expect("new user");
}

async fn throttled_events(app: &TestApp, slug: &str) -> i64 {
    let a = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    on_db!(&store, p => sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE type = 'login.failed' AND CAST(data AS TEXT) LIKE '%throttled%'"
    ).fetch_one(p).await)
    .expect("count")
}

async fn failed_sign_ins_are_throttled(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("th").await;
    add_user(&app, "th", "ann@example.com").await;
    add_user(&app, "th", "bo@example.com").await;
    let login = format!("{}/login", app.issuer("th"));
    let b = browser();

    // Five wrong passwords are answered as wrong; the sixth attempt waits a second…
    for i in 0..5 {
        let res = attempt(&b, &login, "ann@example.com", "guess").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let res = attempt(&b, &login, "ann@example.com", "guess").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&res), Some(1));
    let html = res.text().await.expect("html");
    assert!(html.contains("id=\"form-error\"") && html.contains("name=\"csrf\""), "{html}");
    // …and so does the right password: a lock is not a hint that it was right.
    let res = attempt(&b, &login, "ann@example.com", RIGHT).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!signed_in(&res));

    // Each further failure doubles the wait.
    app.clock.advance(chrono::Duration::seconds(2));
    let res = attempt(&b, &login, "ann@example.com", "guess").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = attempt(&b, &login, "ann@example.com", RIGHT).await;
    assert_eq!((res.status(), retry_after(&res)), (StatusCode::TOO_MANY_REQUESTS, Some(2)));

    // Once the wait is over, the right password signs in.
    app.clock.advance(chrono::Duration::seconds(3));
    let res = attempt(&b, &login, "ann@example.com", RIGHT).await;
    assert!(signed_in(&res), "status {}", res.status());
    // The success cleared this address's count for the account.
    let res = attempt(&b, &login, "ann@example.com", "guess").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // An unknown address and a registered one are throttled alike, with the same page.
    let mut pages = Vec::new();
    for email in ["nobody@example.com", "bo@example.com"] {
        for _ in 0..5 {
            assert_eq!(attempt(&b, &login, email, "guess").await.status(), StatusCode::UNAUTHORIZED);
        }
        let res = attempt(&b, &login, email, "guess").await;
        assert_eq!((res.status(), retry_after(&res)), (StatusCode::TOO_MANY_REQUESTS, Some(1)), "{email}");
        let html = res.text().await.expect("html").replace(email, "");
        pages.push(html.split("name=\"csrf\"").next().expect("head").to_string());
    }
    assert_eq!(pages[0], pages[1]);

    // Signing up with a registered address is a sign-in, throttled the same way.
    let signup = format!("{}/signup", app.issuer("th"));
    let res = attempt(&b, &signup, "bo@example.com", RIGHT).await;
    assert_eq!((res.status(), retry_after(&res)), (StatusCode::TOO_MANY_REQUESTS, Some(1)));

    // Counted in the audit log (written asynchronously) and in the metrics.
    let mut events = 0;
    for _ in 0..50 {
        events = throttled_events(&app, "th").await;
        if events >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events, 6);
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.expect("metrics");
    assert!(metrics.text().await.expect("text").contains("latchkey_login_throttled_total"));
    app.stop().await;
}
both!(failed_sign_ins_are_throttled);

async fn apps_are_throttled_separately(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("one").await;
    app.active_app("two").await;
    add_user(&app, "two", "ann@example.com").await;
    let b = browser();
    let one = format!("{}/login", app.issuer("one"));
    for _ in 0..5 {
        attempt(&b, &one, "ann@example.com", "guess").await;
    }
    assert_eq!(attempt(&b, &one, "ann@example.com", "guess").await.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = attempt(&b, &format!("{}/login", app.issuer("two")), "ann@example.com", RIGHT).await;
    assert!(signed_in(&res), "status {}", res.status());
    app.stop().await;
}
both!(apps_are_throttled_separately);
