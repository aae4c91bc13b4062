//! Authorization codes: claimed once with a conditional update, and remembered with what they
//! issued so a second use can revoke it (RFC 6749 §4.1.2).

use super::GrantError;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::users::UserId;

#[derive(sqlx::FromRow)]
pub struct CodeRow {
    pub client_id: crate::clients::ClientId,
    pub redirect_uri: String,
    pub user_id: UserId,
    pub session_id: crate::sessions::SessionId,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub used_at: Option<Ts>,
    pub access_jti: Option<String>,
    pub refresh_family: Option<String>,
    pub expires_at: Ts,
    pub organization_id: Option<String>,
    pub resource: Option<String>,
}

/// Marks the code used; of any number of parallel redemptions exactly one gets `true`.
pub async fn claim(db: &IdentityDb, code_hash: &str, now: Ts) -> Result<bool, GrantError> {
    let sql = "UPDATE authorization_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL";
    let n = on_db!(db, p => sqlx::query(sql).bind(code_hash).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn find(db: &IdentityDb, code_hash: &str) -> Result<Option<CodeRow>, GrantError> {
    let sql = "SELECT client_id, redirect_uri, user_id, session_id, scope, nonce, code_challenge, used_at, \
        access_jti, refresh_family, expires_at, organization_id, resource FROM authorization_codes WHERE code_hash = $1";
    Ok(on_db!(db, p => sqlx::query_as(sql).bind(code_hash).fetch_optional(p).await)?)
}

/// What the code was exchanged for, so a replay can revoke it.
pub async fn record_issued(
    db: &IdentityDb,
    code_hash: &str,
    access_jti: &str,
    refresh_family: Option<&str>,
) -> Result<(), GrantError> {
    let sql = "UPDATE authorization_codes SET access_jti = $2, refresh_family = $3 WHERE code_hash = $1";
    Ok(
        on_db!(db, p => sqlx::query(sql).bind(code_hash).bind(access_jti).bind(refresh_family).execute(p).await.map(|_| ()))?,
    )
}
