//! The `admin_tokens` table of the control plane.

use chrono::Duration;
use uuid::Uuid;

use super::{OperatorError, OperatorToken};
use crate::on_db;
use crate::store::{ControlDb, Ts, is_unique_violation};

const COLUMNS: &str = "id, name, created_at, last_used_at";

pub async fn create(
    db: &ControlDb,
    name: &str,
    token_hash: &str,
    now: Ts,
) -> Result<OperatorToken, OperatorError> {
    let name = super::valid_name(name)?;
    let id = super::new_id();
    let sql = "INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)";
    let res = on_db!(db, p => sqlx::query(sql).bind(id).bind(name).bind(token_hash).bind(now).execute(p).await.map(|_| ()));
    match res {
        Ok(_) => Ok(OperatorToken { id, name: name.to_string(), created_at: now, last_used_at: None }),
        Err(e) if is_unique_violation(&e) => Err(OperatorError::NameTaken),
        Err(e) => Err(e.into()),
    }
}

/// Every stored token, oldest first (an operator has a handful).
pub async fn list(db: &ControlDb) -> Result<Vec<OperatorToken>, OperatorError> {
    let sql = format!("SELECT {COLUMNS} FROM admin_tokens ORDER BY created_at, id");
    Ok(on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await)?)
}

pub async fn count(db: &ControlDb) -> Result<i64, OperatorError> {
    Ok(on_db!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens").fetch_one(p).await)?)
}

/// The token with this hash, if it is (still) stored.
pub async fn find(db: &ControlDb, token_hash: &str) -> Result<Option<OperatorToken>, OperatorError> {
    let sql = format!("SELECT {COLUMNS} FROM admin_tokens WHERE token_hash = $1");
    Ok(on_db!(db, p => sqlx::query_as(&sql).bind(token_hash).fetch_optional(p).await)?)
}

/// Records a use, at most once a minute per token (no write on every request).
pub async fn touch(db: &ControlDb, id: Uuid, now: Ts) -> Result<(), OperatorError> {
    let sql = "UPDATE admin_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)";
    let before = Ts::new(now.0 - Duration::minutes(1));
    on_db!(db, p => sqlx::query(sql).bind(id).bind(now).bind(before).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Removes token `id`. Unless `keep_none` allows it (another way in exists), the last stored
/// token cannot be revoked, so operators cannot lock themselves out.
pub async fn revoke(db: &ControlDb, id: Uuid, keep_none: bool) -> Result<OperatorToken, OperatorError> {
    let find = format!("SELECT {COLUMNS} FROM admin_tokens WHERE id = $1");
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        // Every row locked first (on SQLite: the write lock taken), so two revocations at once
        // cannot each see the other's token left and remove the last two.
        sqlx::query("UPDATE admin_tokens SET name = name").execute(&mut *tx).await?;
        let token: Option<OperatorToken> = sqlx::query_as(&find).bind(id).fetch_optional(&mut *tx).await?;
        let Some(token) = token else { return Err(OperatorError::NotFound) };
        sqlx::query("DELETE FROM admin_tokens WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens").fetch_one(&mut *tx).await?;
        if left == 0 && !keep_none {
            return Err(OperatorError::LastToken);
        }
        tx.commit().await?;
        Ok(token)
    })
}
