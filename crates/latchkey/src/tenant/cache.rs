//! The in-memory view of each active app's issuer: configuration, clients, signer, published
//! keys and pre-serialised metadata. The hot path reads no configuration from the store.
//!
//! An entry is reloaded at once when this replica changes the app (the [`ChangeFeed`]
//! generation moves) and re-validated against the store's `config_version` at most once a
//! second in the background, which is how changes made on other replicas arrive.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::json;

use crate::apps::{self, App, AppStatus, Apps};
use crate::clients::{self, Client, ClientId};
use crate::keys::{self, KeyId, KeyState, Signer, SigningAlg};
use crate::store::{IdentityDb, Ts};

use super::{discovery, origins};

const REVALIDATE_MS: u64 = 1000;

/// One active app's issuer.
/// The longest a replica serves cached role definitions without reloading them.
const ROLES_MAX_AGE_SECS: i64 = 60;

pub struct Issuer {
    pub app: App,
    /// `{PUBLIC_URL}/apps/{slug}`.
    pub url: String,
    pub clients: HashMap<ClientId, Client>,
    pub signer: Arc<Signer>,
    pub verifiers: HashMap<KeyId, (SigningAlg, keys::material::PublicKey)>,
    pub discovery: Bytes,
    pub oauth_metadata: Bytes,
    pub jwks: Bytes,
    pub identity: IdentityDb,
    /// Origins of the clients' `http(s)` redirect URIs: the only CORS origins (`oidc::cors`).
    pub cors_origins: HashSet<String>,
    /// Role definitions and client grants (SPEC §10).
    pub roles: crate::roles::RoleBook,
}

pub enum Lookup {
    Active(Arc<Issuer>),
    /// Exists but is not active (disabled, failed, provisioning).
    Inactive,
    NotFound,
}

struct Entry {
    issuer: Option<Arc<Issuer>>,
    version: i64,
    generation: u64,
    counter: Arc<AtomicU64>,
    checked_at_ms: AtomicU64,
    refreshing: AtomicBool,
    /// When a retiring key leaves the JWKS: the entry must be rebuilt then.
    rebuild_at: Option<Ts>,
}

/// The issuers of this process, built on first use. Cheap to clone.
#[derive(Clone)]
pub struct IssuerCache(Arc<Shared>);

struct Shared {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    epoch: Instant,
    /// The control plane, the identity stores, the master key, the clock and the change feed.
    apps: Apps,
    /// `{PUBLIC_URL}` without a trailing slash; issuers are `{public_base}/apps/{slug}`.
    public_base: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    App(#[from] apps::AppError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("identity store: {0}")]
    IdentityStore(#[from] crate::store::StoreError),
    #[error("{0}")]
    Broken(String),
}

impl IssuerCache {
    pub fn new(apps: Apps, public_base: String) -> Self {
        IssuerCache(Arc::new(Shared {
            entries: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
            apps,
            public_base,
        }))
    }

    /// The issuers in memory now: the active apps this replica has served.
    pub fn loaded(&self) -> Vec<Arc<Issuer>> {
        self.0.entries.read().values().filter_map(|e| e.issuer.clone()).collect()
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    /// The app's issuer from memory; loaded from the stores on first use or after a change.
    pub async fn lookup(&self, slug: &str) -> Result<Lookup, LoadError> {
        let cached = self.0.entries.read().get(slug).cloned();
        if let Some(entry) = cached {
            let fresh_locally = entry.counter.load(Ordering::SeqCst) == entry.generation;
            let keys_due = entry.rebuild_at.is_some_and(|t| t <= self.0.apps.now());
            if fresh_locally && !keys_due {
                let age = self.now_ms().saturating_sub(entry.checked_at_ms.load(Ordering::Relaxed));
                if age > REVALIDATE_MS && !entry.refreshing.swap(true, Ordering::SeqCst) {
                    let (cache, slug, entry) = (self.clone(), slug.to_string(), entry.clone());
                    tokio::spawn(async move { cache.revalidate(&slug, &entry).await });
                }
                return Ok(match &entry.issuer {
                    Some(i) => Lookup::Active(i.clone()),
                    None => Lookup::Inactive,
                });
            }
        }
        self.load(slug).await
    }

    async fn revalidate(&self, slug: &str, entry: &Arc<Entry>) {
        match apps::config_version(&self.0.apps.control, slug).await {
            Ok(Some(v)) if v == entry.version => {
                entry.checked_at_ms.store(self.now_ms(), Ordering::Relaxed);
            }
            Ok(_) => {
                if let Err(err) = self.load(slug).await {
                    tracing::warn!(app.slug = slug, error = %err, "issuer reload failed");
                }
            }
            Err(err) => tracing::warn!(app.slug = slug, error = %err, "issuer revalidation failed"),
        }
        entry.refreshing.store(false, Ordering::SeqCst);
    }

    async fn load(&self, slug: &str) -> Result<Lookup, LoadError> {
        let counter = self.0.apps.changes.counter(slug);
        let generation = counter.load(Ordering::SeqCst);
        let app = match apps::service::get(&self.0.apps, slug).await {
            Ok(app) => app,
            Err(apps::AppError::NotFound) => {
                self.0.entries.write().remove(slug);
                return Ok(Lookup::NotFound);
            }
            Err(e) => return Err(e.into()),
        };
        let version = app.config_version;
        let (issuer, rebuild_at) = if app.status == AppStatus::Active {
            let (issuer, rebuild_at) = build(&self.0.apps, &self.0.public_base, app).await?;
            (Some(Arc::new(issuer)), rebuild_at)
        } else {
            (None, None)
        };
        let entry = Arc::new(Entry {
            issuer: issuer.clone(),
            version,
            generation,
            counter,
            checked_at_ms: AtomicU64::new(self.now_ms()),
            refreshing: AtomicBool::new(false),
            rebuild_at,
        });
        self.0.entries.write().insert(slug.to_string(), entry);
        Ok(match issuer {
            Some(i) => Lookup::Active(i),
            None => Lookup::Inactive,
        })
    }
}

async fn build(apps: &Apps, public_base: &str, app: App) -> Result<(Issuer, Option<Ts>), LoadError> {
    let now = apps.now();
    let url = format!("{public_base}/apps/{}", app.slug);
    let all_keys = keys::service::list(&apps.control, app.id).await?;
    let current = all_keys
        .iter()
        .filter(|k| k.state_at(now) == KeyState::Current)
        .max_by_key(|k| k.activated_at)
        .ok_or_else(|| LoadError::Broken(format!("app {} has no current signing key", app.slug)))?;
    let signer = Arc::new(keys::service::signer(&apps.secrets, current)?);
    let mut verifiers = HashMap::new();
    let mut published = Vec::new();
    for k in all_keys.iter().filter(|k| k.published_at(now)) {
        let jwk = keys::published_jwk(&k.public_jwk, &k.kid, k.alg);
        verifiers
            .insert(k.kid.clone(), (k.alg, keys::material::public_key(&jwk).map_err(keys::KeyError::from)?));
        published.push(jwk);
    }
    let rebuild_at =
        all_keys.iter().filter(|k| k.state_at(now) == KeyState::Retiring).filter_map(|k| k.retire_at).min();
    let clients: HashMap<ClientId, Client> = clients::all_of_app(&apps.control, app.id)
        .await?
        .into_iter()
        .map(|c| (c.client_id.clone(), c))
        .collect();
    let cors_origins = origins::allowed_origins(clients.values());
    let identity = apps::service::identity_store(apps, &app)?;
    apps.identity.ensure_migrated(app.id, &identity).await?;
    let roles = crate::roles::RoleBook::load(&identity).await?;
    // An app with roles rebuilds at least every minute: should a change's version bump ever be
    // lost, no replica keeps revoked grants longer than that.
    let rebuild_at = match roles.roles.is_empty() {
        true => rebuild_at,
        false => {
            let soon = Ts::new(now.0 + chrono::Duration::seconds(ROLES_MAX_AGE_SECS));
            Some(rebuild_at.map_or(soon, |r| r.min(soon)))
        }
    };
    // Serialising a `serde_json::Value` cannot fail; should it, the issuer is not served.
    let to_bytes = |doc: &serde_json::Value| {
        serde_json::to_vec(doc).map(Bytes::from).map_err(|e| LoadError::Broken(format!("metadata: {e}")))
    };
    let discovery = to_bytes(&discovery::openid_configuration(&url, signer.alg()))?;
    let oauth_metadata = to_bytes(&discovery::oauth_metadata(&url))?;
    let jwks = to_bytes(&json!({ "keys": published }))?;
    Ok((
        Issuer {
            app,
            url,
            clients,
            signer,
            verifiers,
            discovery,
            oauth_metadata,
            jwks,
            identity,
            cors_origins,
            roles,
        },
        rebuild_at,
    ))
}
