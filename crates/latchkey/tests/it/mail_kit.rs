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
        Sink { port, inbox: Arc::default() }
    }

    /// Starts listening on the sink's port (the server thread lives until the process ends).
    pub fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("sink port is free again");
        let mut server = Server::new(Collect { inbox: self.inbox.clone(), current: None });
        server.with_name("sink.test").with_num_threads(2).with_tcp_listener(listener);
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
