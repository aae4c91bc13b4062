//! Scale-out (SPEC §9): two replicas sharing one PostgreSQL control plane behave as one. A
//! change made through one is served by the other within a second.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::kit::{Backend, Options, TestApp};

async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not propagate within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_changes() {
    let a = TestApp::start(Backend::Postgres).await;
    let mut opts: Options = a.same_store();
    opts.dir = None;
    opts.public_url = Some(a.base.clone());
    let b = TestApp::start_with(opts).await;
    a.active_app("shared").await;
    let (id, secret) = a.machine_client("shared").await;
    // B serves the app A created and accepts the client A registered.
    let token = b.service_token("shared", &id, &secret).await;
    assert_eq!(a.introspect("shared", &id, &secret, &token).await["active"], true);

    // Key rotation on A: B signs with the new key within a second.
    let (_, keys) =
        a.admin(Method::POST, "/apps/shared/keys/rotate", Some(json!({"grace_seconds": 60}))).await;
    let current = keys["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["state"] == "current")
        .expect("current")["kid"]
        .clone();
    let took = eventually("key rotation", || async {
        let t = b.service_token("shared", &id, &secret).await;
        let header = t.split('.').next().map(|h| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).expect("b64");
            serde_json::from_slice::<Value>(&bytes).expect("json")
        });
        header.is_some_and(|h| h["kid"] == current)
    })
    .await;
    assert!(took < Duration::from_millis(1500), "rotation took {took:?}");

    // Secret rotation on A: B refuses the old secret within a second.
    let (_, rotated) = a.admin(Method::POST, &format!("/apps/shared/clients/{id}/secret"), None).await;
    let new = rotated["client_secret"].as_str().expect("secret").to_string();
    let took = eventually("secret rotation", || async {
        let (s, _, _) =
            b.form("shared", "token", Some((&id, &secret)), "grant_type=client_credentials").await;
        s == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(took < Duration::from_millis(1500), "secret rotation took {took:?}");
    b.service_token("shared", &id, &new).await;

    // Revocation through A is seen by B's introspection at once (shared store).
    let t = a.service_token("shared", &id, &new).await;
    a.form("shared", "revoke", Some((&id, &new)), &format!("token={t}")).await;
    assert_eq!(b.introspect("shared", &id, &new, &t).await["active"], false);

    // Disable on A: B stops serving within a second.
    a.admin(Method::POST, "/apps/shared/disable", None).await;
    let took = eventually("disable", || async {
        let s = b.http.get(format!("{}/jwks", b.issuer("shared"))).send().await.expect("jwks").status();
        s == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(took < Duration::from_millis(1500), "disable took {took:?}");
    b.stop().await;
    a.stop().await;
}
