//! Stores: the control-plane database and one identity store per app (SPEC §2).
//!
//! Both SQLite and PostgreSQL are first-class. Repos write one SQL text for both backends and run
//! it through [`on_db!`], which expands the same body once per backend so every query is
//! monomorphic; where the dialects differ, a repo matches on [`Db`] itself.

pub mod files;
mod identity;
mod time;

pub use identity::{IdentityLocation, IdentityStores};
pub use time::Ts;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

static CONTROL_SQLITE: Migrator = sqlx::migrate!("../../migrations/control/sqlite");
static IDENTITY_SQLITE: Migrator = sqlx::migrate!("../../migrations/identity/sqlite");

/// The PostgreSQL migrators, without sqlx's own lock: theirs is one session lock per
/// *database*, taken on a pooled connection, so every schema of a database waited on every
/// other, and a cancelled migration could leave it held on a connection back in the pool.
/// [`migrate_pg`] takes a lock per schema on a connection of its own instead.
fn control_postgres() -> Migrator {
    let mut m = sqlx::migrate!("../../migrations/control/postgres");
    m.set_locking(false);
    m
}

fn identity_postgres() -> Migrator {
    let mut m = sqlx::migrate!("../../migrations/identity/postgres");
    m.set_locking(false);
    m
}

/// The longest a request waits for a store connection before it is answered with a 503
/// (SPEC §5: a bounded wait, not the pool's default). Connecting to a store that is down is
/// retried within this time.
pub const STORE_WAIT: Duration = Duration::from_secs(2);

/// The PostgreSQL schema that holds the control plane.
pub const CONTROL_SCHEMA: &str = "latchkey";

/// A connection pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The control-plane store: apps, clients, keys, operator audit. A distinct type from
/// [`IdentityDb`], so a repo that takes one cannot be handed the other.
#[derive(Clone, Debug)]
pub struct ControlDb(Db);

/// One app's identity store: its end users, sessions, tokens and audit trail.
#[derive(Clone, Debug)]
pub struct IdentityDb(Db);

impl ControlDb {
    pub fn new(db: Db) -> Self {
        ControlDb(db)
    }
}

impl IdentityDb {
    pub fn new(db: Db) -> Self {
        IdentityDb(db)
    }
}

impl std::ops::Deref for ControlDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.0
    }
}

impl std::ops::Deref for IdentityDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.0
    }
}

/// The backend pool under a typed store handle; what [`on_db!`] matches on.
pub trait AsDb {
    fn as_db(&self) -> &Db;
}

impl AsDb for Db {
    fn as_db(&self) -> &Db {
        self
    }
}

impl AsDb for ControlDb {
    fn as_db(&self) -> &Db {
        &self.0
    }
}

impl AsDb for IdentityDb {
    fn as_db(&self) -> &Db {
        &self.0
    }
}

impl<T: AsDb + ?Sized> AsDb for &T {
    fn as_db(&self) -> &Db {
        (**self).as_db()
    }
}

/// Runs the same body against whichever backend `$db` is, binding the pool to `$pool`.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $crate::store::AsDb::as_db(&$db) {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not connect to database: {0}")]
    Connect(String),
    #[error("could not apply migrations: {0}")]
    Migrate(String),
    #[error("invalid database location: {0}")]
    Location(String),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
}

impl Db {
    /// One round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }

    pub async fn close(&self) {
        on_db!(self, p => p.close().await)
    }
}

/// Whether a database error is a unique-constraint violation (mapped to 409 by callers).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// A transaction that will write. On SQLite it takes the write lock when it begins
/// (`BEGIN IMMEDIATE`), so one that reads before it writes waits for other writers (busy
/// timeout) instead of failing with `SQLITE_BUSY` when its read snapshot turns into a write;
/// PostgreSQL begins as usual.
pub trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// Whether a failure means a store is out of reach or cannot take writes now (down, timed
/// out, disk full, read-only, dropped), rather than a fault in Latchkey: such a failure is a
/// 503 in every surface (SPEC §5, §12), not a 500. Looks through the whole `source()` chain.
pub fn unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source()).any(|e| {
        if let Some(s) = e.downcast_ref::<sqlx::Error>() {
            return sqlx_unavailable(s);
        }
        matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Connect(_)))
            || e.downcast_ref::<std::io::Error>().is_some()
    })
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.parse::<u32>() {
                // SQLite result codes (primary code in the low byte): BUSY, LOCKED, READONLY,
                // IOERR, CORRUPT, FULL, CANTOPEN, NOTADB.
                Ok(n) if !code.starts_with('0') && code.len() < 5 => {
                    matches!(n & 0xff, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 26)
                }
                // PostgreSQL SQLSTATEs: connection exceptions (08), insufficient resources
                // such as a full disk (53), operator intervention such as a shutdown or a
                // dropped database (57), system errors (58), a read-only transaction (25006),
                // and a database, schema or table that is gone (3D000, 3F000, 42P01).
                _ => {
                    ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
                        || ["25006", "3D000", "3F000", "42P01"].contains(&code.as_ref())
                }
            }
        }
        _ => false,
    }
}

/// Which kind of URL the control plane was given.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A connected control-plane pool of at most `max` connections.
async fn control_pool<DB: sqlx::Database>(
    opts: <DB::Connection as sqlx::Connection>::Options,
    max: u32,
) -> Result<sqlx::Pool<DB>, StoreError> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(max)
        .acquire_timeout(STORE_WAIT)
        .connect_with(opts)
        .await
        .map_err(|e| StoreError::Connect(describe(&e)))
}

/// Opens the control-plane store and applies its migrations.
pub async fn open_control(url: &SecretString, lock_wait: Duration) -> Result<ControlDb, StoreError> {
    let raw = url.expose_secret();
    let db = if is_postgres_url(raw) {
        ensure_pg_schema(raw, CONTROL_SCHEMA).await?;
        Db::Postgres(control_pool(pg_options(raw, CONTROL_SCHEMA)?, 10).await?)
    } else {
        let opts = sqlite_options(raw)?;
        let file = opts.get_filename();
        // sqlx names an in-memory database `file:sqlx-in-memory-…`: no file to make private.
        let in_memory = raw.contains(":memory:") || raw.contains("mode=memory");
        if !in_memory && file != Path::new(":memory:") {
            files::private_file(file).map_err(|e| StoreError::Connect(format!("{}: {e}", file.display())))?;
        }
        Db::Sqlite(control_pool(opts, 4).await?)
    };
    let db = ControlDb(db);
    migrate_control(&db, lock_wait).await?;
    Ok(db)
}

pub async fn migrate_control(db: &ControlDb, lock_wait: Duration) -> Result<(), StoreError> {
    match &db.0 {
        Db::Sqlite(p) => CONTROL_SQLITE.run(p).await.map_err(|e| StoreError::Migrate(e.to_string())),
        Db::Postgres(p) => migrate_pg(p, &control_postgres(), lock_wait).await,
    }
}

pub async fn migrate_identity(db: &IdentityDb, lock_wait: Duration) -> Result<(), StoreError> {
    match &db.0 {
        Db::Sqlite(p) => IDENTITY_SQLITE.run(p).await.map_err(|e| match e {
            // Kept whole, so that a file that cannot be opened reads as "unavailable".
            sqlx::migrate::MigrateError::Execute(e) => StoreError::Db(e),
            e => StoreError::Migrate(e.to_string()),
        }),
        Db::Postgres(p) => migrate_pg(p, &identity_postgres(), lock_wait).await,
    }
}

/// Runs `migrator` on the schema `pool` points at, on a connection of its own that is closed
/// afterwards (never returned to the pool), under a session advisory lock keyed by database and
/// schema. If this future is dropped (a cancelled task, a timeout) the connection closes and
/// PostgreSQL releases the lock with it; migrations of other schemas never wait on it; a wait
/// for the same schema is bounded by `lock_wait`.
async fn migrate_pg(pool: &PgPool, migrator: &Migrator, lock_wait: Duration) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let options = pool.connect_options();
    let mut conn = tokio::time::timeout(Duration::from_secs(15), options.connect())
        .await
        .map_err(|_| StoreError::Connect("timed out after 15 s".into()))?
        .map_err(|e| StoreError::Connect(describe(&e)))?;
    let res = migrate_locked(&mut conn, migrator, lock_wait).await;
    let _ = conn.close().await;
    res
}

async fn migrate_locked(
    conn: &mut sqlx::PgConnection,
    migrator: &Migrator,
    lock_wait: Duration,
) -> Result<(), StoreError> {
    let key_sql = "SELECT hashtextextended('latchkey:migrate:' || current_database() || ':' || coalesce(current_schema(), ''), 0)";
    let key: i64 = sqlx::query_scalar(key_sql).fetch_one(&mut *conn).await?;
    sqlx::query(&format!("SET lock_timeout = {}", lock_wait.as_millis())).execute(&mut *conn).await?;
    if let Err(e) = sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut *conn).await {
        // 55P03 lock_not_available: lock_timeout ran out.
        if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03") {
            let holder = lock_holder(conn, key).await;
            tracing::warn!(lock.holder = %holder, wait_secs = lock_wait.as_secs(), "migration lock of this schema is held by another session; giving up");
            return Err(StoreError::Migrate(format!(
                "another session held this schema's migration lock for over {} s ({holder})",
                lock_wait.as_secs()
            )));
        }
        return Err(e.into());
    }
    sqlx::query("RESET lock_timeout").execute(&mut *conn).await?;
    // `run_direct` on the connection itself: `run` goes through `Acquire`, whose impl for
    // `&mut PgConnection` is not general enough to be held across `.await` in a spawned task.
    let res = migrator.run_direct(&mut *conn).await.map_err(|e| StoreError::Migrate(e.to_string()));
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut *conn).await;
    res
}

/// Who holds the advisory lock `key`, as an operator can look it up in `pg_stat_activity`.
async fn lock_holder(conn: &mut sqlx::PgConnection, key: i64) -> String {
    let sql = "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), \
        coalesce(extract(epoch FROM now() - a.state_change)::bigint, 0) \
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
        AND l.classid::bigint = (($1 >> 32) & 4294967295) AND l.objid::bigint = ($1 & 4294967295)";
    match sqlx::query_as::<_, (i32, String, String, i64)>(sql).bind(key).fetch_optional(&mut *conn).await {
        Ok(Some((pid, app, state, secs))) => {
            format!("held by pid {pid}, application {app:?}, {state} for {secs} s")
        }
        Ok(None) => "its holder has since let go".into(),
        Err(e) => format!("holder unknown: {}", describe(&e)),
    }
}

/// Connection options for a PostgreSQL database whose unqualified names resolve in `schema`.
pub(crate) fn pg_options(url: &str, schema: &str) -> Result<PgConnectOptions, StoreError> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Location("not a valid postgres:// URL".into()))?;
    Ok(opts.options([("search_path", schema)]).application_name("latchkey"))
}

/// Creates `schema` if needed, on a short-lived single connection.
pub(crate) async fn ensure_pg_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    use sqlx::ConnectOptions;
    if !valid_schema_name(schema) {
        return Err(StoreError::Location(format!("invalid schema name {schema:?}")));
    }
    let opts = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Location("not a valid postgres:// URL".into()))?;
    let connect = opts.connect();
    let mut conn = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| StoreError::Connect("timed out after 5 s".into()))?
        .map_err(|e| StoreError::Connect(describe(&e)))?;
    // The name is validated above, so quoting it is enough.
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::Connect(describe(&e)))?;
    Ok(())
}

/// Connects once to a PostgreSQL database (5 s limit) to tell an operator at once whether an
/// app's `database_url` works.
pub async fn check_reachable(url: &str) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let opts = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Location("not a valid postgres:// URL".into()))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), opts.connect())
        .await
        .map_err(|_| StoreError::Connect("timed out after 5 s".into()))?
        .map_err(|e| StoreError::Connect(describe(&e)))?;
    conn.ping().await.map_err(|e| StoreError::Connect(describe(&e)))?;
    let _ = conn.close().await;
    Ok(())
}

pub(crate) async fn drop_pg_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    use sqlx::ConnectOptions;
    if !valid_schema_name(schema) {
        return Err(StoreError::Location(format!("invalid schema name {schema:?}")));
    }
    let opts = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Location("not a valid postgres:// URL".into()))?;
    let mut conn = opts.connect().await.map_err(|e| StoreError::Connect(describe(&e)))?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut conn).await?;
    Ok(())
}

/// PostgreSQL identifiers we create: lower-case, digits, underscores, at most 63 bytes.
pub fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

pub(crate) fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|_| StoreError::Location("not a valid sqlite: URL".into()))?;
    Ok(tune_sqlite(opts))
}

pub(crate) fn sqlite_file_options(path: &Path) -> SqliteConnectOptions {
    tune_sqlite(SqliteConnectOptions::new().filename(path))
}

fn tune_sqlite(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

/// A database error as an operator can read it, without the connection URL or its password.
pub fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(e) => format!("TLS: {e}"),
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        sqlx::Error::Configuration(_) => "invalid connection settings".into(),
        other => other.to_string(),
    }
}
