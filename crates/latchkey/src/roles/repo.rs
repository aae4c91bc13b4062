//! Roles and grants in the app's identity store.

use sqlx::types::Json;

use super::Role;
use crate::on_db;
use crate::store::{BeginWrite, IdentityDb, Ts, is_unique_violation};
use crate::users::UserId;

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("identity store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("a role with this name exists")]
    Duplicate,
    #[error("unknown roles: {}", .0.join(", "))]
    Unknown(Vec<String>),
}

/// What a change of a holder's roles did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub granted: Vec<String>,
    pub revoked: Vec<String>,
}

const COLUMNS: &str = "name, description, permissions, created_at, updated_at";

/// Roles by name, after the cursor (a name).
pub async fn list(db: &IdentityDb, after: Option<&str>, limit: u32) -> Result<Vec<Role>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE name > $1 ORDER BY name LIMIT $2");
    let after = after.unwrap_or("");
    on_db!(db, p => sqlx::query_as(&sql).bind(after).bind(i64::from(limit)).fetch_all(p).await)
}

pub async fn get(db: &IdentityDb, name: &str) -> Result<Option<Role>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE name = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(name).fetch_optional(p).await)
}

/// Creates a role (name and permissions already checked).
pub async fn create(
    db: &IdentityDb,
    name: &str,
    description: &str,
    permissions: &[String],
    now: Ts,
) -> Result<Role, RoleError> {
    let sql = "INSERT INTO roles (name, description, permissions, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)";
    let res = on_db!(db, p => sqlx::query(sql).bind(name).bind(description).bind(Json(permissions)).bind(now)
        .execute(p).await.map(|_| ()));
    match res {
        Ok(()) => get(db, name).await?.ok_or(RoleError::Store(sqlx::Error::RowNotFound)),
        Err(e) if is_unique_violation(&e) => Err(RoleError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Changes a role's description and/or permissions; `None` if there is no such role.
pub async fn update(
    db: &IdentityDb,
    name: &str,
    description: Option<&str>,
    permissions: Option<&[String]>,
    now: Ts,
) -> Result<Option<Role>, sqlx::Error> {
    let Some(role) = get(db, name).await? else { return Ok(None) };
    let description = description.unwrap_or(&role.description);
    let permissions = permissions.unwrap_or(&role.permissions.0);
    let sql = "UPDATE roles SET description = $2, permissions = $3, updated_at = $4 WHERE name = $1";
    on_db!(db, p => sqlx::query(sql).bind(name).bind(description).bind(Json(permissions)).bind(now)
        .execute(p).await.map(|_| ()))?;
    get(db, name).await
}

/// How many grants deleting a role removed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub users: u64,
    pub clients: u64,
    /// Members of organizations who held it there.
    pub members: u64,
}

/// Deletes a role and, in the same transaction, every grant of it; `None` if there was none.
pub async fn delete(db: &IdentityDb, name: &str) -> Result<Option<Removed>, sqlx::Error> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let users = sqlx::query("DELETE FROM user_roles WHERE role = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        let clients = sqlx::query("DELETE FROM client_roles WHERE role = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        let members = sqlx::query("DELETE FROM membership_roles WHERE role = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        let n = sqlx::query("DELETE FROM roles WHERE name = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Removed { users, clients, members }))
    })
}

/// Who holds roles: a user, or an OAuth client (by `client_id`).
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    User(UserId),
    Client(&'a str),
}

impl Holder<'_> {
    fn table(&self) -> (&'static str, &'static str) {
        match self {
            Holder::User(_) => ("user_roles", "user_id"),
            Holder::Client(_) => ("client_roles", "client_id"),
        }
    }
}

/// Binds the holder's key as the next parameter.
macro_rules! bind_holder {
    ($q:expr, $h:expr) => {
        match $h {
            Holder::User(id) => $q.bind(id),
            Holder::Client(c) => $q.bind(c.to_string()),
        }
    };
}

/// The holder's roles, by name.
pub async fn roles_of(db: &IdentityDb, holder: Holder<'_>) -> Result<Vec<String>, sqlx::Error> {
    let (table, column) = holder.table();
    let sql = format!("SELECT role FROM {table} WHERE {column} = $1 ORDER BY role");
    on_db!(db, p => bind_holder!(sqlx::query_scalar(&sql), holder).fetch_all(p).await)
}

/// Makes the holder's roles exactly `roles` (each must exist), in one transaction; says what
/// was granted and revoked.
pub async fn set_roles(
    db: &IdentityDb,
    holder: Holder<'_>,
    roles: &[String],
    now: Ts,
) -> Result<Changed, RoleError> {
    let (table, column) = holder.table();
    let current_sql = format!("SELECT role FROM {table} WHERE {column} = $1");
    // A grant made at the same moment by another call is no error.
    let insert = format!(
        "INSERT INTO {table} ({column}, role, granted_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    );
    let remove = format!("DELETE FROM {table} WHERE {column} = $1 AND role = $2");
    let mut wanted = roles.to_vec();
    wanted.sort();
    wanted.dedup();
    let changed: Result<Changed, RoleError> = on_db!(db, p => async {
        let mut tx = p.begin_write().await?;
        let unknown = unknown_roles!(tx, &wanted);
        if !unknown.is_empty() {
            return Err(RoleError::Unknown(unknown));
        }
        let current: Vec<String> = bind_holder!(sqlx::query_scalar(&current_sql), holder).fetch_all(&mut *tx).await?;
        let mut changed = Changed::default();
        for r in wanted.iter().filter(|r| !current.contains(r)) {
            bind_holder!(sqlx::query(&insert), holder).bind(r).bind(now).execute(&mut *tx).await?;
            changed.granted.push(r.clone());
        }
        for r in current.iter().filter(|r| !wanted.contains(r)) {
            bind_holder!(sqlx::query(&remove), holder).bind(r).execute(&mut *tx).await?;
            changed.revoked.push(r.clone());
        }
        tx.commit().await?;
        changed.revoked.sort();
        Ok(changed)
    }
    .await);
    changed
}
