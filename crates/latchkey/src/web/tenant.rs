//! The extractor that resolves the app named in the path (`/apps/{slug}/…`) to its live
//! [`Issuer`], so no handler repeats the "issuer or error page" preamble. Pages use [`Tenant`]
//! (a [`PageError`] otherwise); the OAuth surface calls [`resolve`] and answers in RFC 6749.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::error::PageError;
use crate::tenant::{Issuer, IssuerCache, LoadError, Lookup};

/// The live issuer of the app in the path.
pub struct Tenant(pub Arc<Issuer>);

/// Why the app in the path cannot be served.
#[derive(Debug)]
pub enum TenantError {
    /// No app by that slug (or no slug in the path).
    NotFound,
    /// The app exists but is not active.
    Inactive,
    /// Its issuer could not be loaded.
    Failed(LoadError),
}

/// The issuer of the app named by the `slug` path parameter.
pub async fn resolve<S>(parts: &mut Parts, state: &S) -> Result<Arc<Issuer>, TenantError>
where
    IssuerCache: FromRef<S>,
    S: Send + Sync,
{
    let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| TenantError::NotFound)?;
    let slug = params.iter().find(|(k, _)| *k == "slug").map(|(_, v)| v).ok_or(TenantError::NotFound)?;
    match IssuerCache::from_ref(state).lookup(slug).await {
        Ok(Lookup::Active(i)) => Ok(i),
        Ok(Lookup::Inactive) => Err(TenantError::Inactive),
        Ok(Lookup::NotFound) => Err(TenantError::NotFound),
        Err(e) => {
            tracing::error!(app.slug = slug, error = %e, "issuer could not be loaded");
            Err(TenantError::Failed(e))
        }
    }
}

impl<S> FromRequestParts<S> for Tenant
where
    IssuerCache: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        match resolve(parts, state).await {
            Ok(i) => Ok(Tenant(i)),
            Err(TenantError::NotFound) => Err(PageError::no_app()),
            Err(TenantError::Inactive) => Err(PageError::app_unavailable()),
            Err(TenantError::Failed(_)) => Err(PageError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Something went wrong",
                "Please try again in a moment.",
            )),
        }
    }
}
