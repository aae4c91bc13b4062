//! Refresh tokens (RFC 6749 §6, OAuth 2.0 Security BCP §4.14): opaque, 256 bits, stored
//! hashed, bound to their client and session, rotated on every use.
//!
//! Presenting a token that was already rotated revokes its whole family and records
//! `refresh.reuse_detected` — except within a short grace window, where a duplicate (two tabs,
//! a retry after a lost response) receives the very same successor, so there are never two live
//! descendants and no spurious logout.

use std::sync::Arc;

use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

use super::GrantError;
use crate::crypto::{SecretBox, tokens};
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::tenant::Issuer;
use crate::users::UserId;

pub const PREFIX: &str = "lkr_";

fn seal_ctx(token_hash: &tokens::Hashed) -> String {
    format!("refresh_successor:{}", token_hash.as_str())
}

/// The grant a refresh token carries.
#[derive(Debug, sqlx::FromRow)]
pub struct Grant {
    pub family_id: String,
    pub client_id: crate::clients::ClientId,
    pub user_id: UserId,
    pub session_id: crate::sessions::SessionId,
    pub scope: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    grant: Grant,
    expires_at: Ts,
    rotated_at: Option<Ts>,
    successor_sealed: Option<String>,
    revoked_at: Option<Ts>,
}

/// Issues the first token of a new family.
pub async fn issue(
    db: &IdentityDb,
    grant: &Grant,
    ttl_seconds: u32,
    now: Ts,
) -> Result<SecretString, GrantError> {
    let token = tokens::new_secret(PREFIX);
    insert(db, &tokens::Hashed::of(token.expose_secret()), grant, ttl_seconds, now).await?;
    Ok(token)
}

async fn insert(
    db: &IdentityDb,
    token_hash: &tokens::Hashed,
    g: &Grant,
    ttl_seconds: u32,
    now: Ts,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, created_at, expires_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let expires = Ts::new(now.0 + Duration::seconds(i64::from(ttl_seconds)));
    on_db!(db, p => sqlx::query(sql)
        .bind(token_hash).bind(&g.family_id).bind(&g.client_id).bind(g.user_id).bind(&g.session_id)
        .bind(&g.scope).bind(now).bind(expires)
        .execute(p).await.map(|_| ()))
}

pub async fn revoke_family(db: &IdentityDb, family_id: &str, now: Ts) -> Result<(), GrantError> {
    let sql = "UPDATE refresh_tokens SET revoked_at = $2, successor_sealed = NULL WHERE family_id = $1 AND revoked_at IS NULL";
    Ok(on_db!(db, p => sqlx::query(sql).bind(family_id).bind(now).execute(p).await.map(|_| ()))?)
}

/// What presenting a refresh token led to.
pub enum Rotation {
    /// A new token for the grant (or, within the grace window, the same successor again).
    Rotated {
        grant: Grant,
        token: SecretString,
    },
    /// A rotated token came back after the grace window: the family is now revoked.
    ReuseDetected {
        grant: Grant,
    },
    Invalid,
}

/// Rotates `presented` for `client_id`.
pub async fn rotate(
    issuer: &Arc<Issuer>,
    secrets: &SecretBox,
    presented: &str,
    client_id: &str,
    now: Ts,
) -> Result<Rotation, GrantError> {
    let db = &issuer.identity;
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(Rotation::Invalid);
    }
    let old = tokens::Hashed::of(presented);
    let successor = tokens::new_secret(PREFIX);
    let sealed = secrets.seal(&seal_ctx(&old), successor.expose_secret().as_bytes());
    // Only one of any number of concurrent presentations wins this update.
    let won = on_db!(db, p => sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = $2, successor_sealed = $3 \
         WHERE token_hash = $1 AND client_id = $4 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2")
        .bind(&old).bind(now).bind(&sealed).bind(client_id).execute(p).await.map(|r| r.rows_affected()))?;
    let sql = "SELECT family_id, client_id, user_id, session_id, scope, expires_at, rotated_at, successor_sealed, revoked_at \
        FROM refresh_tokens WHERE token_hash = $1";
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(sql).bind(&old).fetch_optional(p).await)?;
    let Some(row) = row else { return Ok(Rotation::Invalid) };
    if row.grant.client_id.as_str() != client_id {
        // Bound to its client: another client learns nothing and changes nothing.
        return Ok(Rotation::Invalid);
    }
    if won == 1 {
        let ttl = issuer.app.tokens.refresh_token_ttl_seconds;
        insert(db, &tokens::Hashed::of(successor.expose_secret()), &row.grant, ttl, now).await?;
        return Ok(Rotation::Rotated { grant: row.grant, token: successor });
    }
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    let grace = Duration::seconds(i64::from(issuer.app.tokens.refresh_race_grace_seconds));
    match (row.rotated_at, &row.successor_sealed) {
        (Some(at), Some(s)) if now.0 - at.0 <= grace => match secrets.open_string(&seal_ctx(&old), s) {
            Ok(token) => Ok(Rotation::Rotated { grant: row.grant, token: SecretString::from(token) }),
            Err(_) => Ok(Rotation::Invalid),
        },
        _ => {
            revoke_family(db, &row.grant.family_id, now).await?;
            Ok(Rotation::ReuseDetected { grant: row.grant })
        }
    }
}

/// The grant of a live, unrotated-or-rotated token of `client_id`, without changing anything
/// (to check a requested scope before rotating).
pub async fn peek(db: &IdentityDb, presented: &str, client_id: &str) -> Result<Option<Grant>, GrantError> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let sql = "SELECT family_id, client_id, user_id, session_id, scope FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2";
    Ok(
        on_db!(db, p => sqlx::query_as(sql).bind(tokens::Hashed::of(presented)).bind(client_id).fetch_optional(p).await)?,
    )
}

/// Revokes the family of `presented` if it belongs to `client_id` (RFC 7009); false if it is
/// not one of this client's refresh tokens.
pub async fn revoke(db: &IdentityDb, presented: &str, client_id: &str, now: Ts) -> Result<bool, GrantError> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(false);
    }
    let sql = "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2";
    let family: Option<String> = on_db!(db, p => sqlx::query_scalar(sql).bind(tokens::Hashed::of(presented)).bind(client_id).fetch_optional(p).await)?;
    match family {
        Some(f) => revoke_family(db, &f, now).await.map(|()| true),
        None => Ok(false),
    }
}

/// Clears sealed successors whose grace window is over (janitor).
pub async fn forget_successors(db: &IdentityDb, before: Ts) -> Result<(), GrantError> {
    let sql = "UPDATE refresh_tokens SET successor_sealed = NULL WHERE successor_sealed IS NOT NULL AND rotated_at < $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(before).execute(p).await.map(|_| ()))?)
}
