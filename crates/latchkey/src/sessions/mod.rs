//! Browser sessions (SPEC §7, §8): an opaque cookie `<sid>.<secret>` per app; the store keeps
//! the session id (the `sid` claim) and a SHA-256 of the secret, so a leaked database row cannot
//! be replayed as a cookie. A new session (new id) is made at every sign-in.

use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};
use sqlx::types::Json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::crypto::tokens;
use crate::on_db;
use crate::store::{Db, Ts};

/// Name of the session cookie (scoped by `Path` to the app's issuer path).
pub const COOKIE: &str = "lk_session";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    pub user_id: Uuid,
    pub amr: Json<Vec<String>>,
    pub auth_time: Ts,
    pub created_at: Ts,
    pub last_seen_at: Ts,
    pub expires_at: Ts,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Context of the request that creates a session.
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn hash(secret: &str) -> String {
    tokens::sha256_hex(&SecretString::from(secret.to_string()))
}

/// Creates a session and returns it with the cookie value (shown only to the browser).
pub async fn create(
    db: &Db,
    user_id: Uuid,
    amr: &[&str],
    ttl: Duration,
    origin: &Origin,
    now: Ts,
) -> Result<(Session, SecretString), sqlx::Error> {
    let id = tokens::new_id();
    let secret = tokens::random_b64(32);
    let token_hash = hash(&secret);
    let session = Session {
        id: id.clone(),
        user_id,
        amr: Json(amr.iter().map(|s| s.to_string()).collect()),
        auth_time: now,
        created_at: now,
        last_seen_at: now,
        expires_at: Ts::new(now.0 + ttl),
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.as_deref().map(|u| u.chars().take(512).collect()),
    };
    let sql = "INSERT INTO sessions (id, token_hash, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ip, user_agent) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    on_db!(db, p => sqlx::query(sql)
        .bind(&session.id)
        .bind(&token_hash)
        .bind(session.user_id)
        .bind(&session.amr)
        .bind(session.auth_time)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .bind(&session.ip)
        .bind(&session.user_agent)
        .execute(p)
        .await
        .map(|_| ()))?;
    Ok((session, SecretString::from(format!("{id}.{secret}"))))
}

const SELECT: &str = "SELECT id, token_hash, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ip, user_agent \
    FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2";

#[derive(sqlx::FromRow)]
struct Row {
    token_hash: String,
    #[sqlx(flatten)]
    session: Session,
}

/// The live session a cookie value names, if its secret matches.
pub async fn from_cookie(db: &Db, cookie: &str, now: Ts) -> Result<Option<Session>, sqlx::Error> {
    let Some((id, secret)) = cookie.split_once('.') else { return Ok(None) };
    if id.len() > 64 || secret.len() > 128 {
        return Ok(None);
    }
    let row: Option<Row> =
        on_db!(db, p => sqlx::query_as(SELECT).bind(id).bind(now).fetch_optional(p).await)?;
    Ok(row.and_then(|r| {
        let ok: bool = r.token_hash.as_bytes().ct_eq(hash(secret).as_bytes()).into();
        ok.then_some(r.session)
    }))
}

/// Whether the session `sid` is live at `now` (for tokens that carry `sid`).
pub async fn is_live(db: &Db, sid: &str, now: Ts) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2";
    let found: Option<i32> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(sid).bind(now).fetch_optional(p).await)?;
    Ok(found.is_some())
}

pub async fn revoke(db: &Db, sid: &str, now: Ts) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    let n =
        on_db!(db, p => sqlx::query(sql).bind(sid).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Builds the `Set-Cookie` value for a session (or its removal with `None`).
pub fn set_cookie(value: Option<&SecretString>, path: &str, secure: bool, max_age: Duration) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            v.expose_secret(),
            max_age.num_seconds()
        ),
        None => format!("{COOKIE}=; Path={path}; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

/// The live session `sid`.
pub async fn get(db: &Db, sid: &str, now: Ts) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<Row> =
        on_db!(db, p => sqlx::query_as(SELECT).bind(sid).bind(now).fetch_optional(p).await)?;
    Ok(row.map(|r| r.session))
}

/// The user's live sessions, newest first.
pub async fn list_for_user(db: &Db, user_id: Uuid, now: Ts) -> Result<Vec<Session>, sqlx::Error> {
    let sql = "SELECT id, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ip, user_agent \
        FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 100";
    on_db!(db, p => sqlx::query_as(sql).bind(user_id).bind(now).fetch_all(p).await)
}

/// Revokes one of the user's own sessions; false if `sid` is not a live session of theirs.
pub async fn revoke_own(db: &Db, user_id: Uuid, sid: &str, now: Ts) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
    let n = on_db!(db, p => sqlx::query(sql).bind(sid).bind(user_id).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends every session of the user; their tokens stop passing userinfo and introspection.
pub async fn revoke_all_for_user(db: &Db, user_id: Uuid, now: Ts) -> Result<u64, sqlx::Error> {
    let sql = "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
    on_db!(db, p => sqlx::query(sql).bind(user_id).bind(now).execute(p).await.map(|r| r.rows_affected()))
}

/// Records activity on the session.
pub async fn touch(db: &Db, sid: &str, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1";
    on_db!(db, p => sqlx::query(sql).bind(sid).bind(now).execute(p).await.map(|_| ()))
}
