//! Admin API for an app's end users: list and search, detail, sessions, second factor, GDPR
//! erasure, audit queries, and the approval of accounts created under `admin_approval`. Every
//! call reads and writes the app's own identity store; the control plane records only that an
//! operator acted.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ActiveApp, AdminQuery, AppUser};
use super::views::{List, Paging};
use crate::audit::operator;
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::users::{self, User, UserId, UserStatus};
use crate::web::Tenant;

/// An end user as operators see it (never a password hash or secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    /// `active`, `pending_approval` or `disabled`.
    pub status: String,
    pub name: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        UserResponse {
            id: u.id.0,
            email: u.email,
            email_verified: u.email_verified,
            status: u.status.as_str().to_string(),
            name: u.name,
            created_at: u.created_at.0,
        }
    }
}

/// The app's live issuer (its identity store is migrated); 404 or 409 otherwise.
async fn decide(
    state: &AppState,
    issuer: &Issuer,
    id: UserId,
    approve: bool,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let now = state.now();
    let user = match users::decide_approval(&issuer.identity, id, approve, now).await {
        Ok(user) => user,
        Err(users::ApprovalError::NotFound) => return Err(ApiError::not_found("user")),
        Err(users::ApprovalError::NotPending(status)) => {
            let detail = format!("the user is {}, not pending_approval", status.as_str());
            return Err(ApiError::conflict("not_pending_approval", detail));
        }
        Err(users::ApprovalError::Store(e)) => return Err(ApiError::internal(&e)),
    };
    let kind = if approve { "user.approved" } else { "user.rejected" };
    let data = serde_json::json!({"by": "operator"});
    state.audit.record(record_for(issuer, state, kind, Some(user.id), data)).await;
    let (slug, target) = (issuer.app.slug.as_str(), user.id.to_string());
    operator::record(&state.control, now, kind, Some(slug), Some(&target), serde_json::json!({})).await;
    Ok(axum::Json(user.into()))
}

/// Approve a `pending_approval` user: they may sign in from now on (`user.approved`).
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/users/{id}/approve", tag = "users",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_user(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<axum::Json<UserResponse>, ApiError> {
    decide(&state, &issuer, id, true).await
}

/// Reject a `pending_approval` user: the account is `disabled` and cannot sign in
/// (`user.rejected`).
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/users/{id}/reject", tag = "users",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reject_user(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<axum::Json<UserResponse>, ApiError> {
    decide(&state, &issuer, id, false).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Part of the address, any case.
    pub email: Option<String>,
    /// `active`, `pending_approval` or `disabled`.
    #[param(pattern = "^(active|pending_approval|disabled)$")]
    pub status: Option<String>,
    /// Holds this app-wide role.
    #[param(max_length = 64)]
    pub role: Option<String>,
    /// Is a member of this organization (its id).
    #[param(format = Uuid)]
    pub organization: Option<String>,
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// One user with the state operators ask about.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserResponse,
    /// How the user signs in: `email` (password and/or magic link) for now.
    pub identities: Vec<Identity>,
    pub active_sessions: i64,
    pub mfa: MfaState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Identity {
    /// `email`, or an upstream provider (`google`, `github`, …).
    pub provider: String,
    /// The upstream's issuer (GitHub: its API address); absent for `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The upstream's subject (its user id); absent for `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The address: the account's for `email`, the one the upstream gave otherwise.
    pub email: Option<String>,
    /// `email` only: whether a password is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_password: Option<bool>,
    /// Upstream identities: when it was linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaState {
    pub totp: bool,
    pub recovery_codes_left: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Equal to the `sid` claim.
    pub id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutAllResponse {
    pub sessions_ended: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub time: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub user_id: Option<crate::users::UserId>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[param(format = Uuid)]
    pub user_id: Option<String>,
    /// Event type, e.g. `login.failed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// RFC 3339 time, inclusive.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339 time, exclusive.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

async fn user_of(issuer: &Issuer, id: UserId) -> Result<User, ApiError> {
    users::get(&issuer.identity, id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found("user"))
}

fn record_for(
    issuer: &Issuer,
    state: &AppState,
    kind: &'static str,
    user: Option<UserId>,
    data: serde_json::Value,
) -> crate::audit::AuditEvent {
    crate::audit::AuditEvent::new(issuer.app.id, issuer.identity.clone(), state.now(), kind)
        .user(user)
        .data(data)
}

/// List or search the app's end users (creation order).
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/users", tag = "users", params(("slug" = String, Path), UserQuery),
    responses((status = 200, body = List<UserResponse>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_users(
    Tenant { issuer, .. }: ActiveApp,
    AdminQuery(q): AdminQuery<UserQuery>,
) -> Result<axum::Json<List<UserResponse>>, ApiError> {
    let page = Paging::<UserId>::parse(q.cursor.as_deref(), q.limit)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            UserStatus::parse(s)
                .ok_or_else(|| ApiError::validation("status must be active, pending_approval or disabled"))?,
        ),
    };
    if q.email.as_ref().is_some_and(|e| e.len() > 254) {
        return Err(ApiError::validation("email is longer than 254 characters"));
    }
    let organization = q
        .organization
        .as_deref()
        .map(|o| {
            uuid::Uuid::parse_str(o)
                .map_err(|_| ApiError::validation("organization must be an organization id"))
        })
        .transpose()?;
    if q.role.as_ref().is_some_and(|r| r.len() > 64) {
        return Err(ApiError::validation("role: at most 64 characters"));
    }
    let filter = users::UserFilter { email: q.email.clone(), status, role: q.role.clone(), organization };
    let rows = users::list(&issuer.identity, &filter, page.after, page.limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(axum::Json(page.list(rows, |u| u.id, UserResponse::from)))
}

/// One user with identities, active sessions and second-factor state (never a secret).
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/users/{id}", tag = "users", params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = UserDetail), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<axum::Json<UserDetail>, ApiError> {
    let user = user_of(&issuer, id).await?;
    let extras =
        users::extras(&issuer.identity, user.id, state.now()).await.map_err(|e| ApiError::internal(&e))?;
    let upstream =
        users::identities::of_user(&issuer.identity, user.id).await.map_err(|e| ApiError::internal(&e))?;
    let mut identities = vec![Identity {
        provider: "email".into(),
        issuer: None,
        subject: None,
        email: Some(user.email.clone()),
        has_password: Some(user.password_hash.is_some()),
        linked_at: None,
    }];
    identities.extend(upstream.into_iter().map(|i| Identity {
        provider: i.provider,
        issuer: Some(i.issuer),
        subject: Some(i.subject),
        email: i.email,
        has_password: None,
        linked_at: Some(i.linked_at.0),
    }));
    Ok(axum::Json(UserDetail {
        user: user.into(),
        identities,
        active_sessions: extras.active_sessions,
        mfa: MfaState { totp: extras.totp, recovery_codes_left: extras.recovery_codes_left },
    }))
}

/// GDPR erasure: the user and everything of theirs in the app's identity store, in one
/// transaction. The control plane records only that an erasure happened. An operator's foreign
/// key to `users(id)` that neither cascades nor sets null blocks it: 409 `erasure_blocked`
/// naming the constraint, with nothing changed.
#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/users/{id}", tag = "users", params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn erase_user(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<StatusCode, ApiError> {
    // Audit events about the user still queued would recreate rows after the erasure.
    state.audit.flush().await;
    let erased = users::erase(&issuer.identity, id).await.map_err(|e| match e {
        users::UserError::ErasureBlocked { .. } => ApiError::conflict("erasure_blocked", e.to_string()),
        other => ApiError::internal(&other),
    })?;
    if !erased {
        return Err(ApiError::not_found("user"));
    }
    operator::record(
        &state.control,
        state.now(),
        "user.erased",
        Some(issuer.app.slug.as_str()),
        None,
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's live sessions, newest first.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/users/{id}/sessions", tag = "users", params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = List<SessionResponse>), (status = 404, body = Problem)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<axum::Json<List<SessionResponse>>, ApiError> {
    let user = user_of(&issuer, id).await?;
    let list =
        crate::sessions::list_for_user(&issuer.identity, user.id, &issuer.app.policy.session, state.now())
            .await
            .map_err(|e| ApiError::internal(&e))?;
    let items = list
        .into_iter()
        .map(|s| SessionResponse {
            id: s.id.0,
            created_at: s.created_at.0,
            last_seen_at: s.last_seen_at.0,
            expires_at: s.expires_at.0,
            ip: s.ip,
            user_agent: s.user_agent,
            amr: s.amr.0,
        })
        .collect();
    Ok(axum::Json(List { items, next_cursor: None }))
}

/// End one session: its cookie, refresh tokens and access tokens stop working at once.
#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/users/{id}/sessions/{sid}", tag = "users",
    params(("slug" = String, Path), ("id" = String, Path), ("sid" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
    Path(params): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = params.2;
    let user = user_of(&issuer, id).await?;
    if !crate::sessions::revoke_own(&issuer.identity, user.id, &sid, state.now())
        .await
        .map_err(|e| ApiError::internal(&e))?
    {
        return Err(ApiError::not_found("session"));
    }
    state
        .audit
        .record(record_for(
            &issuer,
            &state,
            "session.revoked",
            Some(user.id),
            serde_json::json!({"sid": sid, "by": "operator"}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the user and invalidate every outstanding access token (`logout.all`).
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/users/{id}/logout-all", tag = "users",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = LogoutAllResponse), (status = 404, body = Problem)))]
pub async fn logout_all(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<axum::Json<LogoutAllResponse>, ApiError> {
    let ended = crate::sessions::logout_all(&issuer.identity, id, state.now())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found("user"))?;
    state
        .audit
        .record(record_for(&issuer, &state, "logout.all", Some(id), serde_json::json!({"by": "operator"})))
        .await;
    Ok(axum::Json(LogoutAllResponse { sessions_ended: ended }))
}

/// Remove the user's second factor and recovery codes (`mfa.removed`), for a user who lost
/// their device.
#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/users/{id}/mfa", tag = "users",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    AppUser { issuer, id }: AppUser,
) -> Result<StatusCode, ApiError> {
    let user = user_of(&issuer, id).await?;
    crate::mfa::remove(&issuer.identity, user.id).await.map_err(|e| ApiError::internal(&e))?;
    state
        .audit
        .record(record_for(
            &issuer,
            &state,
            "mfa.removed",
            Some(user.id),
            serde_json::json!({"by": "operator"}),
        ))
        .await;
    operator::record(
        &state.control,
        state.now(),
        "mfa.reset",
        Some(issuer.app.slug.as_str()),
        None,
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Audit events of the app's end users, newest first.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/audit", tag = "users", params(("slug" = String, Path), AuditQuery),
    responses((status = 200, body = List<AuditEventResponse>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn audit(
    Tenant { issuer, .. }: ActiveApp,
    AdminQuery(q): AdminQuery<AuditQuery>,
) -> Result<axum::Json<List<AuditEventResponse>>, ApiError> {
    let page = Paging::<Uuid>::parse(q.cursor.as_deref(), q.limit)?;
    let time = |what: &str, v: &Option<String>| -> Result<Option<crate::store::Ts>, ApiError> {
        v.as_ref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| crate::store::Ts::new(d.with_timezone(&chrono::Utc)))
                    .map_err(|_| ApiError::validation(format!("{what} must be an RFC 3339 time")))
            })
            .transpose()
    };
    let filter = crate::audit::EventFilter {
        user_id: q
            .user_id
            .as_ref()
            .map(|u| u.parse().map_err(|_| ApiError::validation("user_id must be a UUID")))
            .transpose()?,
        kind: q.kind.clone().filter(|k| k.len() <= 64),
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
    };
    let rows = crate::audit::query(&issuer.identity, &filter, page.after, page.limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let list = page.list(
        rows,
        |e| e.id,
        |e| AuditEventResponse {
            id: e.id,
            kind: e.kind,
            time: e.time.0,
            user_id: e.user_id,
            client_id: e.client_id,
            ip: e.ip,
            user_agent: e.user_agent,
            data: e.data.0,
        },
    );
    Ok(axum::Json(list))
}
