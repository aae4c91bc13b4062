//! Upstream discovery documents and key sets (SPEC §7a, issue 12 item 1) against a fake
//! upstream on loopback that can be told to misbehave: cached as `Cache-Control` says, keys
//! fetched again for an unknown `kid` (not more than every 30 s), bounded waits and sizes,
//! an issuer that is not the configured one refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use latchkey::clock::OffsetClock;
use latchkey::upstream::{UpstreamError, Upstreams};
use parking_lot::Mutex;
use serde_json::json;

/// How the fake answers.
#[derive(Clone)]
struct Behaviour {
    /// The `issuer` its discovery document claims (None: its own URL).
    issuer: Option<String>,
    kids: Vec<&'static str>,
    cache_control: Option<&'static str>,
    status: u16,
    delay: Duration,
    padding: usize,
}

#[derive(Clone)]
struct Fake {
    base: Arc<Mutex<String>>,
    how: Arc<Mutex<Behaviour>>,
    discovery_hits: Arc<AtomicUsize>,
    jwks_hits: Arc<AtomicUsize>,
}

async fn answer(fake: &Fake, body: serde_json::Value) -> Response {
    let how = fake.how.lock().clone();
    tokio::time::sleep(how.delay).await;
    let status = axum::http::StatusCode::from_u16(how.status).expect("status");
    let mut body = body;
    if how.padding > 0 {
        body["padding"] = json!("x".repeat(how.padding));
    }
    let mut res = (status, axum::Json(body)).into_response();
    if let Some(cc) = how.cache_control {
        res.headers_mut().insert(header::CACHE_CONTROL, cc.parse().expect("header"));
    }
    res
}

async fn discovery(State(fake): State<Fake>) -> Response {
    fake.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let base = fake.base.lock().clone();
    let issuer = fake.how.lock().issuer.clone().unwrap_or_else(|| base.clone());
    let doc = json!({
        "issuer": issuer, "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"), "jwks_uri": format!("{base}/jwks"),
    });
    answer(&fake, doc).await
}

async fn jwks(State(fake): State<Fake>) -> Response {
    fake.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let kids = fake.how.lock().kids.clone();
    let keys: Vec<_> =
        kids.iter().map(|k| json!({"kty": "EC", "crv": "P-256", "kid": k, "x": "x", "y": "y"})).collect();
    answer(&fake, json!({ "keys": keys })).await
}

async fn start() -> Fake {
    let fake = Fake {
        base: Arc::new(Mutex::new(String::new())),
        how: Arc::new(Mutex::new(Behaviour {
            issuer: None,
            kids: vec!["k1"],
            cache_control: Some("public, max-age=120"),
            status: 200,
            delay: Duration::ZERO,
            padding: 0,
        })),
        discovery_hits: Arc::new(AtomicUsize::new(0)),
        jwks_hits: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    *fake.base.lock() = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_keys_are_cached_and_refreshed() {
    let fake = start().await;
    let base = fake.base.lock().clone();
    let clock = Arc::new(OffsetClock::default());
    let up = Upstreams::new(clock.clone(), Duration::from_secs(2)).expect("client");

    let meta = up.metadata(&base).await.expect("discovery");
    assert_eq!(meta.token_endpoint, format!("{base}/token"));
    up.metadata(&format!("{base}/")).await.expect("a trailing slash is the same issuer");
    up.metadata(&base).await.expect("cached");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 1, "max-age=120 is honoured");
    clock.advance(chrono::Duration::seconds(121));
    up.metadata(&base).await.expect("refetched");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 2);

    // Keys: cached; an unknown kid refetches once the set is 30 s old, finding a rotated key.
    let jwks_uri = meta.jwks_uri.clone();
    assert_eq!(up.key(&jwks_uri, "k1").await.expect("k1")["kid"], "k1");
    up.key(&jwks_uri, "k1").await.expect("cached");
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 1);
    fake.how.lock().kids = vec!["k1", "k2"];
    assert!(
        matches!(up.key(&jwks_uri, "k2").await, Err(UpstreamError::UnknownKey { .. })),
        "too soon to refetch"
    );
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 1, "a made-up kid does not make every request a fetch");
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(up.key(&jwks_uri, "k2").await.expect("rotated key")["kid"], "k2");
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 2);
    clock.advance(chrono::Duration::seconds(31));
    assert!(matches!(up.key(&jwks_uri, "nope").await, Err(UpstreamError::UnknownKey { .. })));
    assert_eq!(fake.jwks_hits.load(Ordering::SeqCst), 3);

    // Without Cache-Control: an hour; a silly max-age is raised to a minute.
    fake.how.lock().cache_control = Some("max-age=0");
    clock.advance(chrono::Duration::seconds(121));
    up.metadata(&base).await.expect("refetched");
    up.metadata(&base).await.expect("cached for the minimum");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 3);
    clock.advance(chrono::Duration::seconds(61));
    up.metadata(&base).await.expect("refetched");
    assert_eq!(fake.discovery_hits.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_upstream_is_an_error_in_bounded_time() {
    let fake = start().await;
    let base = fake.base.lock().clone();
    let clock = Arc::new(OffsetClock::default());
    let up = Upstreams::new(clock.clone(), Duration::from_secs(1)).expect("client");

    fake.how.lock().issuer = Some("https://evil.example".into());
    let e = up.metadata(&base).await.expect_err("another issuer");
    assert!(matches!(e, UpstreamError::Invalid { .. }) && e.to_string().contains("evil.example"), "{e}");
    fake.how.lock().issuer = None;

    fake.how.lock().status = 500;
    assert!(matches!(up.metadata(&base).await, Err(UpstreamError::Status { status: 500, .. })));
    fake.how.lock().status = 200;

    fake.how.lock().padding = 300 * 1024;
    assert!(matches!(up.metadata(&base).await, Err(UpstreamError::Invalid { .. })), "oversized");
    fake.how.lock().padding = 0;

    fake.how.lock().delay = Duration::from_secs(5);
    let started = Instant::now();
    assert!(matches!(up.metadata(&base).await, Err(UpstreamError::Unreachable { .. })));
    assert!(started.elapsed() < Duration::from_secs(3), "bounded: {:?}", started.elapsed());
    fake.how.lock().delay = Duration::ZERO;

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    assert!(matches!(up.metadata(&closed).await, Err(UpstreamError::Unreachable { .. })));
    // Nothing bad was cached: the upstream, behaving again, is used.
    assert!(up.metadata(&base).await.is_ok());
}
