//! The whole HTTP surface: operations, admin API, and every app's issuer.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;
use crate::{admin, login, oidc, ops};

pub fn build(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(admin::router(state.clone()))
        .merge(oidc::router())
        .merge(login::router())
        .fallback(not_found)
        // Page errors (the hosted pages and `/authorize`) are drawn with the app's theme.
        .layer(axum::middleware::map_response_with_state(state.clone(), crate::web::error::render))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }))
        .with_state(state)
}

/// 404 in the format of the surface the path belongs to.
async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/admin/") {
        admin::ApiError::not_found("route").into_response()
    } else if path.starts_with("/apps/") {
        oidc::OAuthError::not_found().into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    }
}
