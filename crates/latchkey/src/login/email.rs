//! The pages behind mailed links (SPEC §7): `/magic-link` (sign in with nothing but an inbox),
//! `/reset-password` and `/verify-email`.
//!
//! - Asking for a link answers the same page, with the same status and no measurable extra work,
//!   whether or not the address is registered: the lookup and the queuing run after the answer,
//!   in a task of their own. Asking is throttled per address and per client address
//!   ([`crate::mail::throttle`]), again the same for every address.
//! - Opening a magic or reset link shows a page with a button; only the form post uses the link
//!   up. Mail scanners that fetch every link in a message therefore cannot spend it.
//! - A magic link completes the authorization request it was asked from, in whichever browser
//!   opens it; the session it creates has `amr: ["email"]`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;

use super::handlers::{
    Post, Visit, clean_request_id, email_allowed, email_method_form, finish, internal, origin, page,
    record_event, request_id,
};
use crate::apps::model::SignupPolicy;
use crate::grants::requests as authorize;
use crate::invitations::{self, Accepted, Purpose};
use crate::mail::{Kind, links};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::users::{self, Email, UserStatus};
use crate::web::form::Form;
use crate::web::{OrPage, PageError, Tenant};

/// The `token` of a link's query: `Ok(None)` without one, `Err` for a query that is not a valid
/// form (a repeated parameter, bad encoding), which is answered as a broken link.
fn token_of(query: Option<&str>) -> Result<Option<String>, ()> {
    match query {
        None => Ok(None),
        Some(q) => Form::parse(q.as_bytes()).map(|f| f.get("token").map(str::to_string)).map_err(|_| ()),
    }
}

/// The start of a GET of a link page (magic link, password reset): the method allowed by
/// policy, and the link's `token` if the query has one; a malformed query is a broken link.
fn link_token(
    state: &AppState,
    issuer: &Issuer,
    query: Option<&str>,
    kind: Kind,
) -> Result<Option<String>, PageError> {
    if !email_allowed(issuer) {
        return Err(PageError::email_not_offered(issuer));
    }
    token_of(query).map_err(|()| PageError::rendered(invalid_link(state, issuer, kind)))
}

fn invalid_link(state: &AppState, issuer: &Issuer, kind: Kind) -> Response {
    let base = format!("{}/apps/{}", state.config.public_base(), issuer.app.slug);
    let (message, link_url, link_text) = match kind {
        Kind::MagicLink => (
            "This sign-in link has been used or has expired. Ask for a new one.",
            format!("{base}/magic-link"),
            "Email me a new link",
        ),
        Kind::PasswordReset => (
            "This password reset link has been used or has expired. Ask for a new one.",
            format!("{base}/reset-password"),
            "Reset my password",
        ),
        Kind::VerifyEmail | Kind::Invitation => (
            "This confirmation link has been used or has expired. Sign in to ask for a new one.",
            format!("{base}/account"),
            "Go to my account",
        ),
    };
    state.pages.render(
        StatusCode::BAD_REQUEST,
        Some(&issuer.app),
        "message.html",
        context! { heading => "Link not valid", message, link_url, link_text },
    )
}

/// The 429 page for a refused mail request.
fn throttled(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    name: &str,
    request_id: &str,
    email: &str,
    wait: crate::mail::throttle::Wait,
) -> Response {
    metrics::counter!("latchkey_mail_throttled_total").increment(1);
    let ctx = context! { email, form_error => wait.message(), ttl_text => ttl_text(Kind::MagicLink) };
    let mut res = page(state, issuer, headers, StatusCode::TOO_MANY_REQUESTS, name, request_id, ctx);
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.retry_after_secs));
    res
}

fn ttl_text(kind: Kind) -> String {
    format!("{} minutes", kind.ttl().num_minutes())
}

/// The page after asking for a link: the same whether or not the address is registered.
fn check_inbox(state: &AppState, issuer: &Issuer, email: &Email, kind: Kind, request_id: &str) -> Response {
    let base = format!("{}/apps/{}", state.config.public_base(), issuer.app.slug);
    let q = if request_id.is_empty() { String::new() } else { format!("?request={request_id}") };
    let what = match kind {
        Kind::MagicLink => "a link to sign in",
        _ => "a link to choose a new password",
    };
    let message = format!(
        "If {} has an account here, we sent it {what}. The link works once and expires in {}. \
         It can take a minute to arrive; check your spam folder too.",
        email.as_str(),
        ttl_text(kind)
    );
    state.pages.render(
        StatusCode::OK,
        Some(&issuer.app),
        "message.html",
        context! { heading => "Check your inbox", message, link_url => format!("{base}/login{q}"), link_text => "Back to sign in" },
    )
}

fn first_access_allowed(issuer: &Issuer, email: &Email) -> bool {
    let policy = &issuer.app.policy;
    let domain = email.domain();
    policy.signup_policy == SignupPolicy::AutoOnFirstAccess
        && policy.allows_email()
        && policy.domain_allowed(domain)
}

/// Looks the address up and, for an active account, queues the link, after the answer was given.
fn send_later(state: &AppState, issuer: &Arc<Issuer>, kind: Kind, email: Email, request_id: String) {
    let (state, issuer) = (state.clone(), issuer.clone());
    tokio::spawn(async move {
        let now = state.now();
        let user = match users::find_by_email(&issuer.identity, &email).await {
            Ok(Some(u)) if u.status == UserStatus::Active => u,
            Ok(Some(_)) => return,
            // auto_on_first_access: an address without an account gets a first-access link that
            // creates it, if the app takes that address at all.
            Ok(None) if kind == Kind::MagicLink && first_access_allowed(&issuer, &email) => {
                let request =
                    authorize::pending(&issuer.identity, &request_id, now).await.ok().flatten().map(|r| r.id);
                let made = invitations::create(
                    &state.post(),
                    &issuer,
                    Purpose::FirstAccess,
                    &email,
                    Kind::MagicLink.ttl(),
                    request.as_deref(),
                    None,
                )
                .await;
                if let Err(e) = made {
                    tracing::error!(app.slug = %issuer.app.slug, error = %e, "first-access link could not be queued");
                }
                return;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(app.slug = %issuer.app.slug, error = %e, kind = kind.as_str(), "mail link: user lookup failed");
                return;
            }
        };
        // Only a request that is still pending is bound to the link.
        let request = match authorize::pending(&issuer.identity, &request_id, now).await {
            Ok(r) => r.map(|r| r.id),
            Err(_) => None,
        };
        if let Err(e) = links::issue(&state.post(), &issuer, kind, &user, request.as_deref()).await {
            tracing::error!(app.slug = %issuer.app.slug, user.id = %user.id, error = %e, kind = kind.as_str(), "mail link could not be queued");
        }
    });
}

/// Validates and throttles an "email me a link" form, then answers "check your inbox".
fn ask_for_link(
    state: &AppState,
    issuer: &Arc<Issuer>,
    headers: &HeaderMap,
    addr: SocketAddr,
    form: &Form,
    kind: Kind,
    name: &str,
) -> Response {
    // Only a well-formed id is carried over (the same rule as on the query string).
    let request_id = clean_request_id(form.get("request").unwrap_or(""));
    let raw = form.get("email").unwrap_or("").to_string();
    let email = match Email::parse(&raw) {
        Ok(e) => e,
        Err(msg) => {
            let ctx = context! { email => raw, email_error => msg, ttl_text => ttl_text(kind) };
            return page(state, issuer, headers, StatusCode::UNPROCESSABLE_ENTITY, name, &request_id, ctx);
        }
    };
    if let Err(wait) = state.mail_throttle.check(issuer.app.id, email.normalized(), addr.ip()) {
        return throttled(state, issuer, headers, name, &request_id, &raw, wait);
    }
    let answer = check_inbox(state, issuer, &email, kind, &request_id);
    send_later(state, issuer, kind, email, request_id);
    answer
}

pub async fn get_magic_link(
    State(state): State<AppState>,
    Visit { issuer, query: q, headers }: Visit,
) -> Result<Response, PageError> {
    let now = state.now();
    if let Some(token) = link_token(&state, &issuer, q.as_deref(), Kind::MagicLink)? {
        let found = match links::peek(&issuer.identity, Kind::MagicLink, &token, now).await {
            Ok(Some(t)) => Some(t.email),
            Ok(None) => match invitations::peek(&issuer.identity, Purpose::FirstAccess, &token, now).await {
                Ok(t) => t.map(|t| t.email),
                Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
            },
            Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
        };
        return Ok(match found {
            Some(email) => page(
                &state,
                &issuer,
                &headers,
                StatusCode::OK,
                "magic_confirm.html",
                "",
                context! { token, email },
            ),
            None => invalid_link(&state, &issuer, Kind::MagicLink),
        });
    }
    let request_id = request_id(q.as_deref());
    let hint = match authorize::pending(&issuer.identity, &request_id, now).await {
        Ok(r) => r.and_then(|r| r.login_hint).unwrap_or_default(),
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    };
    let ctx = context! { email => hint, ttl_text => ttl_text(Kind::MagicLink) };
    Ok(page(&state, &issuer, &headers, StatusCode::OK, "magic_link.html", &request_id, ctx))
}

pub async fn post_magic_link(
    State(state): State<AppState>,
    Post { issuer, addr, headers, body }: Post,
) -> Result<Response, PageError> {
    let form = email_method_form(&state, &issuer, &headers, &body, "magic_link.html")?;
    let Some(token) = form.get("token") else {
        return Ok(ask_for_link(&state, &issuer, &headers, addr, &form, Kind::MagicLink, "magic_link.html"));
    };
    let now = state.now();
    let used = match links::use_magic_link(&issuer.identity, token, now).await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(first_access(&state, &issuer, &headers, addr, token).await),
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    };
    let user = match users::get(&issuer.identity, used.user_id).await {
        Ok(Some(u)) if u.status == UserStatus::Active => u,
        Ok(_) => return Ok(invalid_link(&state, &issuer, Kind::MagicLink)),
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    };
    let request = match &used.auth_request_id {
        Some(id) => authorize::pending(&issuer.identity, id, now).await.or_page(&issuer)?,
        None => None,
    };
    let data = serde_json::json!({"method": "magic_link"});
    record_event(&state, &issuer, "login.success", Some(user.id), &headers, addr, data).await;
    Ok(finish(&state, &issuer, &user, request, origin(&headers, addr), &["email"]).await)
}

/// A first-access link (auto_on_first_access): the account is created, its address verified by
/// the link, and signed in, completing the authorization request the link was asked from.
async fn first_access(
    state: &AppState,
    issuer: &Arc<Issuer>,
    headers: &HeaderMap,
    addr: SocketAddr,
    token: &str,
) -> Response {
    let now = state.now();
    // The policy may have changed since the link was sent.
    let policy = &issuer.app.policy;
    if policy.signup_policy != SignupPolicy::AutoOnFirstAccess {
        return invalid_link(state, issuer, Kind::MagicLink);
    }
    if let Ok(Some(t)) = invitations::peek(&issuer.identity, Purpose::FirstAccess, token, now).await {
        let domain = t.email.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
        if !policy.domain_allowed(&domain) {
            return invalid_link(state, issuer, Kind::MagicLink);
        }
    }
    let account = invitations::Account {
        password_hash: None,
        email_verified: true,
        status: UserStatus::Active,
        name: None,
        profile: Default::default(),
    };
    let (ticket, user) =
        match invitations::accept(&issuer.identity, Purpose::FirstAccess, token, &account, now).await {
            Ok(Accepted::Created(t, u)) => (t, *u),
            Ok(_) => return invalid_link(state, issuer, Kind::MagicLink),
            Err(e) => return internal(issuer, &e),
        };
    let data = serde_json::json!({"method": "first_access"});
    record_event(state, issuer, "signup", Some(user.id), headers, addr, data).await;
    let data = serde_json::json!({"method": "magic_link"});
    record_event(state, issuer, "login.success", Some(user.id), headers, addr, data).await;
    let request = match &ticket.auth_request_id {
        Some(id) => authorize::pending(&issuer.identity, id, now).await.ok().flatten(),
        None => None,
    };
    finish(state, issuer, &user, request, origin(headers, addr), &["email"]).await
}

pub async fn get_reset_password(
    State(state): State<AppState>,
    Visit { issuer, query: q, headers }: Visit,
) -> Result<Response, PageError> {
    if let Some(token) = link_token(&state, &issuer, q.as_deref(), Kind::PasswordReset)? {
        return Ok(match links::peek(&issuer.identity, Kind::PasswordReset, &token, state.now()).await {
            Ok(Some(t)) => {
                let ctx = context! { token, email => t.email, min_length => issuer.app.policy.password.min_length, password_rules => issuer.app.policy.password.rules_text() };
                page(&state, &issuer, &headers, StatusCode::OK, "reset_password.html", "", ctx)
            }
            Ok(None) => invalid_link(&state, &issuer, Kind::PasswordReset),
            Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
        });
    }
    let request_id = request_id(q.as_deref());
    Ok(page(&state, &issuer, &headers, StatusCode::OK, "reset_request.html", &request_id, context! {}))
}

pub async fn post_reset_password(
    State(state): State<AppState>,
    Post { issuer, addr, headers, body }: Post,
) -> Result<Response, PageError> {
    let form = email_method_form(&state, &issuer, &headers, &body, "reset_request.html")?;
    let Some(token) = form.get("token") else {
        return Ok(ask_for_link(
            &state,
            &issuer,
            &headers,
            addr,
            &form,
            Kind::PasswordReset,
            "reset_request.html",
        ));
    };
    let now = state.now();
    // The link must be live before any password work is spent on it.
    let live = match links::peek(&issuer.identity, Kind::PasswordReset, token, now).await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(invalid_link(&state, &issuer, Kind::PasswordReset)),
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    };
    let password = form.get("password").unwrap_or("");
    let rules = &issuer.app.policy.password;
    if let Err(password_error) = rules.check(password) {
        let ctx = context! {
            token, email => live.email, min_length => rules.min_length, password_rules => rules.rules_text(), password_error,
        };
        return Ok(page(
            &state,
            &issuer,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "reset_password.html",
            "",
            ctx,
        ));
    }
    let hash = state.passwords.hash(&SecretString::from(password.to_string())).await.or_page(&issuer)?;
    let used = match links::reset_password(&issuer.identity, token, &hash, state.now()).await {
        Ok(Some(t)) => t,
        // Used by a parallel request in the meantime.
        Ok(None) => return Ok(invalid_link(&state, &issuer, Kind::PasswordReset)),
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    };
    let data = serde_json::json!({});
    record_event(&state, &issuer, "password.reset", Some(used.user_id), &headers, addr, data).await;
    let user = match users::get(&issuer.identity, used.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(invalid_link(&state, &issuer, Kind::PasswordReset)),
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    };
    if user.status != UserStatus::Active {
        return Ok(state.pages.message(
            StatusCode::OK,
            Some(&issuer.app),
            "Password changed",
            "Your new password is saved.",
        ));
    }
    // Every other session ended with the reset; this browser is signed in afresh.
    let request = match &used.auth_request_id {
        Some(id) => authorize::pending(&issuer.identity, id, state.now()).await.ok().flatten(),
        None => None,
    };
    let data = serde_json::json!({"method": "password_reset"});
    record_event(&state, &issuer, "login.success", Some(user.id), &headers, addr, data).await;
    Ok(finish(&state, &issuer, &user, request, origin(&headers, addr), &["pwd"]).await)
}

pub async fn get_verify_email(
    State(state): State<AppState>,
    Tenant { issuer, .. }: Tenant,
    RawQuery(q): RawQuery,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Ok(Some(token)) = token_of(q.as_deref()) else {
        return Ok(invalid_link(&state, &issuer, Kind::VerifyEmail));
    };
    Ok(
        // Confirming an address is harmless to repeat and what the person wants, so the link works
        // on GET (no extra click); it is still single use.
        match links::verify_email(&issuer.identity, &token, state.now()).await {
            Ok(Some(t)) => {
                let data = serde_json::json!({});
                record_event(&state, &issuer, "email.verified", Some(t.user_id), &headers, addr, data).await;
                confirmed(&state, &issuer, &format!("Thank you. {} is confirmed.", t.email))
            }
            // Used already, by a mail scanner's prefetch or an earlier click: if the address is
            // confirmed, say so rather than "not valid".
            Ok(None) => match links::confirmed_by(&issuer.identity, &token).await {
                Ok(Some(email)) => confirmed(&state, &issuer, &format!("{email} is already confirmed.")),
                Ok(None) => invalid_link(&state, &issuer, Kind::VerifyEmail),
                Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
            },
            Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
        },
    )
}

fn confirmed(state: &AppState, issuer: &Issuer, message: &str) -> Response {
    let base = format!("{}/apps/{}", state.config.public_base(), issuer.app.slug);
    state.pages.render(
        StatusCode::OK,
        Some(&issuer.app),
        "message.html",
        context! {
            heading => "Email address confirmed",
            message,
            link_url => format!("{base}/account"),
            link_text => "Go to my account",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_read_from_the_query() {
        assert_eq!(token_of(Some("token=abc&x=1")), Ok(Some("abc".into())));
        assert_eq!(token_of(Some("x=1")), Ok(None));
        assert_eq!(token_of(None), Ok(None));
        // A repeated parameter is refused (the strict form parser), not guessed at.
        assert_eq!(token_of(Some("token=a&token=b")), Err(()));
    }
}
