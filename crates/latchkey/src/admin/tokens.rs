//! Operator tokens of the admin API: create (the token is shown once), list with last use,
//! revoke. Every change lands in the operator audit.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Actor;
use super::error::{ApiError, Problem};
use super::extract::AdminJson;
use super::views::List;
use crate::audit::operator;
use crate::crypto::tokens;
use crate::operators::{self, OperatorError, OperatorToken};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1–64 letters, digits, spaces, `.`, `_` or `-`; unique.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// When the token last authenticated a request (to the minute); null if never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The bearer token: only in the response that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<OperatorToken> for TokenResponse {
    fn from(t: OperatorToken) -> Self {
        TokenResponse {
            id: t.id,
            name: t.name,
            created_at: t.created_at.0,
            last_used_at: t.last_used_at.map(|t| t.0),
            token: None,
        }
    }
}

impl From<OperatorError> for ApiError {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::NameTaken => ApiError::conflict("name_taken", e.to_string()),
            OperatorError::LastToken => ApiError::conflict("last_token", e.to_string()),
            OperatorError::Invalid(d) => ApiError::validation(d),
            OperatorError::NotFound => ApiError::not_found("token"),
            OperatorError::Store(_) => ApiError::internal(&e),
        }
    }
}

/// Create a named operator token. The token is in this response only; only its hash is kept.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = TokenResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(
    State(state): State<AppState>,
    actor: Option<axum::Extension<Actor>>,
    AdminJson(body): AdminJson<NewToken>,
) -> Result<Response, ApiError> {
    let token = tokens::new_secret(tokens::ADMIN_TOKEN_PREFIX);
    let now = state.now();
    let stored =
        operators::repo::create(&state.control, &body.name, &tokens::sha256_hex(&token), now).await?;
    let data = serde_json::json!({"name": stored.name, "actor": actor_name(actor)});
    operator::record(&state.control, now, "token.created", None, Some(&stored.id.to_string()), data).await;
    let mut view = TokenResponse::from(stored);
    view.token = Some(token.expose_secret().to_string());
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// List stored operator tokens with their last use (never the tokens). `LATCHKEY_ADMIN_TOKEN`
/// is not stored and not listed.
#[utoipa::path(get, path = "/admin/v1/tokens", tag = "tokens",
    responses((status = 200, body = List<TokenResponse>)))]
pub async fn list_tokens(State(state): State<AppState>) -> Result<axum::Json<List<TokenResponse>>, ApiError> {
    let items = operators::repo::list(&state.control).await?.into_iter().map(TokenResponse::from).collect();
    Ok(axum::Json(List { items, next_cursor: None }))
}

/// Revoke an operator token: it stops working at once, on every replica. The last stored
/// token cannot be revoked unless `LATCHKEY_ADMIN_TOKEN` is set (409 `last_token`).
#[utoipa::path(delete, path = "/admin/v1/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    actor: Option<axum::Extension<Actor>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Ok(id) = Uuid::parse_str(&id) else { return Err(ApiError::not_found("token")) };
    let keep_none = state.admin_tokens.has_configured();
    let revoked = operators::repo::revoke(&state.control, id, keep_none).await?;
    let data = serde_json::json!({"name": revoked.name, "actor": actor_name(actor)});
    operator::record(&state.control, state.now(), "token.revoked", None, Some(&id.to_string()), data).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Which token made the change, for the operator audit (never the token itself).
fn actor_name(actor: Option<axum::Extension<Actor>>) -> String {
    actor.map(|a| a.0.0).unwrap_or_else(|| "unknown".into())
}
