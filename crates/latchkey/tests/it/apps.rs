//! App lifecycle (SPEC §3): provisioning, failure and recovery, disable/enable, delete, physical
//! isolation of identity stores, settings by merge patch.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, PgDb, TestApp, admin_sql};
use latchkey::on_db;

async fn status_of(app: &TestApp, slug: &str, endpoint: &str) -> StatusCode {
    app.http.get(format!("{}/{endpoint}", app.issuer(slug))).send().await.expect("get").status()
}

async fn lifecycle(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = app.create_app(json!({"slug": "life", "display_name": "Life"})).await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["failure_reason"], Value::Null);
    assert_eq!(created["issuer"], app.issuer("life"));
    assert!(created.get("database_url").is_none());
    let active = app.wait_status("life", "active").await;
    assert_eq!(active["issuer"], app.issuer("life"));
    let (id, secret) = app.machine_client("life").await;
    let jwks_before = app
        .http
        .get(format!("{}/jwks", app.issuer("life")))
        .send()
        .await
        .expect("jwks")
        .text()
        .await
        .expect("text");

    let (s, v) = app.admin(Method::POST, "/apps/life/disable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "disabled");
    assert_eq!(
        status_of(&app, "life", ".well-known/openid-configuration").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(status_of(&app, "life", "jwks").await, StatusCode::SERVICE_UNAVAILABLE);
    let (s, _, v) = app.form("life", "token", Some((&id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");

    let (s, v) = app.admin(Method::POST, "/apps/life/enable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    app.wait_status("life", "active").await;
    // Same keys, same clients after re-enabling.
    let jwks_after = app
        .http
        .get(format!("{}/jwks", app.issuer("life")))
        .send()
        .await
        .expect("jwks")
        .text()
        .await
        .expect("text");
    assert_eq!(jwks_before, jwks_after);
    app.service_token("life", &id, &secret).await;
    // Enabling an active app is a no-op.
    let (s, v) = app.admin(Method::POST, "/apps/life/enable", None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::ACCEPTED, Some("active")));

    let (s, _) = app.admin(Method::DELETE, "/apps/life", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app.admin(Method::GET, "/apps/life", None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    assert_eq!(status_of(&app, "life", "jwks").await, StatusCode::NOT_FOUND);
    app.stop().await;
}
both!(lifecycle);

/// Whether the app's identity store exists: its SQLite file, or its schema.
async fn identity_store_exists(app: &TestApp, slug: &str) -> bool {
    match app.backend {
        Backend::Sqlite => app.dir.path().join("apps").join(format!("{slug}.db")).exists(),
        Backend::Postgres => {
            let schema = format!("latchkey_app_{}", slug.replace('-', "_"));
            let n: i64 = on_db!(&app.control(), p => sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'users'").bind(&schema).fetch_one(p).await).expect("query");
            n == 1
        }
    }
}

async fn delete_keeps_data_unless_erased(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("keep").await;
    app.active_app("erase-me").await;
    assert!(identity_store_exists(&app, "keep").await);
    assert!(identity_store_exists(&app, "erase-me").await);
    let (s, _) = app.admin(Method::DELETE, "/apps/keep", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(identity_store_exists(&app, "keep").await, "identity data must stay");
    let (s, _) = app.admin(Method::DELETE, "/apps/erase-me?erase_data=true", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!identity_store_exists(&app, "erase-me").await, "identity data must be erased");
    let (_, list) = app.admin(Method::GET, "/apps", None).await;
    assert_eq!(list["items"], json!([]));
    app.stop().await;
}
both!(delete_keeps_data_unless_erased);

async fn each_app_has_its_own_store(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("one").await;
    app.active_app("two-x").await;
    assert!(identity_store_exists(&app, "one").await);
    assert!(identity_store_exists(&app, "two-x").await);
    // The control plane holds no end-user tables.
    let n: i64 = match app.backend {
        Backend::Sqlite => on_db!(&app.control(), p => sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name IN ('users', 'audit_events')").fetch_one(p).await).expect("q"),
        Backend::Postgres => on_db!(&app.control(), p => sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'latchkey' AND table_name IN ('users', 'audit_events')").fetch_one(p).await).expect("q"),
    };
    assert_eq!(n, 0);
    // One app's tokens mean nothing to the other.
    let (id, secret) = app.machine_client("one").await;
    let token = app.service_token("one", &id, &secret).await;
    let (s, _, _) = app.form("two-x", "token", Some((&id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (id2, secret2) = app.machine_client("two-x").await;
    assert_eq!(app.introspect("two-x", &id2, &secret2, &token).await["active"], false);
    app.stop().await;
}
both!(each_app_has_its_own_store);

async fn failed_provisioning_and_recovery(backend: Backend) {
    let app = TestApp::start(backend).await;
    // A database that does not exist is refused at creation, and nothing is created.
    let missing = PgDb::reserve();
    let (s, v) = app
        .admin(
            Method::POST,
            "/apps",
            Some(json!({"slug": "nope", "display_name": "N", "database_url": missing.url()})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().expect("detail").starts_with("could not connect to database"), "{v}");
    assert_eq!(app.admin(Method::GET, "/apps/nope", None).await.0, StatusCode::NOT_FOUND);

    // An app on its own database, whose database then goes away.
    let db = PgDb::create().await;
    let url = db.url().replace("postgres://postgres@", "postgres://postgres:hunter2secret@");
    app.create_app(json!({"slug": "ext", "display_name": "External", "database_url": url})).await;
    app.wait_status("ext", "active").await;
    app.admin(Method::POST, "/apps/ext/disable", None).await;
    admin_sql(&format!("DROP DATABASE {} WITH (FORCE)", db.name)).await;
    let (s, v) = app.admin(Method::POST, "/apps/ext/enable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let failed = app.wait_status("ext", "failed").await;
    let reason = failed["failure_reason"].as_str().expect("reason");
    assert!(reason.starts_with("could not connect to database"), "{reason}");
    let body = failed.to_string();
    assert!(!body.contains("hunter2secret") && !body.contains("postgres://"), "secret leaked: {body}");
    assert_eq!(failed["database"], "external");
    assert_eq!(status_of(&app, "ext", "jwks").await, StatusCode::SERVICE_UNAVAILABLE);
    // The stored URL is sealed.
    let stored: Option<String> = on_db!(&app.control(), p => sqlx::query_scalar("SELECT database_url FROM apps WHERE slug = 'ext'").fetch_one(p).await).expect("row");
    assert!(stored.expect("sealed").starts_with("lk1$"));

    // The operator brings the database back; enable retries and provisions it again.
    admin_sql(&format!("CREATE DATABASE {}", db.name)).await;
    let (s, v) = app.admin(Method::POST, "/apps/ext/enable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let active = app.wait_status("ext", "active").await;
    assert_eq!(active["failure_reason"], Value::Null);
    // The identity tables are in schema `latchkey` of the app's own database.
    use sqlx::ConnectOptions;
    let opts: sqlx::postgres::PgConnectOptions = db.url().parse().expect("url");
    let mut conn = opts.connect().await.expect("connect");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'latchkey' AND table_name IN ('users', 'audit_events')")
        .fetch_one(&mut conn)
        .await
        .expect("q");
    assert_eq!(n, 2);
    drop(conn);
    let (id, secret) = app.machine_client("ext").await;
    app.service_token("ext", &id, &secret).await;
    app.stop().await;
}
both!(failed_provisioning_and_recovery);

async fn interrupted_provisioning_resumes_at_start(backend: Backend) {
    let first = TestApp::start(backend).await;
    first.active_app("crash").await;
    // Simulate a crash mid-provisioning: the row says provisioning_schema with a lapsed lease.
    on_db!(&first.control(), p => sqlx::query("UPDATE apps SET status = 'provisioning_schema', lease_until = $1 WHERE slug = 'crash'")
        .bind(latchkey::store::Ts::new(chrono::Utc::now() - chrono::Duration::seconds(5)))
        .execute(p).await.map(|_| ())).expect("update");
    let opts = first.same_store();
    first.stop().await;
    let second = TestApp::start_with(opts).await;
    let app = second.wait_status("crash", "active").await;
    assert_eq!(app["failure_reason"], Value::Null);
    // Never half-active: exactly one current key.
    let (_, keys) = second.admin(Method::GET, "/apps/crash/keys", None).await;
    let current = keys["items"].as_array().expect("items").iter().filter(|k| k["state"] == "current").count();
    assert_eq!(current, 1);
    second.stop().await;
}
both!(interrupted_provisioning_resumes_at_start);

async fn list_and_paginate(backend: Backend) {
    let app = TestApp::start(backend).await;
    for slug in ["aa", "bb", "cc"] {
        app.create_app(json!({"slug": slug, "display_name": slug})).await;
    }
    let (s, p1) = app.admin(Method::GET, "/apps?limit=2", None).await;
    assert_eq!(s, StatusCode::OK);
    let slugs = |v: &Value| {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["slug"].as_str().expect("slug").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(slugs(&p1), ["aa", "bb"]);
    let cursor = p1["next_cursor"].as_str().expect("cursor");
    let (_, p2) = app.admin(Method::GET, &format!("/apps?limit=2&cursor={cursor}"), None).await;
    assert_eq!(slugs(&p2), ["cc"]);
    assert_eq!(p2["next_cursor"], Value::Null);
    for slug in ["aa", "bb", "cc"] {
        app.wait_status(slug, "active").await;
    }
    app.stop().await;
}
both!(list_and_paginate);

async fn merge_patch_settings(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("patchy").await;
    let (s, v) = app
        .admin(Method::PATCH, "/apps/patchy", Some(json!({
            "display_name": "Patchy Inc",
            "branding": {"brand_color": "#4F46E5", "logo_url": "https://cdn.example.com/logo.svg"},
            "policy": {"password": {"min_length": 12}},
            "smtp": {"url": "smtp+starttls://mailer:s3cretpw@mail.example.com:587", "from": "no-reply@example.com"}
        })))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["display_name"], "Patchy Inc");
    assert_eq!(v["branding"]["brand_color"], "#4f46e5");
    assert_eq!(v["policy"]["password"]["min_length"], 12);
    // Nested objects merge: untouched policy fields keep their values.
    assert_eq!(v["policy"]["password"]["require_uppercase"], false);
    assert_eq!(v["policy"]["session"]["ttl_hours"], 168);
    assert!(!v.to_string().contains("s3cretpw"), "{v}");
    assert_eq!(v["smtp"]["url"], "smtp+starttls://mailer@mail.example.com:587");
    let sealed: Option<String> = on_db!(&app.control(), p => sqlx::query_scalar("SELECT smtp_password FROM apps WHERE slug = 'patchy'").fetch_one(p).await).expect("row");
    assert!(sealed.expect("sealed password").starts_with("lk1$"));
    // Changing `from` alone keeps the stored password.
    let (_, v) =
        app.admin(Method::PATCH, "/apps/patchy", Some(json!({"smtp": {"from": "hello@example.com"}}))).await;
    assert_eq!(v["smtp"]["from"], "hello@example.com");
    let sealed: Option<String> = on_db!(&app.control(), p => sqlx::query_scalar("SELECT smtp_password FROM apps WHERE slug = 'patchy'").fetch_one(p).await).expect("row");
    assert!(sealed.is_some());
    // null removes.
    let (_, v) = app
        .admin(Method::PATCH, "/apps/patchy", Some(json!({"smtp": null, "branding": {"logo_url": null}})))
        .await;
    assert_eq!(v["smtp"], Value::Null);
    assert_eq!(v["branding"]["logo_url"], Value::Null);
    assert_eq!(v["branding"]["brand_color"], "#4f46e5");
    // Token lifetime change takes effect at once.
    let (id, secret) = app.machine_client("patchy").await;
    app.admin(Method::PATCH, "/apps/patchy", Some(json!({"tokens": {"access_token_ttl_seconds": 120}})))
        .await;
    let (_, _, t) = app.form("patchy", "token", Some((&id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(t["expires_in"], 120);
    app.stop().await;
}
both!(merge_patch_settings);

/// Page errors of the hosted pages and of `/authorize` (before any redirect is allowed) are
/// themed HTML pages that say what happened, never a bare status: an unknown app, a disabled one,
/// a request the app cannot take.
async fn page_errors_are_pages(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("pages").await;
    let page = |path: String| {
        let app = &app;
        async move {
            let res = app.http.get(format!("{}{path}", app.base)).send().await.expect("request");
            let status = res.status();
            let html =
                res.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            (status, html, res.text().await.expect("body"))
        }
    };
    for path in ["/apps/nope/authorize?client_id=x", "/apps/nope/login", "/apps/nope/reset-password"] {
        let (status, html, body) = page(path.to_string()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html && body.contains("There is no application at this address."), "{path}: {body}");
    }
    // An unknown client: a page on the app's theme, never a redirect.
    let (status, html, body) = page("/apps/pages/authorize?client_id=nobody&response_type=code".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html && body.contains("App pages"), "{body}");
    let (s, _) = app.admin(Method::POST, "/apps/pages/disable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    for path in ["/apps/pages/authorize?client_id=x", "/apps/pages/login"] {
        let (status, html, body) = page(path.to_string()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(html && body.contains("not available right now"), "{path}: {body}");
    }
    app.stop().await;
}
both!(page_errors_are_pages);
