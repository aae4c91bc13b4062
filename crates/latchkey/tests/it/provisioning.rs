//! App provisioning on PostgreSQL: migrations lock per schema, on a connection of their own, with
//! a bounded wait. A burst of deletions, a cancelled migration or another app's migration never
//! leaves apps in `provisioning_schema` or a second server unable to start.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{ConnectOptions, Connection};

use crate::kit::{Backend, PgDb, TestApp, pg_base};
use latchkey::store::{IdentityLocation, IdentityStores};

/// Backends of `db` holding an advisory lock, by pid.
async fn advisory_lock_holders(db: &str) -> Vec<i32> {
    let opts: sqlx::postgres::PgConnectOptions = format!("{}/postgres", pg_base()).parse().expect("pg url");
    let mut conn = opts.connect().await.expect("postgres");
    let sql = "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
        WHERE l.locktype = 'advisory' AND l.granted AND a.datname = $1";
    let pids: Vec<i32> = sqlx::query_scalar(sql).bind(db).fetch_all(&mut conn).await.expect("pg_locks");
    let _ = conn.close().await;
    pids
}

/// Waits (up to 5 s) until no backend of `db` holds an advisory lock: a closed connection's
/// backend ends a moment after the socket closes.
async fn no_advisory_lock_left(db: &str) {
    let start = Instant::now();
    loop {
        let holders = advisory_lock_holders(db).await;
        if holders.is_empty() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "advisory locks still held by {holders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_deletions_leaves_nothing_waiting() {
    let a = TestApp::start(Backend::Postgres).await;
    for i in 0..8 {
        a.create_app(json!({"slug": format!("burst{i}"), "display_name": "Burst"})).await;
    }
    // Half deleted at once, while they provision; the rest once active.
    for i in 0..4 {
        let (s, body) = a.admin(Method::DELETE, &format!("/apps/burst{i}?erase_data=true"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    }
    for i in 4..8 {
        a.wait_status(&format!("burst{i}"), "active").await;
        let (s, body) = a.admin(Method::DELETE, &format!("/apps/burst{i}?erase_data=true"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    }
    let start = Instant::now();
    a.active_app("after-burst").await;
    assert!(start.elapsed() < Duration::from_secs(10), "a new app took {:?}", start.elapsed());

    // A second server on the same control plane starts at once.
    let start = Instant::now();
    let mut opts = a.same_store();
    opts.dir = None;
    opts.public_url = Some(a.base.clone());
    let b = TestApp::start_with(opts).await;
    assert!(start.elapsed() < Duration::from_secs(10), "a second server took {:?} to start", start.elapsed());
    b.active_app("on-second").await;
    let db = a.pg.as_ref().expect("pg").name.clone();
    b.stop().await;
    a.stop().await;
    no_advisory_lock_left(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_migration_leaves_no_lock_held() {
    let pg = PgDb::create().await;
    let stores = IdentityStores::new(2, Duration::from_secs(5));
    let location = IdentityLocation::Postgres { url: pg.url().into(), schema: "cancelled".into() };
    let app_id = uuid::Uuid::now_v7();
    let db = stores.prepare(app_id, &location).await.expect("store");
    // Cancel the migration at ever later points (waiting for its connection, holding the lock,
    // mid-migration) until it has time to finish; no cancellation may leave the lock held.
    let mut after = Duration::from_millis(1);
    let mut cancelled = 0;
    loop {
        match tokio::time::timeout(after, stores.migrate(&db)).await {
            Ok(done) => {
                done.expect("migrations");
                break;
            }
            Err(_) => cancelled += 1,
        }
        no_advisory_lock_left(&pg.name).await;
        after *= 2;
        assert!(after < Duration::from_secs(60), "migrations never finished");
    }
    assert!(cancelled > 0, "the first attempts should have been cancelled");
    // Done and repeatable.
    stores.migrate(&db).await.expect("migrations again");
    no_advisory_lock_left(&pg.name).await;
    stores.close_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_fails_only_that_app_with_its_holder_named() {
    let mut opts = TestApp::options(Backend::Postgres);
    opts.extra_args = vec!["--migration-lock-wait-secs".into(), "2".into()];
    let a = TestApp::start_with(opts).await;
    let pg = a.pg.as_ref().expect("pg").clone();
    // Another session holds the migration lock of app "held"'s schema.
    let opts: sqlx::postgres::PgConnectOptions = pg.url().parse().expect("pg url");
    let mut holder = opts.application_name("lock-holder").connect().await.expect("holder");
    let key_sql =
        "SELECT hashtextextended('latchkey:migrate:' || current_database() || ':latchkey_app_held', 0)";
    let key: i64 = sqlx::query_scalar(key_sql).fetch_one(&mut holder).await.expect("key");
    sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut holder).await.expect("lock");

    a.create_app(json!({"slug": "held", "display_name": "Held"})).await;
    // Other apps do not wait for it.
    let start = Instant::now();
    a.active_app("free").await;
    assert!(start.elapsed() < Duration::from_secs(10), "another app waited {:?}", start.elapsed());
    // The blocked one fails within its bounded wait, naming who holds the lock.
    let failed = a.wait_status("held", "failed").await;
    let reason = failed["failure_reason"].as_str().expect("reason");
    assert!(reason.contains("held by pid") && reason.contains("lock-holder"), "{reason}");

    // Once the holder lets go, enabling the app again provisions it.
    holder.close().await.expect("close");
    let (s, body) = a.admin(Method::POST, "/apps/held/enable", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    a.wait_status("held", "active").await;
    a.stop().await;
    no_advisory_lock_left(&pg.name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_apps_created_in_parallel_all_become_active() {
    let a = TestApp::start(Backend::Postgres).await;
    let start = Instant::now();
    let creations = (0..50).map(|i| {
        let a = &a;
        async move { a.create_app(json!({"slug": format!("par{i:02}"), "display_name": "Parallel"})).await }
    });
    futures::future::join_all(creations).await;
    for i in 0..50 {
        a.wait_status(&format!("par{i:02}"), "active").await;
    }
    let took = start.elapsed();
    eprintln!("50 apps created in parallel on one PostgreSQL database were all active after {took:?}");
    assert!(took < Duration::from_secs(60), "50 apps took {took:?}");
    a.stop().await;
}
