//! Extractors whose rejections are problem details rather than axum's plain text.

use axum::extract::rejection::JsonRejection;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::tenant::{Issuer, IssuerCache};
use crate::users::UserId;
use crate::web::tenant::{Tenant, TenantError};

/// A JSON body (`application/json` or any `+json` type).
pub struct AdminJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AdminJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            // Every body of this API is an object (serde would also read a struct from an array).
            Ok(axum::Json(v)) if !v.is_object() => {
                Err(ApiError::validation("the body must be a JSON object"))
            }
            Ok(axum::Json(mut v)) => {
                integral_numbers(&mut v);
                serde_json::from_value(v).map(AdminJson).map_err(|e| ApiError::validation(e.to_string()))
            }
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::validation(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::malformed(e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send a JSON body with Content-Type: application/json",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "the request body is larger than 64 KiB",
            )),
            Err(e) => Err(ApiError::malformed(e.body_text())),
        }
    }
}

/// JSON has one number type: `556.0` is the integer 556 (as JSON Schema says), so integral
/// numbers written with a fraction are made integers before typed fields see them.
fn integral_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            // Below 2^53 every integer is exactly representable, so nothing is rounded.
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0) {
                let i = f as i64;
                *v = Value::from(i);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Query parameters.
pub struct AdminQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AdminQuery<T> {
    type Rejection = ApiError;

    /// An unknown or repeated parameter, or a value of the wrong type, is a 400.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(raw)
            .map(AdminQuery)
            .map_err(|e| ApiError::malformed(format!("query string: {e}")))
    }
}

/// An optional JSON body: an empty body or `null` is `None`.
pub struct MaybeJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Payload too large",
                    "the request body is larger than 64 KiB",
                )
            } else {
                ApiError::malformed("unreadable body")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        // `null` is no body too.
        let parsed = serde_json::from_slice::<serde_json::Value>(&bytes).and_then(|mut v| {
            integral_numbers(&mut v);
            serde_json::from_value::<Option<T>>(v)
        });
        match parsed {
            Ok(v) => Ok(MaybeJson(v)),
            Err(e) if e.is_data() => Err(ApiError::validation(e.to_string())),
            Err(e) => Err(ApiError::malformed(e.to_string())),
        }
    }
}

/// The active app of the path's `{slug}`, with its identity store ready: 404 when there is no
/// such app, 409 when it is not active.
pub type ActiveApp = Tenant<ApiError>;

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::NotFound => ApiError::not_found("app"),
            TenantError::Inactive => ApiError::conflict("app_not_active", "the app is not active"),
            TenantError::Failed(e) => ApiError::internal(&e),
        }
    }
}

/// The active app of `{slug}` and the end user `{id}` named in the path (404 when `{id}` is not
/// a user id; whether the user exists is the handler's question).
pub struct AppUser {
    pub issuer: Arc<Issuer>,
    pub id: UserId,
}

impl<S> FromRequestParts<S> for AppUser
where
    IssuerCache: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Tenant { issuer, .. } = ActiveApp::from_request_parts(parts, state).await?;
        let params =
            RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found("user"))?;
        let id = params
            .iter()
            .find(|(k, _)| *k == "id")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(AppUser { issuer, id })
    }
}
