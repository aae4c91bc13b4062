//! `/account`: the signed-in user's profile and sessions (sign out this device, sign out
//! everywhere), and `/logout` (OpenID Connect RP-Initiated Logout 1.0).

use std::sync::Arc;

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::handlers::{Post, internal, record_event, secure};
use crate::keys::material;
use crate::sessions::{self, Session};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::users;
use crate::web::cookies::SetCookie;
use crate::web::csrf;
use crate::web::form::Form;
use crate::web::{OrPage, PageError, Tenant};

pub(super) fn base(state: &AppState, slug: &str) -> String {
    format!("{}/apps/{slug}", state.config.public_base())
}

pub(super) async fn current_session(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
) -> Result<Option<Session>, sessions::SessionError> {
    match csrf::cookie(headers, sessions::COOKIE) {
        Some(c) => sessions::from_cookie(&issuer.identity, c, &issuer.app.policy.session, state.now()).await,
        None => Ok(None),
    }
}

pub(super) fn with_cookie(mut res: Response, value: String) -> Response {
    if let Ok(h) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, h);
    }
    res
}

/// The CSRF token for this browser, and the cookie to set if it had none.
pub(super) fn csrf_for(state: &AppState, headers: &HeaderMap, slug: &str) -> (String, Option<String>) {
    match csrf::cookie(headers, csrf::COOKIE) {
        Some(v) if !v.is_empty() && v.len() <= 64 => (csrf::form_token(&state.secrets, v), None),
        _ => {
            let v = csrf::new_cookie_value();
            (
                csrf::form_token(&state.secrets, &v),
                Some(csrf::set_cookie(&v, &format!("/apps/{slug}"), secure(state))),
            )
        }
    }
}

pub async fn get_account(
    State(state): State<AppState>,
    Tenant { issuer, .. }: Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    Ok(show_account(&state, &issuer, &headers, None).await)
}

pub(super) async fn show_account(
    state: &AppState,
    issuer: &Arc<Issuer>,
    headers: &HeaderMap,
    notice: Option<&str>,
) -> Response {
    let slug = issuer.app.slug.as_str();
    let session = match current_session(state, issuer, headers).await {
        Ok(Some(s)) => s,
        // Not signed in: sign in first, then land here.
        Ok(None) => return Redirect::to(&format!("{}/login", base(state, slug))).into_response(),
        Err(e) => return internal(issuer, &e),
    };
    let now = state.now();
    let _ = sessions::touch(&issuer.identity, &session.id, now).await;
    let (user, list) = match (
        users::get(&issuer.identity, session.user_id).await,
        sessions::list_for_user(&issuer.identity, session.user_id, &issuer.app.policy.session, now).await,
    ) {
        (Ok(Some(u)), Ok(l)) => (u, l),
        (Ok(None), _) => return Redirect::to(&format!("{}/login", base(state, slug))).into_response(),
        (Err(e), _) => return internal(issuer, &e),
        (_, Err(e)) => return internal(issuer, &e),
    };
    // Signing in here may have ended older sessions (policy.session.max_concurrent): say so.
    let limit_notice = match issuer.app.policy.session.max_concurrent {
        Some(max) if notice.is_none() => {
            match sessions::ended_for_limit_since(&issuer.identity, session.user_id, session.created_at).await
            {
                Ok(n) if n > 0 => Some(format!(
                    "You were signed out of {n} older session{} because {} allows at most {max} at a time.",
                    if n == 1 { "" } else { "s" },
                    issuer.app.display_name
                )),
                Ok(_) => None,
                Err(e) => return internal(issuer, &e),
            }
        }
        _ => None,
    };
    let notice = notice.map(str::to_string).or(limit_notice);
    let extras = match users::extras(&issuer.identity, user.id, now).await {
        Ok(x) => x,
        Err(e) => return internal(issuer, &e),
    };
    let linked = match users::identities::of_user(&issuer.identity, user.id).await {
        Ok(l) => l,
        Err(e) => return internal(issuer, &e),
    };
    let organizations: Vec<minijinja::Value> =
        match crate::roles::orgs::of_user(&issuer.identity, user.id).await {
            Ok(l) => l.into_iter().map(|o| context! { name => o.name, slug => o.slug }).collect(),
            Err(e) => return internal(issuer, &e),
        };
    let fmt = |t: crate::store::Ts| t.0.format("%Y-%m-%d %H:%M UTC").to_string();
    let identities: Vec<minijinja::Value> = linked
        .iter()
        .map(|i| {
            context! {
                provider => i.provider.clone(), issuer => i.issuer.clone(), subject => i.subject.clone(),
                email => i.email.clone(), linked_at => fmt(i.linked_at),
                label => super::upstream::identity_label(issuer, &i.provider),
            }
        })
        .collect();
    let items: Vec<minijinja::Value> = list
        .iter()
        .map(|s| {
            context! {
                id => s.id.clone(),
                current => s.id == session.id,
                ip => s.ip.clone(),
                user_agent => s.user_agent.clone(),
                created_at => fmt(s.created_at),
                last_seen_at => fmt(s.last_seen_at),
            }
        })
        .collect();
    let (csrf, set) = csrf_for(state, headers, slug);
    let ctx = context! {
        base => base(state, slug), csrf, notice, email => user.email, email_verified => user.email_verified,
        has_password => user.password_hash.is_some(), password_rules => issuer.app.policy.password.rules_text(),
        mfa => extras.totp, recovery_left => extras.recovery_codes_left,
        min_length => issuer.app.policy.password.min_length,
        name => user.name.unwrap_or_default(), sessions => items,
        identities, linkable => super::upstream::linkable(issuer), organizations,
    };
    let res = state.pages.render(StatusCode::OK, Some(&issuer.app), "account.html", ctx);
    match set {
        Some(c) => with_cookie(res, c),
        None => res,
    }
}

/// A signed-in, CSRF-checked form post, or the response to give instead.
pub(super) async fn signed_in_post(
    state: &AppState,
    issuer: &Arc<Issuer>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Session, Form), Box<Response>> {
    let slug = issuer.app.slug.as_str();
    let form = Form::parse(body).map_err(|_| {
        Box::new(state.pages.message(
            StatusCode::BAD_REQUEST,
            Some(&issuer.app),
            "Request not valid",
            "The form could not be read.",
        ))
    })?;
    if !csrf::verify(&state.secrets, headers, &form) {
        return Err(Box::new(state.pages.message(
            StatusCode::BAD_REQUEST,
            Some(&issuer.app),
            "Request not valid",
            "This page expired. Go back, reload it and try again.",
        )));
    }
    match current_session(state, issuer, headers).await {
        Ok(Some(s)) => Ok((s, form)),
        Ok(None) => Err(Box::new(Redirect::to(&format!("{}/login", base(state, slug))).into_response())),
        Err(e) => Err(Box::new(internal(issuer, &e))),
    }
}

/// A CSRF-checked form post from a signed-in browser on the account pages: the app's issuer, the
/// session and its user, the form. When it is not one, the rejection is the page (or the
/// redirect to `/login`) to answer with.
pub(super) struct SignedIn {
    pub issuer: Arc<Issuer>,
    pub slug: String,
    pub session: Session,
    pub user: users::User,
    pub form: Form,
    pub addr: SocketAddr,
    pub headers: HeaderMap,
}

impl axum::extract::FromRequest<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let Post { issuer, addr, headers, body } = Post::from_request(req, state).await?;
        let slug = issuer.app.slug.to_string();
        let (session, form) = signed_in_post(state, &issuer, &headers, &body).await.map_err(|r| *r)?;
        let user = match users::get(&issuer.identity, session.user_id).await {
            Ok(Some(u)) => u,
            Ok(None) => return Err(Redirect::to(&format!("{}/login", base(state, &slug))).into_response()),
            Err(e) => return Err(internal(&issuer, &e)),
        };
        Ok(SignedIn { issuer, slug, session, user, form, addr, headers })
    }
}

pub async fn post_profile(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, session, form, headers, .. } = me;
    let name: String =
        form.get("name").unwrap_or("").trim().chars().filter(|c| !c.is_control()).take(200).collect();
    let name = (!name.is_empty()).then_some(name);
    users::set_name(&issuer.identity, session.user_id, name.as_deref(), state.now())
        .await
        .or_page(&issuer)?;
    Ok(show_account(&state, &issuer, &headers, Some("Your profile was saved.")).await)
}

pub async fn post_revoke_session(
    State(state): State<AppState>,
    Path((_, sid)): Path<(String, String)>,
    me: SignedIn,
) -> Result<Response, PageError> {
    let SignedIn { issuer, slug, session, addr, headers, .. } = me;
    Ok(match sessions::revoke_own(&issuer.identity, session.user_id, &sid, state.now()).await {
        Ok(true) => {
            let data = serde_json::json!({"sid": sid});
            record_event(&state, &issuer, "session.revoked", Some(session.user_id), &headers, addr, data)
                .await;
            Redirect::to(&format!("{}/account", base(&state, &slug))).into_response()
        }
        Ok(false) => show_account(&state, &issuer, &headers, Some("That session had already ended.")).await,
        Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
    })
}

/// Changes the password: the current one is required (and throttled like a sign-in), the new
/// one follows the app's rules; every other session of the user ends (`password.change`).
pub async fn post_password(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, session, user, form, addr, headers, .. } = me;
    let new = form.get("new_password").unwrap_or("");
    if let Err(msg) = issuer.app.policy.password.check(new) {
        let mut res = show_account(&state, &issuer, &headers, Some(&msg)).await;
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(res);
    }
    let key = crate::signin::throttle::account_key(&user.email);
    let attempt = match state.throttle.begin(issuer.app.id, &key, addr.ip(), state.clock.now()) {
        Ok(a) => a,
        Err(refused) => {
            let mut res = show_account(&state, &issuer, &headers, Some(&refused.message())).await;
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs));
            return Ok(res);
        }
    };
    let current = secrecy::SecretString::from(form.get("current_password").unwrap_or("").to_string());
    // An account without a password (magic link only) sets its first one without a current one.
    if user.password_hash.is_some() {
        let ok = state
            .passwords
            .verify(&current, user.password_hash.as_deref())
            .await
            .map(|v| v.ok)
            .unwrap_or(false);
        if !ok {
            attempt.failed(state.clock.now());
            let mut res =
                show_account(&state, &issuer, &headers, Some("The current password is not correct.")).await;
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            return Ok(res);
        }
    }
    attempt.succeeded(state.clock.now());
    let hash = state.passwords.hash(&secrecy::SecretString::from(new.to_string())).await.or_page(&issuer)?;
    let now = state.now();
    users::change_password(&issuer.identity, user.id, &hash, now).await.or_page(&issuer)?;
    let others =
        sessions::revoke_others(&issuer.identity, user.id, &session.id, now).await.or_page(&issuer)?;
    let data = serde_json::json!({"sessions_ended": others});
    record_event(&state, &issuer, "password.change", Some(user.id), &headers, addr, data).await;
    Ok(show_account(
        &state,
        &issuer,
        &headers,
        Some("Your password was changed. Every other session was signed out."),
    )
    .await)
}

/// Sends the email confirmation link again (throttled like every mail request).
pub async fn post_verify_email(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, user, addr, headers, .. } = me;
    if user.email_verified {
        return Ok(
            show_account(&state, &issuer, &headers, Some("Your email address is already confirmed.")).await
        );
    }
    let key = crate::signin::throttle::account_key(&user.email);
    if let Err(wait) = state.mail_throttle.check(issuer.app.id, &key, addr.ip()) {
        metrics::counter!("latchkey_mail_throttled_total").increment(1);
        let mut res = show_account(&state, &issuer, &headers, Some(&wait.message())).await;
        if res.status() == StatusCode::OK {
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.retry_after_secs));
        }
        return Ok(res);
    }
    if let Err(e) =
        crate::mail::links::issue(&state.post(), &issuer, crate::mail::Kind::VerifyEmail, &user, None).await
    {
        return Err(PageError::internal(Some(&issuer.app), &e));
    }
    let notice = format!("We sent a new confirmation link to {}.", user.email);
    Ok(show_account(&state, &issuer, &headers, Some(&notice)).await)
}

pub async fn post_logout_all(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, slug, session, addr, headers, .. } = me;
    sessions::logout_all(&issuer.identity, session.user_id, state.now()).await.or_page(&issuer)?;
    record_event(&state, &issuer, "logout.all", Some(session.user_id), &headers, addr, serde_json::json!({}))
        .await;
    let res = state.pages.message(
        StatusCode::OK,
        Some(&issuer.app),
        "Signed out everywhere",
        "You are signed out on every device.",
    );
    let mut res = res;
    SetCookie::removal(sessions::COOKIE, &format!("/apps/{slug}")).secure(secure(&state)).append_to(&mut res);
    Ok(res)
}

/// RP-Initiated Logout 1.0 §2–§3, §6. A registered `post_logout_redirect_uri` is required
/// before any redirect; unless `id_token_hint` was issued to the browser's own session, the user
/// confirms first.
pub async fn logout(
    State(state): State<AppState>,
    Tenant { issuer, .. }: Tenant,
    method: axum::http::Method,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    let slug = issuer.app.slug.to_string();
    let raw = if method == axum::http::Method::POST {
        body.map_err(|e| PageError::body(Some(&issuer.app), &e))?.to_vec()
    } else {
        query.unwrap_or_default().into_bytes()
    };
    let bad = |msg: &str| {
        state.pages.message(StatusCode::BAD_REQUEST, Some(&issuer.app), "Sign-out request not valid", msg)
    };
    let Ok(form) = Form::parse(&raw) else { return Ok(bad("The sign-out request is malformed.")) };

    // The hint names the client (its audience) and the session it was issued to; it may have
    // expired (§2).
    let hint = match form.get("id_token_hint") {
        None => None,
        Some(hint) => {
            let verified = material::unverified_kid(hint)
                .and_then(|kid| issuer.verifiers.get(kid.as_str()))
                .and_then(|(alg, key)| material::verify::<serde_json::Value>(hint, *alg, key, "JWT"))
                .filter(|v| v.claims["iss"] == issuer.url.as_str());
            match verified.and_then(|v| Hint::of(&v.claims)) {
                Some(h) => Some(h),
                None => return Ok(bad("The id_token_hint was not issued here.")),
            }
        }
    };
    let hinted_client = hint.as_ref().map(|h| h.aud.clone());
    let client_id = match (form.get("client_id"), &hinted_client) {
        (Some(c), Some(h)) if c != h => return Ok(bad("client_id does not match the id_token_hint.")),
        (Some(c), _) => Some(c.to_string()),
        (None, h) => h.clone(),
    };
    let redirect = match form.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let registered = client_id
                .as_deref()
                .and_then(|c| issuer.clients.get(c))
                .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r.as_str() == uri));
            if !registered {
                return Ok(bad(
                    "The address to return to after signing out is not registered for this application.",
                ));
            }
            Some(uri.to_string())
        }
    };
    let confirmed = method == axum::http::Method::POST
        && form.get("confirm") == Some("yes")
        && csrf::verify(&state.secrets, &headers, &form);
    let from_account = method == axum::http::Method::POST
        && form.get("confirm").is_none()
        && csrf::verify(&state.secrets, &headers, &form);
    let session = current_session(&state, &issuer, &headers).await.or_page(&issuer)?;
    // Ending a session without asking is for the relying party that session signed in to: a
    // hint issued to another session (an attacker's own ID token) gets the confirmation page.
    let silent = match (&hint, &session) {
        (Some(h), Some(s)) => h.sid.as_deref() == Some(s.id.as_str()) && h.sub == s.user_id.to_string(),
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !silent && !confirmed && !from_account {
        let (csrf, set) = csrf_for(&state, &headers, &slug);
        let ctx = context! {
            action => format!("{}/logout", base(&state, &slug)), csrf,
            client_id => client_id, post_logout_redirect_uri => redirect, state => form.get("state"),
        };
        let res = state.pages.render(StatusCode::OK, Some(&issuer.app), "logout.html", ctx);
        return Ok(match set {
            Some(c) => with_cookie(res, c),
            None => res,
        });
    }
    if let Some(session) = session {
        sessions::revoke(&issuer.identity, &session.id, state.now()).await.or_page(&issuer)?;
        let data = serde_json::json!({"sid": session.id});
        record_event(&state, &issuer, "logout", Some(session.user_id), &headers, addr, data).await;
    }
    let res = match redirect {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = form.get("state") {
                params.push(("state", s));
            }
            Redirect::to(&crate::grants::requests::redirect_with(&uri, &params)).into_response()
        }
        None => state.pages.message(
            StatusCode::OK,
            Some(&issuer.app),
            "Signed out",
            &format!("You are signed out of {}.", issuer.app.display_name),
        ),
    };
    let mut res = res;
    SetCookie::removal(sessions::COOKIE, &format!("/apps/{slug}")).secure(secure(&state)).append_to(&mut res);
    Ok(res)
}

/// What a verified `id_token_hint` says: the client it was issued to and the session.
struct Hint {
    aud: String,
    sub: String,
    sid: Option<String>,
}

impl Hint {
    fn of(claims: &serde_json::Value) -> Option<Hint> {
        Some(Hint {
            aud: claims["aud"].as_str()?.to_string(),
            sub: claims["sub"].as_str()?.to_string(),
            sid: claims["sid"].as_str().map(str::to_string),
        })
    }
}
