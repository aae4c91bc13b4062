//! Upstream identities (SPEC §7a): which user a provider's subject is. A subject belongs to
//! one user; the email an upstream gave is kept as data, never used as the key.

use serde::Serialize;

use super::UserId;
use crate::on_db;
use crate::store::{IdentityDb, Ts, is_unique_violation};

/// One upstream identity of a user.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub linked_at: Ts,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("this {provider} account is linked to another user")]
    Taken { provider: String },
    #[error("identity store: {0}")]
    Store(#[from] sqlx::Error),
}

/// The user `provider`'s `subject` is, if any.
pub async fn owner(db: &IdentityDb, provider: &str, subject: &str) -> Result<Option<UserId>, sqlx::Error> {
    let sql = "SELECT user_id FROM identities WHERE provider = $1 AND subject = $2";
    on_db!(db, p => sqlx::query_scalar(sql).bind(provider).bind(subject).fetch_optional(p).await)
}

/// Links `provider`'s `subject` to `user`. Linking it again to the same user refreshes the
/// email; to another user it is refused.
pub async fn link(
    db: &IdentityDb,
    user: UserId,
    provider: &str,
    subject: &str,
    email: Option<&str>,
    now: Ts,
) -> Result<(), IdentityError> {
    let insert =
        "INSERT INTO identities (provider, subject, user_id, email, linked_at) VALUES ($1, $2, $3, $4, $5)";
    let res = on_db!(db, p => sqlx::query(insert)
        .bind(provider).bind(subject).bind(user).bind(email).bind(now)
        .execute(p).await.map(|_| ()));
    match res {
        Ok(()) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            if owner(db, provider, subject).await? != Some(user) {
                return Err(IdentityError::Taken { provider: provider.to_string() });
            }
            let update = "UPDATE identities SET email = $3 WHERE provider = $1 AND subject = $2";
            on_db!(db, p => sqlx::query(update).bind(provider).bind(subject).bind(email).execute(p).await.map(|_| ()))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The user's upstream identities, oldest first.
pub async fn of_user(db: &IdentityDb, user: UserId) -> Result<Vec<Identity>, sqlx::Error> {
    let sql = "SELECT provider, subject, email, linked_at FROM identities WHERE user_id = $1 ORDER BY linked_at, provider";
    on_db!(db, p => sqlx::query_as(sql).bind(user).fetch_all(p).await)
}

/// Removes the user's identity at `provider`; false if there was none.
pub async fn unlink(db: &IdentityDb, user: UserId, provider: &str) -> Result<bool, sqlx::Error> {
    let sql = "DELETE FROM identities WHERE user_id = $1 AND provider = $2";
    let n = on_db!(db, p => sqlx::query(sql).bind(user).bind(provider).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
