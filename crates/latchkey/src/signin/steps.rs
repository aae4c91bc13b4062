//! What stands between a proven first factor and a session (SPEC §8 policy): the second factor,
//! an unconfirmed address when the app requires confirmation, an expired password to change,
//! profile fields the app requires. Pure: the caller brings the user and the policy.

use crate::apps::model::Policy;
use crate::store::Ts;
use crate::users::{self, User};

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

impl Step {
    /// The page that shows this step (`/mfa` for the second factor, else `/continue`).
    pub fn page(&self) -> &'static str {
        if *self == Step::Totp { "mfa" } else { "continue" }
    }
}

/// The steps `user` (with a confirmed second factor or not: `mfa`) must still take under
/// `policy`, given the methods proven so far (`amr`).
pub fn steps(policy: &Policy, user: &User, mfa: bool, amr: &[String], now: Ts) -> Vec<Step> {
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
