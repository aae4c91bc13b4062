//! HTTP handlers of the per-app OAuth/OIDC surface.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use super::error::OAuthError;
use super::service;
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::web::form::Form;
use crate::web::tenant::TenantError;
use crate::web::{OrPage, PageError, Tenant};

/// Largest form body accepted on the OAuth endpoints.
pub const FORM_LIMIT: usize = 16 * 1024;

/// The app in the path, or an RFC 6749 error: 404 (unknown), 503 (not active), 500 (not
/// loadable).
type AppIssuer = Tenant<OAuthError>;

impl From<TenantError> for OAuthError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::NotFound => OAuthError::not_found(),
            TenantError::Inactive => OAuthError::unavailable(),
            // Logged by `resolve`.
            TenantError::Failed(e) if crate::store::unavailable(&e) => OAuthError::store_unavailable(),
            TenantError::Failed(_) => OAuthError::server_error(),
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

/// A client's request to the token, introspection or revocation endpoint: the app in the path,
/// the `Authorization` header and the strictly parsed form. [`ClientRequest::client`] then
/// authenticates the client (RFC 6749 §2.3).
pub struct ClientRequest {
    issuer: Arc<Issuer>,
    authorization: Option<String>,
    form: Form,
}

impl FromRequest<AppState> for ClientRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, OAuthError> {
        let (mut parts, body) = req.into_parts();
        let Tenant { issuer, .. } = AppIssuer::from_request_parts(&mut parts, state).await?;
        let authorization = authorization(&parts.headers)?.map(str::to_string);
        let OAuthForm(form) = OAuthForm::from_request(Request::from_parts(parts, body), state).await?;
        Ok(ClientRequest { issuer, authorization, form })
    }
}

impl ClientRequest {
    fn client(&self, secrets: &crate::crypto::SecretBox) -> Result<&crate::clients::Client, OAuthError> {
        client_auth::authenticate(&self.issuer, secrets, self.authorization.as_deref(), &self.form)
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

pub async fn get_openid_configuration(Tenant { issuer, .. }: AppIssuer) -> Response {
    json_bytes(issuer.discovery.clone(), "public, max-age=300")
}

pub async fn get_oauth_metadata(Tenant { issuer, .. }: AppIssuer) -> Response {
    json_bytes(issuer.oauth_metadata.clone(), "public, max-age=300")
}

/// JWKS. A new signing key is published as `next` one rotation before it signs, and a retired
/// one stays for its grace window; five minutes of caching fits inside both (docs/keys.md).
pub async fn get_jwks(Tenant { issuer, .. }: AppIssuer) -> Response {
    json_bytes(issuer.jwks.clone(), "public, max-age=300")
}

pub async fn post_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let client = request.client(&state.secrets)?;
    let (issuer, form) = (&request.issuer, &request.form);
    let now = state.now();
    let grant =
        form.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let response = match grant {
        "client_credentials" => {
            service::client_credentials(issuer, client, form.get("scope"), form.get("resource"), now).await?
        }
        "authorization_code" => super::code::exchange(issuer, client, form, now).await?,
        "refresh_token" => match super::code::refresh(issuer, &state.secrets, client, form, now).await {
            Ok((response, _)) => response,
            Err((err, reused_by)) => {
                if let Some(user_id) = reused_by {
                    audit(
                        &state,
                        issuer,
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
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let client = request.client(&state.secrets)?;
    let (issuer, form) = (&request.issuer, &request.form);
    if !client.token_endpoint_auth_method.is_confidential() {
        return Err(OAuthError::unauthorized_client("introspection is for confidential clients"));
    }
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let result = service::introspect(issuer, token, state.now())
        .await
        .map_err(|err| OAuthError::internal(issuer.app.slug.as_str(), "introspection", &err))?;
    Ok(no_store_json(&result))
}

pub async fn post_revoke(
    State(state): State<AppState>,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let client = request.client(&state.secrets)?;
    let (issuer, form) = (&request.issuer, &request.form);
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.now();
    let fail = |err: &(dyn std::error::Error + 'static)| {
        OAuthError::internal(issuer.app.slug.as_str(), "revocation", err)
    };
    let revoked = if token.starts_with(crate::grants::refresh::PREFIX) {
        crate::grants::refresh::revoke(&issuer.identity, token, &client.client_id, now)
            .await
            .map_err(|e| fail(&e))?
    } else {
        service::revoke(issuer, client, token, now).await.map_err(|e| fail(&e))?
    };
    if revoked {
        state
            .audit
            .record(
                crate::audit::AuditEvent::new(issuer.app.id, issuer.identity.clone(), now, "token.revoked")
                    .client(Some(&client.client_id)),
            )
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

/// `GET /authorize`: errors before the redirect URI is verified are pages, never redirects.
pub async fn get_authorize(
    State(state): State<AppState>,
    Tenant { issuer, .. }: Tenant,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let now = state.now();
    let session = match crate::web::csrf::cookie(&headers, crate::sessions::COOKIE) {
        Some(c) => crate::sessions::from_cookie(&issuer.identity, c, &issuer.app.policy.session, now)
            .await
            .or_page(&issuer)?,
        None => None,
    };
    let query = query.unwrap_or_default();
    let outcome = super::authorize::authorize(&issuer, query.as_bytes(), session.as_ref(), now).await;
    Ok(super::authorize::respond(&state, &issuer, outcome.or_page(&issuer)?))
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

/// OIDC Core §5.3: claims about the user of a live session, by scope. The access token comes
/// in the `Authorization` header (RFC 6750 §2.1) or, on POST, in a form body (§2.2), never both.
pub async fn userinfo(
    State(state): State<AppState>,
    issuer: Result<AppIssuer, OAuthError>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let issuer = match issuer {
        Ok(Tenant { issuer, .. }) => issuer,
        Err(e) => return e.into_response(),
    };
    let token = match bearer_token(&method, &headers, body) {
        Ok(Some(t)) => t,
        // §3.1: a request without any authentication information gets a bare challenge.
        Ok(None) => {
            let mut res = StatusCode::UNAUTHORIZED.into_response();
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return res;
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            return bearer_error(StatusCode::BAD_REQUEST, "invalid_request", &e.description);
        }
        Err(e) => return e.into_response(),
    };
    let now = state.now();
    match service::userinfo(&issuer, &token, now).await {
        Ok(Some(claims)) => no_store_json(&claims),
        Ok(None) => bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is not valid"),
        Err(err) => OAuthError::internal(issuer.app.slug.as_str(), "userinfo", &err).into_response(),
    }
}

/// The bearer token of a userinfo request: from the header, or from a POST form body.
fn bearer_token(
    method: &axum::http::Method,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Option<String>, OAuthError> {
    let from_header = match authorization(headers)? {
        Some(h) => match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                Some(t.trim().to_string())
            }
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
                return Err(OAuthError::invalid_request("the Bearer token is empty"));
            }
            // Another scheme carries no bearer token.
            _ => None,
        },
        None => None,
    };
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let form_body = *method == axum::http::Method::POST
        && ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded");
    let from_body = if form_body {
        let bytes = body.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::too_large()
            } else {
                OAuthError::invalid_request("unreadable body")
            }
        })?;
        let form = Form::parse(&bytes).map_err(OAuthError::invalid_request)?;
        form.get("access_token").map(str::to_string)
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("send the access token in one place only")),
        (Some(t), None) | (None, Some(t)) => Ok(Some(t)),
        (None, None) => Ok(None),
    }
}

async fn audit(
    state: &AppState,
    issuer: &Issuer,
    kind: &'static str,
    user_id: Option<crate::users::UserId>,
    client_id: Option<&str>,
    headers: &HeaderMap,
) {
    state
        .audit
        .record(
            crate::audit::AuditEvent::new(issuer.app.id, issuer.identity.clone(), state.now(), kind)
                .user(user_id)
                .client(client_id)
                .from(None, crate::web::user_agent(headers)),
        )
        .await;
}
