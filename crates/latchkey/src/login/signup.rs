//! `/signup` under each app's `signup_policy` (SPEC §8):
//!
//! - `open` and `auto_on_first_access`: anyone may register (the latter also creates accounts on
//!   a first magic-link sign-in, see `login::email`);
//! - `invite_only`: only with a live invitation (`?invitation=…`), and only for the invited
//!   address;
//! - `admin_approval`: the account is created `pending_approval` and cannot sign in until an
//!   operator approves it.
//!
//! Every path checks the email domain rules, the password rules and the required profile fields
//! on the server; an invitation is accepted in one transaction with the account it creates.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;

use super::handlers::{
    Post, Visit, awaiting_approval, begin_attempt, clean_request_id, email_method_form, finish, origin, page,
    record_event, request_id,
};
use crate::apps::model::SignupPolicy;
use crate::grants::requests as authorize;
use crate::invitations::{self, Accepted, Purpose};
use crate::mail::{Kind, links};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::users::{self, Email, NewUser, UserStatus};
use crate::web::form::Form;
use crate::web::{OrPage, PageError};

/// Everything the sign-up page shows.
#[derive(Default)]
struct SignupView {
    request_id: String,
    invitation: String,
    email: String,
    email_fixed: bool,
    form_error: Option<String>,
    email_error: Option<String>,
    password_error: Option<String>,
    values: serde_json::Map<String, serde_json::Value>,
    errors: serde_json::Map<String, serde_json::Value>,
}

fn show(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    status: StatusCode,
    f: SignupView,
) -> Response {
    let policy = &issuer.app.policy;
    let fields: Vec<minijinja::Value> = users::PROFILE_FIELDS
        .iter()
        .filter(|(n, _)| policy.required_profile_fields.iter().any(|r| r == n))
        .map(|(name, label)| {
            context! {
                name, label,
                value => f.values.get(*name).and_then(|v| v.as_str()).unwrap_or(""),
                error => f.errors.get(*name).and_then(|v| v.as_str()),
            }
        })
        .collect();
    let ctx = context! {
        email => f.email, email_fixed => f.email_fixed, invitation => f.invitation,
        form_error => f.form_error, email_error => f.email_error, password_error => f.password_error,
        min_length => policy.password.min_length, password_rules => policy.password.rules_text(), fields,
    };
    page(state, issuer, headers, status, "signup.html", &f.request_id, ctx)
}

fn invite_only(state: &AppState, issuer: &Issuer) -> Response {
    state.pages.message(
        StatusCode::FORBIDDEN,
        Some(&issuer.app),
        "Invitation needed",
        "Accounts for this application are created by invitation only. Ask its administrators for an invitation, or sign in if you already have an account.",
    )
}

fn invitation_invalid(state: &AppState, issuer: &Issuer) -> Response {
    state.pages.message(
        StatusCode::BAD_REQUEST,
        Some(&issuer.app),
        "Invitation not valid",
        "This invitation has been used, withdrawn or has expired. Ask for a new one.",
    )
}

/// The message for an address whose domain the app does not accept.
pub(super) fn domain_refused(email: &Email) -> String {
    let domain = email.domain();
    format!("Accounts with addresses at {domain} cannot be created here.")
}

fn domain_of(email: &Email) -> &str {
    email.domain()
}

pub async fn get_signup(
    State(state): State<AppState>,
    Visit { issuer, query: q, headers }: Visit,
) -> Result<Response, PageError> {
    if !issuer.app.policy.allows_email() && !super::upstream::any_offered(&issuer) {
        return Ok(PageError::email_not_offered(&issuer).into_response());
    }
    let query = q.as_deref().and_then(|q| Form::parse(q.as_bytes()).ok());
    let invitation = query.as_ref().and_then(|f| f.get("invitation")).unwrap_or("").to_string();
    let mut f = SignupView { request_id: request_id(q.as_deref()), ..Default::default() };
    if !invitation.is_empty() {
        let found = invitations::peek(&issuer.identity, Purpose::Invitation, &invitation, state.now());
        let Some(t) = found.await.or_page(&issuer)? else { return Ok(invitation_invalid(&state, &issuer)) };
        f.email = t.email;
        f.email_fixed = true;
        f.invitation = invitation;
    } else if issuer.app.policy.signup_policy == SignupPolicy::InviteOnly {
        return Ok(invite_only(&state, &issuer));
    }
    Ok(show(&state, &issuer, &headers, StatusCode::OK, f))
}

pub async fn post_signup(
    State(state): State<AppState>,
    Post { issuer, addr, headers, body }: Post,
) -> Result<Response, PageError> {
    let form = email_method_form(&state, &issuer, &headers, &body, "signup.html")?;
    let policy = issuer.app.policy.clone();
    let now = state.now();
    let invitation = form.get("invitation").unwrap_or("").to_string();
    let mut f = SignupView {
        request_id: clean_request_id(form.get("request").unwrap_or("")),
        email: form.get("email").unwrap_or("").to_string(),
        ..Default::default()
    };
    // Which address may register: the invited one, or (without an invitation) the one typed,
    // unless the app is invite-only.
    let ticket = if invitation.is_empty() {
        if policy.signup_policy == SignupPolicy::InviteOnly {
            return Ok(invite_only(&state, &issuer));
        }
        None
    } else {
        match invitations::peek(&issuer.identity, Purpose::Invitation, &invitation, now).await {
            Ok(Some(t)) => Some(t),
            Ok(None) => return Ok(invitation_invalid(&state, &issuer)),
            Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
        }
    };
    if let Some(t) = &ticket {
        f.email = t.email.clone();
        f.email_fixed = true;
        f.invitation = invitation.clone();
    }
    let email = match Email::parse(&f.email) {
        Ok(e) => e,
        Err(msg) => {
            f.email_error = Some(msg.into());
            return Ok(show(&state, &issuer, &headers, StatusCode::UNPROCESSABLE_ENTITY, f));
        }
    };
    if !policy.domain_allowed(domain_of(&email)) {
        f.email_error = Some(domain_refused(&email));
        return Ok(show(&state, &issuer, &headers, StatusCode::UNPROCESSABLE_ENTITY, f));
    }
    let password = form.get("password").unwrap_or("").to_string();
    if let Err(msg) = policy.password.check(&password) {
        f.password_error = Some(msg);
    }
    let mut profile = serde_json::Map::new();
    let mut name = None;
    for (field, _) in users::PROFILE_FIELDS {
        if !policy.required_profile_fields.iter().any(|r| r == field) {
            continue;
        }
        let raw = form.get(field).unwrap_or("");
        f.values.insert(field.to_string(), raw.into());
        match users::clean_profile_value(field, raw) {
            Ok(v) if *field == "name" => name = Some(v),
            Ok(v) => {
                profile.insert(field.to_string(), v.into());
            }
            Err(msg) => {
                f.errors.insert(field.to_string(), msg.into());
            }
        }
    }
    if f.password_error.is_some() || !f.errors.is_empty() {
        return Ok(show(&state, &issuer, &headers, StatusCode::UNPROCESSABLE_ENTITY, f));
    }
    let password = SecretString::from(password);
    // Signing up with a registered address and its password signs in, so the same brute-force
    // protection applies, before any hashing.
    let attempt =
        begin_attempt(&state, &issuer, &headers, addr, "signup.html", &f.request_id, email.as_str()).await?;
    let hash = state.passwords.hash(&password).await.or_page(&issuer)?;
    // An invited person is expected: no approval needed.
    // (An organization's invitation still needs the approval: it admits a member, SPEC §10.)
    let org_invite = ticket.as_ref().is_some_and(|t| t.organization_id.is_some());
    let status = if (ticket.is_none() || org_invite) && policy.signup_policy == SignupPolicy::AdminApproval {
        UserStatus::PendingApproval
    } else {
        UserStatus::Active
    };
    let new = NewUser {
        email: &email,
        password_hash: Some(&hash),
        email_verified: false,
        status,
        name: name.as_deref(),
        profile: profile.clone(),
    };
    let created = match &ticket {
        Some(_) => {
            let account = invitations::Account {
                password_hash: Some(&hash),
                email_verified: false,
                status,
                name: name.as_deref(),
                profile: profile.clone(),
            };
            let made =
                invitations::accept(&issuer.identity, Purpose::Invitation, &invitation, &account, now).await;
            match made {
                Ok(Accepted::Created(_, user)) => Some(*user),
                Ok(Accepted::AlreadyRegistered) => None,
                Ok(Accepted::Invalid) => return Ok(invitation_invalid(&state, &issuer)),
                Err(e) => return Err(PageError::internal(Some(&issuer.app), &e)),
            }
        }
        None => users::create(&issuer.identity, &new, now).await.or_page(&issuer)?,
    };
    let user = match created {
        Some(u) => u,
        None => {
            // Already registered: with the right password this is a sign-in; otherwise the
            // same answer as a failed sign-in.
            let existing = users::find_by_email(&issuer.identity, &email).await.ok().flatten();
            let verified = state
                .passwords
                .verify(&password, existing.as_ref().and_then(|u| u.password_hash.as_deref()))
                .await
                .unwrap_or_default();
            match existing.filter(|u| verified.ok && u.status != UserStatus::Disabled) {
                Some(u) => {
                    attempt.succeeded(state.clock.now());
                    if verified.needs_rehash
                        && let Err(e) = users::set_password_hash(&issuer.identity, u.id, &hash, now).await
                    {
                        tracing::warn!(app.slug = %issuer.app.slug, user.id = %u.id, error = %e, "password hash upgrade failed");
                    }
                    let data = serde_json::json!({});
                    record_event(&state, &issuer, "login.success", Some(u.id), &headers, addr, data).await;
                    let request =
                        authorize::pending(&issuer.identity, &f.request_id, now).await.ok().flatten();
                    return Ok(finish(&state, &issuer, &u, request, origin(&headers, addr), &["pwd"]).await);
                }
                None => {
                    attempt.failed(state.clock.now());
                    f.form_error = Some("We could not create an account with these details. If you already have one, sign in instead.".into());
                    return Ok(show(&state, &issuer, &headers, StatusCode::UNPROCESSABLE_ENTITY, f));
                }
            }
        }
    };
    attempt.succeeded(state.clock.now());
    let data = serde_json::json!({"invited": ticket.is_some(), "status": user.status});
    record_event(&state, &issuer, "signup", Some(user.id), &headers, addr, data).await;
    if let Some(org) = ticket.as_ref().and_then(|t| t.organization_id) {
        let data = serde_json::json!({"organization_id": org, "by": "invitation"});
        record_event(&state, &issuer, "membership.added", Some(user.id), &headers, addr, data).await;
    }
    // The confirmation link; failing to queue it must not fail the sign-up (the user can ask for
    // another).
    if let Err(e) = links::issue(&state.post(), &issuer, Kind::VerifyEmail, &user, None).await {
        tracing::warn!(app.slug = %issuer.app.slug, user.id = %user.id, error = %e, "verification mail could not be queued");
    }
    if user.status == UserStatus::PendingApproval {
        return Ok(awaiting_approval(&state, &issuer));
    }
    let request = authorize::pending(&issuer.identity, &f.request_id, now).await.or_page(&issuer)?;
    Ok(finish(&state, &issuer, &user, request, origin(&headers, addr), &["pwd"]).await)
}
