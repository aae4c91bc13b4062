//! Operators and end users (SPEC §4, §8): the user list and detail, sessions and logout-all
//! observed through userinfo and introspection, audit queries, and GDPR erasure that leaves no
//! trace of the person in any table and column of the app's identity store.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp};
use crate::mail::{app_with_sink, count, identity_store, post_page, refreshing_client, userinfo};
use crate::mail_kit::Sink;
use crate::signin::{Flow, location, query_of};

/// Signs `email` in through a client and returns its tokens.
async fn tokens_for(app: &TestApp, slug: &str, client_id: &str, email: &str, password: &str) -> Value {
    let mut flow = Flow::new(client_id);
    let login = location(&flow.authorize(app, slug, "").await);
    let res = flow.submit(&login, &[("email", email), ("password", password)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    let (s, t) = flow.exchange(app, slug, &query_of(&location(&res))["code"]).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t
}

/// The payload of a JWT (already verified elsewhere; here only read).
fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("b64"))
        .expect("json")
}

async fn user_id(app: &TestApp, slug: &str, email: &str) -> String {
    let (s, v) = app.admin(Method::GET, &format!("/apps/{slug}/users?email={email}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"][0]["id"].as_str().unwrap_or_else(|| panic!("no user {email}: {v}")).to_string()
}

async fn active(app: &TestApp, slug: &str, id: &str, secret: &str, token: &str) -> bool {
    app.introspect(slug, id, secret, token).await["active"] == true
}

async fn wait_events(app: &TestApp, slug: &str, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (s, v) = app.admin(Method::GET, &format!("/apps/{slug}/audit?{query}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} audit events for {query}");
}

async fn users_are_listed_searched_and_shown_without_secrets(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("ppl").await;
    for e in ["ann@example.com", "bob@example.com", "cy@other.test"] {
        crate::mail::sign_up(&app, "ppl", e, "correct horse battery").await;
    }
    let (s, v) = app.admin(Method::GET, "/apps/ppl/users?limit=2", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
    let cursor = v["next_cursor"].as_str().expect("a next page");
    let (_, page2) = app.admin(Method::GET, &format!("/apps/ppl/users?limit=2&cursor={cursor}"), None).await;
    assert_eq!(page2["items"][0]["email"], "cy@other.test");
    assert!(page2["next_cursor"].is_null());
    let (_, found) = app.admin(Method::GET, "/apps/ppl/users?email=EXAMPLE.com", None).await;
    assert_eq!(
        found["items"].as_array().map(Vec::len),
        Some(2),
        "search is by part of the address, any case"
    );
    let (_, none) = app.admin(Method::GET, "/apps/ppl/users?email=%25", None).await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "a % is a character, not a wildcard");
    let (_, pending) = app.admin(Method::GET, "/apps/ppl/users?status=pending_approval", None).await;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(0));
    for (bad, want) in [
        ("status=sleeping", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("cursor=zzz", StatusCode::BAD_REQUEST),
        ("color=red", StatusCode::BAD_REQUEST),
    ] {
        let (s, v) = app.admin(Method::GET, &format!("/apps/ppl/users?{bad}"), None).await;
        assert_eq!(s, want, "{bad}: {v}");
        assert!(v["type"].is_string(), "a problem document");
    }
    let id = user_id(&app, "ppl", "ann@example.com").await;
    let (s, one) = app.admin(Method::GET, &format!("/apps/ppl/users/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["email"], "ann@example.com");
    assert_eq!(one["status"], "active");
    assert_eq!(one["active_sessions"], 1);
    assert_eq!(one["identities"][0]["provider"], "email");
    assert_eq!(one["mfa"], json!({"totp": false, "recovery_codes_left": 0}));
    let text = format!("{v}{page2}{one}");
    assert!(!text.contains("argon2") && !text.contains("password_hash"), "no hash in any response");
    for path in ["/apps/ppl/users/not-a-uuid", "/apps/ppl/users/0190a4e2-0000-7000-8000-000000000000"] {
        assert_eq!(app.admin(Method::GET, path, None).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    app.stop().await;
}
both!(users_are_listed_searched_and_shown_without_secrets);

async fn session_revocation_and_logout_all_take_effect_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("ses").await;
    let pw = "correct horse battery";
    crate::mail::sign_up(&app, "ses", "dee@example.com", pw).await;
    let client = refreshing_client(&app, "ses").await;
    let (mid, msecret) = app.machine_client("ses").await;
    let a = tokens_for(&app, "ses", &client, "dee@example.com", pw).await;
    let b = tokens_for(&app, "ses", &client, "dee@example.com", pw).await;
    let (at, bt) = (a["access_token"].as_str().expect("a"), b["access_token"].as_str().expect("b"));
    assert!(active(&app, "ses", &mid, &msecret, at).await && active(&app, "ses", &mid, &msecret, bt).await);

    let id = user_id(&app, "ses", "dee@example.com").await;
    let (s, list) = app.admin(Method::GET, &format!("/apps/ses/users/{id}/sessions"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3), "sign-up plus two sign-ins: {list}");
    let a_sid = claims_of(at)["sid"].as_str().expect("sid").to_string();
    assert!(
        list["items"].as_array().expect("items").iter().any(|s| s["id"] == a_sid.as_str()),
        "session id = sid claim"
    );

    // One session: its access token fails at once, its refresh token too; the other lives.
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/ses/users/{id}/sessions/{a_sid}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(userinfo(&app, "ses", at).await.0, StatusCode::UNAUTHORIZED);
    assert!(!active(&app, "ses", &mid, &msecret, at).await);
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client}",
        a["refresh_token"].as_str().expect("r")
    );
    assert_eq!(app.form("ses", "token", None, &body).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(userinfo(&app, "ses", bt).await.0, StatusCode::OK);
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/ses/users/{id}/sessions/{a_sid}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "already ended");

    // logout-all: every token of the user, at once; a new sign-in works again.
    let (s, v) = app.admin(Method::POST, &format!("/apps/ses/users/{id}/logout-all"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sessions_ended"], 2);
    assert_eq!(userinfo(&app, "ses", bt).await.0, StatusCode::UNAUTHORIZED);
    assert!(!active(&app, "ses", &mid, &msecret, bt).await);
    let c = tokens_for(&app, "ses", &client, "dee@example.com", pw).await;
    assert_eq!(userinfo(&app, "ses", c["access_token"].as_str().expect("c")).await.0, StatusCode::OK);
    let (s, _) = app
        .admin(Method::POST, "/apps/ses/users/0190a4e2-0000-7000-8000-000000000000/logout-all", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let events = wait_events(&app, "ses", &format!("user_id={id}&type=logout.all"), 1).await;
    assert_eq!(events[0]["type"], "logout.all");
    wait_events(&app, "ses", &format!("user_id={id}&type=session.revoked"), 1).await;
    app.stop().await;
}
both!(session_revocation_and_logout_all_take_effect_at_once);

async fn audit_queries_filter_and_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("aud").await;
    let pw = "correct horse battery";
    crate::mail::sign_up(&app, "aud", "eli@example.com", pw).await;
    crate::mail::sign_up(&app, "aud", "fay@example.com", pw).await;
    let flow = Flow::new("none");
    let login = format!("{}/login", app.issuer("aud"));
    flow.submit(&login, &[("email", "eli@example.com"), ("password", "a wrong password")]).await;
    flow.submit(&login, &[("email", "eli@example.com"), ("password", pw)]).await;
    let eli = user_id(&app, "aud", "eli@example.com").await;
    // Two sign-ups, a failed and a successful sign-in.
    let all = wait_events(&app, "aud", "limit=200", 4).await;
    for e in &all {
        for field in ["id", "type", "time", "user_id", "ip", "user_agent", "data"] {
            assert!(e.get(field).is_some(), "{field} in {e}");
        }
    }
    assert!(!serde_json::to_string(&all).expect("json").contains(pw), "no password in the trail");
    let mine = wait_events(&app, "aud", &format!("user_id={eli}&type=login.success"), 1).await;
    assert!(mine.iter().all(|e| e["user_id"] == eli.as_str() && e["type"] == "login.success"));
    assert_eq!(mine[0]["ip"], "127.0.0.1");
    let failed = wait_events(&app, "aud", "type=login.failed", 1).await;
    assert_eq!(failed.len(), 1);
    // Paging: newest first, one at a time, no repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/apps/aud/audit?limit=1&cursor={c}"),
            None => "/apps/aud/audit?limit=1".into(),
        };
        let (_, page) = app.admin(Method::GET, &q, None).await;
        seen.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    assert_eq!(seen.len(), all.len());
    let times: Vec<&str> = seen.iter().map(|e| e["time"].as_str().expect("time")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // since / until.
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, later) =
        app.admin(Method::GET, &format!("/apps/aud/audit?since={}", urlencode(&future)), None).await;
    assert_eq!(later["items"].as_array().map(Vec::len), Some(0));
    let (_, before) =
        app.admin(Method::GET, &format!("/apps/aud/audit?until={}", urlencode(&future)), None).await;
    assert_eq!(before["items"].as_array().map(Vec::len), Some(all.len()));
    for bad in ["since=yesterday", "user_id=42", "limit=500"] {
        let (s, _) = app.admin(Method::GET, &format!("/apps/aud/audit?{bad}"), None).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    app.stop().await;
}
both!(audit_queries_filter_and_page);

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every (table, column) of the app's identity store.
async fn columns(db: &latchkey::store::Db) -> Vec<(String, String)> {
    match db {
        latchkey::store::Db::Sqlite(p) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(p)
            .await
            .expect("tables");
            let mut out = Vec::new();
            for t in tables {
                let cols: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)").bind(&t).fetch_all(p).await.expect("cols");
                out.extend(cols.into_iter().map(|c| (t.clone(), c)));
            }
            out
        }
        latchkey::store::Db::Postgres(p) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = current_schema()",
        )
        .fetch_all(p)
        .await
        .expect("columns"),
    }
}

/// Rows anywhere in the store whose value mentions `id` or `email` (as text, or as a UUID).
async fn mentions(db: &latchkey::store::Db, id: uuid::Uuid, email: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for (t, c) in columns(db).await {
        let n: i64 = match db {
            latchkey::store::Db::Sqlite(p) => {
                let sql = format!(
                    "SELECT count(*) FROM \"{t}\" WHERE (typeof(\"{c}\") = 'blob' AND \"{c}\" = $1) \
                     OR CAST(\"{c}\" AS TEXT) LIKE $2 OR CAST(\"{c}\" AS TEXT) LIKE $3"
                );
                sqlx::query_scalar(&sql)
                    .bind(id)
                    .bind(format!("%{email}%"))
                    .bind(format!("%{id}%"))
                    .fetch_one(p)
                    .await
                    .expect("scan")
            }
            latchkey::store::Db::Postgres(p) => {
                let sql = format!(
                    "SELECT count(*) FROM \"{t}\" WHERE CAST(\"{c}\" AS TEXT) ILIKE $1 OR CAST(\"{c}\" AS TEXT) ILIKE $2"
                );
                sqlx::query_scalar(&sql)
                    .bind(format!("%{email}%"))
                    .bind(format!("%{id}%"))
                    .fetch_one(p)
                    .await
                    .expect("scan")
            }
        };
        if n > 0 {
            hits.push(format!("{t}.{c} ({n})"));
        }
    }
    hits
}

/// A person with everything a person leaves behind: sessions, tokens, a refresh family, a used
/// code, mailed links and queued mail, an invitation, audit events, roles and a membership.
async fn busy_user(app: &TestApp, sink: &Sink, client: &str, email: &str) -> (String, Value) {
    let pw = "correct horse battery";
    crate::mail::sign_up(app, "gone", email, pw).await;
    let tokens = tokens_for(app, "gone", client, email, pw).await;
    let url = format!("{}/reset-password", app.issuer("gone"));
    post_page(&crate::signin::browser(), &url, &url, &[("email", email)]).await;
    sink.wait_nth(email, 2, Duration::from_secs(15)).await;
    let flow = Flow::new("none");
    flow.submit(
        &format!("{}/login", app.issuer("gone")),
        &[("email", email), ("password", "wrong password!")],
    )
    .await;
    let id = user_id(app, "gone", email).await;
    // Roles, app-wide and in an organization (both may exist already: a 409 then).
    app.admin(
        Method::POST,
        "/apps/gone/roles",
        Some(json!({"name": "member", "permissions": ["docs:read"]})),
    )
    .await;
    let (s, v) = app
        .admin(Method::PUT, &format!("/apps/gone/users/{id}/roles"), Some(json!({"roles": ["member"]})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.admin(Method::POST, "/apps/gone/organizations", Some(json!({"slug": "club", "name": "Club"}))).await;
    let (_, orgs) = app.admin(Method::GET, "/apps/gone/organizations", None).await;
    let org = orgs["items"][0]["id"].as_str().expect("org").to_string();
    let members = format!("/apps/gone/organizations/{org}/members");
    let (s, v) = app.admin(Method::POST, &members, Some(json!({"user_id": id, "roles": ["member"]}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (id, tokens)
}

async fn gdpr_erasure_leaves_no_trace(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "gone", &sink).await;
    let client = refreshing_client(&app, "gone").await;
    let (mid, msecret) = app.machine_client("gone").await;
    let (ann, ann_tokens) = busy_user(&app, &sink, &client, "ann.erased@example.com").await;
    let (bob, bob_tokens) = busy_user(&app, &sink, &client, "bob.stays@example.com").await;
    // A pending invitation for Ann's address too.
    app.admin(Method::POST, "/apps/gone/invitations", Some(json!({"email": "Ann.Erased+x@example.com"})))
        .await;
    let db = identity_store(&app, "gone").await;
    let ann_id: uuid::Uuid = ann.parse().expect("uuid");
    let bob_id: uuid::Uuid = bob.parse().expect("uuid");
    wait_events(&app, "gone", &format!("user_id={ann}&type=login.success"), 1).await;
    assert!(!mentions(&db, ann_id, "ann.erased@example.com").await.is_empty(), "the scan finds Ann before");
    let bob_before = mentions(&db, bob_id, "bob.stays@example.com").await;

    let (s, v) = app.admin(Method::DELETE, &format!("/apps/gone/users/{ann}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let left = mentions(&db, ann_id, "ann.erased@example.com").await;
    assert!(left.is_empty(), "rows still mention Ann: {left:?}");
    assert_eq!(mentions(&db, bob_id, "bob.stays@example.com").await, bob_before, "Bob's rows are intact");
    // Her tokens stop working; Bob's do not.
    let at = ann_tokens["access_token"].as_str().expect("at");
    assert_eq!(userinfo(&app, "gone", at).await.0, StatusCode::UNAUTHORIZED);
    assert!(!active(&app, "gone", &mid, &msecret, at).await);
    assert_eq!(
        userinfo(&app, "gone", bob_tokens["access_token"].as_str().expect("bt")).await.0,
        StatusCode::OK
    );
    // The control plane knows an erasure happened, and nothing about whom.
    let rows: Vec<String> = latchkey::on_db!(&app.control(), p => sqlx::query_scalar::<_, String>(
        "SELECT action || ' ' || coalesce(target, '') || ' ' || CAST(data AS TEXT) FROM operator_audit").fetch_all(p).await).expect("audit");
    assert!(rows.iter().any(|r| r.starts_with("user.erased")));
    assert!(rows.iter().all(|r| !r.contains(&ann) && !r.to_lowercase().contains("ann.erased")), "{rows:?}");
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/gone/users/{ann}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "erasing an unknown id");
    app.stop().await;
}
both!(gdpr_erasure_leaves_no_trace);

async fn erasure_is_all_or_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "gone", &sink).await;
    let client = refreshing_client(&app, "gone").await;
    let (ann, tokens) = busy_user(&app, &sink, &client, "ann@example.com").await;
    let db = identity_store(&app, "gone").await;
    let ann_id: uuid::Uuid = ann.parse().expect("uuid");
    let before = mentions(&db, ann_id, "ann@example.com").await;
    // A failure injected at the last statement of the transaction (deleting the user row),
    // after every other table was already cleaned.
    match &*db {
        latchkey::store::Db::Sqlite(p) => {
            sqlx::query("CREATE TRIGGER fail_erase BEFORE DELETE ON users BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
                .execute(p)
                .await
                .expect("trigger");
        }
        latchkey::store::Db::Postgres(p) => {
            sqlx::query("CREATE FUNCTION fail_erase() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$")
                .execute(p)
                .await
                .expect("function");
            sqlx::query(
                "CREATE TRIGGER fail_erase BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION fail_erase()",
            )
            .execute(p)
            .await
            .expect("trigger");
        }
    }
    let (s, v) = app.admin(Method::DELETE, &format!("/apps/gone/users/{ann}"), None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("injected"), "no internals in the answer: {v}");
    assert_eq!(mentions(&db, ann_id, "ann@example.com").await, before, "nothing was removed");
    assert_eq!(userinfo(&app, "gone", tokens["access_token"].as_str().expect("at")).await.0, StatusCode::OK);
    assert_eq!(count(&db, "SELECT count(*) FROM sessions WHERE revoked_at IS NULL").await, 2);
    app.stop().await;
}
both!(erasure_is_all_or_nothing);

// Two apps on one server: one app's users, sessions, links and invitations are invisible to the
// other (each app has its own identity store; SPEC §2).
async fn apps_do_not_see_each_others_people(backend: Backend) {
    let app = TestApp::start(backend).await;
    let sink = Sink::start();
    app_with_sink(&app, "one", &sink).await;
    app_with_sink(&app, "two", &sink).await;
    crate::mail::sign_up(&app, "one", "pat@example.com", "correct horse battery").await;
    let pat = user_id(&app, "one", "pat@example.com").await;
    for (method, path) in [
        (Method::GET, format!("/apps/two/users/{pat}")),
        (Method::GET, format!("/apps/two/users/{pat}/sessions")),
        (Method::POST, format!("/apps/two/users/{pat}/logout-all")),
        (Method::DELETE, format!("/apps/two/users/{pat}/mfa")),
        (Method::DELETE, format!("/apps/two/users/{pat}")),
    ] {
        assert_eq!(app.admin(method.clone(), &path, None).await.0, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (_, list) = app.admin(Method::GET, "/apps/two/users?email=pat", None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    // A mailed link or an invitation of app one means nothing at app two.
    let mail = sink.wait_for("pat@example.com").await;
    let link = crate::mail_kit::link_in(&mail.text, &format!("{}/verify-email?token=", app.issuer("one")));
    let elsewhere = link.replace("/apps/one/", "/apps/two/");
    assert_eq!(
        crate::signin::browser().get(&elsewhere).send().await.expect("get").status(),
        StatusCode::BAD_REQUEST
    );
    let (_, inv) =
        app.admin(Method::POST, "/apps/one/invitations", Some(json!({"email": "new@example.com"}))).await;
    let elsewhere = inv["link"].as_str().expect("link").replace("/apps/one/", "/apps/two/");
    assert_eq!(
        crate::signin::browser().get(&elsewhere).send().await.expect("get").status(),
        StatusCode::BAD_REQUEST
    );
    // And the link still works where it belongs.
    assert_eq!(crate::signin::browser().get(&link).send().await.expect("get").status(), StatusCode::OK);
    app.stop().await;
}
both!(apps_do_not_see_each_others_people);
