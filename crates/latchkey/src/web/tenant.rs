//! The extractor that resolves the app named in the path (`/apps/{slug}/…`) to its live
//! [`Issuer`], so no handler repeats the "issuer or error page" preamble. Each surface names its
//! own error envelope: `Tenant` (pages), `Tenant<OAuthError>`, `Tenant<ApiError>`.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::response::IntoResponse;

use super::error::PageError;
use crate::tenant::{Issuer, IssuerCache, LoadError, Lookup};

/// The live issuer of the app in the path. A failure answers in the surface's envelope `R`:
/// a page ([`PageError`], the default), an RFC 6749 error, or admin problem details.
pub struct Tenant<R = PageError> {
    pub issuer: Arc<Issuer>,
    envelope: PhantomData<fn() -> R>,
}

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

impl From<TenantError> for PageError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::NotFound => PageError::no_app(),
            TenantError::Inactive => PageError::app_unavailable(),
            // Logged by `resolve`.
            TenantError::Failed(e) if crate::store::unavailable(&e) => PageError::store_unavailable(None),
            TenantError::Failed(_) => PageError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Something went wrong",
                "Please try again in a moment.",
            ),
        }
    }
}

impl<S, R> FromRequestParts<S> for Tenant<R>
where
    IssuerCache: FromRef<S>,
    S: Send + Sync,
    R: From<TenantError> + IntoResponse,
{
    type Rejection = R;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, R> {
        let issuer = resolve(parts, state).await?;
        Ok(Tenant { issuer, envelope: PhantomData })
    }
}
