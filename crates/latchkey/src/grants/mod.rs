//! What the token endpoint hands out and takes back, in each app's identity store: pending
//! authorization requests and their codes, rotating refresh-token families, and the ids of
//! revoked access tokens. `oidc` (the protocol surface) and `signin` (which completes a request
//! with a code) use it.

pub mod codes;
pub mod refresh;
pub mod requests;

use crate::on_db;
use crate::store::{IdentityDb, Ts};

/// What went wrong with a grant: an authorization request, a code, a refresh token or a
/// revocation.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("grant store: {0}")]
    Store(#[from] sqlx::Error),
}

/// Revokes access token `jti` until `until` (when it would have expired anyway).
pub async fn revoke_jti(db: &IdentityDb, jti: &str, until: Ts) -> Result<(), GrantError> {
    let sql = "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
    Ok(on_db!(db, p => sqlx::query(sql).bind(jti).bind(until).execute(p).await.map(|_| ()))?)
}

pub async fn is_revoked(db: &IdentityDb, jti: &str) -> Result<bool, GrantError> {
    let sql = "SELECT 1 FROM revoked_tokens WHERE jti = $1";
    let found: Option<i32> = on_db!(db, p => sqlx::query_scalar(sql).bind(jti).fetch_optional(p).await)?;
    Ok(found.is_some())
}

/// Housekeeping (jobs::janitor): revocations of tokens that have expired anyway, and sealed
/// refresh successors whose race window is over.
pub async fn purge_expired(db: &IdentityDb, now: Ts) -> Result<(), GrantError> {
    let sql = "DELETE FROM revoked_tokens WHERE expires_at < $1";
    on_db!(db, p => sqlx::query(sql).bind(now).execute(p).await.map(|_| ()))?;
    refresh::forget_successors(db, Ts::new(now.0 - chrono::Duration::minutes(2))).await
}
