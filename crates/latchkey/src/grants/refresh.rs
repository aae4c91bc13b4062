//! Refresh tokens (RFC 6749 §6, OAuth 2.0 Security BCP §4.14): opaque, 256 bits, stored
//! hashed, bound to their client and session, rotated on every use.
//!
//! Presenting a token that was already rotated revokes its whole family and records
//! `refresh.reuse_detected` — except a duplicate of the family's newest rotation (two tabs, a
//! retry after a lost response) within a short grace window and while its successor is unused,
//! which receives the very same successor, so there are never two live descendants and no
//! spurious logout. An older token, or any token after its successor was used, is reuse.

use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

use super::GrantError;
use crate::crypto::{SecretBox, tokens};
use crate::on_db;
use crate::store::{IdentityDb, Ts};
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
    /// The organization the family is for (its id), if any (SPEC §10).
    pub organization_id: Option<String>,
    /// The resource (RFC 8707) asked for when the family began, if any.
    pub resource: Option<String>,
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
    let sql = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, created_at, expires_at, organization_id, resource) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let expires = Ts::new(now.0 + Duration::seconds(i64::from(ttl_seconds)));
    on_db!(db, p => sqlx::query(sql)
        .bind(token_hash).bind(&g.family_id).bind(&g.client_id).bind(g.user_id).bind(&g.session_id)
        .bind(&g.scope).bind(now).bind(expires).bind(&g.organization_id).bind(&g.resource)
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
    /// A rotated token came back and was not a racing duplicate of the newest rotation: the
    /// family is now revoked.
    ReuseDetected {
        grant: Grant,
    },
    Invalid,
}

/// How a rotation is carried out: the new token's lifetime and the race grace window.
pub struct RotationRules {
    pub ttl_seconds: u32,
    pub grace_seconds: u32,
}

/// Rotates `presented` for `client_id`, in one transaction: marking it rotated, inserting its
/// successor and (on reuse) revoking the family either all happen or none does, so a rotation
/// that fails half-way (a store that goes away) leaves the presented token usable.
///
/// A token that was already rotated gets its successor again only when that successor is the
/// family's live head (not yet used itself) and the presentation falls within the grace window
/// of the rotation: a racing duplicate of the newest rotation. Anything else is reuse (SPEC §5).
pub async fn rotate(
    db: &IdentityDb,
    secrets: &SecretBox,
    presented: &str,
    client_id: &str,
    rules: &RotationRules,
    now: Ts,
) -> Result<Rotation, GrantError> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(Rotation::Invalid);
    }
    let old = tokens::Hashed::of(presented);
    let successor = tokens::new_secret(PREFIX);
    let successor_hash = tokens::Hashed::of(successor.expose_secret());
    let sealed = secrets.seal(&seal_ctx(&old), successor.expose_secret().as_bytes());
    let grace = Duration::seconds(i64::from(rules.grace_seconds));
    let expires = Ts::new(now.0 + Duration::seconds(i64::from(rules.ttl_seconds)));
    let mark = "UPDATE refresh_tokens SET rotated_at = $2, successor_sealed = $3 \
         WHERE token_hash = $1 AND client_id = $4 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2";
    let select = "SELECT family_id, client_id, user_id, session_id, scope, organization_id, resource, expires_at, rotated_at, successor_sealed, revoked_at \
        FROM refresh_tokens WHERE token_hash = $1";
    let insert = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, created_at, expires_at, organization_id, resource) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let head =
        "SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL";
    let revoke = "UPDATE refresh_tokens SET revoked_at = $2, successor_sealed = NULL WHERE family_id = $1 AND revoked_at IS NULL";
    Ok(on_db!(db, p => {
        let mut tx = p.begin().await?;
        // Only one of any number of concurrent presentations wins this update.
        let won = sqlx::query(mark).bind(&old).bind(now).bind(&sealed).bind(client_id)
            .execute(&mut *tx).await?.rows_affected() == 1;
        let row: Option<Row> = sqlx::query_as(select).bind(&old).fetch_optional(&mut *tx).await?;
        let outcome = match row {
            // Bound to its client: another client learns nothing and changes nothing.
            Some(row) if row.grant.client_id.as_str() == client_id => {
                if won {
                    let g = &row.grant;
                    sqlx::query(insert)
                        .bind(&successor_hash).bind(&g.family_id).bind(&g.client_id).bind(g.user_id)
                        .bind(&g.session_id).bind(&g.scope).bind(now).bind(expires)
                        .bind(&g.organization_id).bind(&g.resource)
                        .execute(&mut *tx).await?;
                    Rotation::Rotated { grant: row.grant, token: successor }
                } else if row.revoked_at.is_some() || row.expires_at <= now {
                    Rotation::Invalid
                } else {
                    // A duplicate of the newest rotation, in time, whose successor is unused.
                    let racing = match (row.rotated_at, &row.successor_sealed) {
                        (Some(at), Some(s)) if now.0 - at.0 <= grace => {
                            match secrets.open_string(&seal_ctx(&old), s) {
                                Ok(token) => {
                                    let live: Option<i32> = sqlx::query_scalar(head)
                                        .bind(tokens::Hashed::of(&token))
                                        .fetch_optional(&mut *tx).await?;
                                    live.map(|_| token)
                                }
                                Err(_) => None,
                            }
                        }
                        _ => None,
                    };
                    match racing {
                        Some(token) => Rotation::Rotated { grant: row.grant, token: SecretString::from(token) },
                        None => {
                            sqlx::query(revoke).bind(&row.grant.family_id).bind(now).execute(&mut *tx).await?;
                            Rotation::ReuseDetected { grant: row.grant }
                        }
                    }
                }
            }
            _ => Rotation::Invalid,
        };
        tx.commit().await?;
        Ok::<_, sqlx::Error>(outcome)
    })?)
}

/// A token of a client as it is now, read without changing anything.
#[derive(sqlx::FromRow)]
pub struct Peeked {
    #[sqlx(flatten)]
    pub grant: Grant,
    /// Already rotated: presenting it again is reuse, unless it is a racing duplicate.
    pub rotated: bool,
}

/// The grant of a token of `client_id` (rotated or not), without changing anything (to check
/// a requested scope before rotating).
pub async fn peek(db: &IdentityDb, presented: &str, client_id: &str) -> Result<Option<Peeked>, GrantError> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let sql = "SELECT family_id, client_id, user_id, session_id, scope, organization_id, resource, rotated_at IS NOT NULL AS rotated \
        FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2";
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
