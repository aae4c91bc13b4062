//! Browser sessions (SPEC §7, §8): an opaque cookie `<sid>.<secret>` per app; the store keeps
//! the session id (the `sid` claim) and a SHA-256 of the secret, so a leaked database row cannot
//! be replayed as a cookie. A new session (new id) is made at every sign-in.

use chrono::Duration;
use secrecy::SecretString;
use sqlx::types::Json;
use subtle::ConstantTimeEq;

use crate::apps::model::SessionPolicy;
use crate::crypto::tokens;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::users::UserId;

/// Name of the session cookie (scoped by `Path` to the app's issuer path).
pub const COOKIE: &str = "lk_session";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub amr: Json<Vec<String>>,
    pub auth_time: Ts,
    pub created_at: Ts,
    pub last_seen_at: Ts,
    pub expires_at: Ts,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

crate::text_id!(
    /// A browser session's id (public: it is the `sid` claim; the cookie's secret is apart).
    SessionId
);

/// What went wrong with a session lookup or change.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] sqlx::Error),
}

/// Context of the request that creates a session.
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The oldest `last_seen_at` a session may have and still be live: sessions idle for longer
/// than `policy.idle_timeout_minutes` are dead for cookies, refresh tokens and userinfo.
fn idle_cutoff(policy: &SessionPolicy, now: Ts) -> Ts {
    match policy.idle_timeout_minutes {
        Some(m) => Ts::new(now.0 - Duration::minutes(i64::from(m))),
        None => Ts::new(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
    }
}

/// Creates a session and returns it with the cookie value (shown only to the browser). With
/// `policy.max_concurrent`, the user's oldest live sessions beyond it end (reason
/// `max_concurrent`); how many is returned too.
pub async fn create(
    db: &IdentityDb,
    user_id: UserId,
    amr: &[&str],
    policy: &SessionPolicy,
    origin: &Origin,
    now: Ts,
) -> Result<(Session, SecretString), SessionError> {
    let ttl = Duration::hours(i64::from(policy.ttl_hours));
    let id = tokens::new_id();
    let secret = tokens::random_b64(32);
    let token_hash = tokens::Hashed::of(&secret);
    let session = Session {
        id: SessionId(id.clone()),
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
    if let Some(max) = policy.max_concurrent {
        let live = list_for_user(db, user_id, policy, now).await?;
        let end = "UPDATE sessions SET revoked_at = $2, revoked_reason = 'max_concurrent' WHERE id = $1 AND revoked_at IS NULL";
        for old in live.iter().filter(|s| s.id != session.id).skip((max as usize).saturating_sub(1)) {
            on_db!(db, p => sqlx::query(end).bind(&old.id).bind(now).execute(p).await.map(|_| ()))?;
        }
    }
    Ok((session, SecretString::from(format!("{id}.{secret}"))))
}

/// How many of the user's sessions were ended by `max_concurrent` since `since` (for the notice
/// on `/account`).
pub async fn ended_for_limit_since(db: &IdentityDb, user_id: UserId, since: Ts) -> Result<i64, SessionError> {
    let sql = "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_reason = 'max_concurrent' AND revoked_at >= $2";
    Ok(on_db!(db, p => sqlx::query_scalar(sql).bind(user_id).bind(since).fetch_one(p).await)?)
}

const SELECT: &str = "SELECT id, token_hash, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ip, user_agent \
    FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3";

#[derive(sqlx::FromRow)]
struct Row {
    token_hash: String,
    #[sqlx(flatten)]
    session: Session,
}

/// The live session a cookie value names, if its secret matches. Using the cookie counts as
/// activity for the idle timeout.
pub async fn from_cookie(
    db: &IdentityDb,
    cookie: &str,
    policy: &SessionPolicy,
    now: Ts,
) -> Result<Option<Session>, SessionError> {
    let Some((id, secret)) = cookie.split_once('.') else { return Ok(None) };
    if id.len() > 64 || secret.len() > 128 {
        return Ok(None);
    }
    let cutoff = idle_cutoff(policy, now);
    let row: Option<Row> =
        on_db!(db, p => sqlx::query_as(SELECT).bind(id).bind(now).bind(cutoff).fetch_optional(p).await)?;
    let session = row.and_then(|r| {
        let ok: bool = r.token_hash.as_bytes().ct_eq(tokens::Hashed::of(secret).as_str().as_bytes()).into();
        ok.then_some(r.session)
    });
    if let Some(s) = &session {
        touch(db, &s.id, now).await?;
    }
    Ok(session)
}

/// Whether the session `sid` is live at `now` (for tokens that carry `sid`).
pub async fn is_live(
    db: &IdentityDb,
    sid: &str,
    policy: &SessionPolicy,
    now: Ts,
) -> Result<bool, SessionError> {
    let sql = "SELECT 1 FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3";
    let cutoff = idle_cutoff(policy, now);
    let found: Option<i32> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(sid).bind(now).bind(cutoff).fetch_optional(p).await)?;
    Ok(found.is_some())
}

pub async fn revoke(db: &IdentityDb, sid: &str, now: Ts) -> Result<bool, SessionError> {
    let sql = "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    let n =
        on_db!(db, p => sqlx::query(sql).bind(sid).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether an access token of session `sid`, issued at the user's token version `tv`, still
/// stands: the session is live and the user active with that token version (SPEC §8).
pub async fn is_live_for_token(
    db: &IdentityDb,
    sid: &str,
    tv: i64,
    policy: &SessionPolicy,
    now: Ts,
) -> Result<bool, SessionError> {
    let sql = "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
        WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $3 \
        AND u.token_version = $4 AND u.status = 'active'";
    let cutoff = idle_cutoff(policy, now);
    let found: Option<i32> = on_db!(db, p => sqlx::query_scalar(sql).bind(sid).bind(now).bind(cutoff).bind(tv).fetch_optional(p).await)?;
    Ok(found.is_some())
}

/// Ends every session of the user and moves their token version on, in one transaction:
/// every cookie, refresh token and access token of the user stops working at once. False if
/// there is no such user.
pub async fn logout_all(db: &IdentityDb, user_id: UserId, now: Ts) -> Result<Option<u64>, SessionError> {
    let bump = "UPDATE users SET token_version = token_version + 1, updated_at = $2 WHERE id = $1";
    let end = "UPDATE sessions SET revoked_at = $2, revoked_reason = 'logout_all' WHERE user_id = $1 AND revoked_at IS NULL";
    Ok(on_db!(db, p => {
        let mut tx = p.begin().await?;
        let found = sqlx::query(bump).bind(user_id).bind(now).execute(&mut *tx).await?.rows_affected();
        if found == 0 {
            return Ok(None);
        }
        let ended = sqlx::query(end).bind(user_id).bind(now).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(ended))
    })?)
}

/// The live session `sid`.
pub async fn get(
    db: &IdentityDb,
    sid: &str,
    policy: &SessionPolicy,
    now: Ts,
) -> Result<Option<Session>, SessionError> {
    let cutoff = idle_cutoff(policy, now);
    let row: Option<Row> =
        on_db!(db, p => sqlx::query_as(SELECT).bind(sid).bind(now).bind(cutoff).fetch_optional(p).await)?;
    Ok(row.map(|r| r.session))
}

/// The user's live sessions, newest first.
pub async fn list_for_user(
    db: &IdentityDb,
    user_id: UserId,
    policy: &SessionPolicy,
    now: Ts,
) -> Result<Vec<Session>, SessionError> {
    let sql = "SELECT id, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ip, user_agent \
        FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3 \
        ORDER BY created_at DESC, id DESC LIMIT 100";
    let cutoff = idle_cutoff(policy, now);
    Ok(on_db!(db, p => sqlx::query_as(sql).bind(user_id).bind(now).bind(cutoff).fetch_all(p).await)?)
}

/// Revokes one of the user's own sessions; false if `sid` is not a live session of theirs.
pub async fn revoke_own(db: &IdentityDb, user_id: UserId, sid: &str, now: Ts) -> Result<bool, SessionError> {
    let sql = "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
    let n = on_db!(db, p => sqlx::query(sql).bind(sid).bind(user_id).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends every session of the user; their tokens stop passing userinfo and introspection.
pub async fn revoke_all_for_user(db: &IdentityDb, user_id: UserId, now: Ts) -> Result<u64, SessionError> {
    let sql = "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
    Ok(on_db!(db, p => sqlx::query(sql).bind(user_id).bind(now).execute(p).await.map(|r| r.rows_affected()))?)
}

/// Ends every session of the user except `keep`.
pub async fn revoke_others(
    db: &IdentityDb,
    user_id: UserId,
    keep: &str,
    now: Ts,
) -> Result<u64, SessionError> {
    let sql = "UPDATE sessions SET revoked_at = $3, revoked_reason = 'password_change' WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL";
    Ok(
        on_db!(db, p => sqlx::query(sql).bind(user_id).bind(keep).bind(now).execute(p).await.map(|r| r.rows_affected()))?,
    )
}

/// Records activity on the session (at most one write per session a second).
pub async fn touch(db: &IdentityDb, sid: &str, now: Ts) -> Result<(), SessionError> {
    let sql = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $3";
    let before = Ts::new(now.0 - Duration::seconds(1));
    Ok(on_db!(db, p => sqlx::query(sql).bind(sid).bind(now).bind(before).execute(p).await.map(|_| ()))?)
}
