//! API resources (SPEC §10, RFC 8707): the APIs an app's tokens may be for. A token for a
//! resource has it as `aud`, and only the permissions the resource defines.

use sqlx::types::Json;
use uuid::Uuid;

use super::repo::RoleError;
use crate::on_db;
use crate::store::{IdentityDb, Ts, is_unique_violation};

/// A registered API resource.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Resource {
    pub id: Uuid,
    pub identifier: String,
    pub name: String,
    pub permissions: Json<Vec<String>>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// Whether `s` can identify a resource: an absolute URI without fragment (RFC 8707 §2), at most
/// 512 characters.
pub fn valid_identifier(s: &str) -> bool {
    s.len() <= 512
        && url::Url::parse(s)
            .is_ok_and(|u| u.fragment().is_none() && (!u.cannot_be_a_base() || u.scheme() == "urn"))
}

/// Whether permission `held` covers `wanted` (`invoices:*` covers `invoices:read`).
fn covers(held: &str, wanted: &str) -> bool {
    match (held.split_once(':'), wanted.split_once(':')) {
        (Some((hr, ha)), Some((wr, wa))) => hr == wr && (ha == "*" || ha == wa),
        _ => false,
    }
}

/// The holder's permissions cut to those a resource defines: each defined permission the holder
/// covers, and each held one the resource covers (sorted, no repeats).
pub fn cut(held: &[String], defined: &[String]) -> Vec<String> {
    let mut out: Vec<String> =
        defined.iter().filter(|d| held.iter().any(|h| covers(h, d))).cloned().collect();
    out.extend(held.iter().filter(|h| defined.iter().any(|d| covers(d, h))).cloned());
    out.sort();
    out.dedup();
    out
}

const COLUMNS: &str = "id, identifier, name, permissions, created_at, updated_at";

pub async fn list(db: &IdentityDb, after: Option<Uuid>, limit: i64) -> Result<Vec<Resource>, sqlx::Error> {
    match after {
        Some(after) => {
            let sql = format!("SELECT {COLUMNS} FROM resources WHERE id > $1 ORDER BY id LIMIT $2");
            on_db!(db, p => sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(p).await)
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM resources ORDER BY id LIMIT $1");
            on_db!(db, p => sqlx::query_as(&sql).bind(limit).fetch_all(p).await)
        }
    }
}

pub async fn get(db: &IdentityDb, id: Uuid) -> Result<Option<Resource>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM resources WHERE id = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
}

pub async fn by_identifier(db: &IdentityDb, identifier: &str) -> Result<Option<Resource>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM resources WHERE identifier = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(identifier).fetch_optional(p).await)
}

/// Registers a resource (fields already checked); `Duplicate` for a taken identifier.
pub async fn create(
    db: &IdentityDb,
    identifier: &str,
    name: &str,
    permissions: &[String],
    now: Ts,
) -> Result<Resource, RoleError> {
    let id = Uuid::now_v7();
    let sql = "INSERT INTO resources (id, identifier, name, permissions, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)";
    let res = on_db!(db, p => sqlx::query(sql).bind(id).bind(identifier).bind(name).bind(Json(permissions)).bind(now)
        .execute(p).await.map(|_| ()));
    match res {
        Ok(()) => get(db, id).await?.ok_or(RoleError::Store(sqlx::Error::RowNotFound)),
        Err(e) if is_unique_violation(&e) => Err(RoleError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Changes a resource; `Ok(None)` if there is none; `Duplicate` for a taken identifier.
pub async fn update(
    db: &IdentityDb,
    id: Uuid,
    identifier: Option<&str>,
    name: Option<&str>,
    permissions: Option<&[String]>,
    now: Ts,
) -> Result<Option<Resource>, RoleError> {
    let Some(r) = get(db, id).await? else { return Ok(None) };
    let sql =
        "UPDATE resources SET identifier = $2, name = $3, permissions = $4, updated_at = $5 WHERE id = $1";
    let (identifier, name) = (identifier.unwrap_or(&r.identifier), name.unwrap_or(&r.name));
    let permissions = permissions.unwrap_or(&r.permissions.0);
    let res = on_db!(db, p => sqlx::query(sql).bind(id).bind(identifier).bind(name).bind(Json(permissions)).bind(now)
        .execute(p).await.map(|_| ()));
    match res {
        Ok(()) => Ok(get(db, id).await?),
        Err(e) if is_unique_violation(&e) => Err(RoleError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(db: &IdentityDb, id: Uuid) -> Result<bool, sqlx::Error> {
    let n = on_db!(db, p => sqlx::query("DELETE FROM resources WHERE id = $1").bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_the_cut() {
        for ok in ["https://api.example.com", "https://api.example.com/v1", "urn:example:api"] {
            assert!(valid_identifier(ok), "{ok}");
        }
        for bad in ["api", "/v1", "https://api.example.com/#x", "", "https://a b.example"] {
            assert!(!valid_identifier(bad), "{bad}");
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let held = s(&["invoices:*", "customers:read", "other:read"]);
        let defined = s(&["invoices:read", "invoices:write", "customers:*"]);
        assert_eq!(cut(&held, &defined), s(&["customers:read", "invoices:read", "invoices:write"]));
        assert!(cut(&s(&["other:read"]), &defined).is_empty());
    }
}
