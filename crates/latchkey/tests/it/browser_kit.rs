//! Browser kit: a headless Debian Chromium driven over WebDriver (`fantoccini`), one private
//! `chromedriver` per [`Browser`] on its own loopback port (so tests run in parallel), and a
//! [`RedirectTarget`] standing in for a relying party's redirect_uri.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`, `chromium-driver`;
//! `scripts/test` installs them). Screenshots go to `<workspace>/target/screenshots/`, which CI keeps.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use serde_json::{Value, json};
use url::Url;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Viewport sizes the hosted pages are checked at.
pub const DESKTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

/// Upper bound for chromedriver to answer `/status` and for Chromium to open a session.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long element look-ups wait for the element to appear (pages are server-rendered).
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);

const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
];

/// One headless Chromium with its own chromedriver, profile and WebDriver session. Dropping it
/// ends the session and kills chromedriver and everything it started.
pub struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    session_id: Option<String>,
    label: String,
    /// Time from `start` until the session was usable.
    pub started_in: Duration,
    // Holds the Chromium profile and the chromedriver log; removed after the processes are gone.
    _scratch: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session in a fresh profile.
    /// `label` (usually the test's name) prefixes this browser's screenshot files.
    pub async fn start(label: &str) -> Browser {
        let t0 = Instant::now();
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/test, or `apt-get install chromium chromium-driver`"
            );
        }
        let scratch = tempfile::Builder::new().prefix("lk-browser-").tempdir().expect("scratch dir");
        let profile = scratch.path().join("profile");
        std::fs::create_dir(&profile).expect("profile dir");
        let log = scratch.path().join("chromedriver.log");
        let deadline = t0 + START_TIMEOUT;

        // The port is free when we look; another process may take it before chromedriver binds
        // it, so a driver that dies at start is retried on a new port.
        let mut failures = Vec::new();
        let (driver, port) = loop {
            let port = free_port();
            let mut driver = spawn_chromedriver(port, &log);
            match wait_until_ready(&mut driver, port, deadline).await {
                Ok(()) => break (driver, port),
                Err(e) => {
                    kill_group(&mut driver);
                    failures.push(format!("port {port}: {e}"));
                    if failures.len() >= 3 || Instant::now() >= deadline {
                        panic!(
                            "chromedriver did not start: {}\n--- chromedriver log ---\n{}",
                            failures.join("; "),
                            read_tail(&log)
                        );
                    }
                }
            }
        };

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let webdriver = format!("http://127.0.0.1:{port}");
        let connect = builder.connect(&webdriver);
        let mut driver = driver;
        let client = match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), connect)
            .await
        {
            Ok(Ok(client)) => client,
            other => {
                kill_group(&mut driver);
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no session within {START_TIMEOUT:?}"),
                };
                panic!("Chromium session did not open: {why}\n--- chromedriver log ---\n{}", read_tail(&log));
            }
        };
        let session_id = client.session_id().await.ok().flatten();
        let browser = Browser {
            client,
            driver,
            port,
            session_id,
            label: sanitize(label),
            started_in: t0.elapsed(),
            _scratch: scratch,
        };
        browser.set_window_size(DESKTOP.0, DESKTOP.1).await;
        browser
    }

    /// The WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub async fn current_url(&self) -> Url {
        self.client.current_url().await.expect("current url")
    }

    /// Waits for the element, clears it and types `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        el.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Waits for the element and clicks it.
    pub async fn click(&self, css: &str) {
        let el = self.element(css).await;
        el.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Whether the current page has an element matching `css` (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.expect("find_all").is_empty()
    }

    /// The rendered text of the first element matching `css` (waits for it).
    pub async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// Forgets the cookies the browser would send to `url`. WebDriver deletes only the current
    /// document's cookies, and the hosted pages scope theirs to the issuer path, so this first
    /// navigates to `url` (pick a side-effect-free one, such as `{issuer}/jwks`).
    pub async fn clear_cookies(&self, url: &str) {
        self.goto(url).await;
        self.client.delete_all_cookies().await.unwrap_or_else(|e| panic!("delete cookies of {url}: {e}"));
    }

    /// The current page's HTML.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Runs a script in the page (`return …;`) and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(ELEMENT_TIMEOUT).for_element(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => panic!(
                "{}",
                self.report(&format!("no element {css:?} within {ELEMENT_TIMEOUT:?}: {e}")).await
            ),
        }
    }

    /// Polls until the address bar starts with `prefix`; returns that URL. On timeout, saves a
    /// `…-FAILED` screenshot and fails with the URL and page the browser is on.
    pub async fn wait_for_url_prefix(&self, prefix: &str, timeout: Duration) -> Url {
        let until = Instant::now() + timeout;
        loop {
            let url = self.current_url().await;
            if url.as_str().starts_with(prefix) {
                return url;
            }
            if Instant::now() >= until {
                panic!(
                    "{}",
                    self.report(&format!("URL did not start with {prefix} within {timeout:?}")).await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the page source contains `needle` (after a form post the old page may still
    /// be showing for a moment).
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) {
        let until = Instant::now() + timeout;
        while !self.source().await.contains(needle) {
            if Instant::now() >= until {
                panic!(
                    "{}",
                    self.report(&format!("the page did not show {needle:?} within {timeout:?}")).await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a `…-FAILED` screenshot; returns `what` with where the browser is, for a panic.
    pub async fn report(&self, what: &str) -> String {
        let shot = match self.client.screenshot().await {
            Ok(png) => {
                let path = self.shot_path("FAILED");
                std::fs::write(&path, png).map(|_| path.display().to_string()).unwrap_or_default()
            }
            Err(_) => String::new(),
        };
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let html = self.client.source().await.unwrap_or_default();
        let html: String = html.chars().take(4000).collect();
        format!("{what}\n  at: {url}\n  screenshot: {shot}\n--- page ---\n{html}")
    }

    /// Screenshot of the viewport, written to `<target>/screenshots/<label>-<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = self.shot_path(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    fn shot_path(&self, name: &str) -> PathBuf {
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir.join(format!("{}-{}.png", self.label, sanitize(name)))
    }

    /// Makes the viewport (what pages lay out in, and what screenshots show) `width`×`height`
    /// CSS pixels: sets the window size, then corrects for any browser chrome around it.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("set window size");
        let inner = self.eval("return [window.innerWidth, window.innerHeight];").await;
        let (iw, ih) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
        if (iw, ih) != (width, height) && iw > 0 && ih > 0 {
            let (w, h) = (width + width.saturating_sub(iw), height + height.saturating_sub(ih));
            self.client.set_window_size(w, h).await.expect("set window size");
        }
    }

    /// Screenshots the current page at desktop and phone widths (`<name>-desktop`,
    /// `<name>-phone`), leaving the window at desktop size.
    pub async fn screenshot_sizes(&self, name: &str) -> [PathBuf; 2] {
        self.set_window_size(DESKTOP.0, DESKTOP.1).await;
        let desktop = self.screenshot(&format!("{name}-desktop")).await;
        self.set_window_size(PHONE.0, PHONE.1).await;
        let phone = self.screenshot(&format!("{name}-phone")).await;
        self.set_window_size(DESKTOP.0, DESKTOP.1).await;
        [desktop, phone]
    }

    /// The port this browser's chromedriver listens on.
    pub fn driver_port(&self) -> u16 {
        self.port
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit Chromium cleanly; a plain blocking request
        // because Drop cannot await. Then nothing of this browser's process group survives.
        if let Some(id) = &self.session_id {
            delete_session(self.port, id);
        }
        kill_group(&mut self.driver);
        // `_scratch` (profile, log) is removed after this, when the fields drop.
    }
}

/// `<workspace>/target/screenshots`, kept by CI as artifacts. Always the checkout's own
/// `target/`, even when builds go to a shared `CARGO_TARGET_DIR` elsewhere.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("addr").port()
}

fn spawn_chromedriver(port: u16, log: &Path) -> Child {
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .arg(format!("--log-path={}", log.display()))
        .arg("--log-level=WARNING")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so Drop can kill chromedriver and the Chromium it started.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {CHROMEDRIVER}: {e}"))
}

/// Polls chromedriver's `/status` until it reports ready; fails if the process exits (port
/// taken) or the deadline passes.
async fn wait_until_ready(driver: &mut Child, port: u16, deadline: Instant) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}/status");
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited with {status}"));
        }
        if let Ok(res) = http.get(&url).send().await
            && let Ok(v) = res.json::<Value>().await
            && v["value"]["ready"] == true
        {
            // Make sure it was ours that answered, not a process that won the port.
            return match driver.try_wait() {
                Ok(None) => Ok(()),
                _ => Err("chromedriver exited while another process answered on its port".into()),
            };
        }
        if Instant::now() >= deadline {
            return Err(format!("/status not ready within {START_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `DELETE /session/{id}` with a short timeout, over a plain blocking socket.
fn delete_session(port: u16, id: &str) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
    }
}

/// SIGKILL to the driver's process group (the chromedriver we spawned and its children), then
/// reap the driver.
fn kill_group(driver: &mut Child) {
    let pgid = driver.id();
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !killed {
        let _ = driver.kill();
    }
    let _ = driver.wait();
}

fn read_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    text.get(start..).unwrap_or(&text).to_string()
}

/// One request the redirect target received.
#[derive(Debug, Clone)]
pub struct Callback {
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// The decoded query parameters in order.
    pub params: Vec<(String, String)>,
}

impl Callback {
    /// The first value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A stand-in relying party: answers every GET (but `/favicon.ico`) with a page echoing the query
/// string and records each such request, so a test can read the `code`, `state` and `iss` an authorization response
/// carried.
pub struct RedirectTarget {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    hits: Arc<Mutex<Vec<Callback>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RedirectTarget {
    pub async fn start() -> RedirectTarget {
        let hits: Arc<Mutex<Vec<Callback>>> = Arc::default();
        let record = hits.clone();
        let handler = move |OriginalUri(uri): OriginalUri| {
            let record = record.clone();
            async move {
                let query = uri.query().unwrap_or("").to_string();
                let params: Vec<(String, String)> =
                    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
                let rows: String = params
                    .iter()
                    .map(|(k, v)| {
                        format!("<dt>{}</dt><dd id=\"param-{}\">{}</dd>", escape(k), escape(k), escape(v))
                    })
                    .collect();
                let page = format!(
                    "<!doctype html><html lang=en><head><meta charset=utf-8>\
                     <meta name=viewport content=\"width=device-width,initial-scale=1\">\
                     <link rel=icon href=\"data:,\"><title>Redirect target</title></head><body><h1>Redirect target</h1>\
                     <p id=path>{}</p><pre id=query>{}</pre><dl>{rows}</dl></body></html>",
                    escape(uri.path()),
                    escape(&query)
                );
                record.lock().push(Callback { path: uri.path().to_string(), query, params });
                Html(page)
            }
        };
        // Browsers ask for /favicon.ico on their own; it is not a callback.
        let no_icon = || async { StatusCode::NO_CONTENT };
        let router = axum::Router::new()
            .route("/favicon.ico", get(no_icon))
            .route("/", get(handler.clone()))
            .route("/{*rest}", get(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind redirect target");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        RedirectTarget { base, hits, task }
    }

    /// `base` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The most recent request, if any.
    pub fn last(&self) -> Option<Callback> {
        self.hits.lock().last().cloned()
    }

    /// Every request so far, oldest first.
    pub fn all(&self) -> Vec<Callback> {
        self.hits.lock().clone()
    }
}

impl Drop for RedirectTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
