//! Second factors (SPEC §7): TOTP (RFC 6238) with one-time recovery codes.

use uuid::Uuid;

use crate::on_db;
use crate::store::Db;

/// Removes the user's TOTP secret and recovery codes (an operator's reset, or the user's own
/// removal after a fresh code), in one transaction.
pub async fn remove(db: &Db, user_id: Uuid) -> Result<(), sqlx::Error> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await
    })
}
