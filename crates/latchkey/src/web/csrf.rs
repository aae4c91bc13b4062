//! CSRF protection for the hosted forms: a random per-browser value in an `HttpOnly` cookie,
//! and in each form its keyed hash. A form posted from another site lacks the cookie's hash; a
//! token from another browser does not match this browser's cookie.

use subtle::ConstantTimeEq;

use crate::crypto::{SecretBox, tokens};

pub const COOKIE: &str = "lk_csrf";

pub fn new_cookie_value() -> String {
    tokens::random_b64(24)
}

pub fn form_token(secrets: &SecretBox, cookie: &str) -> String {
    secrets.hash_secret(&format!("csrf:{cookie}"))
}

pub fn check(secrets: &SecretBox, cookie: Option<&str>, form: Option<&str>) -> bool {
    match (cookie, form) {
        (Some(c), Some(f)) if !c.is_empty() => form_token(secrets, c).as_bytes().ct_eq(f.as_bytes()).into(),
        _ => false,
    }
}

/// Whether a posted form carries the CSRF token of this browser's cookie.
pub fn verify(secrets: &SecretBox, headers: &axum::http::HeaderMap, form: &super::form::Form) -> bool {
    check(secrets, cookie(headers, COOKIE), form.get("csrf"))
}

/// The `Set-Cookie` value that gives a browser its CSRF cookie (a session cookie, scoped to
/// the issuer's path).
pub fn set_cookie(value: &str, path: &str, secure: bool) -> String {
    super::cookies::SetCookie::new(COOKIE, value, path).secure(secure).to_string()
}

/// The value of cookie `name` from the request's `Cookie` headers.
pub use super::cookies::read as cookie;
