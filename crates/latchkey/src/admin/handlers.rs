//! Admin API handlers: each translates HTTP into one call on a domain service.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::error::{ApiError, Problem};
use super::extract::{AdminJson, AdminQuery, MaybeJson};
use super::views::{
    AppPatch, AppResponse, ClientPatch, ClientResponse, DeleteAppQuery, KeyResponse, List, PageQuery, Paging,
    RotateKeysRequest,
};
use crate::apps::service::NewApp;
use crate::apps::{self, App};
use crate::clients::{self, ClientSettings};
use crate::keys;
use crate::state::AppState;

fn app_view(state: &AppState, app: App) -> AppResponse {
    AppResponse::new(app, &state.config.public_base())
}

/// Create an app. It starts `pending`; provisioning continues in the background.
#[utoipa::path(post, path = "/admin/v1/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, body = AppResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_app(
    State(state): State<AppState>,
    AdminJson(body): AdminJson<NewApp>,
) -> Result<Response, ApiError> {
    let app = apps::service::create(&state.apps, body).await?;
    Ok((StatusCode::CREATED, axum::Json(app_view(&state, app))).into_response())
}

/// List apps, ordered by slug.
#[utoipa::path(get, path = "/admin/v1/apps", tag = "apps", params(PageQuery),
    responses((status = 200, body = List<AppResponse>)))]
pub async fn list_apps(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<PageQuery>,
) -> Result<axum::Json<List<AppResponse>>, ApiError> {
    let page = Paging::<String>::parse(q.cursor.as_deref(), q.limit)?;
    let apps = apps::service::list(&state.apps, page.after.as_deref(), page.limit).await?;
    Ok(axum::Json(page.list(apps, |a| a.slug.to_string(), |a| app_view(&state, a))))
}

/// Get one app: status, failure reason, issuer and configuration (never secrets).
#[utoipa::path(get, path = "/admin/v1/apps/{slug}", tag = "apps", params(("slug" = String, Path)),
    responses((status = 200, body = AppResponse), (status = 404, body = Problem)))]
pub async fn get_app(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<AppResponse>, ApiError> {
    Ok(axum::Json(app_view(&state, apps::service::get(&state.apps, &slug).await?)))
}

/// Change display_name, branding, policy, smtp, tokens or signing_alg with a JSON merge patch
/// (RFC 7396). Takes effect at once; a new signing_alg applies from the next key rotation.
#[utoipa::path(patch, path = "/admin/v1/apps/{slug}", tag = "apps", params(("slug" = String, Path)),
    request_body(content = AppPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = AppResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_app(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    actor: Option<axum::Extension<super::auth::Actor>>,
    AdminJson(patch): AdminJson<serde_json::Value>,
) -> Result<axum::Json<AppResponse>, ApiError> {
    let actor = actor.map(|a| a.0.0).unwrap_or_else(|| "unknown".into());
    Ok(axum::Json(app_view(&state, apps::service::update(&state.apps, &slug, patch, &actor).await?)))
}

/// Delete an app's configuration; its identity data stays unless `erase_data=true`.
#[utoipa::path(delete, path = "/admin/v1/apps/{slug}", tag = "apps", params(("slug" = String, Path), DeleteAppQuery),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_app(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    AdminQuery(q): AdminQuery<DeleteAppQuery>,
) -> Result<StatusCode, ApiError> {
    apps::service::delete(&state.apps, &slug, q.erase_data).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Provision (again) a failed or disabled app.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/enable", tag = "apps", params(("slug" = String, Path)),
    responses((status = 202, body = AppResponse), (status = 404, body = Problem)))]
pub async fn enable_app(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let app = apps::service::enable(&state.apps, &slug).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(app_view(&state, app))).into_response())
}

/// Stop serving the app's issuer; identity data is untouched.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/disable", tag = "apps", params(("slug" = String, Path)),
    responses((status = 202, body = AppResponse), (status = 404, body = Problem)))]
pub async fn disable_app(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let app = apps::service::disable(&state.apps, &slug).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(app_view(&state, app))).into_response())
}

/// Register a client. `client_secret` is in this response only.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/clients", tag = "clients", params(("slug" = String, Path)),
    request_body = ClientSettings,
    responses((status = 201, body = ClientResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_client(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    AdminJson(body): AdminJson<ClientSettings>,
) -> Result<Response, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    let (client, secret) =
        clients::service::create(&state.control, &state.secrets, app.id, body, state.now()).await?;
    client_changed(&state, &slug, "client.created", &client.client_id, serde_json::json!({})).await;
    let view = ClientResponse::new(client, secret.map(|s| s.expose_secret().to_string()));
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// List an app's clients.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/clients", tag = "clients", params(("slug" = String, Path), PageQuery),
    responses((status = 200, body = List<ClientResponse>), (status = 404, body = Problem)))]
pub async fn list_clients(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    AdminQuery(q): AdminQuery<PageQuery>,
) -> Result<axum::Json<List<ClientResponse>>, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    let page = Paging::<String>::parse(q.cursor.as_deref(), q.limit)?;
    let list = clients::service::list(&state.control, app.id, page.after.as_deref(), page.limit).await?;
    Ok(axum::Json(page.list(list, |c| c.client_id.0.clone(), |c| ClientResponse::new(c, None))))
}

#[utoipa::path(get, path = "/admin/v1/apps/{slug}/clients/{client_id}", tag = "clients",
    params(("slug" = String, Path), ("client_id" = String, Path)),
    responses((status = 200, body = ClientResponse), (status = 404, body = Problem)))]
pub async fn get_client(
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<axum::Json<ClientResponse>, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    let client = clients::service::get(&state.control, app.id, &client_id).await?;
    Ok(axum::Json(ClientResponse::new(client, None)))
}

/// Change a client with a JSON merge patch (RFC 7396).
#[utoipa::path(patch, path = "/admin/v1/apps/{slug}/clients/{client_id}", tag = "clients",
    params(("slug" = String, Path), ("client_id" = String, Path)),
    request_body(content = ClientPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ClientResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_client(
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
    actor: Option<axum::Extension<super::auth::Actor>>,
    AdminJson(patch): AdminJson<serde_json::Value>,
) -> Result<axum::Json<ClientResponse>, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    let client = clients::service::get(&state.control, app.id, &client_id).await?;
    let (client, changes) = clients::service::patch(&state.control, client, &patch, state.now()).await?;
    let actor = actor.map(|a| a.0.0).unwrap_or_else(|| "unknown".into());
    let data = serde_json::json!({"actor": actor, "changes": changes});
    client_changed(&state, &slug, "client.updated", &client_id, data).await;
    Ok(axum::Json(ClientResponse::new(client, None)))
}

/// After any change to a client: issuers reload it at once, and the operator audit records it.
async fn client_changed(
    state: &AppState,
    slug: &str,
    kind: &'static str,
    client_id: &str,
    data: serde_json::Value,
) {
    state.changes.touch(slug);
    crate::audit::operator::record(&state.control, state.now(), kind, Some(slug), Some(client_id), data)
        .await;
}

#[utoipa::path(delete, path = "/admin/v1/apps/{slug}/clients/{client_id}", tag = "clients",
    params(("slug" = String, Path), ("client_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_client(
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    clients::service::delete(&state.control, app.id, &client_id, state.now()).await?;
    client_changed(&state, &slug, "client.deleted", &client_id, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a confidential client's secret; the old secret stops working at once.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/clients/{client_id}/secret", tag = "clients",
    params(("slug" = String, Path), ("client_id" = String, Path)),
    responses((status = 200, body = ClientResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<axum::Json<ClientResponse>, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    let client = clients::service::get(&state.control, app.id, &client_id).await?;
    let (client, secret) =
        clients::service::rotate_secret(&state.control, &state.secrets, client, state.now()).await?;
    client_changed(&state, &slug, "client.secret_rotated", &client_id, serde_json::json!({})).await;
    Ok(axum::Json(ClientResponse::new(client, Some(secret.expose_secret().to_string()))))
}

/// Signing keys and their states.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/keys", tag = "keys", params(("slug" = String, Path)),
    responses((status = 200, body = List<KeyResponse>), (status = 404, body = Problem)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<List<KeyResponse>>, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    let now = state.now();
    let keys = keys::service::list(&state.control, app.id).await?;
    Ok(axum::Json(List { items: keys.iter().map(|k| KeyResponse::new(k, now)).collect(), next_cursor: None }))
}

/// Switch signing to a new key; the previous key stays in the JWKS for the grace window.
#[utoipa::path(post, path = "/admin/v1/apps/{slug}/keys/rotate", tag = "keys", params(("slug" = String, Path)),
    request_body(content = Option<RotateKeysRequest>),
    responses((status = 200, body = List<KeyResponse>), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn rotate_keys(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    MaybeJson(body): MaybeJson<RotateKeysRequest>,
) -> Result<axum::Json<List<KeyResponse>>, ApiError> {
    let grace = body.and_then(|b| b.grace_seconds);
    let keys = apps::service::rotate_keys(&state.apps, &slug, grace).await?;
    let now = state.now();
    Ok(axum::Json(List { items: keys.iter().map(|k| KeyResponse::new(k, now)).collect(), next_cursor: None }))
}

/// The app's own health: its identity store, mail transport and signing key, each `ok`,
/// `degraded` or `down` with a reason (SPEC §12). Always 200 for an app that exists.
#[utoipa::path(get, path = "/admin/v1/apps/{slug}/health", tag = "apps", params(("slug" = String, Path)),
    responses((status = 200, body = crate::ops::health::Health), (status = 404, body = Problem)))]
pub async fn app_health(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<crate::ops::health::Health>, ApiError> {
    let app = apps::service::get(&state.apps, &slug).await?;
    Ok(axum::Json(crate::ops::health::of_app(&state.issuers, &state.config, &app).await))
}
