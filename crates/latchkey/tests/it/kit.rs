//! Test kit: a real Latchkey on an ephemeral port with a fresh store (its own SQLite data dir,
//! or its own PostgreSQL database), an admin client and a movable clock.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use latchkey::app::Server;
use latchkey::clock::OffsetClock;
use latchkey::config::ServeArgs;
use latchkey::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "lka_test-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a scenario `async fn name(backend: Backend)` once per store backend.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::kit::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::kit::Backend::Postgres).await
            }
        }
    };
}

/// The PostgreSQL server tests use (trust auth on this machine and in CI).
pub fn pg_base() -> String {
    std::env::var("LATCHKEY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A PostgreSQL database of its own, dropped when this is dropped.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        let name = format!("lk_t_{}", uuid::Uuid::new_v4().simple());
        admin_sql(&format!("CREATE DATABASE {name}")).await;
        PgDb { name }
    }

    /// A name for a database that does not exist yet (for failure-path tests); dropped too.
    pub fn reserve() -> PgDb {
        PgDb { name: format!("lk_t_{}", uuid::Uuid::new_v4().simple()) }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", pg_base(), self.name)
    }
}

pub async fn admin_sql(sql: &str) {
    use sqlx::{ConnectOptions, Executor};
    let opts: sqlx::postgres::PgConnectOptions = format!("{}/postgres", pg_base()).parse().expect("pg url");
    let mut conn =
        opts.connect().await.expect("PostgreSQL at LATCHKEY_TEST_PG (see README: tests need PostgreSQL)");
    conn.execute(sql).await.expect("admin sql");
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside async; use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(admin_sql(&sql));
            }
        })
        .join();
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<OffsetClock>,
    pub state: AppState,
    pub backend: Backend,
    pub dir: Arc<tempfile::TempDir>,
    pub master_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub pg: Option<Arc<PgDb>>,
}

pub struct Options {
    pub backend: Backend,
    /// Share this control-plane database (replica tests).
    pub pg: Option<Arc<PgDb>>,
    pub master_key: Option<String>,
    /// Share this data dir (restart tests).
    pub dir: Option<Arc<tempfile::TempDir>>,
    /// Another replica's public URL (replicas share one).
    pub public_url: Option<String>,
    /// More `latchkey serve` flags (for example `--smtp-url`).
    pub extra_args: Vec<String>,
    /// Configure [`ADMIN_TOKEN`] as `LATCHKEY_ADMIN_TOKEN` (else a token named "initial" is
    /// generated and stored, and the tests make their own).
    pub admin_token: bool,
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(Self::options(backend)).await
    }

    /// Options for a server with fresh stores on `backend`.
    pub fn options(backend: Backend) -> Options {
        Options {
            backend,
            pg: None,
            master_key: None,
            dir: None,
            public_url: None,
            extra_args: Vec::new(),
            admin_token: true,
        }
    }

    pub async fn start_with(opts: Options) -> TestApp {
        let dir = opts.dir.unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let pg = match (opts.backend, opts.pg) {
            (Backend::Postgres, Some(pg)) => Some(pg),
            (Backend::Postgres, None) => Some(Arc::new(PgDb::create().await)),
            (Backend::Sqlite, _) => None,
        };
        let mut args = vec![
            "latchkey".to_string(),
            "--data-dir".into(),
            dir.path().display().to_string(),
            "--bind".into(),
            addr.to_string(),
            "--public-url".into(),
            opts.public_url.clone().unwrap_or_else(|| base.clone()),
        ];
        if opts.admin_token {
            args.extend(["--admin-token".into(), ADMIN_TOKEN.into()]);
        }
        if let Some(pg) = &pg {
            args.extend(["--database-url".into(), pg.url()]);
        }
        let key = opts.master_key.unwrap_or_else(|| latchkey::crypto::MasterKey::generate().to_base64());
        args.extend(["--master-key".into(), key.clone()]);
        args.extend(opts.extra_args);
        #[derive(Parser)]
        struct A {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let config = A::try_parse_from(args).expect("args").serve.validate().expect("config");
        let clock = Arc::new(OffsetClock::default());
        let server = Server::builder(config).clock(clock.clone()).build().await.expect("server builds");
        let state = server.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        TestApp {
            base,
            http,
            clock,
            state,
            backend: opts.backend,
            dir,
            master_key: key,
            shutdown: Some(tx),
            task: Some(task),
            pg,
        }
    }

    /// Graceful shutdown, waiting for the drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    /// Options to start another server on the same stores and master key.
    pub fn same_store(&self) -> Options {
        Options {
            backend: self.backend,
            pg: self.pg.clone(),
            master_key: Some(self.master_key.clone()),
            dir: Some(self.dir.clone()),
            public_url: None,
            extra_args: Vec::new(),
            admin_token: true,
        }
    }

    /// A direct connection to this server's control-plane store.
    pub fn control(&self) -> latchkey::store::ControlDb {
        self.state.control.clone()
    }

    pub fn issuer(&self, slug: &str) -> String {
        format!("{}/apps/{slug}", self.base)
    }

    /// An admin API call; returns status and JSON body (Null if empty).
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            self.http.request(method, format!("{}/admin/v1{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("admin request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        )
    }

    pub async fn get_app(&self, slug: &str) -> Value {
        let (s, v) = self.admin(Method::GET, &format!("/apps/{slug}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Waits until the app reaches `status` (or fails the test after 30 s).
    pub async fn wait_status(&self, slug: &str, status: &str) -> Value {
        for _ in 0..300 {
            let app = self.get_app(slug).await;
            if app["status"] == status {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("app {slug} never reached {status}: {}", self.get_app(slug).await);
    }

    pub async fn create_app(&self, body: Value) -> Value {
        let (s, v) = self.admin(Method::POST, "/apps", Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// Creates an app and waits for it to become active.
    pub async fn active_app(&self, slug: &str) -> Value {
        self.create_app(json!({"slug": slug, "display_name": format!("App {slug}")})).await;
        self.wait_status(slug, "active").await
    }

    /// A confidential machine client (client_credentials, client_secret_basic).
    pub async fn machine_client(&self, slug: &str) -> (String, String) {
        let (s, v) = self
            .admin(
                Method::POST,
                &format!("/apps/{slug}/clients"),
                Some(json!({
                    "name": "svc", "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "client_secret_basic", "scopes": ["api:read", "api:write"]
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (v["client_id"].as_str().expect("id").into(), v["client_secret"].as_str().expect("secret").into())
    }

    /// POST a form to an issuer endpoint with optional Basic auth; returns status, headers, JSON.
    pub async fn form(
        &self,
        slug: &str,
        endpoint: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}/{endpoint}", self.issuer(slug)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A client_credentials access token.
    pub async fn service_token(&self, slug: &str, id: &str, secret: &str) -> String {
        let (s, _, v) = self.form(slug, "token", Some((id, secret)), "grant_type=client_credentials").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["access_token"].as_str().expect("token").into()
    }

    pub async fn introspect(&self, slug: &str, id: &str, secret: &str, token: &str) -> Value {
        let (s, _, v) = self.form(slug, "introspect", Some((id, secret)), &format!("token={token}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

/// Verifies a JWS with the issuer's published JWKS using the `openidconnect` crate's own key
/// types (independent of the server's JWT library); returns header and claims.
pub async fn verify_with_jwks(
    http: &reqwest::Client,
    jwks_url: &str,
    token: &str,
) -> Result<(Value, Value), String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
    use openidconnect::{JsonWebKey, JsonWebKeySetUrl};

    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("not a compact JWS".into());
    }
    let decode = |p: &str| -> Result<Value, String> {
        let b = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&b).map_err(|e| e.to_string())
    };
    let header = decode(parts[0])?;
    let claims = decode(parts[1])?;
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|e| e.to_string())?;
    let jwks = CoreJsonWebKeySet::fetch_async(
        &JsonWebKeySetUrl::new(jwks_url.into()).map_err(|e| e.to_string())?,
        http,
    )
    .await
    .map_err(|e| e.to_string())?;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwks
        .keys()
        .iter()
        .find(|k| k.key_id().map(|id| id.as_str()) == Some(kid))
        .ok_or_else(|| format!("kid {kid} not in JWKS"))?;
    let alg = match header["alg"].as_str() {
        Some("RS256") => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some("ES256") => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        Some("EdDSA") => CoreJwsSigningAlgorithm::EdDsa,
        other => return Err(format!("unexpected alg {other:?}")),
    };
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    key.verify_signature(&alg, signing_input.as_bytes(), &sig).map_err(|e| e.to_string())?;
    Ok((header, claims))
}
