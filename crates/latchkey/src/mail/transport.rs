//! Where an app's mail goes: its own SMTP server (SPEC §7, so mail leaves under the app's domain),
//! else the process default `LATCHKEY_SMTP_URL`, else the dev transport that writes each message
//! as an `.eml` file to `<data dir>/outbox/` and logs the link (the only place a link is logged).
//!
//! URL schemes: `smtps://` is TLS from the first byte (port 465 by default),
//! `smtp+starttls://` upgrades with STARTTLS and refuses to go on without it (port 587),
//! `smtp://` is plain text (port 25) and is meant for a relay on the same host or network.
//! Certificates are checked against the webpki roots plus, if set, `LATCHKEY_SMTP_CA_FILE`.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;
use secrecy::ExposeSecret;
use url::Url;

use super::templates::Letter;
use crate::apps::App;
use crate::config::Config;
use crate::crypto::SecretBox;

/// How long connecting to the SMTP server may take (lettre applies it to the connect only; the
/// outbox bounds a whole message with its own deadline).
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Transport {
    Smtp { inner: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox, reply_to: Option<Mailbox> },
    Dev { inner: AsyncFileTransport<Tokio1Executor>, dir: PathBuf, from: Mailbox },
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("mail settings: {0}")]
    Settings(String),
    #[error("{0}")]
    Send(String),
}

impl Transport {
    /// The transport for `app`'s mail.
    pub fn for_app(config: &Config, secrets: &SecretBox, app: &App) -> Result<Transport, TransportError> {
        let settings = |e: String| TransportError::Settings(e);
        if let Some(smtp) = &app.smtp {
            let password = match &app.smtp_password_sealed {
                Some(sealed) => Some(
                    secrets
                        .open_string(&format!("app:{}:smtp_password", app.id), sealed)
                        .map_err(|e| settings(format!("SMTP password cannot be unsealed: {e}")))?,
                ),
                None => None,
            };
            let from = mailbox(&app.display_name, &smtp.from)?;
            let reply_to = smtp.reply_to.as_deref().map(|r| mailbox("", r)).transpose()?;
            let inner = smtp_transport(&smtp.url, password.as_deref(), config.smtp_ca.as_deref())?;
            return Ok(Transport::Smtp { inner, from, reply_to });
        }
        let from = mailbox(&app.display_name, &config.smtp_from())?;
        if let Some(url) = &config.smtp_url {
            let inner = smtp_transport(url.expose_secret(), None, config.smtp_ca.as_deref())?;
            return Ok(Transport::Smtp { inner, from, reply_to: None });
        }
        let dir = config.store.data_dir.join("outbox");
        Ok(Transport::Dev { inner: AsyncFileTransport::new(&dir), dir, from })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Smtp { .. } => "smtp",
            Transport::Dev { .. } => "dev",
        }
    }

    /// Delivers one message. `link` is logged by the dev transport only.
    pub async fn send(&self, to: &str, letter: &Letter, link: &str) -> Result<(), TransportError> {
        let (from, reply_to) = match self {
            Transport::Smtp { from, reply_to, .. } => (from, reply_to.as_ref()),
            Transport::Dev { from, .. } => (from, None),
        };
        let to: Mailbox = to.parse().map_err(|e| TransportError::Send(format!("recipient: {e}")))?;
        let mut builder = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(letter.subject.clone())
            .header(header::MIME_VERSION_1_0)
            .message_id(None)
            .date_now();
        if let Some(r) = reply_to {
            builder = builder.reply_to(r.clone());
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(letter.text.clone(), letter.html.clone()))
            .map_err(|e| TransportError::Send(format!("message: {e}")))?;
        match self {
            Transport::Smtp { inner, .. } => {
                inner.send(message).await.map(|_| ()).map_err(|e| TransportError::Send(e.to_string()))
            }
            Transport::Dev { inner, dir, .. } => {
                // The files hold live sign-in links: private to Latchkey's user, like the folder.
                let private = |path: &std::path::Path, e: std::io::Error| {
                    TransportError::Send(format!("{}: {e}", path.display()))
                };
                let owned = dir.clone();
                tokio::task::spawn_blocking(move || crate::store::files::private_dir(&owned))
                    .await
                    .map_err(|e| TransportError::Send(e.to_string()))?
                    .map_err(|e| private(dir, e))?;
                let id = inner.send(message).await.map_err(|e| TransportError::Send(e.to_string()))?;
                let file = dir.join(format!("{id}.eml"));
                tokio::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .await
                    .map_err(|e| private(&file, e))?;
                tracing::info!(
                    file = %file.display(),
                    link,
                    "dev mail transport: message written (configure SMTP to send real mail)"
                );
                Ok(())
            }
        }
    }
}

/// `"Display Name" <address>`, the name left out when empty.
fn mailbox(name: &str, address: &str) -> Result<Mailbox, TransportError> {
    let address =
        address.parse().map_err(|e| TransportError::Settings(format!("address {address:?}: {e}")))?;
    let name = name.trim();
    Ok(Mailbox::new((!name.is_empty()).then(|| name.to_string()), address))
}

/// An SMTP transport from a `smtp://`, `smtps://` or `smtp+starttls://` URL. The password comes
/// from the URL or, for apps, from the sealed column.
fn smtp_transport(
    raw: &str,
    sealed_password: Option<&str>,
    extra_ca: Option<&[u8]>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, TransportError> {
    let bad = |e: String| TransportError::Settings(e);
    let url = Url::parse(raw).map_err(|_| bad("SMTP URL is not a URL".into()))?;
    let host = url.host_str().ok_or_else(|| bad("SMTP URL has no host".into()))?.to_string();
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let tls_params = || {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(pem) = extra_ca {
            let cert = Certificate::from_pem(pem).map_err(|e| bad(format!("LATCHKEY_SMTP_CA_FILE: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| bad(format!("TLS: {e}")))
    };
    let (tls, default_port) = match url.scheme() {
        "smtps" => (Tls::Wrapper(tls_params()?), 465),
        "smtp+starttls" => (Tls::Required(tls_params()?), 587),
        "smtp" => (Tls::None, 25),
        other => return Err(bad(format!("unsupported SMTP scheme {other:?}"))),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(url.port().unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    let user = percent_decode_str(url.username()).decode_utf8_lossy().to_string();
    let password = match sealed_password {
        Some(p) => Some(p.to_string()),
        None => url.password().map(|p| percent_decode_str(p).decode_utf8_lossy().to_string()),
    };
    if !user.is_empty() {
        builder = builder.credentials(Credentials::new(user, password.unwrap_or_default()));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Building a pooled transport needs a runtime.
    #[tokio::test]
    async fn urls_choose_tls_and_ports() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtps://user:p%40ss@mail.example.com",
            "smtp+starttls://user@mail.example.com:2587",
            "smtp://[::1]:25",
        ] {
            assert!(smtp_transport(ok, None, None).is_ok(), "{ok}");
        }
        for bad in ["http://mail.example.com", "smtp://", "not a url"] {
            assert!(smtp_transport(bad, None, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn mailboxes_carry_the_app_name() {
        let m = mailbox("Acme \"Inc\"", "no-reply@acme.test").expect("valid");
        assert_eq!(m.email.to_string(), "no-reply@acme.test");
        assert_eq!(m.name.as_deref(), Some("Acme \"Inc\""));
        assert!(mailbox("", "not an address").is_err());
    }
}
