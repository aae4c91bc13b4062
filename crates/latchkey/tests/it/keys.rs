//! Signing keys: states, rotation with a grace window, sealing at rest.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use latchkey::on_db;

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("b64");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    v["kid"].as_str().expect("kid").to_string()
}

fn kid_in(keys: &Value, state: &str) -> Vec<String> {
    keys["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|k| k["state"] == state)
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

async fn jwks_kids(app: &TestApp, slug: &str) -> Vec<String> {
    let v: Value = app
        .http
        .get(format!("{}/jwks", app.issuer(slug)))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    v["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("kid").to_string()).collect()
}

async fn rotation_with_grace_window(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rot").await;
    let (id, secret) = app.machine_client("rot").await;
    let jwks_url = format!("{}/jwks", app.issuer("rot"));

    let (_, keys) = app.admin(Method::GET, "/apps/rot/keys", None).await;
    let (current, next) = (kid_in(&keys, "current"), kid_in(&keys, "next"));
    assert_eq!((current.len(), next.len()), (1, 1), "{keys}");

    let before = app.service_token("rot", &id, &secret).await;
    assert_eq!(kid_of(&before), current[0]);

    let (s, rotated) =
        app.admin(Method::POST, "/apps/rot/keys/rotate", Some(json!({"grace_seconds": 30}))).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    // The published `next` key signs now; the old one is retiring; a new `next` is published.
    assert_eq!(kid_in(&rotated, "current"), next);
    assert_eq!(kid_in(&rotated, "retiring"), current);
    let new_next = kid_in(&rotated, "next");
    assert_eq!(new_next.len(), 1);
    assert!(!current.contains(&new_next[0]) && !next.contains(&new_next[0]));

    let after = app.service_token("rot", &id, &secret).await;
    assert_eq!(kid_of(&after), next[0]);
    // Within the grace window both tokens verify and introspect as active.
    verify_with_jwks(&app.http, &jwks_url, &before).await.expect("old token still verifies");
    verify_with_jwks(&app.http, &jwks_url, &after).await.expect("new token verifies");
    assert_eq!(app.introspect("rot", &id, &secret, &before).await["active"], true);
    let mut published = jwks_kids(&app, "rot").await;
    published.sort();
    let mut expected = vec![current[0].clone(), next[0].clone(), new_next[0].clone()];
    expected.sort();
    assert_eq!(published, expected);

    // After the grace window the old key is gone from the JWKS and its tokens stop validating.
    app.clock.advance(chrono::Duration::seconds(31));
    assert!(!jwks_kids(&app, "rot").await.contains(&current[0]));
    let err = verify_with_jwks(&app.http, &jwks_url, &before).await.expect_err("old key retired");
    assert!(err.contains("not in JWKS"), "{err}");
    assert_eq!(app.introspect("rot", &id, &secret, &before).await["active"], false);
    verify_with_jwks(&app.http, &jwks_url, &after).await.expect("new token still verifies");
    let (_, keys) = app.admin(Method::GET, "/apps/rot/keys", None).await;
    assert_eq!(kid_in(&keys, "retired"), current);

    // The janitor writes the retirement down.
    let janitor = latchkey::jobs::janitor::Janitor {
        apps: app.state.apps.clone(),
        mail_throttle: app.state.mail_throttle.clone(),
    };
    janitor.run_once().await.expect("janitor");
    let state: String = on_db!(&app.control(), p => sqlx::query_scalar("SELECT state FROM signing_keys WHERE kid = $1").bind(&current[0]).fetch_one(p).await).expect("row");
    assert_eq!(state, "retired");
    app.stop().await;
}
both!(rotation_with_grace_window);

async fn default_grace_is_longest_token_lifetime(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("grace").await;
    let (s, rotated) = app.admin(Method::POST, "/apps/grace/keys/rotate", None).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let retiring = rotated["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["state"] == "retiring")
        .expect("retiring")
        .clone();
    let created = chrono::DateTime::parse_from_rfc3339(retiring["retire_at"].as_str().expect("retire_at"))
        .expect("time");
    let delta = created.signed_duration_since(chrono::Utc::now()).num_seconds();
    // id_token_ttl_seconds (3600) is the longest signed lifetime by default.
    assert!((3590..=3600).contains(&delta), "{delta}");
    // Two rotations in a row keep exactly one current and one next.
    let (_, again) =
        app.admin(Method::POST, "/apps/grace/keys/rotate", Some(json!({"grace_seconds": 0}))).await;
    assert_eq!(kid_in(&again, "current").len(), 1);
    assert_eq!(kid_in(&again, "next").len(), 1);
    let (s, bad) =
        app.admin(Method::POST, "/apps/grace/keys/rotate", Some(json!({"grace_seconds": -1}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    app.stop().await;
}
both!(default_grace_is_longest_token_lifetime);

async fn private_keys_are_sealed_at_rest(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("sealed").await;
    let rows: Vec<String> = on_db!(&app.control(), p => sqlx::query_scalar("SELECT private_key FROM signing_keys").fetch_all(p).await).expect("rows");
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert!(r.starts_with("lk1$"), "not sealed: {}", &r[..10.min(r.len())]);
        // Random ciphertext may contain any three letters (it once held "MII", the start of a
        // base64 DER key), so look for PEM armour only.
        assert!(!r.contains("PRIVATE KEY") && !r.contains("-----BEGIN"));
    }
    // The admin API lists keys without private material.
    let (_, keys) = app.admin(Method::GET, "/apps/sealed/keys", None).await;
    let text = keys.to_string();
    assert!(!text.contains("private") && !text.contains("lk1$"));
    app.stop().await;
}
both!(private_keys_are_sealed_at_rest);

async fn changing_algorithm_applies_at_next_rotation(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("alg").await;
    let (id, secret) = app.machine_client("alg").await;
    let (s, v) = app.admin(Method::PATCH, "/apps/alg", Some(json!({"signing_alg": "ES256"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let t = app.service_token("alg", &id, &secret).await;
    let jwks_url = format!("{}/jwks", app.issuer("alg"));
    assert_eq!(verify_with_jwks(&app.http, &jwks_url, &t).await.expect("verifies").0["alg"], "RS256");
    app.admin(Method::POST, "/apps/alg/keys/rotate", Some(json!({"grace_seconds": 60}))).await;
    let t2 = app.service_token("alg", &id, &secret).await;
    assert_eq!(verify_with_jwks(&app.http, &jwks_url, &t2).await.expect("verifies").0["alg"], "ES256");
    verify_with_jwks(&app.http, &jwks_url, &t).await.expect("RS256 token still verifies in grace");
    app.stop().await;
}
both!(changing_algorithm_applies_at_next_rotation);
