//! Second factor on `/account` (SPEC §7): set up an authenticator app (QR code drawn on the
//! server, the key as text, confirmed by a first code), recovery codes shown once and
//! regenerable with a fresh code, and removal with a fresh code or a recovery code. Every code
//! check is throttled like a sign-in and failures are audited (`mfa.failed`).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;

use super::account::{SignedIn, base, csrf_for, show_account, with_cookie};
use super::handlers::record_event;
use crate::mfa;
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::users::User;
use crate::web::{OrPage, PageError};

fn render(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
) -> Response {
    let slug = issuer.app.slug.as_str();
    let (csrf, set) = csrf_for(state, headers, slug);
    let res = state.pages.render(
        status,
        Some(&issuer.app),
        name,
        context! { ..ctx, ..context! { base => base(state, slug), csrf } },
    );
    match set {
        Some(c) => with_cookie(res, c),
        None => res,
    }
}

fn codes_page(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    codes: Vec<String>,
    message: &str,
) -> Response {
    render(state, issuer, headers, StatusCode::OK, "mfa_codes.html", context! { codes, message })
}

/// Which code a form carries.
#[derive(Clone, Copy)]
enum Code {
    /// The first code of an enrolment under way.
    Enrolment,
    /// A code of the enrolled authenticator, or also a recovery code.
    Fresh { recovery_ok: bool },
}

fn holder<'a>(issuer: &'a Issuer, user: &'a User) -> mfa::Holder<'a> {
    mfa::Holder {
        app_id: issuer.app.id,
        user_id: user.id,
        issuer_name: &issuer.app.display_name,
        account: &user.email,
    }
}

/// Checks the posted `code` under the sign-in throttle (key `mfa:<user id>`), auditing a
/// failure (`mfa.failed`). `Ok(false)` is a wrong or spent code; `Err` is the page to answer
/// with (429 with `Retry-After`, or an internal error).
async fn check_throttled(state: &AppState, me: &SignedIn, kind: Code) -> Result<bool, PageError> {
    let SignedIn { issuer, user, form, addr, headers, .. } = me;
    let code = form.get("code").unwrap_or("");
    let key = format!("mfa:{}", user.id);
    let attempt = match state.throttle.begin(issuer.app.id, &key, addr.ip(), state.clock.now()) {
        Ok(a) => a,
        Err(refused) => {
            let mut res = show_account(state, issuer, headers, Some(&refused.message())).await;
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs));
            return Err(PageError::rendered(res));
        }
    };
    let now = state.now();
    let (db, secrets) = (&issuer.identity, &state.secrets);
    let mut ok =
        mfa::check_code(db, secrets, issuer.app.id, user.id, code, !matches!(kind, Code::Enrolment), now)
            .await;
    if matches!(kind, Code::Fresh { recovery_ok: true }) && matches!(ok, Ok(false)) {
        ok = mfa::use_recovery_code(db, secrets, user.id, code, now).await.map_err(mfa::MfaError::from);
    }
    if ok.or_page(issuer)? {
        attempt.succeeded(state.clock.now());
        return Ok(true);
    }
    attempt.failed(state.clock.now());
    let on = if matches!(kind, Code::Enrolment) { "enrolment" } else { "account" };
    let data = serde_json::json!({"on": on});
    record_event(state, issuer, "mfa.failed", Some(user.id), headers, *addr, data).await;
    Ok(false)
}

/// A fresh code for an account change; a wrong one answers the account page with 401.
async fn fresh_code(state: &AppState, me: &SignedIn, recovery_ok: bool) -> Result<(), PageError> {
    if check_throttled(state, me, Code::Fresh { recovery_ok }).await? {
        return Ok(());
    }
    let msg = Some("That code is not right, or was already used.");
    let mut res = show_account(state, &me.issuer, &me.headers, msg).await;
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    Err(PageError::rendered(res))
}

pub async fn post_setup(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, user, headers, .. } = me;
    let started = mfa::start(&issuer.identity, &state.secrets, &holder(&issuer, &user), state.now()).await;
    Ok(match started {
        Ok(Some(e)) => render(
            &state,
            &issuer,
            &headers,
            StatusCode::OK,
            "mfa_setup.html",
            context! { qr_svg => e.qr_svg, secret => e.secret_base32, uri => e.uri },
        ),
        Ok(None) => {
            show_account(&state, &issuer, &headers, Some("Two-step verification is already on.")).await
        }
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    })
}

pub async fn post_confirm(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let confirmed = check_throttled(&state, &me, Code::Enrolment).await?;
    let SignedIn { issuer, user, addr, headers, .. } = me;
    let now = state.now();
    if !confirmed {
        let again = mfa::pending_enrolment(&issuer.identity, &state.secrets, &holder(&issuer, &user)).await;
        return Ok(match again.or_page(&issuer)? {
            Some(e) => render(
                &state,
                &issuer,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "mfa_setup.html",
                context! {
                    qr_svg => e.qr_svg, secret => e.secret_base32, uri => e.uri,
                    code_error => "That code is not right. Check the time on your device and enter the newest code.",
                },
            ),
            None => show_account(&state, &issuer, &headers, Some("Start the setup again.")).await,
        });
    }
    let codes =
        mfa::new_recovery_codes(&issuer.identity, &state.secrets, user.id, now).await.or_page(&issuer)?;
    let data = serde_json::json!({"method": "totp"});
    record_event(&state, &issuer, "mfa.enrolled", Some(user.id), &headers, addr, data).await;
    Ok(codes_page(&state, &issuer, &headers, codes, "Two-step verification is on."))
}

pub async fn post_recovery_codes(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    fresh_code(&state, &me, false).await?;
    let SignedIn { issuer, user, addr, headers, .. } = me;
    let codes = mfa::new_recovery_codes(&issuer.identity, &state.secrets, user.id, state.now())
        .await
        .or_page(&issuer)?;
    let data = serde_json::json!({});
    record_event(&state, &issuer, "mfa.recovery_codes_renewed", Some(user.id), &headers, addr, data).await;
    Ok(codes_page(&state, &issuer, &headers, codes, "Your old recovery codes no longer work."))
}

pub async fn post_remove(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    fresh_code(&state, &me, true).await?;
    let SignedIn { issuer, user, addr, headers, .. } = me;
    mfa::remove(&issuer.identity, user.id).await.or_page(&issuer)?;
    let data = serde_json::json!({"by": "user"});
    record_event(&state, &issuer, "mfa.removed", Some(user.id), &headers, addr, data).await;
    Ok(show_account(&state, &issuer, &headers, Some("Two-step verification is off.")).await)
}
