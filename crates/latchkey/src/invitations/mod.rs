//! Registration tokens for one address (SPEC §4, §8), in the app's identity store:
//!
//! - **invitations** (`invite_only`): an operator invites an address; the link (mailed, and
//!   returned once by the admin API) opens `/signup?invitation=…` with the address fixed.
//! - **first-access links** (`auto_on_first_access`): a magic link asked for by an address that
//!   has no account yet; following it creates the account and signs it in.
//!
//! Tokens are 256 random bits, stored as SHA-256; accepting one and creating the user happen in
//! one transaction, so a token is never spent without an account to show for it.

use std::sync::Arc;

use chrono::Duration;
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

use crate::crypto::tokens;
use crate::mail::Kind;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::tenant::Issuer;
use crate::users::{Email, User, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Invitation,
    FirstAccess,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Invitation => "invitation",
            Purpose::FirstAccess => "first_access",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    User(#[from] crate::users::UserError),
    #[error("mail: {0}")]
    Mail(String),
}

/// An invitation as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Ts,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Ts,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub used_at: Option<Ts>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Ts>,
    /// The account it created, once used.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub user_id: Option<UserId>,
    /// The token, sealed (invitations only; dropped once used or revoked).
    #[serde(skip)]
    #[schema(ignore)]
    pub token_sealed: Option<String>,
}

fn seal_ctx(app_id: Uuid, id: Uuid) -> String {
    format!("app:{app_id}:invitation:{id}")
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Used,
    Revoked,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Used => "used",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }
}

impl Invitation {
    /// Used and revoked are final; an open invitation past its expiry is expired.
    pub fn status(&self, now: Ts) -> InvitationStatus {
        if self.used_at.is_some() {
            InvitationStatus::Used
        } else if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if self.expires_at <= now {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }
}

/// The link of a pending invitation, for operators.
pub fn link_of(secrets: &crate::crypto::SecretBox, issuer: &Issuer, inv: &Invitation) -> Option<String> {
    let sealed = inv.token_sealed.as_deref()?;
    let token = secrets.open_string(&seal_ctx(issuer.app.id, inv.id), sealed).ok()?;
    Some(format!("{}/signup?invitation={token}", issuer.url))
}

/// What a live token allows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ticket {
    pub id: Uuid,
    pub email: String,
    pub auth_request_id: Option<String>,
    /// An organization's invitation: the membership it creates (SPEC §10).
    pub organization_id: Option<Uuid>,
}

/// The membership an organization's invitation creates on acceptance.
pub struct Membership<'a> {
    pub organization_id: Uuid,
    pub roles: &'a [String],
}

/// Creates a registration token for `email` and queues its message in one transaction; returns
/// the row and the link.
pub async fn create(
    post: &crate::mail::Post<'_>,
    issuer: &Arc<Issuer>,
    purpose: Purpose,
    email: &Email,
    ttl: Duration,
    auth_request_id: Option<&str>,
    membership: Option<Membership<'_>>,
) -> Result<(Invitation, String), InvitationError> {
    let now = post.now;
    let token = tokens::new_secret("lki_");
    let (kind, page) = match purpose {
        Purpose::Invitation => (Kind::Invitation, "signup?invitation="),
        Purpose::FirstAccess => (Kind::MagicLink, "magic-link?token="),
    };
    let link = format!("{}/{page}{}", issuer.url, token.expose_secret());
    let expires = Ts::new(now.0 + ttl);
    let queued = post
        .compose(&issuer.app, kind, None, email.as_str(), link.clone(), ttl)
        .map_err(InvitationError::Mail)?;
    let row = Invitation {
        id: Uuid::now_v7(),
        email: email.as_str().to_string(),
        created_at: now,
        expires_at: expires,
        used_at: None,
        revoked_at: None,
        user_id: None,
        token_sealed: None,
    };
    let token_sealed = (purpose == Purpose::Invitation)
        .then(|| post.secrets.seal(&seal_ctx(issuer.app.id, row.id), token.expose_secret().as_bytes()));
    let sql = "INSERT INTO invitations (id, kind, email, email_normalized, token_hash, auth_request_id, created_at, expires_at, token_sealed, organization_id, roles) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    let (org, roles) = match &membership {
        Some(m) => (Some(m.organization_id), Some(sqlx::types::Json(m.roles.to_vec()))),
        None => (None, None),
    };
    on_db!(&issuer.identity, p => {
        let mut tx = p.begin().await?;
        sqlx::query(sql)
            .bind(row.id).bind(purpose.as_str()).bind(&row.email).bind(email.normalized())
            .bind(tokens::sha256_hex(&token)).bind(auth_request_id).bind(now).bind(expires).bind(&token_sealed)
            .bind(org).bind(&roles)
            .execute(&mut *tx).await?;
        crate::insert_queued!(&mut *tx, queued)?;
        tx.commit().await
    })?;
    post.queued(issuer, kind);
    Ok((row, link))
}

/// The live token, without using it.
pub async fn peek(
    db: &IdentityDb,
    purpose: Purpose,
    token: &str,
    now: Ts,
) -> Result<Option<Ticket>, InvitationError> {
    if !tokens::plausible(token) {
        return Ok(None);
    }
    let sql = "SELECT id, email, auth_request_id, organization_id FROM invitations WHERE token_hash = $1 AND kind = $2 \
        AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3";
    Ok(
        on_db!(db, p => sqlx::query_as(sql).bind(tokens::Hashed::of(token)).bind(purpose.as_str()).bind(now).fetch_optional(p).await)?,
    )
}

/// Gives user `$user` the membership that organization invitation `$invitation` names, with
/// the roles it names that still exist, through `$tx` (the transaction that uses the
/// invitation up). An invitation whose organization is gone gives nothing.
#[macro_export]
macro_rules! join_organization {
    ($tx:expr, $invitation:expr, $user:expr, $now:expr) => {{
        let joined = sqlx::query(
            "INSERT INTO memberships (user_id, organization_id, created_at) \
             SELECT $2, i.organization_id, $3 FROM invitations i JOIN organizations o ON o.id = i.organization_id \
             WHERE i.id = $1",
        )
        .bind($invitation).bind($user).bind($now)
        .execute(&mut *$tx).await?.rows_affected();
        if joined == 1 {
            let roles: Option<sqlx::types::Json<Vec<String>>> =
                sqlx::query_scalar("SELECT roles FROM invitations WHERE id = $1")
                    .bind($invitation).fetch_one(&mut *$tx).await?;
            for role in roles.map(|r| r.0).unwrap_or_default() {
                sqlx::query(
                    "INSERT INTO membership_roles (user_id, organization_id, role) \
                     SELECT $2, i.organization_id, r.name FROM invitations i, roles r WHERE i.id = $1 AND r.name = $3",
                )
                .bind($invitation).bind($user).bind(role)
                .execute(&mut *$tx).await?;
            }
        }
    }};
}

/// The account a token creates (its address is the token's).
pub struct Account<'a> {
    pub password_hash: Option<&'a str>,
    pub email_verified: bool,
    pub status: crate::users::UserStatus,
    pub name: Option<&'a str>,
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// How accepting a token ended.
pub enum Accepted {
    Created(Ticket, Box<User>),
    /// Unknown, used, revoked or expired.
    Invalid,
    /// The address registered in the meantime; the token stays unused.
    AlreadyRegistered,
}

/// Uses the token up and creates the user it allows, in one transaction. The address is the
/// token's, whatever was typed.
pub async fn accept(
    db: &IdentityDb,
    purpose: Purpose,
    token: &str,
    account: &Account<'_>,
    now: Ts,
) -> Result<Accepted, InvitationError> {
    if !tokens::plausible(token) {
        return Ok(Accepted::Invalid);
    }
    let claim = "UPDATE invitations SET used_at = $3, token_sealed = NULL WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL \
        AND revoked_at IS NULL AND expires_at > $3 RETURNING id, email, auth_request_id, organization_id";
    let link_user = "UPDATE invitations SET user_id = $2 WHERE id = $1";
    let insert = "INSERT INTO users (id, email, email_normalized, email_verified, status, name, profile, password_hash, \
        password_changed_at, token_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10)";
    let id = UserId::generate();
    let outcome: Result<Option<Ticket>, sqlx::Error> = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let ticket: Option<Ticket> = sqlx::query_as(claim)
            .bind(tokens::Hashed::of(token)).bind(purpose.as_str()).bind(now)
            .fetch_optional(&mut *tx).await?;
        let Some(ticket) = ticket else { return Ok(Accepted::Invalid) };
        let Ok(email) = Email::parse(&ticket.email) else { return Ok(Accepted::Invalid) };
        let n = account;
        let inserted = sqlx::query(insert)
            .bind(id).bind(email.as_str()).bind(email.normalized()).bind(n.email_verified).bind(n.status.as_str())
            .bind(n.name).bind(Json(&n.profile)).bind(n.password_hash).bind(n.password_hash.map(|_| now)).bind(now)
            .execute(&mut *tx).await;
        match inserted {
            Ok(_) => {}
            Err(e) if crate::store::is_unique_violation(&e) => return Ok(Accepted::AlreadyRegistered),
            Err(e) => return Err(e.into()),
        }
        sqlx::query(link_user).bind(ticket.id).bind(id).execute(&mut *tx).await?;
        if ticket.organization_id.is_some() {
            crate::join_organization!(tx, ticket.id, id, now);
        }
        tx.commit().await?;
        Ok(Some(ticket))
    });
    match outcome? {
        Some(ticket) => match crate::users::get(db, id).await? {
            Some(user) => Ok(Accepted::Created(ticket, Box::new(user))),
            None => Ok(Accepted::Invalid),
        },
        None => Ok(Accepted::Invalid),
    }
}

/// Invitations, newest first, after the cursor (an invitation id).
pub async fn list(
    db: &IdentityDb,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Invitation>, InvitationError> {
    let cols = "id, email, created_at, expires_at, used_at, revoked_at, user_id, token_sealed";
    match after {
        Some(a) => {
            let sql = format!(
                "SELECT {cols} FROM invitations WHERE kind = 'invitation' AND id < $1 ORDER BY id DESC LIMIT $2"
            );
            Ok(on_db!(db, p => sqlx::query_as(&sql).bind(a).bind(limit).fetch_all(p).await)?)
        }
        None => {
            let sql =
                format!("SELECT {cols} FROM invitations WHERE kind = 'invitation' ORDER BY id DESC LIMIT $1");
            Ok(on_db!(db, p => sqlx::query_as(&sql).bind(limit).fetch_all(p).await)?)
        }
    }
}

/// Revokes an unused invitation; `None` if there is no such invitation, `Some(false)` if it
/// was already used or revoked.
pub async fn revoke(db: &IdentityDb, id: Uuid, now: Ts) -> Result<Option<bool>, InvitationError> {
    let sql = "UPDATE invitations SET revoked_at = $2, token_sealed = NULL WHERE id = $1 AND kind = 'invitation' AND used_at IS NULL AND revoked_at IS NULL";
    let n = on_db!(db, p => sqlx::query(sql).bind(id).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        return Ok(Some(true));
    }
    let exists: Option<i32> = on_db!(db, p => sqlx::query_scalar("SELECT 1 FROM invitations WHERE id = $1 AND kind = 'invitation'").bind(id).fetch_optional(p).await)?;
    Ok(exists.map(|_| false))
}

/// Housekeeping (jobs::janitor): first-access links a day past expiry. Operator invitations
/// stay, so operators can see what became of them.
pub async fn purge_expired(db: &IdentityDb, now: Ts) -> Result<(), InvitationError> {
    let day_ago = Ts::new(now.0 - Duration::days(1));
    let sql = "DELETE FROM invitations WHERE kind = 'first_access' AND expires_at < $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(day_ago).execute(p).await.map(|_| ()))?)
}
