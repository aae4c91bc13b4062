//! The registry of per-app identity stores. Pools are opened lazily on first use, bounded, and
//! closed when an app is disabled or deleted. This is the one place that maps an app to the
//! database holding its end users.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;
use uuid::Uuid;

use super::{Db, IdentityDb, StoreError, describe, ensure_pg_schema, pg_options, sqlite_file_options};

/// Where one app's identity store lives.
#[derive(Clone, Debug)]
pub enum IdentityLocation {
    /// An embedded SQLite file of its own.
    SqliteFile(PathBuf),
    /// A schema in a PostgreSQL database (the app's own, or the control plane's).
    Postgres { url: SecretString, schema: String },
}

pub struct IdentityStores {
    pools: Mutex<HashMap<Uuid, IdentityDb>>,
    migrated: Mutex<std::collections::HashSet<Uuid>>,
    max_connections: u32,
    /// How long a migration waits for another migrating the same schema.
    lock_wait: Duration,
}

impl IdentityStores {
    pub fn new(max_connections: u32, lock_wait: Duration) -> Self {
        IdentityStores {
            pools: Mutex::new(HashMap::new()),
            migrated: Mutex::default(),
            max_connections,
            lock_wait,
        }
    }

    /// The app's pool, opening it (without connecting yet) if this process has none.
    pub fn get(&self, app_id: Uuid, location: &IdentityLocation) -> Result<IdentityDb, StoreError> {
        if let Some(db) = self.pools.lock().get(&app_id) {
            return Ok(db.clone());
        }
        let db = match location {
            IdentityLocation::SqliteFile(path) => {
                if let Some(dir) = path.parent() {
                    super::files::private_dir(dir)
                        .map_err(|e| StoreError::Connect(format!("{}: {e}", dir.display())))?;
                }
                super::files::private_file(path)
                    .map_err(|e| StoreError::Connect(format!("{}: {e}", path.display())))?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(self.max_connections)
                    .min_connections(0)
                    .idle_timeout(Duration::from_secs(300))
                    .acquire_timeout(super::STORE_WAIT)
                    .connect_lazy_with(sqlite_file_options(path));
                IdentityDb(Db::Sqlite(pool))
            }
            IdentityLocation::Postgres { url, schema } => {
                let pool = PgPoolOptions::new()
                    .max_connections(self.max_connections)
                    .min_connections(0)
                    .idle_timeout(Duration::from_secs(300))
                    .acquire_timeout(super::STORE_WAIT)
                    .connect_lazy_with(pg_options(url.expose_secret(), schema)?);
                IdentityDb(Db::Postgres(pool))
            }
        };
        let mut pools = self.pools.lock();
        Ok(pools.entry(app_id).or_insert(db).clone())
    }

    /// Makes sure the store exists and answers: on PostgreSQL, creates the schema on a
    /// connection of its own (closed at once: provisioning leaves no idle pool connection
    /// behind); an SQLite file is opened and pinged.
    pub async fn prepare(&self, app_id: Uuid, location: &IdentityLocation) -> Result<IdentityDb, StoreError> {
        let db = match location {
            IdentityLocation::Postgres { url, schema } => {
                ensure_pg_schema(url.expose_secret(), schema).await?;
                self.get(app_id, location)?
            }
            IdentityLocation::SqliteFile(_) => {
                let db = self.get(app_id, location)?;
                db.ping().await.map_err(|e| StoreError::Connect(describe(&e)))?;
                db
            }
        };
        Ok(db)
    }

    /// Applies pending identity-store migrations once per process per app, so a new binary
    /// upgrades the stores of apps that were active before it started.
    pub async fn ensure_migrated(&self, app_id: Uuid, db: &IdentityDb) -> Result<(), StoreError> {
        if self.migrated.lock().contains(&app_id) {
            return Ok(());
        }
        self.migrate(db).await?;
        self.migrated.lock().insert(app_id);
        Ok(())
    }

    /// Applies pending migrations to `db` now (provisioning, `latchkey migrate`).
    pub async fn migrate(&self, db: &IdentityDb) -> Result<(), StoreError> {
        super::migrate_identity(db, self.lock_wait).await
    }

    /// Closes and forgets the app's pool (app disabled or deleted).
    pub async fn forget(&self, app_id: Uuid) {
        self.migrated.lock().remove(&app_id);
        let db = self.pools.lock().remove(&app_id);
        if let Some(db) = db {
            db.close().await;
        }
    }

    pub async fn close_all(&self) {
        let pools: Vec<IdentityDb> = self.pools.lock().drain().map(|(_, db)| db).collect();
        for db in pools {
            db.close().await;
        }
    }
}
