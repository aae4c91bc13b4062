//! Single-use links sent by mail. The token (256 random bits) exists only in the message; the
//! store keeps its SHA-256. Issuing writes the token and its message to the outbox in one
//! transaction, so a link is never valid without a message on its way, nor a message sent for a
//! link that was never stored. Consuming is one conditional update, so two clicks race safely.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::Kind;
use crate::crypto::tokens;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::tenant::Issuer;
use crate::users::User;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("mail template: {0}")]
    Template(String),
}

/// What a valid token stands for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Token {
    pub user_id: crate::users::UserId,
    /// The address the link was sent to.
    pub email: String,
    /// Magic link: the authorization request the link completes.
    pub auth_request_id: Option<String>,
}

/// Issues a link of `kind` to `user` and queues its message; the background sender is woken.
pub async fn issue(
    post: &crate::mail::Post<'_>,
    issuer: &Arc<Issuer>,
    kind: Kind,
    user: &User,
    auth_request_id: Option<&str>,
) -> Result<(), LinkError> {
    let now = post.now;
    let token = tokens::new_secret("lkm_");
    let token_hash = tokens::sha256_hex(&token);
    let link = format!("{}/{}?token={}", issuer.url, kind.page(), token.expose_secret());
    let expires = Ts::new(now.0 + kind.ttl());
    let queued = post
        .compose(&issuer.app, kind, Some(user.id), &user.email, link, kind.ttl())
        .map_err(LinkError::Template)?;
    let token_sql = "INSERT INTO email_tokens (token_hash, kind, user_id, email, auth_request_id, created_at, expires_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7)";
    on_db!(&issuer.identity, p => {
        let mut tx = p.begin().await?;
        sqlx::query(token_sql)
            .bind(&token_hash).bind(kind.as_str()).bind(user.id).bind(&user.email).bind(auth_request_id)
            .bind(now).bind(expires)
            .execute(&mut *tx).await?;
        crate::insert_queued!(&mut *tx, queued)?;
        tx.commit().await
    })?;
    post.queued(issuer, kind);
    Ok(())
}

/// The live (unused, unexpired) token, without using it up.
pub async fn peek(db: &IdentityDb, kind: Kind, token: &str, now: Ts) -> Result<Option<Token>, sqlx::Error> {
    if !tokens::plausible(token) {
        return Ok(None);
    }
    let sql = "SELECT user_id, email, auth_request_id FROM email_tokens \
        WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3";
    on_db!(db, p => sqlx::query_as(sql).bind(tokens::Hashed::of(token)).bind(kind.as_str()).bind(now).fetch_optional(p).await)
}

const CONSUME: &str = "UPDATE email_tokens SET used_at = $3 \
    WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3 \
    RETURNING user_id, email, auth_request_id";

/// The address a token was sent to, as `users.email_normalized` holds it.
fn normalized(email: &str) -> String {
    crate::users::Email::parse(email).map(|e| e.normalized().to_string()).unwrap_or_default()
}

/// Uses up a token of `kind` and marks the address it was sent to verified (following the
/// link proved the mailbox), in one transaction. `None` if the link is not (or no longer) valid.
async fn consume_and_verify(
    db: &IdentityDb,
    kind: Kind,
    token: &str,
    now: Ts,
) -> Result<Option<Token>, sqlx::Error> {
    if !tokens::plausible(token) {
        return Ok(None);
    }
    let verify =
        "UPDATE users SET email_verified = $3, updated_at = $4 WHERE id = $1 AND email_normalized = $2";
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let found: Option<Token> = sqlx::query_as(CONSUME)
            .bind(tokens::Hashed::of(token)).bind(kind.as_str()).bind(now)
            .fetch_optional(&mut *tx).await?;
        if let Some(t) = &found {
            sqlx::query(verify).bind(t.user_id).bind(normalized(&t.email)).bind(true).bind(now)
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(found)
    })
}

/// Follows a verification link.
pub async fn verify_email(db: &IdentityDb, token: &str, now: Ts) -> Result<Option<Token>, sqlx::Error> {
    consume_and_verify(db, Kind::VerifyEmail, token, now).await
}

/// For a verification link that was already used (a mail scanner may have prefetched it): the
/// address it confirmed, if the account still has that address and it is confirmed.
pub async fn confirmed_by(db: &IdentityDb, token: &str) -> Result<Option<String>, sqlx::Error> {
    if !tokens::plausible(token) {
        return Ok(None);
    }
    let sql = "SELECT t.email, u.email_normalized FROM email_tokens t JOIN users u ON u.id = t.user_id \
        WHERE t.token_hash = $1 AND t.kind = $2 AND t.used_at IS NOT NULL AND u.email_verified = $3";
    let row: Option<(String, String)> = on_db!(db, p => sqlx::query_as(sql)
        .bind(tokens::Hashed::of(token)).bind(Kind::VerifyEmail.as_str()).bind(true)
        .fetch_optional(p).await)?;
    Ok(row.filter(|(sent_to, current)| normalized(sent_to) == *current).map(|(email, _)| email))
}

/// Follows a magic link (the sign-in itself is the caller's).
pub async fn use_magic_link(db: &IdentityDb, token: &str, now: Ts) -> Result<Option<Token>, sqlx::Error> {
    consume_and_verify(db, Kind::MagicLink, token, now).await
}

/// Follows a password-reset link: in one transaction the token is used up, the password
/// replaced, the address marked verified (the link proved the mailbox), every session of the
/// user ended (their refresh tokens and access tokens die with them) and every other reset link
/// of the user used up.
pub async fn reset_password(
    db: &IdentityDb,
    token: &str,
    password_hash: &str,
    now: Ts,
) -> Result<Option<Token>, sqlx::Error> {
    if !tokens::plausible(token) {
        return Ok(None);
    }
    let set = "UPDATE users SET password_hash = $2, email_verified = CASE WHEN email_normalized = $3 THEN $5 ELSE email_verified END, \
        password_changed_at = $4, updated_at = $4 WHERE id = $1";
    let end_sessions = "UPDATE sessions SET revoked_at = $2, revoked_reason = 'password_reset' WHERE user_id = $1 AND revoked_at IS NULL";
    let other_links =
        "UPDATE email_tokens SET used_at = $3 WHERE user_id = $1 AND kind = $2 AND used_at IS NULL";
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let found: Option<Token> = sqlx::query_as(CONSUME)
            .bind(tokens::Hashed::of(token)).bind(Kind::PasswordReset.as_str()).bind(now)
            .fetch_optional(&mut *tx).await?;
        if let Some(t) = &found {
            sqlx::query(set).bind(t.user_id).bind(password_hash).bind(normalized(&t.email)).bind(now).bind(true)
                .execute(&mut *tx).await?;
            sqlx::query(end_sessions).bind(t.user_id).bind(now).execute(&mut *tx).await?;
            sqlx::query(other_links).bind(t.user_id).bind(Kind::PasswordReset.as_str()).bind(now)
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(found)
    })
}
