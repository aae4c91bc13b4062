//! HTTP handlers of the per-app OAuth/OIDC surface.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use super::error::OAuthError;
use super::form::Form;
use super::issuer::{Issuer, Lookup};
use super::service;
use crate::app::AppState;

/// Largest form body accepted on the OAuth endpoints.
pub const FORM_LIMIT: usize = 16 * 1024;

/// Resolves the app's issuer or answers 404 (unknown) / 503 (not active).
async fn issuer(state: &AppState, slug: &str) -> Result<Arc<Issuer>, OAuthError> {
    match state.issuers.lookup(state, slug).await {
        Ok(Lookup::Active(i)) => Ok(i),
        Ok(Lookup::Inactive) => Err(OAuthError::unavailable()),
        Ok(Lookup::NotFound) => Err(OAuthError::not_found()),
        Err(err) => {
            tracing::error!(app.slug = slug, error = %err, "issuer could not be loaded");
            Err(OAuthError::server_error())
        }
    }
}

/// A strictly parsed form body; every failure is an RFC 6749 error.
pub struct OAuthForm(pub Form);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OAuthError> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::too_large()
            } else {
                OAuthError::invalid_request("unreadable body")
            }
        })?;
        Form::parse(&bytes).map(OAuthForm).map_err(OAuthError::invalid_request)
    }
}

fn json_bytes(body: Bytes, cache: &'static str) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn no_store_json<T: serde::Serialize>(value: &T) -> Response {
    let mut res = axum::Json(value).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn authorization(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("Authorization header is repeated"));
    }
    first
        .map(|v| v.to_str().map_err(|_| OAuthError::invalid_request("Authorization header is not ASCII")))
        .transpose()
}

pub async fn get_openid_configuration(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, OAuthError> {
    let issuer = issuer(&state, &slug).await?;
    Ok(json_bytes(issuer.discovery.clone(), "public, max-age=300"))
}

pub async fn get_oauth_metadata(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, OAuthError> {
    let issuer = issuer(&state, &slug).await?;
    Ok(json_bytes(issuer.oauth_metadata.clone(), "public, max-age=300"))
}

/// JWKS. A new signing key is published as `next` one rotation before it signs, and a retired
/// one stays for its grace window; five minutes of caching fits inside both (docs/keys.md).
pub async fn get_jwks(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, OAuthError> {
    let issuer = issuer(&state, &slug).await?;
    Ok(json_bytes(issuer.jwks.clone(), "public, max-age=300"))
}

pub async fn post_token(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, OAuthError> {
    let issuer = issuer(&state, &slug).await?;
    let client = client_auth::authenticate(&issuer, &state.secrets, authorization(&headers)?, &form)?;
    let now = state.now();
    let grant =
        form.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let response = match grant {
        "client_credentials" => service::client_credentials(&issuer, client, form.get("scope"), now).await?,
        other => {
            return Err(OAuthError::unsupported_grant_type(format!("grant_type {other:?} is not supported")));
        }
    };
    Ok(no_store_json(&response))
}

pub async fn post_introspect(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, OAuthError> {
    let issuer = issuer(&state, &slug).await?;
    let client = client_auth::authenticate(&issuer, &state.secrets, authorization(&headers)?, &form)?;
    if !client.token_endpoint_auth_method.is_confidential() {
        return Err(OAuthError::unauthorized_client("introspection is for confidential clients"));
    }
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let result = service::introspect(&issuer, token, state.now()).await.map_err(|err| {
        tracing::error!(app.slug = %slug, error = %err, "introspection failed");
        OAuthError::server_error()
    })?;
    Ok(no_store_json(&result))
}

pub async fn post_revoke(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, OAuthError> {
    let issuer = issuer(&state, &slug).await?;
    let client = client_auth::authenticate(&issuer, &state.secrets, authorization(&headers)?, &form)?;
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.now();
    let revoked = service::revoke(&issuer, client, token, now).await.map_err(|err| {
        tracing::error!(app.slug = %slug, error = %err, "revocation failed");
        OAuthError::server_error()
    })?;
    if revoked {
        state
            .audit
            .record(crate::audit::AuditEvent {
                app_id: issuer.app.id,
                store: issuer.identity.clone(),
                time: now,
                kind: "token.revoked",
                user_id: None,
                client_id: Some(client.client_id.clone()),
                ip: None,
                user_agent: None,
                data: serde_json::json!({}),
            })
            .await;
    }
    // RFC 7009 §2.2: 200 whether or not the token was valid.
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response())
}

pub async fn method_not_allowed() -> OAuthError {
    OAuthError::method_not_allowed()
}

pub async fn not_found() -> OAuthError {
    OAuthError::not_found()
}
