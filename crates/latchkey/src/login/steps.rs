//! `/continue` and `/mfa`: the steps between a proven first factor and a session (the rules
//! are the sign-in service's, `signin::steps`). Until every step is done there is no session
//! and no token: the browser holds only the short-lived `lk_pending` cookie, and every request
//! re-evaluates the steps against the current policy and user, so a policy change applies to
//! sign-ins already under way.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;
use sqlx::types::Json;

use super::handlers::{PENDING_COOKIE, Post, origin, page, record_event, respond, secure};
use crate::crypto::tokens;
use crate::mail::{Kind, links};
use crate::signin::pending::{self, Pending};
use crate::signin::{self, Resumed, Step};
use crate::state::AppState;
use crate::store::{IdentityDb, Ts};
use crate::tenant::Issuer;
use crate::users::{self, User};
use crate::web::cookies::SetCookie;
use crate::web::csrf;
use crate::web::form::Form;
use crate::web::{OrPage, PageError, Tenant};

/// The sign-in parked under this browser's `lk_pending` cookie, with its token's hash.
async fn load(
    db: &IdentityDb,
    headers: &HeaderMap,
    now: Ts,
) -> Result<Option<(tokens::Hashed, Pending)>, sqlx::Error> {
    let Some(token) = csrf::cookie(headers, PENDING_COOKIE).filter(|t| !t.is_empty() && t.len() <= 64) else {
        return Ok(None);
    };
    let h = tokens::Hashed::of(token);
    Ok(pending::load(db, &h, now).await?.map(|p| (h, p)))
}

fn expired_page(state: &AppState, issuer: &Issuer) -> Response {
    let login = format!("{}/login", issuer.url);
    state.pages.render(
        StatusCode::BAD_REQUEST,
        Some(&issuer.app),
        "message.html",
        context! {
            heading => "Sign-in expired",
            message => "This sign-in is no longer in progress. Please sign in again.",
            link_url => login, link_text => "Sign in",
        },
    )
}

/// One request on a parked sign-in: what it needs to show the next step again.
struct Parked<'a> {
    state: &'a AppState,
    issuer: &'a Arc<Issuer>,
    headers: &'a HeaderMap,
    addr: SocketAddr,
    token: tokens::Hashed,
    pending: Pending,
}

impl Parked<'_> {
    /// Shows the next step (with `view` for the message beside a field), or finishes the
    /// sign-in when none is left.
    async fn next(&self, status: StatusCode, view: minijinja::Value) -> Result<Response, PageError> {
        let (state, issuer) = (self.state, self.issuer);
        let cx = signin::Context::of(issuer, state.now());
        let origin = origin(self.headers, self.addr);
        let (user, step) =
            match signin::service::resume(cx, &self.token, &self.pending, &origin).await.or_page(issuer)? {
                Resumed::Due { user, step } => (user, step),
                Resumed::Expired => return Ok(expired_page(state, issuer)),
                Resumed::Done(outcome) => {
                    let mut res = respond(state, issuer, outcome);
                    SetCookie::removal(PENDING_COOKIE, &format!("/apps/{}", issuer.app.slug))
                        .secure(secure(state))
                        .append_to(&mut res);
                    return Ok(res);
                }
            };
        let policy = &issuer.app.policy;
        let ctx = match &step {
            Step::Totp => context! { step => "totp", email => user.email },
            Step::VerifyEmail => context! { step => "verify_email", email => user.email },
            Step::PasswordChange => context! {
                step => "password", email => user.email, rules => policy.password.rules_text(),
                min_length => policy.password.min_length,
            },
            Step::Profile(missing) => {
                let fields: Vec<minijinja::Value> = missing
                    .iter()
                    .map(|f| {
                        let label =
                            users::PROFILE_FIELDS.iter().find(|(n, _)| n == f).map(|(_, l)| *l).unwrap_or(f);
                        context! { name => f, label }
                    })
                    .collect();
                context! { step => "profile", email => user.email, fields }
            }
        };
        Ok(page(state, issuer, self.headers, status, "continue.html", "", context! { ..view, ..ctx }))
    }

    /// The next step again, answered 429 with `Retry-After`.
    async fn throttled(&self, retry_after: u64, view: minijinja::Value) -> Result<Response, PageError> {
        let mut res = self.next(StatusCode::TOO_MANY_REQUESTS, view).await?;
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        Ok(res)
    }

    async fn record(&self, kind: &'static str, user: &User, data: serde_json::Value) {
        record_event(self.state, self.issuer, kind, Some(user.id), self.headers, self.addr, data).await;
    }
}

pub async fn get_continue(
    State(state): State<AppState>,
    Tenant { issuer, .. }: Tenant,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Some((token, pending)) = load(&issuer.identity, &headers, state.now()).await.or_page(&issuer)? else {
        return Ok(expired_page(&state, &issuer));
    };
    let parked = Parked { state: &state, issuer: &issuer, headers: &headers, addr, token, pending };
    parked.next(StatusCode::OK, context! {}).await
}

pub async fn post_continue(
    State(state): State<AppState>,
    Post { issuer, addr, headers, body }: Post,
) -> Result<Response, PageError> {
    let Ok(form) = Form::parse(&body) else { return Ok(expired_page(&state, &issuer)) };
    if !csrf::verify(&state.secrets, &headers, &form) {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(&issuer.app),
            "Request not valid",
            "This page expired. Go back, reload it and try again.",
        ));
    }
    let now = state.now();
    let Some((token, pending)) = load(&issuer.identity, &headers, now).await.or_page(&issuer)? else {
        return Ok(expired_page(&state, &issuer));
    };
    let user = match users::get(&issuer.identity, pending.user_id).await.or_page(&issuer)? {
        Some(u) if u.status == users::UserStatus::Active => u,
        _ => return Ok(expired_page(&state, &issuer)),
    };
    // Only the step that is due may be taken: someone who proved the first factor alone must
    // not change the password or the profile before the second factor.
    let cx = signin::Context::of(&issuer, now);
    let due = signin::service::due_step(cx, &user, &pending).await.or_page(&issuer)?;
    let posted = form.get("step").unwrap_or("");
    let allowed = match &due {
        Some(Step::Totp) => matches!(posted, "totp" | "recovery"),
        Some(Step::VerifyEmail) => matches!(posted, "resend" | "check"),
        Some(Step::PasswordChange) => posted == "password",
        Some(Step::Profile(_)) => posted == "profile",
        None => false,
    };
    let mut parked = Parked { state: &state, issuer: &issuer, headers: &headers, addr, token, pending };
    if !allowed {
        return parked.next(StatusCode::OK, context! {}).await;
    }
    match posted {
        "totp" | "recovery" => return second_factor(&mut parked, &user, posted, &form).await,
        "password" => {
            if let Some(res) = change_expired_password(&parked, &user, &form).await? {
                return Ok(res);
            }
        }
        "profile" => {
            if let Some(res) = complete_profile(&parked, &user, &form).await? {
                return Ok(res);
            }
        }
        "resend" => {
            let key = crate::signin::throttle::account_key(&user.email);
            if let Err(wait) = state.mail_throttle.check(issuer.app.id, &key, addr.ip()) {
                return parked.throttled(wait.retry_after_secs, context! { notice => wait.message() }).await;
            }
            links::issue(&state.post(), &issuer, Kind::VerifyEmail, &user, None).await.or_page(&issuer)?;
            let notice = format!("We sent a new confirmation link to {}.", user.email);
            return parked.next(StatusCode::OK, context! { notice }).await;
        }
        // "check": confirmed in another tab, or anything else: look again.
        _ => {}
    }
    parked.next(StatusCode::OK, context! {}).await
}

/// A TOTP or recovery code (`step`), throttled per user like a sign-in.
async fn second_factor(
    p: &mut Parked<'_>,
    user: &User,
    step: &str,
    form: &Form,
) -> Result<Response, PageError> {
    let (state, issuer) = (p.state, p.issuer);
    let now = state.now();
    let key = format!("mfa:{}", user.id);
    let attempt = match state.throttle.begin(issuer.app.id, &key, p.addr.ip(), state.clock.now()) {
        Ok(a) => a,
        Err(refused) => {
            let msg = refused.message().replace("to sign in", "at the code");
            return p.throttled(refused.retry_after_secs, context! { code_error => msg }).await;
        }
    };
    let code = form.get("code").unwrap_or("");
    let ok = if step == "totp" {
        crate::mfa::check_code(&issuer.identity, &state.secrets, issuer.app.id, user.id, code, true, now)
            .await
    } else {
        crate::mfa::use_recovery_code(&issuer.identity, &state.secrets, user.id, code, now)
            .await
            .map_err(crate::mfa::MfaError::from)
    };
    if !ok.or_page(issuer)? {
        attempt.failed(state.clock.now());
        p.record("mfa.failed", user, serde_json::json!({"method": step})).await;
        let msg = if step == "totp" {
            "That code is not right, or was already used. Wait for the next one and try again."
        } else {
            "That recovery code is not valid or was already used."
        };
        return p.next(StatusCode::UNAUTHORIZED, context! { code_error => msg }).await;
    }
    attempt.succeeded(state.clock.now());
    let mut amr = p.pending.amr.0.clone();
    if step == "totp" {
        amr.push("otp".into());
    }
    amr.push("mfa".into());
    pending::set_amr(&issuer.identity, &p.token, &amr).await.or_page(issuer)?;
    if step == "recovery" {
        p.record("mfa.recovery_code_used", user, serde_json::json!({})).await;
    }
    p.pending.amr = Json(amr);
    p.next(StatusCode::OK, context! {}).await
}

/// A new password for an expired one. `Some` is the step again with the field's error.
async fn change_expired_password(
    p: &Parked<'_>,
    user: &User,
    form: &Form,
) -> Result<Option<Response>, PageError> {
    let (state, issuer) = (p.state, p.issuer);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let password = form.get("password").unwrap_or("");
    if let Err(msg) = issuer.app.policy.password.check(password) {
        return p.next(unprocessable, context! { password_error => msg }).await.map(Some);
    }
    let password = SecretString::from(password.to_string());
    let unchanged = match &user.password_hash {
        Some(old) => state.passwords.verify(&password, Some(old)).await.map(|v| v.ok).unwrap_or(false),
        None => false,
    };
    if unchanged {
        let msg = "Choose a password different from the expired one.";
        return p.next(unprocessable, context! { password_error => msg }).await.map(Some);
    }
    let hash = state.passwords.hash(&password).await.or_page(issuer)?;
    users::change_password(&issuer.identity, user.id, &hash, state.now()).await.or_page(issuer)?;
    p.record("password.change", user, serde_json::json!({"reason": "expired"})).await;
    Ok(None)
}

/// The profile fields the app requires. `Some` is the step again with the fields' errors.
async fn complete_profile(p: &Parked<'_>, user: &User, form: &Form) -> Result<Option<Response>, PageError> {
    let issuer = p.issuer;
    let mut values = Vec::new();
    let mut errors = serde_json::Map::new();
    for (field, _) in users::PROFILE_FIELDS {
        if !issuer.app.policy.required_profile_fields.iter().any(|r| r == field) {
            continue;
        }
        match form.get(field).map(|v| users::clean_profile_value(field, v)) {
            Some(Ok(v)) => values.push((field.to_string(), v)),
            Some(Err(msg)) => {
                errors.insert(field.to_string(), msg.into());
            }
            None if user.profile_field(field).is_some() => {}
            None => {
                errors.insert(field.to_string(), "This field is required.".into());
            }
        }
    }
    if !errors.is_empty() {
        return p.next(StatusCode::UNPROCESSABLE_ENTITY, context! { errors => errors }).await.map(Some);
    }
    users::set_profile_fields(&issuer.identity, user, &values, p.state.now()).await.or_page(issuer)?;
    Ok(None)
}
