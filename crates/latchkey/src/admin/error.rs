//! RFC 9457 problem details: every admin API error is built here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::apps::AppError;
use crate::clients::ClientError;
use crate::keys::KeyError;

/// An RFC 9457 problem document. `code` is stable; `detail` is for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:latchkey:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError { status, code, title, detail: detail.into() }
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a valid admin bearer token is required",
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", format!("no such {what}"))
    }
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Invalid request", detail)
    }
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", "Malformed request", detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this path does not take that method",
        )
    }
    /// An unexpected failure, logged here, once: a 503 when a store is out of reach (SPEC
    /// §5), otherwise a 500 that says nothing more.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        if crate::store::unavailable(cause) {
            tracing::warn!(error = %cause, "admin request: store unavailable");
            return Self::unavailable();
        }
        tracing::error!(error = %cause, "admin request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "internal error")
    }

    /// A store the request needs is out of reach; try again later.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "Service unavailable",
            "a store this request needs cannot be reached; try again shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:latchkey:problem:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"latchkey-admin\""));
        }
        res
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => ApiError::not_found("app"),
            AppError::SlugTaken => ApiError::conflict("slug_taken", "an app with this slug already exists"),
            AppError::Invalid(d) => ApiError::validation(d),
            AppError::Conflict(d) => ApiError::conflict("conflict", d),
            other => ApiError::internal(&other),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotFound => ApiError::not_found("client"),
            ClientError::Invalid(d) => ApiError::validation(d),
            other => ApiError::internal(&other),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        ApiError::internal(&e)
    }
}
