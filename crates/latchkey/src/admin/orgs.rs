//! Admin API for organizations, their members, and API resources (SPEC §10).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ActiveApp, AdminJson, AdminQuery};
use super::views::{IdPageQuery, List, Paging};
use crate::audit::operator;
use crate::roles::orgs::{self, Member, Organization};
use crate::roles::repo::RoleError;
use crate::roles::resources::{self, Resource};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::users::{self, Email, UserId};
use crate::web::Tenant;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// 1 to 63 of `a-z 0-9 -`, not `select`; unique in the app.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub slug: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationPatch {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub slug: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationResponse {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Organization> for OrganizationResponse {
    fn from(o: Organization) -> Self {
        OrganizationResponse { id: o.id, slug: o.slug, name: o.name, created_at: o.created_at.0 }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// An existing user; or give `email`.
    pub user_id: Option<Uuid>,
    /// An address: its account joins at once, or (without one) an invitation is mailed that
    /// creates the account and the membership under the app's signup policy.
    #[schema(max_length = 254)]
    pub email: Option<String>,
    /// The member's roles in the organization (roles of the app), at most 100.
    #[serde(default)]
    #[schema(max_items = 100, value_type = Vec<super::roles::RoleName>)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    #[schema(max_items = 100, value_type = Vec<super::roles::RoleName>)]
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
    pub email: String,
    pub roles: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Member> for MemberResponse {
    fn from(m: Member) -> Self {
        MemberResponse { user_id: m.user_id, email: m.email, roles: m.roles, created_at: m.created_at.0 }
    }
}

/// An address without an account was invited.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberInvited {
    pub invitation_id: Uuid,
    pub email: String,
    /// The link that was mailed (shown once).
    pub link: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResource {
    /// An absolute URI (RFC 8707) without fragment, unique in the app: what tokens for it have
    /// as `aud`.
    #[schema(max_length = 512, pattern = r"^[A-Za-z][A-Za-z0-9+.-]*:[^#\s]+$")]
    pub identifier: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// The permissions this API knows (`resource:action`), at most 500.
    #[schema(max_items = 500, value_type = Vec<super::roles::Permission>)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    #[schema(max_length = 512, pattern = r"^[A-Za-z][A-Za-z0-9+.-]*:[^#\s]+$")]
    pub identifier: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    #[schema(max_items = 500, value_type = Option<Vec<super::roles::Permission>>)]
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceResponse {
    pub id: Uuid,
    pub identifier: String,
    pub name: String,
    pub permissions: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Resource> for ResourceResponse {
    fn from(r: Resource) -> Self {
        ResourceResponse {
            id: r.id,
            identifier: r.identifier,
            name: r.name,
            permissions: r.permissions.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

fn store(e: sqlx::Error) -> ApiError {
    ApiError::internal(&e)
}

fn name(n: &str) -> Result<String, ApiError> {
    let n = n.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(ApiError::validation("name: 1 to 200 characters, no control characters"));
    }
    Ok(n.to_string())
}

fn slug(s: &str) -> Result<&str, ApiError> {
    if s == "select" || Uuid::parse_str(s).is_ok() {
        // Well-formed, but the chooser's keyword (`organization=select`) or shaped like an id
        // (ids are looked up before slugs).
        return Err(ApiError::conflict(
            "slug_reserved",
            "this slug is reserved (`select`, or shaped like an id)",
        ));
    }
    if orgs::valid_slug(s) { Ok(s) } else { Err(ApiError::validation("slug: 1 to 63 of a-z 0-9 -")) }
}

fn roles_error(e: RoleError, what: &'static str) -> ApiError {
    match e {
        RoleError::Duplicate => ApiError::conflict(what, format!("{} exists", what.replace('_', " "))),
        RoleError::Unknown(names) => {
            ApiError::validation(format!("roles: unknown role {}", names.join(", ")))
        }
        RoleError::Store(e) => ApiError::internal(&e),
    }
}

async fn record(state: &AppState, issuer: &Issuer, action: &'static str, target: &str) {
    let slug = issuer.app.slug.as_str();
    operator::record(&state.control, state.now(), action, Some(slug), Some(target), serde_json::json!({}))
        .await;
}

/// An event in the app's own audit trail.
async fn event(
    state: &AppState,
    issuer: &Issuer,
    kind: &'static str,
    user: Option<UserId>,
    data: serde_json::Value,
) {
    let e = crate::audit::AuditEvent::new(issuer.app.id, issuer.identity.clone(), state.now(), kind)
        .user(user)
        .data(data);
    state.audit.record(e).await;
}

async fn organization(issuer: &Issuer, id: &str) -> Result<Organization, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("organization"))?;
    orgs::find(&issuer.identity, &id.to_string())
        .await
        .map_err(store)?
        .ok_or_else(|| ApiError::not_found("organization"))
}

#[utoipa::path(post, path = "/admin/v1/apps/{slug}/organizations", tag = "organizations", params(("slug" = String, Path)),
    request_body = NewOrganization,
    responses((status = 201, body = OrganizationResponse), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_organization(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    AdminJson(body): AdminJson<NewOrganization>,
) -> Result<Response, ApiError> {
    let (slug, name) = (slug(&body.slug)?, name(&body.name)?);
    let org = orgs::create(&issuer.identity, slug, &name, state.now())
        .await
        .map_err(|e| roles_error(e, "organization_exists"))?;
    record(&state, &issuer, "organization.created", &org.id.to_string()).await;
    event(
        &state,
        &issuer,
        "organization.created",
        None,
        serde_json::json!({"organization_id": org.id, "slug": org.slug}),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(OrganizationResponse::from(org))).into_response())
}

#[utoipa::path(get, path = "/admin/v1/apps/{slug}/organizations", tag = "organizations", params(("slug" = String, Path), IdPageQuery),
    responses((status = 200, body = List<OrganizationResponse>), (status = 404, body = Problem)))]
pub async fn list_organizations(
    Tenant { issuer, .. }: ActiveApp,
    AdminQuery(q): AdminQuery<IdPageQuery>,
) -> Result<axum::Json<List<OrganizationResponse>>, ApiError> {
    let page = Paging::<Uuid>::parse(q.cursor.as_deref(), q.limit)?;
    let rows = orgs::list(&issuer.identity, page.after, page.limit).await.map_err(store)?;
    Ok(axum::Json(page.list(rows, |o| o.id, OrganizationResponse::from)))
}

#[utoipa::path(get, path = "/admin/v1/apps/{slug}/organizations/{id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = OrganizationResponse), (status = 404, body = Problem)))]
pub async fn get_organization(
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
) -> Result<axum::Json<OrganizationResponse>, ApiError> {
    Ok(axum::Json(organization(&issuer, &params.1).await?.into()))
}

#[utoipa::path(patch, path = "/admin/v1/apps/{slug}/organizations/{id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path)), request_body = OrganizationPatch,
    responses((status = 200, body = OrganizationResponse), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_organization(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminJson(body): AdminJson<OrganizationPatch>,
) -> Result<axum::Json<OrganizationResponse>, ApiError> {
    let org = organization(&issuer, &params.1).await?;
    let new_slug = body.slug.as_deref().map(slug).transpose()?;
    let new_name = body.name.as_deref().map(name).transpose()?;
    let updated = orgs::update(&issuer.identity, org.id, new_slug, new_name.as_deref())
        .await
        .map_err(|e| roles_error(e, "organization_exists"))?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    record(&state, &issuer, "organization.updated", &org.id.to_string()).await;
    Ok(axum::Json(updated.into()))
}

#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/organizations/{id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_organization(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = organization(&issuer, &params.1).await?;
    let members = orgs::delete(&issuer.identity, org.id, state.now()).await.map_err(store)?;
    let Some(members) = members else { return Err(ApiError::not_found("organization")) };
    record(&state, &issuer, "organization.deleted", &org.id.to_string()).await;
    let data = serde_json::json!({"organization_id": org.id, "slug": org.slug, "members": members});
    event(&state, &issuer, "organization.deleted", None, data).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Members by user id (cursor-paged: organizations may have many thousands).
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/organizations/{id}/members", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path), IdPageQuery),
    responses((status = 200, body = List<MemberResponse>), (status = 404, body = Problem)))]
pub async fn list_members(
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminQuery(q): AdminQuery<IdPageQuery>,
) -> Result<axum::Json<List<MemberResponse>>, ApiError> {
    let org = organization(&issuer, &params.1).await?;
    let page = Paging::<Uuid>::parse(q.cursor.as_deref(), q.limit)?;
    let rows =
        orgs::members(&issuer.identity, org.id, page.after.map(UserId), page.limit).await.map_err(store)?;
    Ok(axum::Json(page.list(rows, |m| m.user_id.0, MemberResponse::from)))
}

/// Add a member by user id or address (an address without an account is invited: 202).
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/organizations/{id}/members", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path)), request_body = NewMember,
    responses((status = 201, body = MemberResponse), (status = 202, body = MemberInvited), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminJson(body): AdminJson<NewMember>,
) -> Result<Response, ApiError> {
    let org = organization(&issuer, &params.1).await?;
    if body.roles.len() > 100 {
        return Err(ApiError::validation("roles: at most 100"));
    }
    if let Some(r) = body.roles.iter().find(|r| !crate::roles::valid_role_name(r)) {
        return Err(ApiError::validation(format!("roles: unknown role {r}")));
    }
    let user = match (&body.user_id, &body.email) {
        (Some(id), None) => users::get(&issuer.identity, UserId(*id))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .ok_or_else(|| ApiError::validation("user_id: no such user"))?,
        (None, Some(email)) => {
            let email =
                Email::parse(email).map_err(|_| ApiError::validation("email is not an email address"))?;
            match users::find_by_email(&issuer.identity, &email).await.map_err(|e| ApiError::internal(&e))? {
                Some(u) => u,
                None => return invite(&state, &issuer, &org, &email, &body.roles).await,
            }
        }
        _ => return Err(ApiError::validation("give either user_id or email")),
    };
    let (new, changed) = orgs::add_member(&issuer.identity, org.id, user.id, &body.roles, state.now())
        .await
        .map_err(|e| roles_error(e, "member"))?;
    if new {
        event(
            &state,
            &issuer,
            "membership.added",
            Some(user.id),
            serde_json::json!({"organization_id": org.id}),
        )
        .await;
    }
    let about = serde_json::json!({"organization_id": org.id});
    super::roles::grant_events(&state, &issuer, Some(user.id), about, &changed).await;
    record(&state, &issuer, "membership.set", &org.id.to_string()).await;
    let member = MemberResponse {
        user_id: user.id,
        email: user.email,
        roles: roles_after(&body.roles),
        created_at: state.now().0,
    };
    Ok((StatusCode::CREATED, axum::Json(member)).into_response())
}

fn roles_after(roles: &[String]) -> Vec<String> {
    let mut r = roles.to_vec();
    r.sort();
    r.dedup();
    r
}

async fn invite(
    state: &AppState,
    issuer: &std::sync::Arc<Issuer>,
    org: &Organization,
    email: &Email,
    roles: &[String],
) -> Result<Response, ApiError> {
    if !issuer.app.policy.domain_allowed(email.domain()) {
        return Err(ApiError::validation(format!(
            "the app's policy does not accept addresses at {}",
            email.domain()
        )));
    }
    let roles = roles_after(roles);
    for r in &roles {
        if crate::roles::repo::get(&issuer.identity, r).await.map_err(store)?.is_none() {
            return Err(ApiError::validation(format!("roles: unknown role {r}")));
        }
    }
    let membership = crate::invitations::Membership { organization_id: org.id, roles: &roles };
    let ttl = chrono::Duration::days(7);
    let purpose = crate::invitations::Purpose::Invitation;
    let (row, link) =
        crate::invitations::create(&state.post(), issuer, purpose, email, ttl, None, Some(membership))
            .await
            .map_err(|e| ApiError::internal(&e))?;
    record(state, issuer, "invitation.created", &row.id.to_string()).await;
    let body = MemberInvited { invitation_id: row.id, email: row.email, link };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Set a member's roles in the organization (the complete list).
#[utoipa::path(patch, path = "/admin/v1/apps/{slug}/organizations/{id}/members/{user_id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path), ("user_id" = String, Path)), request_body = MemberPatch,
    responses((status = 200, body = MemberResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_member(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String, String)>,
    AdminJson(body): AdminJson<MemberPatch>,
) -> Result<axum::Json<MemberResponse>, ApiError> {
    let org = organization(&issuer, &params.1).await?;
    let user = UserId(Uuid::parse_str(&params.2).map_err(|_| ApiError::not_found("member"))?);
    if body.roles.len() > 100 {
        return Err(ApiError::validation("roles: at most 100"));
    }
    if !orgs::is_member(&issuer.identity, org.id, user).await.map_err(store)? {
        return Err(ApiError::not_found("member"));
    }
    let (_, changed) = orgs::add_member(&issuer.identity, org.id, user, &body.roles, state.now())
        .await
        .map_err(|e| roles_error(e, "member"))?;
    let about = serde_json::json!({"organization_id": org.id});
    super::roles::grant_events(&state, &issuer, Some(user), about, &changed).await;
    record(&state, &issuer, "membership.set", &org.id.to_string()).await;
    let member = orgs::members(&issuer.identity, org.id, Some(UserId(pred(user.0))), 1)
        .await
        .map_err(store)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("member"))?;
    Ok(axum::Json(member.into()))
}

/// The id just before `id` in byte order (to read one member through the paged query).
fn pred(id: Uuid) -> Uuid {
    Uuid::from_u128(id.as_u128().saturating_sub(1))
}

#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/organizations/{id}/members/{user_id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = organization(&issuer, &params.1).await?;
    let user = UserId(Uuid::parse_str(&params.2).map_err(|_| ApiError::not_found("member"))?);
    if !orgs::remove_member(&issuer.identity, org.id, user).await.map_err(store)? {
        return Err(ApiError::not_found("member"));
    }
    event(&state, &issuer, "membership.removed", Some(user), serde_json::json!({"organization_id": org.id}))
        .await;
    record(&state, &issuer, "membership.removed", &org.id.to_string()).await;
    Ok(StatusCode::NO_CONTENT)
}

fn resource_fields(
    issuer: &Issuer,
    identifier: Option<&str>,
    permissions: Option<&[String]>,
) -> Result<Option<Vec<String>>, ApiError> {
    if identifier.is_some_and(|i| !resources::valid_identifier(i)) {
        return Err(ApiError::validation(
            "identifier: an absolute URI without fragment, at most 512 characters",
        ));
    }
    // The issuer is the audience of tokens without a resource: no resource may be it.
    if identifier.is_some_and(|i| i.trim_end_matches('/') == issuer.url) {
        return Err(ApiError::validation("identifier: the issuer itself cannot be a resource"));
    }
    permissions
        .map(|p| {
            crate::roles::clean_permissions(p).map_err(|e| ApiError::validation(format!("permissions: {e}")))
        })
        .transpose()
}

#[utoipa::path(post, path = "/admin/v1/apps/{slug}/resources", tag = "organizations", params(("slug" = String, Path)),
    request_body = NewResource,
    responses((status = 201, body = ResourceResponse), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_resource(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    AdminJson(body): AdminJson<NewResource>,
) -> Result<Response, ApiError> {
    let permissions =
        resource_fields(&issuer, Some(&body.identifier), Some(&body.permissions))?.unwrap_or_default();
    let name = name(&body.name)?;
    let r = resources::create(&issuer.identity, &body.identifier, &name, &permissions, state.now())
        .await
        .map_err(|e| roles_error(e, "resource_exists"))?;
    record(&state, &issuer, "resource.created", &r.id.to_string()).await;
    Ok((StatusCode::CREATED, axum::Json(ResourceResponse::from(r))).into_response())
}

#[utoipa::path(get, path = "/admin/v1/apps/{slug}/resources", tag = "organizations", params(("slug" = String, Path), IdPageQuery),
    responses((status = 200, body = List<ResourceResponse>), (status = 404, body = Problem)))]
pub async fn list_resources(
    Tenant { issuer, .. }: ActiveApp,
    AdminQuery(q): AdminQuery<IdPageQuery>,
) -> Result<axum::Json<List<ResourceResponse>>, ApiError> {
    let page = Paging::<Uuid>::parse(q.cursor.as_deref(), q.limit)?;
    let rows = resources::list(&issuer.identity, page.after, page.limit).await.map_err(store)?;
    Ok(axum::Json(page.list(rows, |r| r.id, ResourceResponse::from)))
}

#[utoipa::path(patch, path = "/admin/v1/apps/{slug}/resources/{id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path)), request_body = ResourcePatch,
    responses((status = 200, body = ResourceResponse), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_resource(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
    AdminJson(body): AdminJson<ResourcePatch>,
) -> Result<axum::Json<ResourceResponse>, ApiError> {
    let id = Uuid::parse_str(&params.1).map_err(|_| ApiError::not_found("resource"))?;
    let permissions = resource_fields(&issuer, body.identifier.as_deref(), body.permissions.as_deref())?;
    let name = body.name.as_deref().map(name).transpose()?;
    let r = resources::update(
        &issuer.identity,
        id,
        body.identifier.as_deref(),
        name.as_deref(),
        permissions.as_deref(),
        state.now(),
    )
    .await
    .map_err(|e| roles_error(e, "resource_exists"))?
    .ok_or_else(|| ApiError::not_found("resource"))?;
    record(&state, &issuer, "resource.updated", &id.to_string()).await;
    Ok(axum::Json(r.into()))
}

#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/resources/{id}", tag = "organizations",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_resource(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&params.1).map_err(|_| ApiError::not_found("resource"))?;
    if !resources::delete(&issuer.identity, id).await.map_err(store)? {
        return Err(ApiError::not_found("resource"));
    }
    record(&state, &issuer, "resource.deleted", &id.to_string()).await;
    Ok(StatusCode::NO_CONTENT)
}
