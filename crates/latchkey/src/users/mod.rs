//! End users of an app, in that app's identity store.

use serde::Serialize;
use uuid::Uuid;

use crate::on_db;
use crate::store::{Db, Ts};

/// A normalised email address: trimmed, at most 254 characters, one `@`, a dotted domain.
/// The domain is lower-cased; the local part keeps its case for display but matching uses the
/// fully lower-cased form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let raw = raw.trim();
        let (local, domain) = raw.rsplit_once('@').ok_or("Enter an email address like name@example.com.")?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if raw.len() > 254
            || local.is_empty()
            || local.len() > 64
            || !domain_ok
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("Enter an email address like name@example.com.");
        }
        let display = format!("{local}@{}", domain.to_lowercase());
        Ok(Email { normalized: display.to_lowercase(), display })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub status: String,
    pub name: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub token_version: i64,
    pub created_at: Ts,
}

const COLUMNS: &str = "id, email, email_verified, status, name, password_hash, token_version, created_at";

pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email_normalized = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(email.normalized()).fetch_optional(p).await)
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
}

/// Inserts a new user; `Ok(None)` if the address is already registered.
pub async fn insert(
    db: &Db,
    email: &Email,
    password_hash: &str,
    now: Ts,
) -> Result<Option<User>, sqlx::Error> {
    let id = Uuid::now_v7();
    let sql = "INSERT INTO users (id, email, email_normalized, email_verified, status, password_hash, token_version, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, 'active', $5, 0, $6, $6)";
    let res = on_db!(db, p => sqlx::query(sql)
        .bind(id)
        .bind(email.as_str())
        .bind(email.normalized())
        .bind(false)
        .bind(password_hash)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()));
    match res {
        Ok(()) => get(db, id).await,
        Err(e) if crate::store::is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn set_name(db: &Db, id: Uuid, name: Option<&str>, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1";
    on_db!(db, p => sqlx::query(sql).bind(id).bind(name).bind(now).execute(p).await.map(|_| ()))
}

pub async fn set_password_hash(db: &Db, id: Uuid, hash: &str, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
    on_db!(db, p => sqlx::query(sql).bind(id).bind(hash).bind(now).execute(p).await.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        let e = Email::parse("  Ann.Lee@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "Ann.Lee@example.com");
        assert_eq!(e.normalized(), "ann.lee@example.com");
        for bad in
            ["", "a", "a@b", "@example.com", "a b@example.com", "a@.com", "a@example.", "a@exa mple.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
