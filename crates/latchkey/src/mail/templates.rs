//! The wording of outgoing mail: an HTML and a plain-text part per kind, themed with the app's
//! name, colour and logo. Defaults are built in (English); an operator may override the subject,
//! the text or the HTML of any kind per app (`email_templates`). HTML is rendered with minijinja's
//! HTML auto-escaping, so every value a user controls (their address, the app name) is escaped;
//! the subject and text parts are plain text and are never escaped, only stripped of line breaks
//! where a header needs one line.

use std::sync::OnceLock;

use minijinja::{Environment, Value, context};

use super::Kind;
use crate::apps::App;
use crate::apps::model::{EmailTemplate, EmailTemplates};

/// Largest accepted override part, in bytes.
const MAX_PART: usize = 32 * 1024;

/// A message ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn defaults() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in [
            ("layout.html", include_str!("../../../../templates/mail/layout.html")),
            ("button.html", include_str!("../../../../templates/mail/button.html")),
            ("verify_email.html", include_str!("../../../../templates/mail/verify_email.html")),
            ("verify_email.txt", include_str!("../../../../templates/mail/verify_email.txt")),
            ("password_reset.html", include_str!("../../../../templates/mail/password_reset.html")),
            ("password_reset.txt", include_str!("../../../../templates/mail/password_reset.txt")),
            ("magic_link.html", include_str!("../../../../templates/mail/magic_link.html")),
            ("magic_link.txt", include_str!("../../../../templates/mail/magic_link.txt")),
            ("invitation.html", include_str!("../../../../templates/mail/invitation.html")),
            ("invitation.txt", include_str!("../../../../templates/mail/invitation.txt")),
        ] {
            // Part of the binary; a syntax error fails the unit tests below.
            if let Err(err) = env.add_template(name, src) {
                tracing::error!(template = name, error = %err, "mail template does not compile");
            }
        }
        env
    })
}

fn default_subject(kind: Kind, app_name: &str) -> String {
    match kind {
        Kind::VerifyEmail => format!("Confirm your email address for {app_name}"),
        Kind::PasswordReset => format!("Reset your {app_name} password"),
        Kind::MagicLink => format!("Your sign-in link for {app_name}"),
        Kind::Invitation => format!("You are invited to {app_name}"),
    }
}

fn override_of(t: &EmailTemplates, kind: Kind) -> Option<&EmailTemplate> {
    match kind {
        Kind::VerifyEmail => t.verify_email.as_ref(),
        Kind::PasswordReset => t.password_reset.as_ref(),
        Kind::MagicLink => t.magic_link.as_ref(),
        Kind::Invitation => t.invitation.as_ref(),
    }
}

/// Human wording of a lifetime in minutes ("15 minutes", "24 hours").
fn expires_text(minutes: i64) -> String {
    match minutes {
        1 => "1 minute".into(),
        m if m < 120 || m % 60 != 0 => format!("{m} minutes"),
        m if m < 48 * 60 || m % (24 * 60) != 0 => format!("{} hours", m / 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

/// Renders one operator-supplied part. `.html` names auto-escape, `.txt` names do not.
fn render_override(name: &str, src: &str, ctx: &Value) -> Result<String, String> {
    let mut env = Environment::new();
    env.add_template(name, src).map_err(|e| e.to_string())?;
    env.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| e.to_string())
}

/// One header line: control characters (line breaks included) become spaces.
fn one_line(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    s.trim().chars().take(200).collect()
}

/// The message of `kind` for `email`, carrying `link` (valid for the kind's default lifetime).
pub fn render(app: &App, kind: Kind, email: &str, link: &str) -> Result<Letter, String> {
    render_for(app, kind, email, link, kind.ttl())
}

/// The message of `kind` for `email`, carrying `link`, valid for `ttl`.
pub fn render_for(
    app: &App,
    kind: Kind,
    email: &str,
    link: &str,
    ttl: chrono::Duration,
) -> Result<Letter, String> {
    let brand_color = app.branding.brand_color.clone().map(String::from).unwrap_or_else(|| "#1d4ed8".into());
    let brand_ink = app.branding.brand_color.as_ref().map(|c| c.ink()).unwrap_or("#ffffff");
    let ctx = context! {
        app_name => app.display_name.clone(),
        email => email,
        link => link,
        expires_minutes => ttl.num_minutes(),
        expires_text => expires_text(ttl.num_minutes()),
        brand_color => brand_color,
        brand_ink => brand_ink,
        logo_url => app.branding.logo_url.clone().map(String::from),
    };
    let custom = override_of(&app.email_templates, kind);
    let env = defaults();
    let subject = match custom.and_then(|c| c.subject.as_deref()) {
        Some(src) => render_override("subject.txt", src, &ctx)?,
        None => default_subject(kind, &app.display_name),
    };
    let subject = one_line(&subject);
    let text = match custom.and_then(|c| c.text.as_deref()) {
        Some(src) => render_override("body.txt", src, &ctx)?,
        None => env
            .get_template(&format!("{}.txt", kind.as_str()))
            .and_then(|t| t.render(&ctx))
            .map_err(|e| e.to_string())?,
    };
    let content = match custom.and_then(|c| c.html.as_deref()) {
        Some(src) => render_override("body.html", src, &ctx)?,
        None => env
            .get_template(&format!("{}.html", kind.as_str()))
            .and_then(|t| t.render(&ctx))
            .map_err(|e| e.to_string())?,
    };
    let html = env
        .get_template("layout.html")
        .and_then(|t| {
            t.render(context! {
                ..ctx.clone(),
                ..context! { subject => subject.clone(), content => Value::from_safe_string(content) }
            })
        })
        .map_err(|e| e.to_string())?;
    Ok(Letter { subject, text, html })
}

/// Checks an operator's overrides: each part compiles, renders, is not too long, and the bodies
/// show the link (a message without it would be useless).
pub fn validate(t: &EmailTemplates) -> Result<(), String> {
    const SAMPLE_LINK: &str = "https://id.example.com/apps/sample/magic-link?token=lk_sample_token";
    let ctx = context! {
        app_name => "Sample", email => "ann@example.com", link => SAMPLE_LINK, expires_minutes => 15,
        expires_text => "15 minutes", brand_color => "#1d4ed8", brand_ink => "#ffffff", logo_url => (),
    };
    for kind in [Kind::VerifyEmail, Kind::PasswordReset, Kind::MagicLink, Kind::Invitation] {
        let Some(c) = override_of(t, kind) else { continue };
        let field = |part: &str| format!("email_templates.{}.{part}", kind.as_str());
        for (part, src, name) in [
            ("subject", &c.subject, "subject.txt"),
            ("text", &c.text, "body.txt"),
            ("html", &c.html, "body.html"),
        ] {
            let Some(src) = src else { continue };
            if src.len() > MAX_PART {
                return Err(format!("{} is longer than {MAX_PART} bytes", field(part)));
            }
            let out = render_override(name, src, &ctx).map_err(|e| format!("{}: {e}", field(part)))?;
            if part == "subject" && one_line(&out).is_empty() {
                return Err(format!("{} renders empty", field(part)));
            }
            // The token has no character HTML escaping would change.
            if part != "subject" && !out.contains("lk_sample_token") {
                return Err(format!("{} must show the link: put {{{{ link }}}} in it", field(part)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::model::{BrandColor, Branding};

    fn app(name: &str) -> App {
        App {
            id: uuid::Uuid::now_v7(),
            slug: crate::apps::AppSlug::parse("acme").expect("slug"),
            display_name: name.into(),
            status: crate::apps::AppStatus::Active,
            failure_reason: None,
            database_url_sealed: None,
            database_schema: None,
            signing_alg: Default::default(),
            branding: Branding {
                brand_color: Some(BrandColor::try_from("#ff0000".to_string()).expect("colour")),
                logo_url: None,
            },
            policy: Default::default(),
            smtp: None,
            smtp_password_sealed: None,
            email_templates: Default::default(),
            tokens: Default::default(),
            providers: Default::default(),
            config_version: 1,
            created_at: crate::store::Ts::new(chrono::Utc::now()),
            updated_at: crate::store::Ts::new(chrono::Utc::now()),
        }
    }

    #[test]
    fn defaults_render_for_every_kind() {
        let link = "https://id.example.com/apps/acme/magic-link?token=abc&x=1";
        for kind in [Kind::VerifyEmail, Kind::PasswordReset, Kind::MagicLink, Kind::Invitation] {
            let l = render(&app("Acme"), kind, "ann@example.com", link).expect("renders");
            assert!(l.text.contains(link), "{kind:?} text shows the link");
            // In HTML the link is entity-escaped (`&` and `/` included).
            assert!(l.html.contains("magic-link?token=abc&amp;x=1"), "{}", l.html);
            assert!(l.html.contains("#ff0000"), "themed");
            assert!(l.subject.contains("Acme"));
        }
        let l = render(&app("Acme"), Kind::MagicLink, "a@b.co", link).expect("renders");
        assert!(l.text.contains("15 minutes"));
        let l = render(&app("Acme"), Kind::VerifyEmail, "a@b.co", link).expect("renders");
        assert!(l.text.contains("24 hours"));
    }

    #[test]
    fn user_controlled_values_are_escaped_in_html_only() {
        let evil = "<script>alert(1)</script>";
        let l = render(&app(evil), Kind::PasswordReset, "x\"<b>@example.com", "https://x.test/r?t=1")
            .expect("renders");
        assert!(!l.html.contains("<script>"));
        assert!(l.html.contains("&lt;script&gt;"));
        assert!(!l.html.contains("x\"<b>"));
        assert!(l.text.contains(evil), "plain text is not HTML and is not escaped");
    }

    #[test]
    fn overrides_apply_and_are_validated() {
        let mut a = app("Acme");
        a.email_templates.magic_link = Some(EmailTemplate {
            subject: Some("Hi\r\nBcc: evil@example.com {{ app_name }}".into()),
            text: Some("Tap {{ link }} now".into()),
            html: Some("<p>Tap <a href=\"{{ link }}\">here</a>, {{ email }}</p>".into()),
        });
        assert!(validate(&a.email_templates).is_ok());
        let l = render(&a, Kind::MagicLink, "<i>@example.com", "https://x.test/m?t=1").expect("renders");
        assert_eq!(l.subject, "Hi  Bcc: evil@example.com Acme", "one header line");
        assert_eq!(l.text, "Tap https://x.test/m?t=1 now");
        assert!(l.html.contains("&lt;i&gt;@example.com"));
        assert!(l.html.contains("#ff0000"), "the override sits inside the themed layout");
        // The other kinds keep their defaults.
        let l = render(&a, Kind::VerifyEmail, "a@b.co", "https://x.test/v").expect("renders");
        assert!(l.subject.starts_with("Confirm"));

        for bad in [
            EmailTemplate { text: Some("no link here".into()), ..Default::default() },
            EmailTemplate { html: Some("{% if %}".into()), ..Default::default() },
            EmailTemplate { subject: Some("   ".into()), ..Default::default() },
            EmailTemplate {
                text: Some(format!("{{{{ link }}}}{}", "x".repeat(MAX_PART))),
                ..Default::default()
            },
        ] {
            let t = EmailTemplates { password_reset: Some(bad.clone()), ..Default::default() };
            assert!(validate(&t).is_err(), "{bad:?}");
        }
    }
}
