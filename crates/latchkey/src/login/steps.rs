//! `/continue` and `/mfa`: the steps between a proven first factor and a session (the rules
//! are the sign-in service's, `signin::steps`). Until every step is done there is no session
//! and no token: the browser holds only the short-lived `lk_pending` cookie, and every request
//! re-evaluates the steps against the current policy and user, so a policy change applies to
//! sign-ins already under way.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;
use sqlx::types::Json;

use super::handlers::{
    PENDING_COOKIE, internal, issuer_or_page, origin, page, record_event, respond, secure,
};
use crate::crypto::tokens;
use crate::mail::{Kind, links};
use crate::signin::pending::{self, Pending};
use crate::signin::{self, Resumed, Step};
use crate::state::AppState;
use crate::store::{IdentityDb, Ts};
use crate::tenant::Issuer;
use crate::users;
use crate::web::cookies::SetCookie;
use crate::web::csrf;
use crate::web::form::Form;

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
    let login = format!("{}/apps/{}/login", state.config.public_base(), issuer.app.slug);
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

/// Shows the next step, or finishes the sign-in when none is left.
#[expect(clippy::too_many_arguments, reason = "each is a distinct part of the row or request")]
async fn next(
    state: &AppState,
    issuer: &Arc<Issuer>,
    headers: &HeaderMap,
    addr: SocketAddr,
    token: &tokens::Hashed,
    pending: &Pending,
    status: StatusCode,
    view: minijinja::Value,
) -> Response {
    let cx = signin::Context::of(issuer, state.now());
    let (user, step) = match signin::service::resume(cx, token, pending, &origin(headers, addr)).await {
        Ok(Resumed::Due { user, step }) => (user, step),
        Ok(Resumed::Expired) => return expired_page(state, issuer),
        Ok(Resumed::Done(outcome)) => {
            let mut res = respond(state, issuer, outcome);
            SetCookie::removal(PENDING_COOKIE, &format!("/apps/{}", issuer.app.slug))
                .secure(secure(state))
                .append_to(&mut res);
            return res;
        }
        Err(e) => return internal(state, issuer, &e),
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
    page(state, issuer, headers, status, "continue.html", "", context! { ..view, ..ctx })
}

pub async fn get_continue(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let issuer = match issuer_or_page(&state, &slug).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    match load(&issuer.identity, &headers, state.now()).await {
        Ok(Some((h, p))) => next(&state, &issuer, &headers, addr, &h, &p, StatusCode::OK, context! {}).await,
        Ok(None) => expired_page(&state, &issuer),
        Err(e) => internal(&state, &issuer, &e),
    }
}

pub async fn post_continue(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let issuer = match issuer_or_page(&state, &slug).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Ok(form) = Form::parse(&body) else { return expired_page(&state, &issuer) };
    if !csrf::verify(&state.secrets, &headers, &form) {
        return state.pages.message(
            StatusCode::BAD_REQUEST,
            Some(&issuer.app),
            "Request not valid",
            "This page expired. Go back, reload it and try again.",
        );
    }
    let now = state.now();
    let (h, pending) = match load(&issuer.identity, &headers, now).await {
        Ok(Some(v)) => v,
        Ok(None) => return expired_page(&state, &issuer),
        Err(e) => return internal(&state, &issuer, &e),
    };
    let user = match users::get(&issuer.identity, pending.user_id).await {
        Ok(Some(u)) if u.status == users::UserStatus::Active => u,
        Ok(_) => return expired_page(&state, &issuer),
        Err(e) => return internal(&state, &issuer, &e),
    };
    let again = |status: StatusCode, view: minijinja::Value| {
        let (state, issuer, headers, h) = (&state, &issuer, &headers, &h);
        let pending = &pending;
        async move { next(state, issuer, headers, addr, h, pending, status, view).await }
    };
    // Only the step that is due may be taken: someone who proved the first factor alone must
    // not change the password or the profile before the second factor.
    let due = match signin::service::due_step(signin::Context::of(&issuer, now), &user, &pending).await {
        Ok(d) => d,
        Err(e) => return internal(&state, &issuer, &e),
    };
    let posted = form.get("step").unwrap_or("");
    let allowed = match &due {
        Some(Step::Totp) => matches!(posted, "totp" | "recovery"),
        Some(Step::VerifyEmail) => matches!(posted, "resend" | "check"),
        Some(Step::PasswordChange) => posted == "password",
        Some(Step::Profile(_)) => posted == "profile",
        None => false,
    };
    if !allowed {
        return again(StatusCode::OK, context! {}).await;
    }
    match posted {
        step @ ("totp" | "recovery") => {
            let key = format!("mfa:{}", user.id);
            let attempt = match state.throttle.begin(issuer.app.id, &key, addr.ip(), state.clock.now()) {
                Ok(a) => a,
                Err(refused) => {
                    let msg = refused.message().replace("to sign in", "at the code");
                    let mut res = again(StatusCode::TOO_MANY_REQUESTS, context! { code_error => msg }).await;
                    res.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs));
                    return res;
                }
            };
            let code = form.get("code").unwrap_or("");
            let ok = if step == "totp" {
                crate::mfa::check_code(
                    &issuer.identity,
                    &state.secrets,
                    issuer.app.id,
                    user.id,
                    code,
                    true,
                    now,
                )
                .await
            } else {
                crate::mfa::use_recovery_code(&issuer.identity, &state.secrets, user.id, code, now)
                    .await
                    .map_err(crate::mfa::MfaError::from)
            };
            match ok {
                Ok(true) => {
                    attempt.succeeded(state.clock.now());
                    let mut amr = pending.amr.0.clone();
                    if step == "totp" {
                        amr.push("otp".into());
                    }
                    amr.push("mfa".into());
                    if let Err(e) = pending::set_amr(&issuer.identity, &h, &amr).await {
                        return internal(&state, &issuer, &e);
                    }
                    if step == "recovery" {
                        record_event(
                            &state,
                            &issuer,
                            "mfa.recovery_code_used",
                            Some(user.id),
                            &headers,
                            addr,
                            serde_json::json!({}),
                        )
                        .await;
                    }
                    let updated = Pending {
                        user_id: pending.user_id,
                        amr: Json(amr),
                        auth_request_id: pending.auth_request_id.clone(),
                    };
                    return next(&state, &issuer, &headers, addr, &h, &updated, StatusCode::OK, context! {})
                        .await;
                }
                Ok(false) => {
                    attempt.failed(state.clock.now());
                    record_event(
                        &state,
                        &issuer,
                        "mfa.failed",
                        Some(user.id),
                        &headers,
                        addr,
                        serde_json::json!({"method": step}),
                    )
                    .await;
                    let msg = if step == "totp" {
                        "That code is not right, or was already used. Wait for the next one and try again."
                    } else {
                        "That recovery code is not valid or was already used."
                    };
                    return again(StatusCode::UNAUTHORIZED, context! { code_error => msg }).await;
                }
                Err(e) => return internal(&state, &issuer, &e),
            }
        }
        "password" => {
            let password = form.get("password").unwrap_or("");
            if let Err(msg) = issuer.app.policy.password.check(password) {
                return again(StatusCode::UNPROCESSABLE_ENTITY, context! { password_error => msg }).await;
            }
            let unchanged = match &user.password_hash {
                Some(old) => state
                    .passwords
                    .verify(&SecretString::from(password.to_string()), Some(old))
                    .await
                    .map(|v| v.ok)
                    .unwrap_or(false),
                None => false,
            };
            if unchanged {
                let msg = "Choose a password different from the expired one.";
                return again(StatusCode::UNPROCESSABLE_ENTITY, context! { password_error => msg }).await;
            }
            let hash = match state.passwords.hash(&SecretString::from(password.to_string())).await {
                Ok(h) => h,
                Err(e) => return internal(&state, &issuer, &e),
            };
            if let Err(e) = users::change_password(&issuer.identity, user.id, &hash, now).await {
                return internal(&state, &issuer, &e);
            }
            record_event(
                &state,
                &issuer,
                "password.change",
                Some(user.id),
                &headers,
                addr,
                serde_json::json!({"reason": "expired"}),
            )
            .await;
        }
        "profile" => {
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
                return again(StatusCode::UNPROCESSABLE_ENTITY, context! { errors => errors }).await;
            }
            if let Err(e) = users::set_profile_fields(&issuer.identity, &user, &values, now).await {
                return internal(&state, &issuer, &e);
            }
        }
        "resend" => {
            let key = crate::signin::throttle::account_key(&user.email);
            if let Err(wait) = state.mail_throttle.check(issuer.app.id, &key, addr.ip()) {
                let mut res =
                    again(StatusCode::TOO_MANY_REQUESTS, context! { notice => wait.message() }).await;
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.retry_after_secs));
                return res;
            }
            if let Err(e) = links::issue(&state.post(), &issuer, Kind::VerifyEmail, &user, None).await {
                return internal(&state, &issuer, &e);
            }
            let notice = format!("We sent a new confirmation link to {}.", user.email);
            return again(StatusCode::OK, context! { notice }).await;
        }
        // "check": confirmed in another tab, or anything else: look again.
        _ => {}
    }
    again(StatusCode::OK, context! {}).await
}
