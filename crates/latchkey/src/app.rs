//! Start-up: opening the stores, the master key and the admin token on
//! first run, then serving until a shutdown signal, then draining.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::admin::AdminTokens;
use crate::apps::{Apps, AppsDeps, ChangeFeed};
use crate::audit::AuditWriter;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, MasterKeySource, StoreConfig, read_trimmed};
use crate::crypto::{MasterKey, SecretBox, tokens};
use crate::mail::throttle::MailThrottle;
use crate::mail::{Mailer, SenderHandle};
use crate::signin::password::Passwords;
use crate::signin::throttle::Throttle;
use crate::state::{AppState, Inner};
use crate::store::{self, ControlDb, IdentityStores, Ts};
use crate::tenant::IssuerCache;
use crate::web::pages::Pages;
use crate::{on_db, ops};

/// Apps provisioned at once by one process (each holds up to three database connections).
const PROVISIONING_SLOTS: usize = 8;

/// Builds a [`Server`]; tests swap the clock.
pub struct ServerBuilder {
    config: Config,
    clock: Arc<dyn Clock>,
}

/// A started (not yet serving) Latchkey.
pub struct Server {
    pub state: AppState,
    audit: AuditWriter,
    mail_sender: SenderHandle,
}

impl Server {
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder { config, clock: Arc::new(SystemClock) }
    }
}

impl ServerBuilder {
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens the stores, applies control-plane migrations, resolves the master key and admin
    /// token, and resumes interrupted provisioning.
    pub async fn build(self) -> anyhow::Result<Server> {
        let config = self.config;
        store::files::private_dir(&config.store.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.store.data_dir.display()))?;
        let control = store::open_control(&config.store.database_url, config.store.migration_lock_wait)
            .await
            .context("control-plane store")?;
        let master = resolve_master_key(&config.store, &control).await?;
        let secrets = SecretBox::new(master);
        let admin_tokens = bootstrap_admin_token(&config, &control, self.clock.now().into()).await?;
        let (audit, writer) = AuditWriter::start();
        let (mailer, mail_rx) = Mailer::new();
        let identity = Arc::new(IdentityStores::new(config.app_pool_size, config.store.migration_lock_wait));
        let secrets = Arc::new(secrets);
        let changes = Arc::new(ChangeFeed::default());
        let apps = Apps::new(AppsDeps {
            control: control.clone(),
            identity: identity.clone(),
            secrets: secrets.clone(),
            store: config.store.clone(),
            clock: self.clock.clone(),
            changes: changes.clone(),
            audit: audit.clone(),
            provisioning: Arc::new(tokio::sync::Semaphore::new(PROVISIONING_SLOTS)),
        });
        let issuers = IssuerCache::new(apps.clone(), config.public_base());
        let upstreams = Arc::new(
            crate::upstream::Upstreams::new(self.clock.clone(), config.upstream_timeout)
                .context("building the HTTP client for upstream providers")?,
        );
        let state = AppState(Arc::new(Inner {
            identity,
            config,
            control,
            secrets,
            clock: self.clock,
            changes,
            apps,
            issuers,
            audit,
            admin_tokens,
            metrics: ops::metrics_handle(),
            passwords: Passwords::new(),
            throttle: Throttle::default(),
            pages: Arc::new(Pages::new()),
            mailer,
            mail_throttle: Arc::new(MailThrottle::default()),
            readiness: Arc::default(),
            upstreams,
        }));
        crate::apps::provision::resume_interrupted(&state.apps).await.context("resuming provisioning")?;
        crate::jobs::janitor::Janitor {
            apps: state.apps.clone(),
            mail_throttle: state.mail_throttle.clone(),
        }
        .spawn();
        let sender = crate::mail::outbox::SenderDeps {
            apps: state.apps.clone(),
            issuers: state.issuers.clone(),
            config: Arc::new(state.config.clone()),
        };
        let mail_sender = crate::mail::outbox::start(sender, mail_rx);
        Ok(Server { state, audit: writer, mail_sender })
    }
}

impl Server {
    pub fn router(&self) -> axum::Router {
        crate::router::build(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then finishes in-flight requests, writes
    /// every queued audit event, lets mail being sent finish, and closes the stores.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("server")?;
        self.audit.shutdown().await;
        self.mail_sender.shutdown().await;
        self.state.identity.close_all().await;
        self.state.control.close().await;
        Ok(())
    }
}

/// Resolves the master key and checks it is the one this store was created with.
async fn resolve_master_key(cfg: &StoreConfig, control: &ControlDb) -> anyhow::Result<MasterKey> {
    let stored_id: Option<String> = on_db!(control, p => sqlx::query_scalar("SELECT value FROM meta WHERE key = 'master_key_id'").fetch_optional(p).await)?;
    let key = match &cfg.master_key {
        MasterKeySource::Given(k) => MasterKey::from_base64(k.expose_secret())?,
        MasterKeySource::File(path) => {
            MasterKey::from_base64(&read_trimmed("LATCHKEY_MASTER_KEY_FILE", path)?).with_context(|| {
                format!("LATCHKEY_MASTER_KEY_FILE: {} does not hold a master key", path.display())
            })?
        }
        MasterKeySource::DataDir(path) if path.exists() => {
            MasterKey::from_base64(&read_trimmed("master key", path)?)
                .with_context(|| format!("{} does not hold a master key", path.display()))?
        }
        MasterKeySource::DataDir(path) => {
            if let Some(id) = &stored_id {
                anyhow::bail!(
                    "this store's secrets are sealed with master key {id}, but {} is missing; set LATCHKEY_MASTER_KEY",
                    path.display()
                );
            }
            let key = MasterKey::generate();
            write_private(path, &key.to_base64())?;
            tracing::warn!(
                path = %path.display(),
                "generated a new master key; back it up, or set LATCHKEY_MASTER_KEY, since losing it makes stored secrets unreadable"
            );
            key
        }
    };
    match stored_id {
        Some(id) if id != key.id() => anyhow::bail!(
            "LATCHKEY_MASTER_KEY is key {}, but this store's secrets are sealed with key {id}",
            key.id()
        ),
        Some(_) => {}
        None => {
            let id = key.id().to_string();
            on_db!(control, p => sqlx::query("INSERT INTO meta (key, value) VALUES ('master_key_id', $1)").bind(&id).execute(p).await.map(|r| r.rows_affected()))?;
        }
    }
    Ok(key)
}

fn write_private(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

/// The operator tokens: `LATCHKEY_ADMIN_TOKEN` when set (accepted, never stored); otherwise, on
/// a store with no operator token at all, one named `initial` is generated and printed once.
/// Only hashes are stored.
async fn bootstrap_admin_token(config: &Config, control: &ControlDb, now: Ts) -> anyhow::Result<AdminTokens> {
    if let Some(t) = &config.admin_token {
        return Ok(AdminTokens::new(Some(tokens::sha256_hex(t))));
    }
    if crate::operators::repo::count(control).await? == 0 {
        let token: SecretString = tokens::new_secret(tokens::ADMIN_TOKEN_PREFIX);
        match crate::operators::repo::create(control, "initial", &tokens::sha256_hex(&token), now).await {
            Ok(_) => {}
            // Another replica starting on the same fresh store generated it first.
            Err(crate::operators::OperatorError::NameTaken) => return Ok(AdminTokens::new(None)),
            Err(e) => return Err(e.into()),
        }
        // Printed once, to the terminal, never to the log.
        eprintln!(
            "\n  Generated an admin token named \"initial\" (shown only now; only its hash is stored):\n\n    {}\n\n  Create named tokens with `latchkey token create <name>`, then revoke this one.\n  Use it as: Authorization: Bearer <token>   (or LATCHKEY_ADMIN_TOKEN for the CLI)\n",
            token.expose_secret()
        );
    }
    Ok(AdminTokens::new(None))
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; draining");
}

/// `latchkey migrate`: the control plane, then every app's identity store.
pub async fn migrate_all(store_cfg: &StoreConfig) -> anyhow::Result<()> {
    store::files::private_dir(&store_cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", store_cfg.data_dir.display()))?;
    let control = store::open_control(&store_cfg.database_url, store_cfg.migration_lock_wait)
        .await
        .context("control-plane store")?;
    println!("control plane: migrated");
    let secrets = SecretBox::new(resolve_master_key(store_cfg, &control).await?);
    let stores = IdentityStores::new(1, store_cfg.migration_lock_wait);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    crate::jobs::for_each_app(&control, false, "migrate", |app| {
        let (stores, secrets, failed) = (&stores, &secrets, &failed);
        async move {
            let res = async {
                let loc = crate::apps::service::identity_location_for(secrets, store_cfg, &app)?;
                let db = stores.prepare(app.id, &loc).await?;
                stores.migrate(&db).await?;
                anyhow::Ok(())
            }
            .await;
            match res {
                Ok(()) => println!("app {}: migrated", app.slug),
                Err(e) => {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    println!("app {}: FAILED: {e:#}", app.slug);
                }
            }
            Ok(())
        }
    })
    .await?;
    let failed = failed.into_inner();
    stores.close_all().await;
    control.close().await;
    if failed > 0 {
        anyhow::bail!("{failed} identity store(s) could not be migrated");
    }
    Ok(())
}
