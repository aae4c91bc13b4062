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

pub fn set_cookie(value: &str, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path={path}; HttpOnly; SameSite=Lax{secure}")
}

/// The value of cookie `name` from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
