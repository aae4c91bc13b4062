//! Admin API for roles (SPEC §10): define roles with `resource:action` permissions, and grant
//! them app-wide to users and to OAuth clients. Grants show in tokens issued afterwards.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::extract::{ActiveApp, AdminJson, AdminQuery};
use super::views::{List, PageQuery, Paging};
use crate::audit::operator;
use crate::roles::repo::{self, Changed, Holder, RoleError};
use crate::roles::{self, Role};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::web::Tenant;

/// A permission, `resource:action` (documentation of the strings in `permissions`).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[a-z0-9_.-]+:[a-z0-9_.*-]+$", example = "invoices:read")]
pub struct Permission(#[allow(dead_code)] String);

/// A role name (documentation of the strings in `roles`).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[a-z0-9_.-]{1,64}$", example = "billing")]
pub struct RoleName(#[allow(dead_code)] String);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// 1 to 64 of `a-z 0-9 _ . -`; unique in the app.
    #[schema(pattern = r"^[a-z0-9_.-]{1,64}$")]
    pub name: String,
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub description: Option<String>,
    /// `resource:action` (action `*` for every action), at most 500.
    #[schema(max_items = 500, value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub description: Option<String>,
    #[schema(max_items = 500, value_type = Option<Vec<Permission>>)]
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleResponse {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Role> for RoleResponse {
    fn from(r: Role) -> Self {
        RoleResponse {
            name: r.name,
            description: r.description,
            permissions: r.permissions.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

/// What deleting a role removed with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleDeleted {
    pub name: String,
    /// Users who held the role (their grants are gone).
    pub users_revoked: u64,
    /// Clients that held the role.
    pub clients_revoked: u64,
    /// Organization members who held it there.
    pub members_revoked: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrants {
    /// The holder's roles after the call (the complete list), at most 100.
    #[schema(max_items = 100, value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleGrantsResponse {
    pub roles: Vec<String>,
    pub granted: Vec<String>,
    pub revoked: Vec<String>,
}

fn description(d: Option<&str>) -> Result<String, ApiError> {
    let d = d.unwrap_or("").trim();
    if d.chars().count() > 500 || d.chars().any(char::is_control) {
        return Err(ApiError::validation("description: at most 500 characters, no control characters"));
    }
    Ok(d.to_string())
}

fn permissions(list: &[String]) -> Result<Vec<String>, ApiError> {
    roles::clean_permissions(list).map_err(|e| ApiError::validation(format!("permissions: {e}")))
}

fn store(e: sqlx::Error) -> ApiError {
    ApiError::internal(&e)
}

/// The issuer caches role definitions and client grants: every replica reloads it. The change
/// is committed already, so a failure here is logged, not answered: replicas then reload within
/// a minute anyway (`tenant::cache`).
async fn reload(state: &AppState, issuer: &Issuer) -> Result<(), ApiError> {
    if let Err(e) = crate::apps::service::identity_config_changed(&state.apps, &issuer.app).await {
        tracing::error!(app.slug = %issuer.app.slug, error = %e, "role change saved; replicas reload it within a minute");
    }
    Ok(())
}

async fn record(state: &AppState, issuer: &Issuer, action: &'static str, target: &str) {
    operator::record(
        &state.control,
        state.now(),
        action,
        Some(issuer.app.slug.as_str()),
        Some(target),
        serde_json::json!({}),
    )
    .await;
}

/// Define a role.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/roles", tag = "roles", params(("slug" = String, Path)),
    request_body = NewRole,
    responses((status = 201, body = RoleResponse), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_role(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    AdminJson(body): AdminJson<NewRole>,
) -> Result<Response, ApiError> {
    if !roles::valid_role_name(&body.name) {
        return Err(ApiError::validation("name: 1 to 64 of a-z 0-9 _ . -"));
    }
    let description = description(body.description.as_deref())?;
    let permissions = permissions(&body.permissions)?;
    let role = match repo::create(&issuer.identity, &body.name, &description, &permissions, state.now()).await
    {
        Ok(r) => r,
        Err(RoleError::Duplicate) => {
            return Err(ApiError::conflict("role_exists", "a role with this name exists"));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    reload(&state, &issuer).await?;
    record(&state, &issuer, "role.created", &role.name).await;
    Ok((StatusCode::CREATED, axum::Json(RoleResponse::from(role))).into_response())
}

/// The app's roles, by name.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/roles", tag = "roles", params(("slug" = String, Path), PageQuery),
    responses((status = 200, body = List<RoleResponse>), (status = 404, body = Problem)))]
pub async fn list_roles(
    Tenant { issuer, .. }: ActiveApp,
    AdminQuery(q): AdminQuery<PageQuery>,
) -> Result<axum::Json<List<RoleResponse>>, ApiError> {
    let page = Paging::<String>::parse(q.cursor.as_deref(), q.limit)?;
    let limit = u32::try_from(page.limit).unwrap_or(50);
    let rows = repo::list(&issuer.identity, page.after.as_deref(), limit).await.map_err(store)?;
    Ok(axum::Json(page.list(rows, |r| r.name.clone(), RoleResponse::from)))
}

#[utoipa::path(get, path = "/admin/v1/apps/{slug}/roles/{name}", tag = "roles",
    params(("slug" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = RoleResponse), (status = 404, body = Problem)))]
pub async fn get_role(
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
) -> Result<axum::Json<RoleResponse>, ApiError> {
    let name = params.1;
    let role = repo::get(&issuer.identity, &name)
        .await
        .map_err(store)?
        .ok_or_else(|| ApiError::not_found("role"))?;
    Ok(axum::Json(role.into()))
}

/// Change a role's description or permissions (holders' next tokens show the change).
#[utoipa::path(patch, path = "/admin/v1/apps/{slug}/roles/{name}", tag = "roles",
    params(("slug" = String, Path), ("name" = String, Path)), request_body = RolePatch,
    responses((status = 200, body = RoleResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_role(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminJson(body): AdminJson<RolePatch>,
) -> Result<axum::Json<RoleResponse>, ApiError> {
    let name = params.1;
    let description = body.description.as_deref().map(|d| description(Some(d))).transpose()?;
    let permissions = body.permissions.as_deref().map(permissions).transpose()?;
    let role =
        repo::update(&issuer.identity, &name, description.as_deref(), permissions.as_deref(), state.now())
            .await
            .map_err(store)?
            .ok_or_else(|| ApiError::not_found("role"))?;
    reload(&state, &issuer).await?;
    record(&state, &issuer, "role.updated", &role.name).await;
    Ok(axum::Json(role.into()))
}

/// Delete a role and, in the same transaction, every grant of it (the answer says how many).
#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/roles/{name}", tag = "roles",
    params(("slug" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = RoleDeleted), (status = 404, body = Problem)))]
pub async fn delete_role(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
) -> Result<axum::Json<RoleDeleted>, ApiError> {
    let name = params.1;
    let removed = repo::delete(&issuer.identity, &name)
        .await
        .map_err(store)?
        .ok_or_else(|| ApiError::not_found("role"))?;
    reload(&state, &issuer).await?;
    record(&state, &issuer, "role.deleted", &name).await;
    Ok(axum::Json(RoleDeleted {
        name,
        users_revoked: removed.users,
        clients_revoked: removed.clients,
        members_revoked: removed.members,
    }))
}

/// Records `role.granted` / `role.revoked` in the app's audit trail for each role in `changed`,
/// with `about` (the client, or the organization) beside the role.
pub(super) async fn grant_events(
    state: &AppState,
    issuer: &Issuer,
    user: Option<crate::users::UserId>,
    about: serde_json::Value,
    changed: &Changed,
) {
    for (kind, list) in [("role.granted", &changed.granted), ("role.revoked", &changed.revoked)] {
        for role in list {
            let mut data = about.clone();
            data["role"] = serde_json::json!(role);
            let event =
                crate::audit::AuditEvent::new(issuer.app.id, issuer.identity.clone(), state.now(), kind)
                    .user(user)
                    .data(data);
            state.audit.record(event).await;
        }
    }
}

/// Sets `holder`'s roles, audits each grant and revocation.
async fn set(
    state: &AppState,
    issuer: &Issuer,
    holder: Holder<'_>,
    body: &RoleGrants,
) -> Result<axum::Json<RoleGrantsResponse>, ApiError> {
    if body.roles.len() > 100 {
        return Err(ApiError::validation("roles: at most 100"));
    }
    let changed: Changed = match repo::set_roles(&issuer.identity, holder, &body.roles, state.now()).await {
        Ok(c) => c,
        Err(RoleError::Unknown(names)) => {
            return Err(ApiError::validation(format!("roles: unknown role {}", names.join(", "))));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    if matches!(holder, Holder::Client(_)) {
        reload(state, issuer).await?;
    }
    match holder {
        Holder::User(id) => grant_events(state, issuer, Some(id), serde_json::json!({}), &changed).await,
        Holder::Client(c) => {
            grant_events(state, issuer, None, serde_json::json!({"client_id": c}), &changed).await
        }
    }
    // The control plane names the client, never a user (end-user data stays in the app's store,
    // where erasure reaches it).
    let target = match holder {
        Holder::User(_) => None,
        Holder::Client(c) => Some(c.to_string()),
    };
    let slug = issuer.app.slug.as_str();
    operator::record(
        &state.control,
        state.now(),
        "roles.set",
        Some(slug),
        target.as_deref(),
        serde_json::json!({}),
    )
    .await;
    let roles = repo::roles_of(&issuer.identity, holder).await.map_err(store)?;
    Ok(axum::Json(RoleGrantsResponse { roles, granted: changed.granted, revoked: changed.revoked }))
}

/// Set a user's app-wide roles (the complete list).
#[utoipa::path(put, path = "/admin/v1/apps/{slug}/users/{id}/roles", tag = "roles",
    params(("slug" = String, Path), ("id" = String, Path)), request_body = RoleGrants,
    responses((status = 200, body = RoleGrantsResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_user_roles(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminJson(body): AdminJson<RoleGrants>,
) -> Result<axum::Json<RoleGrantsResponse>, ApiError> {
    let id: crate::users::UserId = params.1.parse().map_err(|_| ApiError::not_found("user"))?;
    crate::users::get(&issuer.identity, id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found("user"))?;
    set(&state, &issuer, Holder::User(id), &body).await
}

/// Set an OAuth client's roles (the complete list): its `client_credentials` tokens carry them.
#[utoipa::path(put, path = "/admin/v1/apps/{slug}/clients/{client_id}/roles", tag = "roles",
    params(("slug" = String, Path), ("client_id" = String, Path)), request_body = RoleGrants,
    responses((status = 200, body = RoleGrantsResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_client_roles(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminJson(body): AdminJson<RoleGrants>,
) -> Result<axum::Json<RoleGrantsResponse>, ApiError> {
    let client_id = params.1;
    if !issuer.clients.keys().any(|c| c.0 == client_id) {
        return Err(ApiError::not_found("client"));
    }
    set(&state, &issuer, Holder::Client(&client_id), &body).await
}
