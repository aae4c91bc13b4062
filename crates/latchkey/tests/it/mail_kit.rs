//! A real SMTP server on loopback (mailin-embedded) that keeps every message it receives, and
//! MIME parsing (mail-parser) of what arrived.

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use mailin_embedded::response::{OK, Response};
use mailin_embedded::{Handler, Server};
use parking_lot::Mutex;

/// One message as delivered over SMTP.
#[derive(Debug, Clone)]
pub struct Received {
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub raw: Vec<u8>,
}

/// What the tests look at in a message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub from_name: Option<String>,
    pub to: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Received {
    pub fn parse(&self) -> Mail {
        parse_message(&self.raw)
    }
}

pub fn parse_message(raw: &[u8]) -> Mail {
    let m = MessageParser::default().parse(raw).expect("a MIME message");
    let first = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .map(|a| (a.address().unwrap_or_default().to_string(), a.name().map(str::to_string)))
    };
    let (from, from_name) = first(m.from()).expect("From");
    let (to, _) = first(m.to()).expect("To");
    Mail {
        from,
        from_name,
        to,
        reply_to: first(m.reply_to()).map(|(a, _)| a),
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).expect("a text/plain part").to_string(),
        html: m.body_html(0).expect("a text/html part").to_string(),
    }
}

#[derive(Clone)]
struct Collect {
    inbox: Arc<Mutex<Vec<Received>>>,
    current: Option<Received>,
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current =
            Some(Received { envelope_from: from.into(), envelope_to: to.to_vec(), raw: Vec::new() });
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(c) = &mut self.current {
            c.raw.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(c) = self.current.take() {
            self.inbox.lock().push(c);
        }
        OK
    }

    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        OK
    }
}

/// An SMTP sink on 127.0.0.1. It may be created down (port chosen, nobody listening) and
/// brought up later, to test delivery retries.
pub struct Sink {
    pub port: u16,
    inbox: Arc<Mutex<Vec<Received>>>,
    /// PEM certificate and key files when the sink offers STARTTLS.
    tls: Option<(String, String)>,
}

impl Sink {
    /// A sink that is listening.
    pub fn start() -> Sink {
        let sink = Sink::down();
        sink.up();
        sink
    }

    /// A port for a sink that is not listening yet: connections to it are refused.
    pub fn down() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        Sink { port, inbox: Arc::default(), tls: None }
    }

    /// A listening sink that offers STARTTLS with a fresh self-signed certificate for
    /// 127.0.0.1; returns it with the certificate's PEM file (to trust it as a private CA).
    pub fn start_tls(dir: &std::path::Path) -> (Sink, std::path::PathBuf) {
        // The sink's rustls server config uses the process-wide provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
        let cert = dir.join("smtp-cert.pem");
        let key = dir.join("smtp-key.pem");
        std::fs::write(&cert, ck.cert.pem()).expect("write cert");
        std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
        let mut sink = Sink::down();
        sink.tls = Some((cert.display().to_string(), key.display().to_string()));
        sink.up();
        (sink, cert)
    }

    /// Starts listening on the sink's port (the server thread lives until the process ends).
    pub fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("sink port is free again");
        let mut server = Server::new(Collect { inbox: self.inbox.clone(), current: None });
        server.with_name("sink.test").with_num_threads(2).with_tcp_listener(listener);
        if let Some((cert_path, key_path)) = &self.tls {
            server
                .with_ssl(mailin_embedded::SslConfig::SelfSigned {
                    cert_path: cert_path.clone(),
                    key_path: key_path.clone(),
                })
                .expect("TLS config");
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });
    }

    /// `smtp://` URL of the sink (plain text on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received for `to` so far.
    pub fn for_rcpt(&self, to: &str) -> Vec<Received> {
        let to = to.to_lowercase();
        self.inbox
            .lock()
            .iter()
            .filter(|m| m.envelope_to.iter().any(|t| t.to_lowercase() == to))
            .cloned()
            .collect()
    }

    /// Waits for the `n`th message (1-based) to `to`; fails the test after `timeout`.
    pub async fn wait_nth(&self, to: &str, n: usize, timeout: Duration) -> Mail {
        let until = Instant::now() + timeout;
        loop {
            let got = self.for_rcpt(to);
            if got.len() >= n {
                return got[n - 1].parse();
            }
            assert!(
                Instant::now() < until,
                "no message #{n} for {to} within {timeout:?} (have {})",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for(&self, to: &str) -> Mail {
        self.wait_nth(to, 1, Duration::from_secs(15)).await
    }
}

/// The first link in `text` that starts with `prefix`.
pub fn link_in(text: &str, prefix: &str) -> String {
    let at = text.find(prefix).unwrap_or_else(|| panic!("no link {prefix} in:\n{text}"));
    text[at..].split(|c: char| c.is_whitespace() || c == '"' || c == '<').next().expect("link").to_string()
}

/// Writes a message's HTML part next to the screenshots, to be opened in the browser.
pub fn save_html(html: &str, name: &str) -> std::path::PathBuf {
    let dir = crate::browser_kit::screenshots_dir();
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    let path = dir.join(name);
    std::fs::write(&path, html).expect("write html");
    path
}

/// A TLS front for `sink` on its own port (implicit TLS, as `smtps://` expects): each
/// connection is decrypted with a fresh self-signed certificate for 127.0.0.1 and piped to the
/// sink's plain port. Returns the port and the certificate's PEM file.
pub async fn implicit_tls_front(sink: &Sink, dir: &std::path::Path) -> (u16, std::path::PathBuf) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let cert_path = dir.join("smtps-cert.pem");
    std::fs::write(&cert_path, ck.cert.pem()).expect("write cert");
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(ck.cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der())),
            )
            .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let plain = sink.port;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", plain)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (port, cert_path)
}
