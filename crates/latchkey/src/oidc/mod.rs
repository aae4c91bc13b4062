//! The per-app OAuth 2.0 / OpenID Connect surface under `{PUBLIC_URL}/apps/{slug}` (SPEC §5):
//! discovery, JWKS, authorize, token, userinfo, introspection, revocation. Uses `apps`, `clients`, `keys`; none of
//! them uses this module.

pub mod authorize;
mod client_auth;
mod code;
mod cors;
mod error;
mod handlers;
pub mod service;

pub use error::OAuthError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    let r = |m: axum::routing::MethodRouter<AppState>| m.fallback(handlers::method_not_allowed);
    Router::new()
        .route(
            "/apps/{slug}/.well-known/openid-configuration",
            r(cors::get(handlers::get_openid_configuration)),
        )
        .route(
            "/apps/{slug}/.well-known/oauth-authorization-server",
            r(cors::get(handlers::get_oauth_metadata)),
        )
        // RFC 8414 §3.1: for an issuer with a path, the well-known segment comes first.
        .route(
            "/.well-known/oauth-authorization-server/apps/{slug}",
            r(cors::get(handlers::get_oauth_metadata)),
        )
        .route("/apps/{slug}/jwks", r(cors::get(handlers::get_jwks)))
        .route("/apps/{slug}/authorize", r(get(handlers::get_authorize)))
        .route("/apps/{slug}/userinfo", r(cors::get_post(handlers::userinfo)))
        .route("/apps/{slug}/token", r(cors::post(handlers::post_token)))
        .route("/apps/{slug}/introspect", r(post(handlers::post_introspect)))
        .route("/apps/{slug}/revoke", r(cors::post(handlers::post_revoke)))
        .route("/apps/{slug}/{*rest}", axum::routing::any(handlers::not_found))
        .layer(DefaultBodyLimit::max(handlers::FORM_LIMIT))
}
