//! The sign-in service: prove a first factor, ask what the app's policy still requires, and
//! finish with a session and, when a client is waiting, an authorization code. Every answer is
//! a domain [`Outcome`]; the page handlers in `login` turn it into HTTP. Upstream providers,
//! passkeys and imported accounts each add a first factor here and end in [`finish`].

use secrecy::SecretString;
use sqlx::types::Json;

use super::password::{HashError, Passwords};
use super::pending::{self, Pending};
use super::steps::{Step, steps};
use crate::apps::model::Policy;
use crate::crypto::tokens;
use crate::grants::requests::{self, AuthRequest};
use crate::sessions::{self, Origin};
use crate::store::{IdentityDb, Ts};
use crate::tenant::Issuer;
use crate::users::{self, Email, User, UserStatus};

/// What a sign-in works with: the app's identity store and policy, its issuer URL, the time.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub store: &'a IdentityDb,
    pub policy: &'a Policy,
    /// `{PUBLIC_URL}/apps/{slug}`: the `iss` of codes, the base of the account page.
    pub issuer_url: &'a str,
    pub now: Ts,
}

impl<'a> Context<'a> {
    pub fn of(issuer: &'a Issuer, now: Ts) -> Self {
        Context { store: &issuer.identity, policy: &issuer.app.policy, issuer_url: &issuer.url, now }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("identity store: {0}")]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    User(#[from] crate::users::UserError),
    #[error(transparent)]
    Session(#[from] crate::sessions::SessionError),
    #[error(transparent)]
    Grant(#[from] crate::grants::GrantError),
    #[error("password hashing: {0}")]
    Hashing(#[from] HashError),
}

/// Where a sign-in stands after a call to the service.
#[derive(Debug)]
pub enum Outcome {
    /// Signed in: a new session exists (its cookie value here), and the browser goes to
    /// `redirect` (the client, with a code, or the account page).
    SignedIn { session_cookie: SecretString, redirect: String },
    /// The first factor held but `step` is due: the sign-in is parked under `token`.
    Parked { token: tokens::Plain, step: Step },
    /// The account waits for an operator's approval: no session, no token.
    AwaitingApproval,
    /// The account may not sign in.
    Disabled,
}

/// The result of checking an email address and password.
#[derive(Debug)]
pub enum PasswordCheck {
    /// The password is right for an account that may go on signing in.
    Proven(Box<User>),
    /// Wrong address, wrong password or a disabled account: one answer for all three.
    Wrong,
}

/// Checks an address and password with the same work whether or not the account exists (a
/// dummy hash for unknown accounts). A right password for an imported or weaker hash upgrades
/// it to our Argon2id; a failed upgrade is logged, since the sign-in itself succeeded.
pub async fn check_password(
    cx: Context<'_>,
    passwords: &Passwords,
    email: &str,
    password: &SecretString,
) -> Result<PasswordCheck, SignInError> {
    let user = match Email::parse(email) {
        Ok(email) => users::find_by_email(cx.store, &email).await?,
        Err(_) => None,
    };
    let verified = passwords.verify(password, user.as_ref().and_then(|u| u.password_hash.as_deref())).await?;
    // A disabled account fails like a wrong password; one awaiting approval learns so only
    // after the right password ([`finish`]).
    let Some(user) = user.filter(|u| verified.ok && u.status != UserStatus::Disabled) else {
        return Ok(PasswordCheck::Wrong);
    };
    if verified.needs_rehash {
        let upgraded = match passwords.hash(password).await {
            Ok(h) => users::set_password_hash(cx.store, user.id, &h, cx.now).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = upgraded {
            tracing::warn!(user.id = %user.id, error = %e, "password hash upgrade failed");
        }
    }
    Ok(PasswordCheck::Proven(Box::new(user)))
}

/// A first factor succeeded for `user` (as loaded after it; methods `amr`): refuses accounts
/// that may not sign in, parks the sign-in when the policy asks for more, and otherwise signs
/// the user in.
pub async fn finish(
    cx: Context<'_>,
    user: &User,
    request: Option<AuthRequest>,
    origin: &Origin,
    amr: &[&str],
) -> Result<Outcome, SignInError> {
    match user.status {
        UserStatus::Active => {}
        UserStatus::PendingApproval => return Ok(Outcome::AwaitingApproval),
        UserStatus::Disabled => return Ok(Outcome::Disabled),
    }
    let amr: Vec<String> = amr.iter().map(|s| s.to_string()).collect();
    let mfa = crate::mfa::enrolled(cx.store, user.id).await?;
    if let Some(step) = steps(cx.policy, user, mfa, &amr, cx.now).into_iter().next() {
        let parked = Pending { user_id: user.id, amr: Json(amr), auth_request_id: request.map(|r| r.id) };
        let token = pending::park(cx.store, &parked, cx.now).await?;
        return Ok(Outcome::Parked { token, step });
    }
    let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
    start_session(cx, user.id, request, origin, &amr).await
}

/// Signs the user in: a new session (never one a cookie may have planted), then the pending
/// authorization request completes with a code, or the browser goes to the account page.
pub async fn start_session(
    cx: Context<'_>,
    user_id: crate::users::UserId,
    request: Option<AuthRequest>,
    origin: &Origin,
    amr: &[&str],
) -> Result<Outcome, SignInError> {
    let (session, cookie) =
        sessions::create(cx.store, user_id, amr, &cx.policy.session, origin, cx.now).await?;
    let redirect = match request {
        Some(r) => requests::issue_code(cx.store, cx.issuer_url, &r, &session, cx.now).await?,
        None => format!("{}/account", cx.issuer_url),
    };
    Ok(Outcome::SignedIn { session_cookie: cookie, redirect })
}

/// Where a parked sign-in stands now, under the current policy and user.
#[derive(Debug)]
pub enum Resumed {
    /// The parked sign-in is gone, expired, or its account is no longer active.
    Expired,
    /// `step` is due for `user`.
    Due { user: Box<User>, step: Step },
    /// Nothing is left: signed in (the parked row is gone).
    Done(Outcome),
}

/// Re-evaluates a parked sign-in: shows the next step, or finishes it when none is left.
pub async fn resume(
    cx: Context<'_>,
    token: &tokens::Hashed,
    pending: &Pending,
    origin: &Origin,
) -> Result<Resumed, SignInError> {
    let Some(user) = users::get(cx.store, pending.user_id).await?.filter(|u| u.status == UserStatus::Active)
    else {
        return Ok(Resumed::Expired);
    };
    let mfa = crate::mfa::enrolled(cx.store, user.id).await?;
    if let Some(step) = steps(cx.policy, &user, mfa, &pending.amr.0, cx.now).into_iter().next() {
        return Ok(Resumed::Due { user: Box::new(user), step });
    }
    pending::forget(cx.store, token).await?;
    let request = match &pending.auth_request_id {
        Some(id) => requests::pending(cx.store, id, cx.now).await?,
        None => None,
    };
    let amr: Vec<&str> = pending.amr.0.iter().map(String::as_str).collect();
    Ok(Resumed::Done(start_session(cx, user.id, request, origin, &amr).await?))
}

/// The step due now for a parked sign-in's user, if any (only that step may be posted).
pub async fn due_step(cx: Context<'_>, user: &User, pending: &Pending) -> Result<Option<Step>, SignInError> {
    let mfa = crate::mfa::enrolled(cx.store, user.id).await?;
    Ok(steps(cx.policy, user, mfa, &pending.amr.0, cx.now).into_iter().next())
}
