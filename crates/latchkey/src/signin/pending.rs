//! Sign-ins parked on a step (`pending_logins`): no session and no token exist yet; the browser
//! holds only a short-lived random token, stored here as its hash.

use chrono::Duration;
use sqlx::types::Json;

use crate::crypto::tokens;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::users::UserId;

/// How long a sign-in may wait on its steps, in minutes.
pub const TTL_MINUTES: i64 = 30;

/// A parked sign-in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub user_id: UserId,
    pub amr: Json<Vec<String>>,
    pub auth_request_id: Option<String>,
}

/// The plain token handed to the browser; only [`tokens::Hashed`] is stored.
pub async fn park(db: &IdentityDb, p: &Pending, now: Ts) -> Result<tokens::Plain, sqlx::Error> {
    let token = tokens::Plain::random(32);
    let sql = "INSERT INTO pending_logins (token_hash, user_id, amr, auth_request_id, created_at, expires_at) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    let expires = Ts::new(now.0 + Duration::minutes(TTL_MINUTES));
    on_db!(db, p2 => sqlx::query(sql)
        .bind(token.hashed().as_str()).bind(p.user_id).bind(&p.amr).bind(&p.auth_request_id).bind(now).bind(expires)
        .execute(p2).await.map(|_| ()))?;
    Ok(token)
}

/// The live sign-in parked under `token`.
pub async fn load(db: &IdentityDb, token: &tokens::Hashed, now: Ts) -> Result<Option<Pending>, sqlx::Error> {
    let sql =
        "SELECT user_id, amr, auth_request_id FROM pending_logins WHERE token_hash = $1 AND expires_at > $2";
    on_db!(db, p => sqlx::query_as(sql).bind(token.as_str()).bind(now).fetch_optional(p).await)
}

/// Records a method proven on the way (the second factor).
pub async fn set_amr(db: &IdentityDb, token: &tokens::Hashed, amr: &[String]) -> Result<(), sqlx::Error> {
    let sql = "UPDATE pending_logins SET amr = $2 WHERE token_hash = $1";
    on_db!(db, p => sqlx::query(sql).bind(token.as_str()).bind(Json(amr)).execute(p).await.map(|_| ()))
}

pub async fn forget(db: &IdentityDb, token: &tokens::Hashed) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM pending_logins WHERE token_hash = $1";
    on_db!(db, p => sqlx::query(sql).bind(token.as_str()).execute(p).await.map(|_| ()))
}

/// Housekeeping (jobs::janitor): sign-ins abandoned on a step.
pub async fn purge_expired(db: &IdentityDb, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM pending_logins WHERE expires_at < $1";
    on_db!(db, p => sqlx::query(sql).bind(now).execute(p).await.map(|_| ()))
}
