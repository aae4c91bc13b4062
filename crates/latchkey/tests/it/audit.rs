//! The audit trail: end-user-facing events in the app's own identity store through the
//! asynchronous writer (drained on shutdown); operator actions in the control plane.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::kit::{Backend, TestApp};
use latchkey::audit::AuditEvent;
use latchkey::on_db;

async fn identity_events(app: &TestApp, slug: &str, kind: &str) -> i64 {
    let a = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    on_db!(&store, p => sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE type = $1").bind(kind).fetch_one(p).await).expect("count")
}

async fn events_reach_the_identity_store(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("aud").await;
    let (id, secret) = app.machine_client("aud").await;
    app.admin(Method::POST, "/apps/aud/keys/rotate", Some(json!({"grace_seconds": 10}))).await;
    let token = app.service_token("aud", &id, &secret).await;
    app.form("aud", "revoke", Some((&id, &secret)), &format!("token={token}")).await;
    let mut ok = false;
    for _ in 0..50 {
        if identity_events(&app, "aud", "key.rotated").await == 1
            && identity_events(&app, "aud", "token.revoked").await == 1
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "audit events were not written");
    // No token material in the trail.
    let a = latchkey::apps::service::get(&app.state.apps, "aud").await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    let data: Vec<String> = on_db!(&store, p => sqlx::query_scalar("SELECT CAST(data AS TEXT) FROM audit_events").fetch_all(p).await).expect("rows");
    assert!(data.iter().all(|d| !d.contains(&token) && !d.contains(&secret)));

    // Operator actions are in the control plane, without end-user data.
    let actions: Vec<String> = on_db!(&app.control(), p => sqlx::query_scalar("SELECT action FROM operator_audit ORDER BY time").fetch_all(p).await).expect("rows");
    for a in ["app.created", "client.created", "key.rotated"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
    app.stop().await;
}
both!(events_reach_the_identity_store);

async fn queued_events_survive_graceful_shutdown(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("drain").await;
    let a = latchkey::apps::service::get(&app.state.apps, "drain").await.expect("app");
    let store = latchkey::apps::service::identity_store(&app.state.apps, &a).expect("store");
    for i in 0..500 {
        app.state
            .audit
            .record(AuditEvent {
                app_id: a.id,
                store: store.clone(),
                time: app.state.now(),
                kind: "test.event",
                user_id: None,
                client_id: None,
                ip: Some("127.0.0.1".into()),
                user_agent: None,
                data: json!({"i": i}),
            })
            .await;
    }
    let opts = app.same_store();
    app.stop().await;
    // A fresh server on the same stores sees all 500.
    let again = TestApp::start_with(opts).await;
    again.wait_status("drain", "active").await;
    assert_eq!(identity_events(&again, "drain", "test.event").await, 500);
    again.stop().await;
}
both!(queued_events_survive_graceful_shutdown);
