//! Server-rendered pages (minijinja, auto-escaped by the `.html` name), themed per app.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value, context};

use crate::apps::App;

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("../../../../templates/pages/base.html")),
            ("login.html", include_str!("../../../../templates/pages/login.html")),
            ("signup.html", include_str!("../../../../templates/pages/signup.html")),
            ("providers.html", include_str!("../../../../templates/pages/providers.html")),
            ("organization.html", include_str!("../../../../templates/pages/organization.html")),
            ("message.html", include_str!("../../../../templates/pages/message.html")),
            ("account.html", include_str!("../../../../templates/pages/account.html")),
            ("logout.html", include_str!("../../../../templates/pages/logout.html")),
            ("magic_link.html", include_str!("../../../../templates/pages/magic_link.html")),
            ("magic_confirm.html", include_str!("../../../../templates/pages/magic_confirm.html")),
            ("reset_request.html", include_str!("../../../../templates/pages/reset_request.html")),
            ("reset_password.html", include_str!("../../../../templates/pages/reset_password.html")),
            ("continue.html", include_str!("../../../../templates/pages/continue.html")),
            ("mfa_setup.html", include_str!("../../../../templates/pages/mfa_setup.html")),
            ("mfa_codes.html", include_str!("../../../../templates/pages/mfa_codes.html")),
        ] {
            // The templates are part of the binary; a syntax error is caught by the tests.
            if let Err(err) = env.add_template(name, src) {
                tracing::error!(template = name, error = %err, "template does not compile");
            }
        }
        Pages { env }
    }

    /// Renders `name` with the app's theme and `ctx`; security headers on every page.
    pub fn render(&self, status: StatusCode, app: Option<&App>, name: &str, ctx: Value) -> Response {
        let theme = match app {
            Some(app) => context! {
                app_name => app.display_name.clone(),
                brand_color => app.branding.brand_color.clone().map(String::from).unwrap_or_else(|| "#1d4ed8".into()),
                brand_ink => app.branding.brand_color.as_ref().map(|c| c.ink()).unwrap_or("#ffffff"),
                logo_url => app.branding.logo_url.clone().map(String::from),
            },
            None => context! { app_name => "Latchkey", brand_color => "#1d4ed8", brand_ink => "#ffffff" },
        };
        let html =
            self.env.get_template(name).and_then(|t| t.render(context! { ..theme, ..ctx })).unwrap_or_else(
                |err| {
                    tracing::error!(template = name, error = %err, "page rendering failed");
                    "<!doctype html><title>Error</title><p>Something went wrong.</p>".into()
                },
            );
        let mut res = (status, axum::response::Html(html)).into_response();
        let h = res.headers_mut();
        // No `form-action`: browsers apply it to the redirect that follows a form post, and
        // that redirect goes to the client's registered redirect_uri on another origin.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src https: http:; frame-ancestors 'none'; base-uri 'none'"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        res
    }

    /// A friendly page with a heading and a message.
    pub fn message(&self, status: StatusCode, app: Option<&App>, heading: &str, message: &str) -> Response {
        self.render(status, app, "message.html", context! { heading, message })
    }
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}
