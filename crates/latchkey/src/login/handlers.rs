//! `/login` under each issuer, and what every hosted form shares: the themed page with its CSRF
//! token and sibling URLs, the strict CSRF-checked form, throttled attempts, and the translation
//! of a sign-in `Outcome` into a redirect with its cookie.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use secrecy::SecretString;

use crate::grants::requests::{self as authorize, AuthRequest};
use crate::sessions::{self, Origin};
use crate::signin::{self, Outcome, PasswordCheck};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::web::cookies::SetCookie;
use crate::web::csrf;
use crate::web::form::Form;
use crate::web::{OrPage, PageError, Tenant};
use secrecy::ExposeSecret;

pub(super) fn secure(state: &AppState) -> bool {
    state.config.public_url.scheme() == "https"
}

fn issuer_path(slug: &str) -> String {
    format!("/apps/{slug}")
}

/// What every form post of the hosted pages starts from: the app in the path, the client's
/// address, the headers (cookies) and the raw body (parsed strictly by the handler).
pub(super) struct Post {
    pub issuer: Arc<Issuer>,
    pub addr: SocketAddr,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl FromRequest<AppState> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Tenant { issuer, .. } = Tenant::<PageError>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| PageError::body(Some(&issuer.app), &e).into_response())?;
        Ok(Post { issuer, addr, headers, body })
    }
}

/// What every GET of a hosted page starts from: the app in the path, the raw query and the
/// headers (cookies).
pub(super) struct Visit {
    pub issuer: Arc<Issuer>,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Tenant { issuer, .. } = Tenant::<PageError>::from_request_parts(parts, state).await?;
        let query = parts.uri.query().map(str::to_string);
        Ok(Visit { issuer, query, headers: parts.headers.clone() })
    }
}

/// The internal-error page (cause logged once, in `web::error`), for handlers that answer with
/// a plain `Response`.
pub(super) fn internal(issuer: &Issuer, err: &(dyn std::error::Error + 'static)) -> Response {
    PageError::internal(Some(&issuer.app), err).into_response()
}

pub(super) fn request_id(query: Option<&str>) -> String {
    query
        .and_then(|q| Form::parse(q.as_bytes()).ok())
        .and_then(|f| f.get("request").map(clean_request_id))
        .unwrap_or_default()
}

/// A pending-request id as given, if it has the shape of one; else empty (it is echoed into
/// URLs, so nothing else may pass).
pub(super) fn clean_request_id(raw: &str) -> String {
    if raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        raw.to_string()
    } else {
        String::new()
    }
}

/// The CSRF cookie value of this browser, creating one if needed (returned to be set).
fn csrf_value(headers: &HeaderMap) -> (String, bool) {
    match csrf::cookie(headers, csrf::COOKIE) {
        Some(v) if !v.is_empty() && v.len() <= 64 => (v.to_string(), false),
        _ => (csrf::new_cookie_value(), true),
    }
}

/// What the login-style forms show: the page, the pending request, the typed address and the
/// messages beside the form and its fields.
#[derive(Default)]
pub(super) struct View<'a> {
    page: &'a str,
    request_id: String,
    email: String,
    form_error: Option<String>,
}

impl<'a> View<'a> {
    pub(super) fn new(page: &'a str, request_id: &str, email: &str) -> Self {
        View { page, request_id: request_id.to_string(), email: email.to_string(), ..View::default() }
    }

    pub(super) fn form_error(mut self, msg: impl Into<String>) -> Self {
        self.form_error = Some(msg.into());
        self
    }
}

pub(super) fn render(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    status: StatusCode,
    v: View<'_>,
) -> Response {
    let ctx = context! {
        email => v.email,
        form_error => v.form_error,
        min_length => issuer.app.policy.password.min_length,
        password_rules => issuer.app.policy.password.rules_text(),
    };
    page(state, issuer, headers, status, v.page, &v.request_id, ctx)
}

/// Whether the app lets people sign in with their email address (password or magic link).
pub(super) fn email_allowed(issuer: &Issuer) -> bool {
    issuer.app.policy.allows_email()
}

/// Renders a hosted page with what every form needs: the CSRF token (setting its cookie on a
/// first visit), the pending request id, and the URLs of the sibling pages.
pub(super) fn page(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    request_id: &str,
    ctx: minijinja::Value,
) -> Response {
    let slug = issuer.app.slug.as_str();
    let (cookie, new) = csrf_value(headers);
    let q = if request_id.is_empty() { String::new() } else { format!("?request={request_id}") };
    let base = format!("{}{}", state.config.public_base(), issuer_path(slug));
    let common = context! {
        csrf => csrf::form_token(&state.secrets, &cookie),
        request_id => request_id,
        base => base.clone(),
        action => format!("{base}/{}{q}", name.trim_end_matches(".html").replace('_', "-")),
        signup_url => format!("{base}/signup{q}"),
        login_url => format!("{base}/login{q}"),
        magic_link_url => email_allowed(issuer).then(|| format!("{base}/magic-link{q}")),
        email_allowed => email_allowed(issuer),
        signup_offered => email_allowed(issuer)
            && issuer.app.policy.signup_policy != crate::apps::model::SignupPolicy::InviteOnly,
        reset_url => format!("{base}/reset-password{q}"),
        providers => super::upstream::buttons(issuer, &base, &q),
        providers_label => "Other ways to sign in",
    };
    let mut res = state.pages.render(status, Some(&issuer.app), name, context! { ..ctx, ..common });
    if new && let Ok(h) = HeaderValue::from_str(&csrf::set_cookie(&cookie, &issuer_path(slug), secure(state)))
    {
        res.headers_mut().append(header::SET_COOKIE, h);
    }
    res
}

pub async fn get_login(
    State(state): State<AppState>,
    Visit { issuer, query: q, headers }: Visit,
) -> Result<Response, PageError> {
    let request_id = request_id(q.as_deref());
    let pending = authorize::pending(&issuer.identity, &request_id, state.now()).await.or_page(&issuer)?;
    let hint = pending.and_then(|r| r.login_hint).unwrap_or_default();
    Ok(render(&state, &issuer, &headers, StatusCode::OK, View::new("login.html", &request_id, &hint)))
}

/// The start of every form post of an email sign-in method (password, sign-up, magic link,
/// reset): the app's issuer, the method allowed by policy (refused server-side, not only
/// hidden), and the parsed, CSRF-checked form. `Err` is the page to answer with.
pub(super) fn email_method_form(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    body: &[u8],
    page: &'static str,
) -> Result<Form, PageError> {
    if !email_allowed(issuer) {
        return Err(PageError::email_not_offered(issuer));
    }
    let bad = |msg: &str| {
        render(state, issuer, headers, StatusCode::BAD_REQUEST, View::new(page, "", "").form_error(msg))
    };
    let form = Form::parse(body)
        .map_err(|_| PageError::rendered(bad("The form could not be read. Please try again.")))?;
    if !csrf::verify(&state.secrets, headers, &form) {
        return Err(PageError::rendered(bad("Your session on this page expired. Please try again.")));
    }
    Ok(form)
}

/// The first factor succeeded: the sign-in service refuses, parks or completes the sign-in.
pub(super) async fn finish(
    state: &AppState,
    issuer: &Issuer,
    user: &crate::users::User,
    request: Option<AuthRequest>,
    origin: Origin,
    amr: &[&str],
) -> Response {
    let cx = signin::Context::of(issuer, state.now());
    match signin::service::finish(cx, user, request, &origin, amr).await {
        Ok(outcome) => respond(state, issuer, outcome),
        Err(e) => internal(issuer, &e),
    }
}

/// The page or redirect for a sign-in [`Outcome`].
pub(super) fn respond(state: &AppState, issuer: &Issuer, outcome: Outcome) -> Response {
    let path = issuer_path(issuer.app.slug.as_str());
    match outcome {
        Outcome::SignedIn { session_cookie, redirect } => {
            let mut res = Redirect::to(&redirect).into_response();
            let ttl = i64::from(issuer.app.policy.session.ttl_hours) * 3600;
            SetCookie::new(sessions::COOKIE, session_cookie.expose_secret(), &path)
                .max_age(ttl)
                .secure(secure(state))
                .append_to(&mut res);
            res
        }
        Outcome::Parked { token, step } => {
            let to = format!("{}/{}", issuer.url, step.page());
            let mut res = Redirect::to(&to).into_response();
            SetCookie::new(PENDING_COOKIE, token.expose(), &path)
                .max_age(signin::pending::TTL_MINUTES * 60)
                .secure(secure(state))
                .append_to(&mut res);
            res
        }
        Outcome::AwaitingApproval => awaiting_approval(state, issuer),
        Outcome::Disabled => state.pages.message(
            StatusCode::FORBIDDEN,
            Some(&issuer.app),
            "Account disabled",
            "This account cannot sign in. Contact the application's support if you think this is a mistake.",
        ),
    }
}

/// Cookie naming a sign-in parked on a step (scoped to the issuer path).
pub(super) const PENDING_COOKIE: &str = "lk_pending";

/// The page for an account that waits for an operator's approval (no session, no token).
pub(super) fn awaiting_approval(state: &AppState, issuer: &Issuer) -> Response {
    state.pages.message(
        StatusCode::FORBIDDEN,
        Some(&issuer.app),
        "Waiting for approval",
        "Your account has been created and is waiting for approval by the application's administrators. You can sign in once it is approved.",
    )
}

pub(super) fn origin(headers: &HeaderMap, addr: SocketAddr) -> Origin {
    Origin {
        ip: Some(addr.ip().to_string()),
        user_agent: crate::web::user_agent(headers).map(str::to_string),
    }
}

pub async fn post_login(
    State(state): State<AppState>,
    Post { issuer, addr, headers, body }: Post,
) -> Result<Response, PageError> {
    let form = email_method_form(&state, &issuer, &headers, &body, "login.html")?;
    let request_id = clean_request_id(form.get("request").unwrap_or(""));
    let email_raw = form.get("email").unwrap_or("").to_string();
    let password = SecretString::from(form.get("password").unwrap_or("").to_string());
    // Brute-force protection before any store or password work; the answer does not depend on
    // whether the account exists (signin::throttle).
    let attempt =
        begin_attempt(&state, &issuer, &headers, addr, "login.html", &request_id, &email_raw).await?;
    let cx = signin::Context::of(&issuer, state.now());
    let user = match signin::service::check_password(cx, &state.passwords, &email_raw, &password)
        .await
        .or_page(&issuer)?
    {
        PasswordCheck::Proven(user) => user,
        PasswordCheck::Wrong => {
            attempt.failed(state.clock.now());
            metrics::counter!("latchkey_login_failures_total").increment(1);
            record_event(&state, &issuer, "login.failed", None, &headers, addr, serde_json::json!({})).await;
            let view = View::new("login.html", &request_id, &email_raw)
                .form_error("The email or password is not correct.");
            return Ok(render(&state, &issuer, &headers, StatusCode::UNAUTHORIZED, view));
        }
    };
    attempt.succeeded(state.clock.now());
    let request = authorize::pending(&issuer.identity, &request_id, state.now()).await.or_page(&issuer)?;
    record_event(&state, &issuer, "login.success", Some(user.id), &headers, addr, serde_json::json!({}))
        .await;
    Ok(finish(&state, &issuer, &user, request, origin(&headers, addr), &["pwd"]).await)
}

/// Starts a throttled sign-in attempt, or answers 429 with `Retry-After` on the same page (and
/// records it) when the account or address is locked out (login::throttle).
pub(super) async fn begin_attempt<'a>(
    state: &'a AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    addr: SocketAddr,
    page: &'static str,
    request_id: &str,
    email_raw: &str,
) -> Result<crate::signin::throttle::Attempt<'a>, PageError> {
    let account = crate::signin::throttle::account_key(email_raw);
    match state.throttle.begin(issuer.app.id, &account, addr.ip(), state.clock.now()) {
        Ok(a) => Ok(a),
        Err(refused) => {
            metrics::counter!("latchkey_login_throttled_total", "limit" => refused.limit.as_str())
                .increment(1);
            let reason = serde_json::json!({"reason": "throttled"});
            record_event(state, issuer, "login.failed", None, headers, addr, reason).await;
            let view = View::new(page, request_id, email_raw).form_error(refused.message());
            let mut res = render(state, issuer, headers, StatusCode::TOO_MANY_REQUESTS, view);
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs));
            Err(PageError::rendered(res))
        }
    }
}

/// Queues an end-user audit event for this app.
pub(super) async fn record_event(
    state: &AppState,
    issuer: &Issuer,
    kind: &'static str,
    user_id: Option<crate::users::UserId>,
    headers: &HeaderMap,
    addr: SocketAddr,
    data: serde_json::Value,
) {
    state
        .audit
        .record(
            crate::audit::AuditEvent::new(issuer.app.id, issuer.identity.clone(), state.now(), kind)
                .user(user_id)
                .from(Some(addr.ip()), crate::web::user_agent(headers))
                .data(data),
        )
        .await;
}
