//! Upstream identities (SPEC §7a): which user a subject of an upstream is. A `sub` is unique
//! only within its issuer, so an identity is provider + issuer (GitHub: its API address) +
//! subject, and belongs to one user; the email an upstream gave is kept as data, never used as
//! the key.

use serde::Serialize;

use super::UserId;
use crate::on_db;
use crate::store::{IdentityDb, Ts, is_unique_violation};

/// Where an upstream identity comes from and who it is there.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    pub provider: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
}

/// One upstream identity of a user.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Identity {
    pub provider: String,
    pub issuer: String,
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

/// The user this upstream identity is, if any.
pub async fn owner(db: &IdentityDb, who: Upstream<'_>) -> Result<Option<UserId>, sqlx::Error> {
    let sql = "SELECT user_id FROM identities WHERE provider = $1 AND issuer = $2 AND subject = $3";
    on_db!(db, p => sqlx::query_scalar(sql)
        .bind(who.provider).bind(who.issuer).bind(who.subject)
        .fetch_optional(p).await)
}

/// Links the upstream identity to `user`. Linking it again to the same user refreshes the
/// email; to another user it is refused.
pub async fn link(
    db: &IdentityDb,
    user: UserId,
    who: Upstream<'_>,
    email: Option<&str>,
    now: Ts,
) -> Result<(), IdentityError> {
    let insert = "INSERT INTO identities (provider, issuer, subject, user_id, email, linked_at) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    let res = on_db!(db, p => sqlx::query(insert)
        .bind(who.provider).bind(who.issuer).bind(who.subject).bind(user).bind(email).bind(now)
        .execute(p).await.map(|_| ()));
    match res {
        Ok(()) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            if owner(db, who).await? != Some(user) {
                return Err(IdentityError::Taken { provider: who.provider.to_string() });
            }
            let update =
                "UPDATE identities SET email = $4 WHERE provider = $1 AND issuer = $2 AND subject = $3";
            on_db!(db, p => sqlx::query(update)
                .bind(who.provider).bind(who.issuer).bind(who.subject).bind(email)
                .execute(p).await.map(|_| ()))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The user's upstream identities, oldest first.
pub async fn of_user(db: &IdentityDb, user: UserId) -> Result<Vec<Identity>, sqlx::Error> {
    let sql = "SELECT provider, issuer, subject, email, linked_at FROM identities WHERE user_id = $1 \
        ORDER BY linked_at, provider, subject";
    on_db!(db, p => sqlx::query_as(sql).bind(user).fetch_all(p).await)
}

/// Removes this upstream identity of `user`; false if the user had no such identity.
pub async fn unlink(db: &IdentityDb, user: UserId, who: Upstream<'_>) -> Result<bool, sqlx::Error> {
    let sql = "DELETE FROM identities WHERE user_id = $1 AND provider = $2 AND issuer = $3 AND subject = $4";
    let n = on_db!(db, p => sqlx::query(sql)
        .bind(user).bind(who.provider).bind(who.issuer).bind(who.subject)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// How [`create_user`] ended.
pub enum Created {
    User(Box<super::User>),
    /// The address registered, or the identity was linked, in the meantime: nothing was
    /// written.
    Conflict,
    /// `invitation` was asked for and no live invitation for the address exists.
    NoInvitation,
}

/// How [`create_user`] uses invitations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invited {
    /// Without one.
    No,
    /// With a live invitation for the address (the newest), used up in the same transaction;
    /// `org_approval`: an organization's invitation leaves the account `pending_approval`
    /// (the app's `admin_approval` policy).
    Yes { org_approval: bool },
}

/// Creates the user an upstream sign-in brings and links its identity, in one transaction,
/// using up an invitation when asked (an organization's also makes the membership).
pub async fn create_user(
    db: &IdentityDb,
    new: &super::NewUser<'_>,
    who: Upstream<'_>,
    invited: Invited,
    now: Ts,
) -> Result<Created, super::UserError> {
    let find = "SELECT id, organization_id FROM invitations WHERE kind = 'invitation' AND email_normalized = $1 \
        AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 1";
    let claim = "UPDATE invitations SET used_at = $2, token_sealed = NULL, user_id = $3 WHERE id = $1 AND used_at IS NULL \
        AND revoked_at IS NULL AND expires_at > $2";
    let insert = "INSERT INTO users (id, email, email_normalized, email_verified, status, name, profile, password_hash, \
        password_changed_at, token_version, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, 0, $8, $8)";
    let identity = "INSERT INTO identities (provider, issuer, subject, user_id, email, linked_at) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    let id = UserId::generate();
    let outcome: Result<(), sqlx::Error> = on_db!(db, p => {
        let mut tx = crate::store::BeginWrite::begin_write(p).await?;
        let mut status = new.status;
        let ticket: Option<(uuid::Uuid, Option<uuid::Uuid>)> = match invited {
            Invited::No => None,
            Invited::Yes { org_approval } => {
                let found: Option<(uuid::Uuid, Option<uuid::Uuid>)> =
                    sqlx::query_as(find).bind(new.email.normalized()).bind(now).fetch_optional(&mut *tx).await?;
                let Some(found) = found else { return Ok(Created::NoInvitation) };
                if org_approval && found.1.is_some() {
                    status = super::UserStatus::PendingApproval;
                }
                Some(found)
            }
        };
        let inserted = sqlx::query(insert)
            .bind(id).bind(new.email.as_str()).bind(new.email.normalized()).bind(new.email_verified)
            .bind(status.as_str()).bind(new.name).bind(sqlx::types::Json(&new.profile)).bind(now)
            .execute(&mut *tx).await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Created::Conflict),
            Err(e) => return Err(e.into()),
        }
        if let Some((invitation, org)) = ticket {
            let used = sqlx::query(claim).bind(invitation).bind(now).bind(id).execute(&mut *tx).await?.rows_affected();
            if used != 1 {
                return Ok(Created::Conflict);
            }
            if org.is_some() {
                crate::join_organization!(tx, invitation, id, now);
            }
        }
        let linked = sqlx::query(identity)
            .bind(who.provider).bind(who.issuer).bind(who.subject).bind(id).bind(new.email.as_str()).bind(now)
            .execute(&mut *tx).await;
        match linked {
            Ok(_) => {}
            // The same upstream account signed up at the same moment (another tab).
            Err(e) if is_unique_violation(&e) => return Ok(Created::Conflict),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await
    });
    outcome?;
    Ok(match super::get(db, id).await? {
        Some(u) => Created::User(Box::new(u)),
        None => Created::Conflict,
    })
}
