//! Hosted pages under each issuer (SPEC §7): `/login`, `/signup`, `/magic-link`,
//! `/reset-password`, `/verify-email`, `/account`, `/logout`, and the upstream providers'
//! `/oauth/{provider}/start|callback`;
//! password hashing;
//! CSRF; themed server-rendered HTML that works without JavaScript.

mod account;
mod email;
mod handlers;
mod mfa_pages;
mod orgs;
mod signup;
mod steps;
mod upstream;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{slug}/login", get(handlers::get_login).post(handlers::post_login))
        .route("/apps/{slug}/signup", get(signup::get_signup).post(signup::post_signup))
        .route("/apps/{slug}/magic-link", get(email::get_magic_link).post(email::post_magic_link))
        .route("/apps/{slug}/reset-password", get(email::get_reset_password).post(email::post_reset_password))
        .route("/apps/{slug}/verify-email", get(email::get_verify_email).post(account::post_verify_email))
        .route("/apps/{slug}/continue", get(steps::get_continue).post(steps::post_continue))
        .route("/apps/{slug}/mfa", get(steps::get_continue).post(steps::post_continue))
        .route("/apps/{slug}/account", get(account::get_account))
        .route("/apps/{slug}/account/profile", post(account::post_profile))
        .route("/apps/{slug}/account/password", post(account::post_password))
        .route("/apps/{slug}/account/mfa/setup", post(mfa_pages::post_setup))
        .route("/apps/{slug}/account/mfa/confirm", post(mfa_pages::post_confirm))
        .route("/apps/{slug}/account/mfa/recovery-codes", post(mfa_pages::post_recovery_codes))
        .route("/apps/{slug}/account/mfa/remove", post(mfa_pages::post_remove))
        .route("/apps/{slug}/account/sessions/{sid}/revoke", post(account::post_revoke_session))
        .route("/apps/{slug}/account/logout-all", post(account::post_logout_all))
        .route("/apps/{slug}/logout", get(account::logout).post(account::logout))
        .route("/apps/{slug}/organization", get(orgs::get_chooser).post(orgs::post_chooser))
        .route("/apps/{slug}/oauth/{provider}/start", get(upstream::start))
        .route("/apps/{slug}/oauth/{provider}/callback", get(upstream::callback).post(upstream::callback))
        .route("/apps/{slug}/account/identities/link", post(upstream::post_link))
        .route("/apps/{slug}/account/identities/unlink", post(upstream::post_unlink))
        .layer(DefaultBodyLimit::max(16 * 1024))
}
