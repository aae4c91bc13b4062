//! HTTP handlers of the per-app OAuth/OIDC surface.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use super::error::OAuthError;
use super::service;
use crate::state::AppState;
use crate::tenant::{Issuer, Lookup};
use crate::web::form::Form;

/// Largest form body accepted on the OAuth endpoints.
pub const FORM_LIMIT: usize = 16 * 1024;

/// Resolves the app's issuer or answers 404 (unknown) / 503 (not active).
async fn issuer(state: &AppState, slug: &str) -> Result<Arc<Issuer>, OAuthError> {
    match state.issuers.lookup(slug).await {
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
        "authorization_code" => super::code::exchange(&issuer, client, &form, now).await?,
        "refresh_token" => match super::code::refresh(&issuer, &state.secrets, client, &form, now).await {
            Ok((response, _)) => response,
            Err((err, reused_by)) => {
                if let Some(user_id) = reused_by {
                    audit(
                        &state,
                        &issuer,
                        "refresh.reuse_detected",
                        Some(user_id),
                        Some(&client.client_id),
                        &headers,
                    )
                    .await;
                }
                return Err(err);
            }
        },
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
    let fail = |err: sqlx::Error| {
        tracing::error!(app.slug = %slug, error = %err, "revocation failed");
        OAuthError::server_error()
    };
    let revoked = if token.starts_with(crate::grants::refresh::PREFIX) {
        crate::grants::refresh::revoke(&issuer.identity, token, &client.client_id, now).await.map_err(fail)?
    } else {
        service::revoke(&issuer, client, token, now).await.map_err(fail)?
    };
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

pub async fn get_authorize(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let issuer = match state.issuers.lookup(&slug).await {
        Ok(Lookup::Active(i)) => i,
        Ok(Lookup::Inactive) => {
            return state.pages.message(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "Unavailable",
                "Sign-in for this application is not available right now.",
            );
        }
        Ok(Lookup::NotFound) => {
            return state.pages.message(
                StatusCode::NOT_FOUND,
                None,
                "Not found",
                "There is no application at this address.",
            );
        }
        Err(err) => {
            tracing::error!(app.slug = %slug, error = %err, "issuer could not be loaded");
            return state.pages.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Something went wrong",
                "Please try again in a moment.",
            );
        }
    };
    let now = state.now();
    let fail = |e: &dyn std::fmt::Display| {
        tracing::error!(app.slug = %slug, error = %e, "authorization failed");
        state.pages.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&issuer.app),
            "Something went wrong",
            "Please try again in a moment.",
        )
    };
    let session = match crate::web::csrf::cookie(&headers, crate::sessions::COOKIE) {
        Some(c) => {
            match crate::sessions::from_cookie(&issuer.identity, c, &issuer.app.policy.session, now).await {
                Ok(s) => s,
                Err(e) => return fail(&e),
            }
        }
        None => None,
    };
    match super::authorize::authorize(&issuer, query.unwrap_or_default().as_bytes(), session.as_ref(), now)
        .await
    {
        Ok(outcome) => super::authorize::respond(&state, &issuer, &slug, outcome),
        Err(e) => fail(&e),
    }
}

/// RFC 6750 error for the userinfo endpoint.
fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut res = (status, axum::Json(serde_json::json!({"error": error, "error_description": description})))
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// OIDC Core §5.3: claims about the user of a live session, by scope.
pub async fn userinfo(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let issuer = match issuer(&state, &slug).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let token = match authorization(&headers) {
        Ok(Some(h)) => match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim().to_string(),
            _ => {
                return bearer_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request",
                    "use a Bearer access token",
                );
            }
        },
        Ok(None) => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "a Bearer access token is required",
            );
        }
        Err(e) => return e.into_response(),
    };
    let now = state.now();
    match service::userinfo(&issuer, &token, now).await {
        Ok(Some(claims)) => no_store_json(&claims),
        Ok(None) => bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is not valid"),
        Err(err) => {
            tracing::error!(app.slug = %slug, error = %err, "userinfo failed");
            OAuthError::server_error().into_response()
        }
    }
}

async fn audit(
    state: &AppState,
    issuer: &Issuer,
    kind: &'static str,
    user_id: Option<uuid::Uuid>,
    client_id: Option<&str>,
    headers: &HeaderMap,
) {
    state
        .audit
        .record(crate::audit::AuditEvent {
            app_id: issuer.app.id,
            store: issuer.identity.clone(),
            time: state.now(),
            kind,
            user_id,
            client_id: client_id.map(str::to_string),
            ip: None,
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
            data: serde_json::json!({}),
        })
        .await;
}
