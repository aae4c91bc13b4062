//! Client registration and management: secrets shown once and stored as keyed hashes, merge
//! patches, secret rotation, deletion; every change seen by the token endpoint at once.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp};
use latchkey::on_db;

async fn register_and_manage(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cl").await;
    let (s, web) = app
        .admin(
            Method::POST,
            "/apps/cl/clients",
            Some(json!({
                "name": "Web", "redirect_uris": ["https://app.example.com/cb"],
                "post_logout_redirect_uris": ["https://app.example.com/bye"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "client_secret_basic"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{web}");
    let secret = web["client_secret"].as_str().expect("secret shown at creation");
    assert!(secret.starts_with("lks_") && secret.len() >= 40);
    assert_eq!(web["scopes"], json!(["openid", "profile", "email", "phone", "offline_access", "roles"]));
    let id = web["client_id"].as_str().expect("id").to_string();

    // Never again: not on get, not on list, not in the store.
    let (_, got) = app.admin(Method::GET, &format!("/apps/cl/clients/{id}"), None).await;
    assert!(got.get("client_secret").is_none(), "{got}");
    let (_, list) = app.admin(Method::GET, "/apps/cl/clients", None).await;
    assert!(!list.to_string().contains(secret));
    let stored: Option<String> = on_db!(&app.control(), p => sqlx::query_scalar("SELECT secret_hash FROM clients WHERE client_id = $1").bind(&id).fetch_one(p).await).expect("row");
    let stored = stored.expect("hash");
    assert!(!stored.contains(secret) && stored.len() == 64);

    // A public (native) client has no secret.
    let (s, native) = app
        .admin(Method::POST, "/apps/cl/clients", Some(json!({
            "name": "Native", "redirect_uris": ["http://127.0.0.1:7777/cb", "com.example.app:/cb"],
            "grant_types": ["authorization_code"], "token_endpoint_auth_method": "none", "scopes": ["openid"]
        })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{native}");
    assert!(native.get("client_secret").is_none());

    // Merge patch: lists replace, untouched fields stay.
    let (s, patched) = app
        .admin(
            Method::PATCH,
            &format!("/apps/cl/clients/{id}"),
            Some(json!({"name": "Web 2", "redirect_uris": ["https://app.example.com/cb2"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Web 2");
    assert_eq!(patched["redirect_uris"], json!(["https://app.example.com/cb2"]));
    assert_eq!(patched["post_logout_redirect_uris"], json!(["https://app.example.com/bye"]));

    // Every client change is in the operator audit; an update names who and what changed.
    let sql = "SELECT action || ' ' || coalesce(target, '') || ' ' || CAST(data AS TEXT) FROM operator_audit \
        WHERE action LIKE 'client.%' ORDER BY time";
    let rows: Vec<String> =
        on_db!(&app.control(), p => sqlx::query_scalar(sql).fetch_all(p).await).expect("operator audit");
    let updated: Vec<&String> = rows.iter().filter(|r| r.starts_with("client.updated")).collect();
    assert_eq!(updated.len(), 1, "{rows:?}");
    let u = updated[0];
    assert!(u.contains(&id) && u.contains("token:") && u.contains("Web 2") && u.contains("cb2"), "{u}");
    assert!(!u.contains("post_logout_redirect_uris"), "only changed settings are listed: {u}");
    assert_eq!(rows.iter().filter(|r| r.starts_with("client.created")).count(), 2, "{rows:?}");
    app.stop().await;
}
both!(register_and_manage);

async fn rotate_secret_and_delete(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rs").await;
    let (id, old) = app.machine_client("rs").await;
    app.service_token("rs", &id, &old).await;
    let (s, rotated) = app.admin(Method::POST, &format!("/apps/rs/clients/{id}/secret"), None).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["client_secret"].as_str().expect("new secret").to_string();
    assert_ne!(new, old);
    // The change is seen at once by the token endpoint.
    let (s, h, v) = app.form("rs", "token", Some((&id, &old)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "invalid_client");
    assert!(h["www-authenticate"].to_str().expect("ascii").starts_with("Basic"));
    app.service_token("rs", &id, &new).await;

    let (s, _) = app.admin(Method::DELETE, &format!("/apps/rs/clients/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = app.form("rs", "token", Some((&id, &new)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = app.admin(Method::DELETE, &format!("/apps/rs/clients/{id}"), None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    app.stop().await;
}
both!(rotate_secret_and_delete);

async fn grant_types_are_enforced(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("gt").await;
    let (_, web) = app
        .admin(
            Method::POST,
            "/apps/gt/clients",
            Some(json!({
                "name": "Web", "redirect_uris": ["https://app.example.com/cb"],
                "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic"
            })),
        )
        .await;
    let (id, secret) =
        (web["client_id"].as_str().expect("id"), web["client_secret"].as_str().expect("secret"));
    let (s, _, v) = app.form("gt", "token", Some((id, secret)), "grant_type=client_credentials").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    app.stop().await;
}
both!(grant_types_are_enforced);

async fn pagination(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("pg").await;
    for _ in 0..5 {
        app.machine_client("pg").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/apps/pg/clients?limit=2&cursor={c}"),
            None => "/apps/pg/clients?limit=2".into(),
        };
        let (s, page) = app.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().expect("items").iter().map(|c| c["client_id"].clone()));
        match &page["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    app.stop().await;
}
both!(pagination);

/// A change saved after the client was deleted (loaded before, saved after) is refused and does
/// not bring the client back.
async fn a_deleted_client_stays_deleted(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("gone").await;
    let app_id = latchkey::apps::service::get(&app.state.apps, "gone").await.expect("app").id;
    let (id, _) = app.machine_client("gone").await;
    let control = app.control();
    let loaded = latchkey::clients::service::get(&control, app_id, &id).await.expect("client");
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/gone/clients/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let settings = latchkey::clients::service::settings_of(&loaded);
    let late = latchkey::clients::service::update(&control, loaded, settings, app.state.now()).await;
    assert!(matches!(late, Err(latchkey::clients::ClientError::NotFound)), "{late:?}");
    let (s, _) = app.admin(Method::GET, &format!("/apps/gone/clients/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}
both!(a_deleted_client_stays_deleted);
