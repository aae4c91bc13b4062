//! The page-error envelope of the hosted pages (beside `oidc::OAuthError` and the admin API's
//! problem details): a themed message page with a heading and a sentence. A handler returns a
//! [`PageError`]; [`render`], a response layer on the pages' router, draws it with the app's
//! theme. An internal error says only "Something went wrong"; its cause is logged once, here.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::pages::Pages;
use crate::apps::App;
use crate::tenant::Issuer;

/// A page to answer with instead of the one asked for.
pub struct PageError(Kind);

enum Kind {
    /// A themed message page, drawn by [`render`].
    Message(Message),
    /// A page already rendered by the handler's surface (a form shown again with its error).
    Rendered(Box<Response>),
}

#[derive(Clone)]
struct Message {
    status: StatusCode,
    /// Whose theme the page wears (none when the app itself is unknown).
    app: Option<Box<App>>,
    heading: &'static str,
    message: Cow<'static, str>,
}

impl PageError {
    pub fn new(
        status: StatusCode,
        app: Option<&App>,
        heading: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        PageError(Kind::Message(Message {
            status,
            app: app.cloned().map(Box::new),
            heading,
            message: message.into(),
        }))
    }

    /// A page the surface rendered itself (a form again, with the message beside its field).
    pub fn rendered(page: Response) -> Self {
        PageError(Kind::Rendered(Box::new(page)))
    }

    /// No app at this address.
    pub fn no_app() -> Self {
        PageError::new(StatusCode::NOT_FOUND, None, "Not found", "There is no application at this address.")
    }

    /// The app exists but does not serve sign-in now (disabled, failed, provisioning).
    pub fn app_unavailable() -> Self {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Unavailable",
            "Sign-in for this application is not available right now.",
        )
    }

    /// The app's identity store (or another store) is out of reach: a clear 503 page.
    pub fn store_unavailable(app: Option<&App>) -> Self {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            app,
            "Temporarily unavailable",
            "Sign-in is temporarily unavailable. Please try again in a few minutes.",
        )
    }

    /// Something failed on our side: the cause is logged (once, here) and never shown. A store
    /// that is out of reach is a 503 page, anything else "Something went wrong".
    pub fn internal(app: Option<&App>, cause: &(dyn std::error::Error + 'static)) -> Self {
        let slug = app.map(|a| a.slug.as_str()).unwrap_or("-");
        if crate::store::unavailable(cause) {
            tracing::warn!(app.slug = slug, error = %cause, "page: store unavailable");
            return PageError::store_unavailable(app);
        }
        tracing::error!(app.slug = slug, error = %cause, "page failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            app,
            "Something went wrong",
            "Please try again in a moment.",
        )
    }

    /// A form body that could not be read: too large (413) or cut short (400), as a page.
    pub fn body(app: Option<&App>, rejection: &axum::extract::rejection::BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                app,
                "Request too large",
                "The form sent was too large. Please go back and try again.",
            )
        } else {
            PageError::new(
                StatusCode::BAD_REQUEST,
                app,
                "Request not valid",
                "The form could not be read. Please go back and try again.",
            )
        }
    }

    /// The sign-in method is not offered by this app (refused server-side, not only hidden).
    pub fn email_not_offered(issuer: &Issuer) -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            Some(&issuer.app),
            "Not available",
            "Signing in with an email address is not available for this application.",
        )
    }
}

impl std::fmt::Debug for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Message(m) => {
                f.debug_struct("PageError").field("status", &m.status).field("heading", &m.heading).finish()
            }
            Kind::Rendered(r) => f.debug_struct("PageError").field("status", &r.status()).finish(),
        }
    }
}

/// `result.or_page(&issuer)?`: an unexpected failure becomes the internal-error page.
pub trait OrPage<T> {
    fn or_page(self, issuer: &Issuer) -> Result<T, PageError>;
}

impl<T, E: std::error::Error + 'static> OrPage<T> for Result<T, E> {
    fn or_page(self, issuer: &Issuer) -> Result<T, PageError> {
        self.map_err(|e| PageError::internal(Some(&issuer.app), &e))
    }
}

impl IntoResponse for PageError {
    /// A placeholder carrying the message; [`render`] replaces it with the themed page.
    fn into_response(self) -> Response {
        match self.0 {
            Kind::Message(m) => {
                let mut res = m.status.into_response();
                res.extensions_mut().insert(m);
                res
            }
            Kind::Rendered(page) => *page,
        }
    }
}

/// Response layer of the pages' router: draws every [`PageError`] with its app's theme.
pub async fn render(State(pages): State<Arc<Pages>>, res: Response) -> Response {
    match res.extensions().get::<Message>() {
        Some(m) => pages.message(m.status, m.app.as_deref(), m.heading, &m.message),
        None => res,
    }
}
