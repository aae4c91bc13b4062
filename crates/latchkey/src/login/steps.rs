//! What stands between a proven first factor and a session (SPEC §8 policy): an expired
//! password to change, an unconfirmed address when the app requires confirmation, profile fields
//! the app requires. Until every step is done there is no session and no token: the browser
//! holds only a short-lived `lk_pending` cookie naming a `pending_logins` row (stored hashed),
//! and `/continue` shows the next step. Each request re-evaluates the steps against the current
//! policy and user, so a policy change applies to sign-ins already under way.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use minijinja::context;
use secrecy::SecretString;
use sqlx::types::Json;
use uuid::Uuid;

use super::csrf;
use super::handlers::{internal, issuer_or_page, origin, page, record_event, secure, start_session};
use crate::state::AppState;
use crate::crypto::tokens;
use crate::mail::{Kind, links};
use crate::oidc::authorize;
use crate::oidc::form::Form;
use crate::oidc::issuer::Issuer;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::users::{self, User};

/// Cookie naming the sign-in under way (scoped to the issuer path).
pub const COOKIE: &str = "lk_pending";
/// How long a sign-in may wait on its steps.
const TTL: i64 = 30;

/// A step still to do, in the order they are asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The second factor (TOTP or a recovery code), always first: nothing else is asked of
    /// someone who has only proven the first factor.
    Totp,
    VerifyEmail,
    PasswordChange,
    Profile(Vec<&'static str>),
}

/// The steps `user` (with a confirmed second factor or not: `mfa`) must still take under the
/// app's current policy.
pub fn steps(issuer: &Issuer, user: &User, mfa: bool, amr: &[String], now: Ts) -> Vec<Step> {
    let policy = &issuer.app.policy;
    let mut out = Vec::new();
    if mfa && !amr.iter().any(|m| m == "mfa") {
        out.push(Step::Totp);
        return out;
    }
    if policy.require_email_verification && !user.email_verified {
        out.push(Step::VerifyEmail);
    }
    if amr.iter().any(|m| m == "pwd")
        && user.password_hash.is_some()
        && policy.password.expired(user.password_changed_at.map(|t| t.0), now.0)
    {
        out.push(Step::PasswordChange);
    }
    let missing: Vec<&'static str> = users::PROFILE_FIELDS
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| policy.required_profile_fields.iter().any(|r| r == f) && user.profile_field(f).is_none())
        .collect();
    if !missing.is_empty() {
        out.push(Step::Profile(missing));
    }
    out
}

#[derive(sqlx::FromRow)]
struct Pending {
    user_id: Uuid,
    amr: Json<Vec<String>>,
    auth_request_id: Option<String>,
}

fn hash(token: &str) -> String {
    tokens::sha256_hex(&SecretString::from(token.to_string()))
}

fn set_cookie(value: Option<&str>, slug: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => {
            format!("{COOKIE}={v}; Path=/apps/{slug}; HttpOnly; SameSite=Lax; Max-Age={}{secure}", TTL * 60)
        }
        None => format!("{COOKIE}=; Path=/apps/{slug}; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

fn with_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(h) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, h);
    }
    res
}

/// Parks a sign-in whose first factor succeeded and sends the browser to `/mfa` (second
/// factor) or `/continue` (any other step).
pub async fn park(
    state: &AppState,
    issuer: &Issuer,
    user_id: Uuid,
    amr: &[&str],
    auth_request_id: Option<&str>,
    first: &Step,
) -> Response {
    let token = tokens::random_b64(32);
    let now = state.now();
    let sql = "INSERT INTO pending_logins (token_hash, user_id, amr, auth_request_id, created_at, expires_at) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    let amr: Vec<String> = amr.iter().map(|s| s.to_string()).collect();
    let expires = Ts::new(now.0 + Duration::minutes(TTL));
    let res = on_db!(&issuer.identity, p => sqlx::query(sql)
        .bind(hash(&token)).bind(user_id).bind(Json(&amr)).bind(auth_request_id).bind(now).bind(expires)
        .execute(p).await.map(|_| ()));
    if let Err(e) = res {
        return internal(state, issuer, &e);
    }
    let slug = issuer.app.slug.as_str();
    let page = if *first == Step::Totp { "mfa" } else { "continue" };
    let to = format!("{}/apps/{slug}/{page}", state.config.public_base());
    with_cookie(Redirect::to(&to).into_response(), &set_cookie(Some(&token), slug, secure(state)))
}

async fn load(db: &IdentityDb, headers: &HeaderMap, now: Ts) -> Result<Option<(String, Pending)>, sqlx::Error> {
    let Some(token) = csrf::cookie(headers, COOKIE).filter(|t| !t.is_empty() && t.len() <= 64) else {
        return Ok(None);
    };
    let sql =
        "SELECT user_id, amr, auth_request_id FROM pending_logins WHERE token_hash = $1 AND expires_at > $2";
    let h = hash(token);
    let row: Option<Pending> =
        on_db!(db, p => sqlx::query_as(sql).bind(&h).bind(now).fetch_optional(p).await)?;
    Ok(row.map(|r| (h, r)))
}

async fn forget(db: &IdentityDb, token_hash: &str) -> Result<(), sqlx::Error> {
    on_db!(db, p => sqlx::query("DELETE FROM pending_logins WHERE token_hash = $1").bind(token_hash).execute(p).await.map(|_| ()))
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
    token_hash: &str,
    pending: &Pending,
    status: StatusCode,
    view: minijinja::Value,
) -> Response {
    let now = state.now();
    let user = match users::get(&issuer.identity, pending.user_id).await {
        Ok(Some(u)) if u.status == "active" => u,
        Ok(_) => return expired_page(state, issuer),
        Err(e) => return internal(state, issuer, &e),
    };
    let mfa = match crate::mfa::enrolled(&issuer.identity, user.id).await {
        Ok(m) => m,
        Err(e) => return internal(state, issuer, &e),
    };
    let todo = steps(issuer, &user, mfa, &pending.amr.0, now);
    let Some(step) = todo.first() else {
        if let Err(e) = forget(&issuer.identity, token_hash).await {
            return internal(state, issuer, &e);
        }
        let request = match &pending.auth_request_id {
            Some(id) => match authorize::pending(&issuer.identity, id, now).await {
                Ok(r) => r,
                Err(e) => return internal(state, issuer, &e),
            },
            None => None,
        };
        let amr: Vec<&str> = pending.amr.0.iter().map(String::as_str).collect();
        let res = start_session(state, issuer, user.id, request, origin(headers, addr), &amr).await;
        return with_cookie(res, &set_cookie(None, issuer.app.slug.as_str(), secure(state)));
    };
    let policy = &issuer.app.policy;
    let ctx = match step {
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
    if !csrf::check(&state.secrets, csrf::cookie(&headers, csrf::COOKIE), form.get("csrf")) {
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
        Ok(Some(u)) if u.status == "active" => u,
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
    let mfa = match crate::mfa::enrolled(&issuer.identity, user.id).await {
        Ok(m) => m,
        Err(e) => return internal(&state, &issuer, &e),
    };
    let due = steps(&issuer, &user, mfa, &pending.amr.0, now).into_iter().next();
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
                    let sql = "UPDATE pending_logins SET amr = $2 WHERE token_hash = $1";
                    if let Err(e) = on_db!(&issuer.identity, p => sqlx::query(sql).bind(&h).bind(Json(&amr)).execute(p).await.map(|_| ()))
                    {
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
            let key = super::throttle::account_key(&user.email);
            if let Err(wait) = state.mail_throttle.check(issuer.app.id, &key, addr.ip()) {
                let mut res =
                    again(StatusCode::TOO_MANY_REQUESTS, context! { notice => wait.message() }).await;
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.retry_after_secs));
                return res;
            }
            if let Err(e) = links::issue(&state, &issuer, Kind::VerifyEmail, &user, None).await {
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
