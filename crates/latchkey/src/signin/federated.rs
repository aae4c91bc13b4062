//! An upstream provider as a first factor (SPEC §7a): which account an upstream identity signs
//! in to, whether a first sign-in may create or link one under the app's policy, and linking
//! and unlinking from `/account`. The upstream round trip itself is `upstream::flow`'s.
//!
//! The `amr` of an upstream sign-in is [`AMR`] (`fed`, as Microsoft Entra uses it for a
//! federated assertion); it never claims `pwd`.

use super::service::{Context, Outcome, SignInError, finish};
use crate::apps::model::SignupPolicy;
use crate::grants::requests::AuthRequest;
use crate::sessions::Origin;
use crate::upstream::flow::Asserted;
use crate::users::identities::{self, Created, Upstream};
use crate::users::{self, Email, NewUser, User, UserId, UserStatus};

/// The `amr` value of a sign-in through an upstream provider.
pub const AMR: &str = "fed";

/// Why an upstream sign-in was refused (no session, nothing written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A first sign-in, and the upstream gave no usable address.
    NoEmail,
    /// A first sign-in for a new address that the upstream does not vouch for.
    UnverifiedNew,
    /// An account with the address exists, and the upstream does not vouch for the address
    /// (or the account never confirmed it): linking would hand the account over.
    Unverified,
    /// The app does not accept addresses in this domain.
    Domain(String),
    /// `invite_only` and no live invitation for the address.
    InvitationNeeded,
}

/// How an upstream sign-in ended.
#[derive(Debug)]
pub enum Federated {
    /// The sign-in service's answer for `user` (signed in, parked on a step, awaiting approval
    /// or disabled), and how the identity came to be the user's.
    Finished {
        outcome: Outcome,
        user: UserId,
        joined: Joined,
    },
    Refused(Refusal),
}

/// How an upstream identity came to sign in to its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// Nothing was linked or created now (the identity was known, or the account refused).
    Known,
    /// Linked now to the existing account with its address.
    Linked,
    /// A new account was created for it (`invited`: an invitation for the address was used).
    Created { invited: bool },
}

fn upstream<'a>(provider: &'a str, a: &'a Asserted) -> Upstream<'a> {
    Upstream { provider, issuer: &a.issuer, subject: &a.subject }
}

/// Signs in with what `provider` asserted: the identity's user; else, on a first sign-in, the
/// account with the same address (only when both the upstream and the account vouch for it);
/// else a new account as the app's `signup_policy` allows.
pub async fn sign_in(
    cx: Context<'_>,
    provider: &str,
    asserted: &Asserted,
    request: Option<AuthRequest>,
    origin: &Origin,
) -> Result<Federated, SignInError> {
    let who = upstream(provider, asserted);
    let amr = [AMR];
    // Twice at most: an address or identity registered at the same moment (another tab) is
    // looked up again.
    for _ in 0..2 {
        if let Some(id) = identities::owner(cx.store, who).await?
            && let Some(user) = users::get(cx.store, id).await?
        {
            // The address is data the upstream may change: keep the latest.
            if let Err(e) = identities::link(cx.store, id, who, asserted.email.as_deref(), cx.now).await {
                tracing::warn!(user.id = %id, error = %e, "identity email not refreshed");
            }
            let outcome = finish(cx, &user, request, origin, &amr).await?;
            return Ok(Federated::Finished { outcome, user: id, joined: Joined::Known });
        }
        let Some(email) = asserted.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
            return Ok(Federated::Refused(Refusal::NoEmail));
        };
        if let Some(existing) = users::find_by_email(cx.store, &email).await? {
            return link_existing(cx, who, asserted, &existing, request, origin).await;
        }
        // A new account only for an address the upstream vouches for: one it did not check
        // could be someone else's, registered ahead of them (account pre-hijacking), and it
        // must not use up their invitation.
        if !asserted.email_verified {
            return Ok(Federated::Refused(Refusal::UnverifiedNew));
        }
        if !cx.policy.domain_allowed(email.domain()) {
            return Ok(Federated::Refused(Refusal::Domain(email.domain().to_string())));
        }
        let name = asserted.profile.get("name").and_then(|v| v.as_str());
        let mut profile = asserted.profile.clone();
        profile.remove("name");
        let mut new = NewUser {
            email: &email,
            password_hash: None,
            email_verified: true,
            status: UserStatus::Active,
            name,
            profile,
        };
        // An invitation for the address is used whenever there is one (an invited person needs
        // no approval); `invite_only` requires it, `admin_approval` otherwise waits for an
        // operator.
        let org_approval = cx.policy.signup_policy == SignupPolicy::AdminApproval;
        let with_invitation = identities::Invited::Yes { org_approval };
        let mut created = identities::create_user(cx.store, &new, who, with_invitation, cx.now).await?;
        let invited = !matches!(created, Created::NoInvitation);
        if !invited {
            created = match cx.policy.signup_policy {
                SignupPolicy::InviteOnly => return Ok(Federated::Refused(Refusal::InvitationNeeded)),
                SignupPolicy::AdminApproval => {
                    new.status = UserStatus::PendingApproval;
                    identities::create_user(cx.store, &new, who, identities::Invited::No, cx.now).await?
                }
                _ => identities::create_user(cx.store, &new, who, identities::Invited::No, cx.now).await?,
            };
        }
        match created {
            Created::User(user) => {
                let outcome = finish(cx, &user, request, origin, &amr).await?;
                let how = Joined::Created { invited };
                return Ok(Federated::Finished { outcome, user: user.id, joined: how });
            }
            Created::NoInvitation => return Ok(Federated::Refused(Refusal::InvitationNeeded)),
            Created::Conflict => continue,
        }
    }
    Ok(Federated::Refused(Refusal::Unverified))
}

/// A first upstream sign-in whose address has an account: linked only when the upstream
/// asserts the address verified and the account has confirmed it too. An unconfirmed account
/// may have been registered by someone else in advance ("pre-hijacking"); its owner signs in
/// another way and links from `/account`.
async fn link_existing(
    cx: Context<'_>,
    who: Upstream<'_>,
    asserted: &Asserted,
    existing: &User,
    request: Option<AuthRequest>,
    origin: &Origin,
) -> Result<Federated, SignInError> {
    if !asserted.email_verified || !existing.email_verified {
        return Ok(Federated::Refused(Refusal::Unverified));
    }
    if existing.status == UserStatus::Disabled {
        let outcome = finish(cx, existing, request, origin, &[AMR]).await?;
        return Ok(Federated::Finished { outcome, user: existing.id, joined: Joined::Known });
    }
    match identities::link(cx.store, existing.id, who, asserted.email.as_deref(), cx.now).await {
        Ok(()) => {}
        Err(identities::IdentityError::Store(e)) => return Err(e.into()),
        // Linked to someone else in the meantime.
        Err(identities::IdentityError::Taken { .. }) => return Ok(Federated::Refused(Refusal::Unverified)),
    }
    let outcome = finish(cx, existing, request, origin, &[AMR]).await?;
    Ok(Federated::Finished { outcome, user: existing.id, joined: Joined::Linked })
}

/// How linking from `/account` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Linked {
    Linked,
    /// It was already this user's.
    Already,
    /// The identity belongs to another user.
    Taken,
}

/// Links what `provider` asserted to the signed-in `user`.
pub async fn link(
    cx: Context<'_>,
    user: UserId,
    provider: &str,
    asserted: &Asserted,
) -> Result<Linked, SignInError> {
    let who = upstream(provider, asserted);
    let before = identities::owner(cx.store, who).await?;
    match identities::link(cx.store, user, who, asserted.email.as_deref(), cx.now).await {
        Ok(()) if before == Some(user) => Ok(Linked::Already),
        Ok(()) => Ok(Linked::Linked),
        Err(identities::IdentityError::Taken { .. }) => Ok(Linked::Taken),
        Err(identities::IdentityError::Store(e)) => Err(e.into()),
    }
}

/// How unlinking ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Unlinked {
    Unlinked,
    /// The user has no such identity.
    NotFound,
    /// It is the user's last way to sign in (no password and no other identity).
    LastWay,
}

/// Removes one of `user`'s identities, unless nothing else would let them sign in now: another
/// identity of a provider the app offers (`offered`), or a password while the policy allows
/// email sign-in. A magic link is not counted: the app may turn email sign-in off.
pub async fn unlink(
    cx: Context<'_>,
    user: &User,
    who: Upstream<'_>,
    offered: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Unlinked, SignInError> {
    let mine = identities::of_user(cx.store, user.id).await?;
    let is_it = |i: &identities::Identity| {
        i.provider == who.provider && i.issuer == who.issuer && i.subject == who.subject
    };
    if !mine.iter().any(is_it) {
        return Ok(Unlinked::NotFound);
    }
    let others = mine.iter().filter(|i| !is_it(i) && offered(&i.provider)).count();
    let password = user.password_hash.is_some() && cx.policy.allows_email();
    if others == 0 && !password {
        return Ok(Unlinked::LastWay);
    }
    Ok(if identities::unlink(cx.store, user.id, who).await? {
        Unlinked::Unlinked
    } else {
        Unlinked::NotFound
    })
}
