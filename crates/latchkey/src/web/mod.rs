//! The HTTP kit every surface shares: strict form parsing, cookies (one `Set-Cookie` builder),
//! CSRF tokens for the hosted forms, and the themed page renderer. Knows the tenant context
//! (for theming) and nothing of the domains behind the pages.

pub mod cookies;
pub mod csrf;
pub mod error;
pub mod form;
pub mod pages;
pub mod tenant;

pub use error::{OrPage, PageError};
pub use tenant::Tenant;

/// The request's `User-Agent`, if it is readable text.
pub fn user_agent(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok())
}
