//! Outgoing mail (SPEC §1, §7): single-use links for email verification, password reset and
//! magic-link sign-in, delivered through a persistent outbox.
//!
//! - [`links`]: a link's token (stored hashed) and its message are written to the app's
//!   identity store in one transaction; following the link consumes the token atomically.
//! - [`outbox`]: a background sender delivers queued messages with retries and backoff, so a
//!   request never waits for SMTP and a crash or restart loses nothing.
//! - [`transport`]: the app's own SMTP, else `LATCHKEY_SMTP_URL`, else the dev transport that
//!   writes `.eml` files to `<data dir>/outbox/`.
//! - [`templates`]: themed HTML and plain-text wording, overridable per app.
//! - [`throttle`]: how often mail may be asked for, per address and per client address.

pub mod links;
pub mod outbox;
pub mod templates;
pub mod throttle;
pub mod transport;

use chrono::Duration;

use crate::on_db;
use crate::store::{IdentityDb, Ts};

pub use outbox::{Mailer, SenderHandle};

/// What queuing a message needs: the master key's box (messages are sealed), the sender to
/// wake, and the time.
pub struct Post<'a> {
    pub secrets: &'a crate::crypto::SecretBox,
    pub mailer: &'a Mailer,
    pub now: Ts,
}

impl Post<'_> {
    /// The themed message of `kind` for `recipient`, carrying `link` and valid for `ttl`,
    /// rendered and sealed for the outbox (to be inserted in the caller's transaction).
    pub fn compose(
        &self,
        app: &crate::apps::App,
        kind: Kind,
        user_id: Option<crate::users::UserId>,
        recipient: &str,
        link: String,
        ttl: Duration,
    ) -> Result<outbox::Queued, String> {
        let letter = templates::render_for(app, kind, recipient, &link, ttl)?;
        let expires = Ts::new(self.now.0 + ttl);
        outbox::Queued::seal(self.secrets, app.id, kind, user_id, recipient, letter, link, self.now, expires)
            .map_err(|e| e.to_string())
    }

    /// After the transaction that queued a message of `kind` committed: count it, wake the
    /// sender.
    pub fn queued(&self, issuer: &std::sync::Arc<crate::tenant::Issuer>, kind: Kind) {
        metrics::counter!("latchkey_mail_queued_total", "kind" => kind.as_str()).increment(1);
        self.mailer.wake(issuer);
    }
}

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VerifyEmail,
    PasswordReset,
    MagicLink,
    /// An operator's invitation to register (invite_only).
    Invitation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VerifyEmail => "verify_email",
            Kind::PasswordReset => "password_reset",
            Kind::MagicLink => "magic_link",
            Kind::Invitation => "invitation",
        }
    }

    /// How long the link in it stays valid.
    pub fn ttl(self) -> Duration {
        match self {
            Kind::VerifyEmail => Duration::hours(24),
            Kind::PasswordReset => Duration::minutes(30),
            Kind::MagicLink => Duration::minutes(15),
            // The default; an operator may choose another per invitation.
            Kind::Invitation => Duration::days(7),
        }
    }

    /// The hosted page the link opens, under the issuer.
    pub fn page(self) -> &'static str {
        match self {
            Kind::VerifyEmail => "verify-email",
            Kind::PasswordReset => "reset-password",
            Kind::MagicLink => "magic-link",
            Kind::Invitation => "signup",
        }
    }
}

/// Housekeeping (jobs::janitor): mailed links a day past expiry, and delivered or abandoned
/// mail after a week.
pub async fn purge_expired(db: &IdentityDb, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM email_tokens WHERE expires_at < $1";
    on_db!(db, p => sqlx::query(sql).bind(Ts::new(now.0 - Duration::days(1))).execute(p).await.map(|_| ()))?;
    let sql = "DELETE FROM outbox WHERE status <> 'pending' AND finished_at < $1";
    on_db!(db, p => sqlx::query(sql).bind(Ts::new(now.0 - Duration::days(7))).execute(p).await.map(|_| ()))
}
