//! Hosted sign-in pages under each issuer (SPEC §7): `/login`, `/signup`; password hashing;
//! CSRF; themed server-rendered HTML that works without JavaScript.

pub mod csrf;
mod handlers;
pub mod pages;
pub mod password;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{slug}/login", get(handlers::get_login).post(handlers::post_login))
        .route("/apps/{slug}/signup", get(handlers::get_signup).post(handlers::post_signup))
        .layer(DefaultBodyLimit::max(16 * 1024))
}
