//! Sign-in with upstream providers on the hosted pages (SPEC §7a): the buttons, the start of a
//! round trip (`/oauth/{provider}/start`), its return (`/oauth/{provider}/callback`, GET or
//! Apple's form post), and linking and unlinking on `/account`.
//!
//! The round trip's `state`, `nonce` and PKCE verifier travel sealed in a short-lived cookie
//! scoped to `/apps/{slug}/oauth`; an answer whose `state` is not that cookie's is refused, so
//! nobody can make a browser finish a sign-in it did not start. Every trouble (a stale or
//! foreign round trip, a refused consent, an upstream that is down or answers garbage) is a
//! page that says so, an audit event, and no session.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::account::{SignedIn, base};
use super::handlers::{Post, clean_request_id, origin, record_event, request_id, respond, secure};
use crate::apps::model::Provider;
use crate::apps::providers::{self, ProviderSettings};
use crate::grants::requests as authorize;
use crate::signin::federated::{self, Federated, Joined, Linked, Refusal, Unlinked};
use crate::signin::{self, Outcome};
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::upstream::UpstreamError;
use crate::upstream::flow::{self, Answer, Round, Start};
use crate::users::identities::Upstream;
use crate::web::cookies::{self, SetCookie};
use crate::web::form::Form;
use crate::web::{OrPage, PageError};

/// The cookie holding the sealed [`Round`].
const ROUND_COOKIE: &str = "lk_upstream";

fn kind_of(name: &str) -> Option<Provider> {
    [Provider::Google, Provider::Github, Provider::Apple, Provider::Microsoft, Provider::Oidc]
        .into_iter()
        .find(|k| providers::name(*k) == name)
}

/// The settings of `kind` if the app has it configured and its policy allows it now.
fn offered(issuer: &Issuer, kind: Provider) -> Option<&ProviderSettings> {
    issuer.app.providers.get(&kind).filter(|_| issuer.app.policy.allows(kind))
}

/// The provider named in a path or form, if the app offers it now.
fn offered_named<'a>(issuer: &'a Issuer, name: &str) -> Option<(Provider, &'a ProviderSettings)> {
    kind_of(name).and_then(|k| offered(issuer, k).map(|s| (k, s)))
}

/// Whether the app offers any upstream provider now.
pub(super) fn any_offered(issuer: &Issuer) -> bool {
    issuer.app.providers.keys().any(|k| issuer.app.policy.allows(*k))
}

/// What a provider is called on buttons and in messages.
fn label(kind: Provider, settings: &ProviderSettings) -> String {
    match kind {
        Provider::Google => "Google".into(),
        Provider::Github => "GitHub".into(),
        Provider::Apple => "Apple".into(),
        Provider::Microsoft => "Microsoft".into(),
        _ => settings.display_name.clone().unwrap_or_else(|| "single sign-on".into()),
    }
}

/// The buttons for `/login` and `/signup`: one per offered provider, keeping the pending
/// request (`q`: `?request=…` or empty).
pub(super) fn buttons(issuer: &Issuer, base: &str, q: &str) -> Vec<minijinja::Value> {
    issuer
        .app
        .providers
        .iter()
        .filter(|(k, _)| issuer.app.policy.allows(**k))
        .map(|(k, s)| {
            let name = providers::name(*k);
            let text = match k {
                // Microsoft's guidance names the button "Sign in with Microsoft".
                Provider::Microsoft => "Sign in with Microsoft".to_string(),
                _ => format!("Continue with {}", label(*k, s)),
            };
            context! { kind => name, label => text, url => format!("{base}/oauth/{name}/start{q}") }
        })
        .collect()
}

/// The providers a signed-in user may link on `/account`.
pub(super) fn linkable(issuer: &Issuer) -> Vec<minijinja::Value> {
    issuer
        .app
        .providers
        .iter()
        .filter(|(k, _)| issuer.app.policy.allows(**k))
        .map(|(k, s)| context! { kind => providers::name(*k), name => label(*k, s) })
        .collect()
}

/// The name shown for a linked identity.
pub(super) fn identity_label(issuer: &Issuer, provider: &str) -> String {
    match kind_of(provider) {
        Some(k) => match issuer.app.providers.get(&k) {
            Some(s) => label(k, s),
            None => label(k, &ProviderSettings::default()),
        },
        None => provider.to_string(),
    }
}

fn oauth_path(issuer: &Issuer) -> String {
    format!("/apps/{}/oauth", issuer.app.slug)
}

fn redirect_uri(issuer: &Issuer, kind: Provider) -> String {
    format!("{}/oauth/{}/callback", issuer.url, providers::name(kind))
}

fn not_offered(state: &AppState, issuer: &Issuer) -> Response {
    state.pages.message(
        StatusCode::NOT_FOUND,
        Some(&issuer.app),
        "Not available",
        "This way of signing in is not available for this application.",
    )
}

/// A page about upstream trouble, with a way back to the sign-in page.
fn trouble(state: &AppState, issuer: &Issuer, status: StatusCode, heading: &str, message: &str) -> Response {
    let ctx = context! {
        heading, message, link_url => format!("{}/login", issuer.url), link_text => "Back to sign in",
    };
    state.pages.render(status, Some(&issuer.app), "message.html", ctx)
}

fn count(provider: &str, result: &'static str) {
    metrics::counter!("latchkey_upstream_signins_total", "provider" => provider.to_string(), "result" => result)
        .increment(1);
}

/// `GET /oauth/{provider}/start?request=…`: off to the upstream.
pub async fn start(
    State(state): State<AppState>,
    Path((_, provider)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    Post { issuer, addr, headers, .. }: Post,
) -> Response {
    let Some((kind, settings)) = offered_named(&issuer, &provider) else {
        return not_offered(&state, &issuer);
    };
    let request = request_id(query.as_deref());
    let pending = match authorize::pending(&issuer.identity, &request, state.now()).await {
        Ok(p) => p,
        Err(e) => return PageError::internal(Some(&issuer.app), &e).into_response(),
    };
    // A client that asked for a fresh sign-in gets one upstream too.
    let fresh = pending.as_ref().is_some_and(|r| {
        r.max_age.is_some() || r.prompt.as_deref().is_some_and(|p| p.split(' ').any(|v| v == "login"))
    });
    let hint = pending.and_then(|r| r.login_hint);
    let from = Begin { request: &request, login_hint: hint.as_deref(), fresh, link: None };
    go(&state, &issuer, kind, settings, from, &headers, addr).await
}

/// Where a round trip starts from: a sign-in (the pending request, its hint, whether the client
/// wants a fresh sign-in) or a link from `/account` (the user and session).
struct Begin<'a> {
    request: &'a str,
    login_hint: Option<&'a str>,
    fresh: bool,
    link: Option<(crate::users::UserId, String)>,
}

/// Begins a round trip and redirects to the upstream with its cookie set.
async fn go(
    state: &AppState,
    issuer: &Issuer,
    kind: Provider,
    settings: &ProviderSettings,
    from: Begin<'_>,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Response {
    let callback = redirect_uri(issuer, kind);
    let now = state.clock.now();
    let Begin { request, login_hint, fresh, link } = from;
    let s = Start { kind, settings, redirect_uri: &callback, login_hint, fresh, request, link, now };
    let name = providers::name(kind);
    match flow::begin(&state.upstreams, &s).await {
        Ok((url, round)) => {
            let sealed = round.seal(&state.secrets, issuer.app.id);
            let mut res = Redirect::to(&url).into_response();
            let path = oauth_path(issuer);
            SetCookie::new(ROUND_COOKIE, &sealed, &path)
                .max_age(flow::ROUND_TTL)
                .secure(secure(state))
                // Only Apple answers with a cross-site post.
                .cross_site(kind == Provider::Apple)
                .append_to(&mut res);
            res
        }
        Err(e) => {
            tracing::warn!(app.slug = %issuer.app.slug, provider = name, error = %e, "upstream sign-in could not start");
            count(name, "upstream_unreachable");
            let data = serde_json::json!({"provider": name, "reason": "upstream_unreachable"});
            record_event(state, issuer, "login.failed", None, headers, addr, data).await;
            let msg = format!(
                "{} cannot be reached right now. Please try again in a moment, or sign in another way.",
                label(kind, settings)
            );
            trouble(state, issuer, StatusCode::FAILED_DEPENDENCY, "Sign-in is not available right now", &msg)
        }
    }
}

/// `GET` or `POST /oauth/{provider}/callback`: the upstream's answer.
pub async fn callback(
    State(state): State<AppState>,
    Path((_, provider)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    Post { issuer, addr, headers, body }: Post,
) -> Response {
    let mut res = answer(&state, &issuer, &provider, query.as_deref(), &body, &headers, addr).await;
    // A round trip is used once, whatever came of it.
    SetCookie::removal(ROUND_COOKIE, &oauth_path(&issuer)).secure(secure(&state)).append_to(&mut res);
    res
}

async fn answer(
    state: &AppState,
    issuer: &Arc<Issuer>,
    provider: &str,
    query: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Response {
    let Some((kind, settings)) = offered_named(issuer, provider) else {
        return not_offered(state, issuer);
    };
    let name = providers::name(kind);
    let shown = label(kind, settings);
    // Without a round-trip cookie this is no sign-in this browser started: counted, not audited
    // (anyone can request the callback).
    let cookie = cookies::read(headers, ROUND_COOKIE);
    let failed = |reason: &'static str| async move {
        count(name, reason);
        if cookie.is_some() {
            let data = serde_json::json!({"provider": name, "reason": reason});
            record_event(state, issuer, "login.failed", None, headers, addr, data).await;
        }
    };
    let raw = if body.is_empty() { query.unwrap_or("").as_bytes() } else { body };
    let Ok(params) = Form::parse(raw) else {
        failed("invalid_answer").await;
        let msg = format!("The answer from {shown} could not be read. Please start again.");
        return trouble(state, issuer, StatusCode::BAD_REQUEST, "Sign-in failed", &msg);
    };
    let round = cookie
        .and_then(|sealed| Round::open(&state.secrets, issuer.app.id, sealed, state.clock.now()))
        .filter(|r| r.provider == kind && r.state_matches(params.get("state").unwrap_or("")));
    let Some(round) = round else {
        failed("state_mismatch").await;
        return trouble(
            state,
            issuer,
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in took too long or was started in another browser or tab. Please start again.",
        );
    };
    if let Some(error) = params.get("error") {
        // Apple says `user_cancelled_authorize`.
        if error == "access_denied" || error == "user_cancelled_authorize" {
            failed("denied").await;
            let msg =
                format!("Signing in with {shown} was cancelled. You can try again or sign in another way.");
            return trouble(state, issuer, StatusCode::FORBIDDEN, "Sign-in cancelled", &msg);
        }
        failed("upstream_error").await;
        let msg = format!("{shown} could not sign you in. Please try again, or sign in another way.");
        return trouble(state, issuer, StatusCode::FAILED_DEPENDENCY, "Sign-in failed", &msg);
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
        failed("invalid_answer").await;
        let msg = format!("The answer from {shown} could not be read. Please start again.");
        return trouble(state, issuer, StatusCode::BAD_REQUEST, "Sign-in failed", &msg);
    };
    let Some(secret) = settings.secret(&state.secrets, issuer.app.id, kind) else {
        tracing::error!(app.slug = %issuer.app.slug, provider = name, "provider secret does not open with the master key");
        failed("misconfigured").await;
        let msg = format!("Signing in with {shown} is not set up correctly. Please sign in another way.");
        return trouble(state, issuer, StatusCode::FAILED_DEPENDENCY, "Sign-in failed", &msg);
    };
    let callback = redirect_uri(issuer, kind);
    let a = Answer {
        kind,
        settings,
        secret: &secret,
        redirect_uri: &callback,
        code,
        apple_user: params.get("user"),
        iss: params.get("iss"),
        round: &round,
        now: state.clock.now(),
    };
    let asserted = match flow::complete(&state.upstreams, &a).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(app.slug = %issuer.app.slug, provider = name, error = %e, "upstream sign-in failed");
            let reason = match e {
                UpstreamError::Unreachable { .. } | UpstreamError::Status { .. } => "upstream_unreachable",
                UpstreamError::Token(_) | UpstreamError::UnknownKey { .. } => "token_refused",
                UpstreamError::Invalid { .. } => "invalid_answer",
            };
            failed(reason).await;
            let msg = format!(
                "We could not complete signing in with {shown}. Please try again, or sign in another way."
            );
            return trouble(state, issuer, StatusCode::FAILED_DEPENDENCY, "Sign-in failed", &msg);
        }
    };
    let cx = signin::Context::of(issuer, state.now());
    if let Some(link) = &round.link {
        return finish_link(state, issuer, kind, &shown, link, &asserted, headers, addr).await;
    }
    let request =
        match authorize::pending(&issuer.identity, &clean_request_id(&round.request), state.now()).await {
            Ok(r) => r,
            Err(e) => return PageError::internal(Some(&issuer.app), &e).into_response(),
        };
    let done = match federated::sign_in(cx, name, &asserted, request, &origin(headers, addr)).await {
        Ok(d) => d,
        Err(e) => return PageError::internal(Some(&issuer.app), &e).into_response(),
    };
    match done {
        Federated::Finished { outcome, user, joined } => {
            if let Joined::Created { invited } = joined {
                let data = serde_json::json!({"provider": name, "invited": invited});
                record_event(state, issuer, "signup", Some(user), headers, addr, data).await;
            }
            if joined != Joined::Known {
                let data = serde_json::json!({"provider": name, "subject": asserted.subject});
                record_event(state, issuer, "identity.linked", Some(user), headers, addr, data).await;
            }
            let (kind, result) = match &outcome {
                Outcome::SignedIn { .. } | Outcome::Parked { .. } => ("login.success", "success"),
                Outcome::AwaitingApproval => ("login.failed", "awaiting_approval"),
                Outcome::Disabled => ("login.failed", "disabled"),
            };
            count(name, result);
            let data = match kind {
                "login.success" => serde_json::json!({"provider": name}),
                _ => serde_json::json!({"provider": name, "reason": result}),
            };
            record_event(state, issuer, kind, Some(user), headers, addr, data).await;
            respond(state, issuer, outcome)
        }
        Federated::Refused(why) => {
            let (reason, heading, msg) = refusal(&why, &shown, issuer);
            failed(reason).await;
            trouble(state, issuer, StatusCode::FORBIDDEN, heading, &msg)
        }
    }
}

/// The audit reason, heading and message for a refused upstream sign-in.
fn refusal(why: &Refusal, shown: &str, issuer: &Issuer) -> (&'static str, &'static str, String) {
    match why {
        Refusal::NoEmail => (
            "no_email",
            "Email address needed",
            format!("Your {shown} account did not share a confirmed email address, which {} needs. Sign in another way, or share an address with it and try again.", issuer.app.display_name),
        ),
        Refusal::Unverified => (
            "unverified_email",
            "Sign in another way first",
            format!("An account with this email address already exists, and {shown} did not confirm the address. Sign in with your password or an email link, then link {shown} from your account page."),
        ),
        Refusal::UnverifiedNew => (
            "unverified_email",
            "Address not confirmed",
            format!("{shown} did not confirm that this email address is yours. Create an account with your email address instead, then link {shown} from your account page."),
        ),
        Refusal::Domain(d) => ("domain_refused", "Address not accepted", format!("Accounts with addresses at {d} cannot be created here.")),
        Refusal::InvitationNeeded => (
            "invitation_needed",
            "Invitation needed",
            "Accounts for this application are created by invitation only. Ask its administrators for an invitation for your address.".into(),
        ),
    }
}

/// The return of a round trip started from `/account`: linked to the user who started it, if
/// that user is still the one signed in here.
#[allow(clippy::too_many_arguments)]
async fn finish_link(
    state: &AppState,
    issuer: &Issuer,
    kind: Provider,
    shown: &str,
    link: &(crate::users::UserId, String),
    asserted: &flow::Asserted,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Response {
    let name = providers::name(kind);
    let (user, sid) = (link.0, link.1.as_str());
    // The session that asked, from the round (Apple's cross-site post carries no cookie).
    let session =
        match crate::sessions::get(&issuer.identity, sid, &issuer.app.policy.session, state.now()).await {
            Ok(s) => s,
            Err(e) => return PageError::internal(Some(&issuer.app), &e).into_response(),
        };
    if session.is_none_or(|s| s.user_id != user) {
        let msg =
            "You are no longer signed in as the account that asked for this link. Sign in and try again.";
        return trouble(state, issuer, StatusCode::FORBIDDEN, "Sign in again", msg);
    }
    let cx = signin::Context::of(issuer, state.now());
    match federated::link(cx, user, name, asserted).await {
        Ok(Linked::Linked) => {
            let data = serde_json::json!({"provider": name, "subject": asserted.subject});
            record_event(state, issuer, "identity.linked", Some(user), headers, addr, data).await;
            Redirect::to(&format!("{}/account", issuer.url)).into_response()
        }
        Ok(Linked::Already) => Redirect::to(&format!("{}/account", issuer.url)).into_response(),
        Ok(Linked::Taken) => {
            let msg = format!("This {shown} account is already linked to another account here.");
            trouble(state, issuer, StatusCode::CONFLICT, "Already linked", &msg)
        }
        Err(e) => PageError::internal(Some(&issuer.app), &e).into_response(),
    }
}

/// `POST /account/identities/link`: a fresh round trip while signed in.
pub async fn post_link(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, user, session, form, addr, headers, .. } = me;
    let Some((kind, settings)) = form.get("provider").and_then(|p| offered_named(&issuer, p)) else {
        return Ok(not_offered(&state, &issuer));
    };
    let from =
        Begin { request: "", login_hint: None, fresh: false, link: Some((user.id, session.id.to_string())) };
    Ok(go(&state, &issuer, kind, settings, from, &headers, addr).await)
}

/// `POST /account/identities/unlink`: never the last way to sign in.
pub async fn post_unlink(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, user, form, addr, headers, .. } = me;
    let (provider, iss, subject) = (
        form.get("provider").unwrap_or(""),
        form.get("issuer").unwrap_or(""),
        form.get("subject").unwrap_or(""),
    );
    let who = Upstream { provider, issuer: iss, subject };
    let cx = signin::Context::of(&issuer, state.now());
    let usable = |p: &str| offered_named(&issuer, p).is_some();
    let notice = match federated::unlink(cx, &user, who, &usable).await.or_page(&issuer)? {
        Unlinked::Unlinked => {
            let data = serde_json::json!({"provider": provider, "subject": subject});
            record_event(&state, &issuer, "identity.unlinked", Some(user.id), &headers, addr, data).await;
            return Ok(
                Redirect::to(&format!("{}/account", base(&state, issuer.app.slug.as_str()))).into_response()
            );
        }
        Unlinked::NotFound => "That account was not linked.",
        Unlinked::LastWay => {
            "This is your only way to sign in. Set a password or link another account first."
        }
    };
    let mut res = super::account::show_account(&state, &issuer, &headers, Some(notice)).await;
    if res.status() == StatusCode::OK {
        *res.status_mut() = StatusCode::CONFLICT;
    }
    Ok(res)
}
