//! Admin API for invitations (SPEC §8, `invite_only`): invite an address, list invitations with
//! the link of those pending, withdraw one. The link is mailed and returned once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ActiveApp, AdminJson, AdminQuery};
use crate::web::Tenant;

use super::views::{IdPageQuery, List, Paging};
use crate::audit::operator;
use crate::invitations::{self, Purpose};
use crate::state::AppState;
use crate::users::{self, Email};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[schema(max_length = 254, pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")]
    pub email: String,
    /// Seconds the link stays valid: 300 to 2592000 (30 days). Default 604800 (7 days).
    #[schema(minimum = 300, maximum = 2592000)]
    pub expires_in: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    pub id: Uuid,
    pub email: String,
    /// The absolute link that registers the invited address (null once used, revoked or
    /// expired).
    pub link: Option<String>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// `pending`, `used`, `revoked` or `expired`.
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub user_id: Option<crate::users::UserId>,
}

impl InvitationResponse {
    fn new(i: invitations::Invitation, link: Option<String>, now: chrono::DateTime<chrono::Utc>) -> Self {
        let status = i.status(crate::store::Ts::new(now)).as_str();
        let link = if status == "pending" { link } else { None };
        InvitationResponse {
            id: i.id,
            email: i.email,
            link,
            expires_at: i.expires_at.0,
            status: status.into(),
            created_at: i.created_at.0,
            user_id: i.user_id,
        }
    }
}

/// Invite an address (any signup policy; required under `invite_only`). The link is mailed and
/// returned once; the invited address is the one that registers.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/invitations", tag = "users", params(("slug" = String, Path)),
    request_body = NewInvitation,
    responses((status = 201, body = InvitationResponse), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_invitation(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    AdminJson(body): AdminJson<NewInvitation>,
) -> Result<Response, ApiError> {
    let email =
        Email::parse(&body.email).map_err(|_| ApiError::validation("email is not an email address"))?;
    let domain = email.domain();
    if !issuer.app.policy.domain_allowed(domain) {
        return Err(ApiError::validation(format!("the app's policy does not accept addresses at {domain}")));
    }
    let secs = body.expires_in.unwrap_or(7 * 24 * 3600);
    if !(300..=30 * 24 * 3600).contains(&secs) {
        return Err(ApiError::validation("expires_in must be between 300 and 2592000 seconds"));
    }
    if users::find_by_email(&issuer.identity, &email).await.map_err(|e| ApiError::internal(&e))?.is_some() {
        return Err(ApiError::conflict("already_registered", "this address already has an account"));
    }
    let (row, link) = invitations::create(
        &state.post(),
        &issuer,
        Purpose::Invitation,
        &email,
        chrono::Duration::seconds(i64::from(secs)),
        None,
        None,
    )
    .await
    .map_err(|e| ApiError::internal(&e))?;
    operator::record(
        &state.control,
        state.now(),
        "invitation.created",
        Some(issuer.app.slug.as_str()),
        Some(&row.id.to_string()),
        serde_json::json!({}),
    )
    .await;
    let view = InvitationResponse::new(row, Some(link), state.now().0);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Invitations, newest first, with the link of those still pending.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/invitations", tag = "users", params(("slug" = String, Path), IdPageQuery),
    responses((status = 200, body = List<InvitationResponse>), (status = 404, body = Problem)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    AdminQuery(q): AdminQuery<IdPageQuery>,
) -> Result<axum::Json<List<InvitationResponse>>, ApiError> {
    let page = Paging::<Uuid>::parse(q.cursor.as_deref(), q.limit)?;
    let rows = invitations::list(&issuer.identity, page.after, page.limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let now = state.now().0;
    Ok(axum::Json(page.list(
        rows,
        |r| r.id,
        |r| {
            let link = invitations::link_of(&state.secrets, &issuer, &r);
            InvitationResponse::new(r, link, now)
        },
    )))
}

/// Withdraw an unused invitation.
#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/invitations/{id}", tag = "users",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    Tenant { issuer, .. }: ActiveApp,
    Path(params): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&params.1).map_err(|_| ApiError::not_found("invitation"))?;
    match invitations::revoke(&issuer.identity, id, state.now()).await.map_err(|e| ApiError::internal(&e))? {
        Some(true) => {
            operator::record(
                &state.control,
                state.now(),
                "invitation.revoked",
                Some(issuer.app.slug.as_str()),
                Some(&id.to_string()),
                serde_json::json!({}),
            )
            .await;
            Ok(StatusCode::NO_CONTENT)
        }
        Some(false) => {
            Err(ApiError::conflict("invitation_closed", "the invitation was already used or revoked"))
        }
        None => Err(ApiError::not_found("invitation")),
    }
}
