//! The app (tenant) and its configuration values, each parsed once into a type that can only
//! hold valid values.

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::keys::SigningAlg;
use crate::store::Ts;

/// An app's slug: `^[a-z0-9][a-z0-9-]{1,62}$`, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct AppSlug(String);

impl AppSlug {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let first_ok = matches!(chars.next(), Some('a'..='z' | '0'..='9'));
        let rest_ok = chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'));
        if first_ok && rest_ok && (2..=63).contains(&raw.len()) {
            Ok(AppSlug(raw.to_string()))
        } else {
            Err("slug must match ^[a-z0-9][a-z0-9-]{1,62}$".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default PostgreSQL schema of this app's identity store.
    pub fn default_schema(&self) -> String {
        format!("latchkey_app_{}", self.0.replace('-', "_"))
    }
}

impl std::fmt::Display for AppSlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle state (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    Pending,
    ProvisioningSchema,
    Deploying,
    Active,
    Disabled,
    Failed,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Pending => "pending",
            AppStatus::ProvisioningSchema => "provisioning_schema",
            AppStatus::Deploying => "deploying",
            AppStatus::Active => "active",
            AppStatus::Disabled => "disabled",
            AppStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => AppStatus::Pending,
            "provisioning_schema" => AppStatus::ProvisioningSchema,
            "deploying" => AppStatus::Deploying,
            "active" => AppStatus::Active,
            "disabled" => AppStatus::Disabled,
            "failed" => AppStatus::Failed,
            _ => return None,
        })
    }

    /// Provisioning has not finished (a background task owns the app).
    pub fn in_progress(self) -> bool {
        matches!(self, AppStatus::Pending | AppStatus::ProvisioningSchema | AppStatus::Deploying)
    }
}

/// `#rgb` or `#rrggbb`; the only colour syntax accepted, so it can never inject CSS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "#4f46e5", pattern = "^#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")]
pub struct BrandColor(String);

impl TryFrom<String> for BrandColor {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hex = s.strip_prefix('#').unwrap_or("");
        if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(BrandColor(s.to_ascii_lowercase()))
        } else {
            Err(format!("brand_color must be a hex colour like #4f46e5, got {s:?}"))
        }
    }
}

impl BrandColor {
    /// The text colour readable on this background: black or white, whichever has the higher
    /// WCAG 2 contrast ratio.
    pub fn ink(&self) -> &'static str {
        let hex = self.0.trim_start_matches('#');
        let full: String =
            if hex.len() == 3 { hex.chars().flat_map(|c| [c, c]).collect() } else { hex.to_string() };
        let channel = |i: usize| {
            let v = f64::from(u8::from_str_radix(&full[i..i + 2], 16).unwrap_or(0)) / 255.0;
            if v <= 0.03928 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
        };
        let l = 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
        // Contrast with white: 1.05 / (l + 0.05); with black: (l + 0.05) / 0.05.
        if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 { "#ffffff" } else { "#000000" }
    }
}

impl From<BrandColor> for String {
    fn from(c: BrandColor) -> String {
        c.0
    }
}

/// Whether `url`'s host is this machine: the one place plain http is allowed (local clients,
/// logos and upstreams in development and tests).
pub fn is_loopback(url: &Url) -> bool {
    matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// An https URL (http only for loopback hosts), used for logos.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "https://example.com/logo.svg")]
pub struct WebUrl(String);

impl TryFrom<String> for WebUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let url = Url::parse(&s).map_err(|_| format!("{s:?} is not an absolute URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            _ => return Err(format!("{s:?} must be an https URL")),
        }
        if s.len() > 2048 {
            return Err("URL longer than 2048 characters".into());
        }
        Ok(WebUrl(url.to_string()))
    }
}

impl From<WebUrl> for String {
    fn from(u: WebUrl) -> String {
        u.0
    }
}

/// How the hosted pages look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    pub brand_color: Option<BrandColor>,
    pub logo_url: Option<WebUrl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    #[default]
    Open,
    InviteOnly,
    AdminApproval,
    AutoOnFirstAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Email,
    Google,
    Github,
    Apple,
    Microsoft,
    Oidc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    #[schema(minimum = 8, maximum = 256)]
    pub min_length: u32,
    pub require_uppercase: bool,
    pub require_symbol: bool,
    #[schema(minimum = 1, maximum = 3650)]
    pub expiry_days: Option<u32>,
}

impl PasswordPolicy {
    /// Checks a new password against the rules; the message is shown next to the field.
    pub fn check(&self, password: &str) -> Result<(), String> {
        let n = password.chars().count();
        if n < self.min_length as usize {
            return Err(format!("Use at least {} characters.", self.min_length));
        }
        if password.len() > 1024 {
            return Err("Use at most 1024 characters.".into());
        }
        if self.require_uppercase && !password.chars().any(char::is_uppercase) {
            return Err("Include at least one uppercase letter.".into());
        }
        if self.require_symbol && !password.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
            return Err("Include at least one symbol (a character that is not a letter or digit).".into());
        }
        Ok(())
    }

    /// The rules in words, shown before the person types.
    pub fn rules_text(&self) -> String {
        let mut extra = Vec::new();
        if self.require_uppercase {
            extra.push("an uppercase letter");
        }
        if self.require_symbol {
            extra.push("a symbol");
        }
        match extra.len() {
            0 => format!("At least {} characters.", self.min_length),
            _ => format!("At least {} characters, with {}.", self.min_length, extra.join(" and ")),
        }
    }

    /// Whether a password set at `changed_at` has outlived `expiry_days` at `now`.
    pub fn expired(
        &self,
        changed_at: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        match (self.expiry_days, changed_at) {
            (Some(days), Some(at)) => now - at >= chrono::Duration::days(i64::from(days)),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 8, require_uppercase: false, require_symbol: false, expiry_days: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionPolicy {
    #[schema(minimum = 1, maximum = 8784)]
    pub ttl_hours: u32,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrent: Option<u32>,
    #[schema(minimum = 1, maximum = 525600)]
    pub idle_timeout_minutes: Option<u32>,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { ttl_hours: 168, max_concurrent: None, idle_timeout_minutes: None }
    }
}

/// Per-app policy (SPEC §8), with the SPEC's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub allowed_providers: Vec<Provider>,
    pub signup_policy: SignupPolicy,
    pub allowed_email_domains: Vec<String>,
    pub blocked_email_domains: Vec<String>,
    pub password: PasswordPolicy,
    pub session: SessionPolicy,
    pub require_email_verification: bool,
    #[schema(value_type = Vec<ProfileField>)]
    pub required_profile_fields: Vec<String>,
}

/// The profile fields a policy may require (documentation of `required_profile_fields`).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    Name,
    GivenName,
    FamilyName,
    Nickname,
    PhoneNumber,
    Locale,
    Birthdate,
}

impl Policy {
    /// Whether an address in `domain` (lower-case) may register: not blocked, and allowed when
    /// an allow-list exists. Exact match: a subdomain is not the domain.
    pub fn domain_allowed(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        !self.blocked_email_domains.contains(&domain)
            && (self.allowed_email_domains.is_empty() || self.allowed_email_domains.contains(&domain))
    }

    /// Whether the policy lets people sign in with `kind` (an empty list allows all).
    pub fn allows(&self, kind: Provider) -> bool {
        self.allowed_providers.is_empty() || self.allowed_providers.contains(&kind)
    }

    /// Whether sign-in with an email address (password or magic link) is allowed.
    pub fn allows_email(&self) -> bool {
        self.allowed_providers.is_empty() || self.allowed_providers.contains(&Provider::Email)
    }

    pub fn validate(&mut self) -> Result<(), String> {
        if self.password.min_length < 8 || self.password.min_length > 256 {
            return Err("policy.password.min_length must be between 8 and 256".into());
        }
        if self.session.ttl_hours == 0 || self.session.ttl_hours > 24 * 366 {
            return Err("policy.session.ttl_hours must be between 1 and 8784".into());
        }
        if self.session.max_concurrent.is_some_and(|n| !(1..=1000).contains(&n)) {
            return Err("policy.session.max_concurrent must be between 1 and 1000 (or null)".into());
        }
        if self.password.expiry_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err("policy.password.expiry_days must be between 1 and 3650 (or null)".into());
        }
        if self.session.idle_timeout_minutes.is_some_and(|m| !(1..=525_600).contains(&m)) {
            return Err("policy.session.idle_timeout_minutes must be between 1 and 525600 (or null)".into());
        }
        for list in [&mut self.allowed_email_domains, &mut self.blocked_email_domains] {
            for d in list.iter_mut() {
                *d = d.trim().to_ascii_lowercase();
                let ok = !d.is_empty()
                    && d.len() <= 253
                    && d.split('.').all(|l| {
                        !l.is_empty()
                            && !l.starts_with('-')
                            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !ok {
                    return Err(format!("{d:?} is not a domain name"));
                }
            }
            list.sort();
            list.dedup();
        }
        if let Some(d) = self.allowed_email_domains.iter().find(|d| self.blocked_email_domains.contains(d)) {
            return Err(format!("{d:?} is both allowed and blocked"));
        }
        const PROFILE_FIELDS: &[&str] =
            &["name", "given_name", "family_name", "nickname", "phone_number", "locale", "birthdate"];
        if let Some(f) = self.required_profile_fields.iter().find(|f| !PROFILE_FIELDS.contains(&f.as_str())) {
            return Err(format!("unknown profile field {f:?}; known fields: {}", PROFILE_FIELDS.join(", ")));
        }
        self.allowed_providers.sort_by_key(|p| *p as u8);
        self.allowed_providers.dedup();
        self.required_profile_fields.dedup();
        Ok(())
    }
}

/// Outgoing mail settings as stored and shown; the password in `url` is kept apart, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtp://`, `smtps://` or `smtp+starttls://` URL; the password is never returned.
    pub url: String,
    pub from: String,
    pub reply_to: Option<String>,
}

/// An operator's wording for one kind of mail. Each part is a template (minijinja syntax) over
/// `app_name`, `email`, `link` and `expires_minutes`; a part left out keeps the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EmailTemplate {
    pub subject: Option<String>,
    /// Plain-text body; must show `{{ link }}`.
    pub text: Option<String>,
    /// HTML body (placed inside the themed layout, values auto-escaped); must show `{{ link }}`.
    pub html: Option<String>,
}

/// Per-app overrides of outgoing mail, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EmailTemplates {
    pub verify_email: Option<EmailTemplate>,
    pub password_reset: Option<EmailTemplate>,
    pub magic_link: Option<EmailTemplate>,
    pub invitation: Option<EmailTemplate>,
}

/// Token lifetimes, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    #[schema(minimum = 60, maximum = 86400)]
    pub access_token_ttl_seconds: u32,
    #[schema(minimum = 60, maximum = 86400)]
    pub id_token_ttl_seconds: u32,
    #[schema(minimum = 60, maximum = 31622400)]
    pub refresh_token_ttl_seconds: u32,
    /// Two uses of one refresh token within this many seconds (two tabs, a retried request)
    /// both get the same successor instead of revoking the family.
    #[schema(maximum = 60)]
    pub refresh_race_grace_seconds: u32,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            access_token_ttl_seconds: 900,
            id_token_ttl_seconds: 3600,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
            refresh_race_grace_seconds: 10,
        }
    }
}

impl TokenSettings {
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: u32, max: u32| (60..=max).contains(&v);
        if !ok(self.access_token_ttl_seconds, 86_400) {
            return Err("tokens.access_token_ttl_seconds must be between 60 and 86400".into());
        }
        if !ok(self.id_token_ttl_seconds, 86_400) {
            return Err("tokens.id_token_ttl_seconds must be between 60 and 86400".into());
        }
        if !ok(self.refresh_token_ttl_seconds, 366 * 86_400) {
            return Err("tokens.refresh_token_ttl_seconds must be between 60 and 31622400".into());
        }
        if self.refresh_race_grace_seconds > 60 {
            return Err("tokens.refresh_race_grace_seconds must be between 0 and 60".into());
        }
        Ok(())
    }

    /// The longest lifetime of a signed token: the default rotation grace window.
    pub fn longest_signed_ttl(&self) -> u32 {
        self.access_token_ttl_seconds.max(self.id_token_ttl_seconds)
    }
}

/// An app as the control plane knows it.
#[derive(Debug, Clone)]
pub struct App {
    pub id: Uuid,
    pub slug: AppSlug,
    pub display_name: String,
    pub status: AppStatus,
    pub failure_reason: Option<String>,
    /// Sealed `postgres://` URL of the app's own database, if it has one.
    pub database_url_sealed: Option<String>,
    pub database_schema: Option<String>,
    pub signing_alg: SigningAlg,
    pub branding: Branding,
    pub policy: Policy,
    pub smtp: Option<SmtpSettings>,
    pub smtp_password_sealed: Option<String>,
    pub email_templates: EmailTemplates,
    pub tokens: TokenSettings,
    /// Upstream identity providers (SPEC §7a), secrets sealed.
    pub providers: super::providers::Providers,
    pub config_version: i64,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        for ok in ["ab", "a1", "0-x", "my-app", &"a".repeat(63)] {
            assert!(AppSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "Ab", "a_b", "a b", "", &"a".repeat(64), "ä-b", "a/b"] {
            assert!(AppSlug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AppSlug::parse("my-app").expect("ok").default_schema(), "latchkey_app_my_app");
    }

    #[test]
    fn brand_color_cannot_inject_css() {
        for bad in ["red", "#12345", "#1234567", "#fff;background:url(x)", "#ggg", ""] {
            assert!(BrandColor::try_from(bad.to_string()).is_err(), "{bad}");
        }
        assert!(BrandColor::try_from("#4F46E5".to_string()).is_ok());
        let ink = |c: &str| BrandColor::try_from(c.to_string()).expect("valid").ink();
        assert_eq!(ink("#1d4ed8"), "#ffffff");
        assert_eq!(ink("#ffff00"), "#000000");
        assert_eq!(ink("#fff"), "#000000");
        assert_eq!(ink("#000"), "#ffffff");
    }

    #[test]
    fn logo_url_must_be_https() {
        assert!(WebUrl::try_from("javascript:alert(1)".to_string()).is_err());
        assert!(WebUrl::try_from("http://evil.example/x.png".to_string()).is_err());
        assert!(WebUrl::try_from("https://cdn.example/x.png".to_string()).is_ok());
        assert!(WebUrl::try_from("http://localhost:3000/x.png".to_string()).is_ok());
    }

    #[test]
    fn policy_validation() {
        let mut p = Policy::default();
        assert!(p.validate().is_ok());
        p.password.min_length = 7;
        assert!(p.validate().is_err());
        let mut p = Policy {
            allowed_email_domains: vec!["Example.com".into()],
            blocked_email_domains: vec!["example.com".into()],
            ..Policy::default()
        };
        assert!(p.validate().is_err());
        let mut p = Policy { required_profile_fields: vec!["shoe_size".into()], ..Policy::default() };
        assert!(p.validate().is_err());
    }
}
