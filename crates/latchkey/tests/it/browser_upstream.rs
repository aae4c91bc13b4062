//! Upstream identity providers in a real browser (SPEC §7a): headless Chromium on `/login`,
//! `/signup` and `/account` of an app offering all five kinds, each pointing at a fake upstream
//! on loopback (upstream_kit.rs): the buttons in two brandings at desktop and phone widths, a
//! sign-up per kind, a second sign-in, linking and unlinking on `/account`, and erasure.
//!
//! And one upstream nobody here wrote: the OpenID-certified `oidc-provider` package, at the
//! version `../shared/peers/oidc-provider` pins, with our configuration
//! (`tests/peer_upstream.mjs`: that peer's own `server.js` has only `client_credentials`
//! clients and no login pages), signed in through its own login and consent pages.

use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;
use fantoccini::key::Key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::browser_kit::{Browser, DESKTOP, PHONE};
use crate::federation::{CLIENT_ID, SECRET, app_with};
use crate::kit::{Backend, TestApp};
use crate::upstream_kit::{FakeUpstream, Person, es256, pem};

/// Upper bound for every wait on the browser, the upstream round trip or the audit log.
const WAIT: Duration = Duration::from_secs(15);

/// Apple's client id (a Services ID) at its own fake.
const APPLE_CLIENT: &str = "com.example.web";

/// Each kind and the text its button shows.
const BUTTONS: [(&str, &str); 5] = [
    ("google", "Continue with Google"),
    ("github", "Continue with GitHub"),
    ("apple", "Continue with Apple"),
    ("microsoft", "Sign in with Microsoft"),
    ("oidc", "Continue with Acme SSO"),
];

const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="144" height="40" viewBox="0 0 144 40"><rect width="144" height="40" rx="8" fill="#0f766e"/><text x="72" y="26" font-family="sans-serif" font-size="17" font-weight="700" fill="#ffffff" text-anchor="middle">Harbor</text></svg>"##;

/// A logo for the branding, served on loopback (the pages allow `http:` images).
struct Logo {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Logo {
    async fn start() -> Logo {
        let router = axum::Router::new()
            .route("/logo.svg", get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], LOGO_SVG) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the logo server");
        let url = format!("http://{}/logo.svg", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Logo { url, task }
    }
}

impl Drop for Logo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An active app offering all five kinds: Google, Microsoft, the generic provider and GitHub
/// at one fake (returned first), Apple at its own fake with the app's ES256 key.
async fn five_providers(app: &TestApp, slug: &str) -> (FakeUpstream, FakeUpstream) {
    let fake = FakeUpstream::start(CLIENT_ID, SECRET).await;
    app_with(app, slug, &fake, &["google", "github", "microsoft", "oidc"]).await;
    let apple = FakeUpstream::start(APPLE_CLIENT, "unused").await;
    let (der, jwk) = es256("APPLEKEY01");
    apple.apple_key(jwk);
    let cfg = json!({"apple": {"client_id": APPLE_CLIENT, "team_id": "TEAM123456", "key_id": "APPLEKEY01",
        "private_key": pem(&der), "issuer": apple.base()}});
    let (s, v) = app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(json!({"providers": cfg}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (kind, _) in BUTTONS {
        assert!(v["providers"].get(kind).is_some_and(|p| !p.is_null()), "{kind} is configured: {v}");
    }
    (fake, apple)
}

/// Every provider button on the current page is a plain link (`<a href>`, in the tab order,
/// focusable, shown) whose visible text names the provider.
async fn buttons_are_plain_links(browser: &Browser, issuer: &str, page: &str) {
    let count = browser.eval("return document.querySelectorAll('.providers a.provider').length;").await;
    assert_eq!(count, json!(BUTTONS.len()), "{page}: one button per provider");
    for (kind, label) in BUTTONS {
        let script = format!(
            "const a = document.getElementById('provider-{kind}'); if (!a) {{ return null; }} \
             const r = a.getBoundingClientRect(); a.focus(); \
             return {{tag: a.tagName, href: a.href, tab: a.tabIndex, text: a.innerText.trim(), \
                      shown: r.width > 0 && r.height > 0, focused: document.activeElement === a}};"
        );
        let v = browser.eval(&script).await;
        assert!(!v.is_null(), "{page}: no #provider-{kind}");
        assert_eq!(v["tag"], "A", "{page}: #provider-{kind} is a link: {v}");
        let href = v["href"].as_str().unwrap_or_default();
        assert!(href.starts_with(&format!("{issuer}/oauth/{kind}/start")), "{page}: #provider-{kind}: {v}");
        assert_eq!(v["tab"], 0, "{page}: #provider-{kind} is in the tab order: {v}");
        assert_eq!(v["text"], label, "{page}: #provider-{kind} says what it does: {v}");
        assert_eq!(v["shown"], true, "{page}: #provider-{kind} is visible: {v}");
        assert_eq!(v["focused"], true, "{page}: #provider-{kind} takes the keyboard focus: {v}");
    }
    // No focus ring in the screenshots that follow.
    browser.eval("document.activeElement.blur(); return null;").await;
}

/// The current page does not scroll sideways at phone width (the window is left at desktop).
async fn fits_phone(browser: &Browser, what: &str) {
    browser.set_window_size(PHONE.0, PHONE.1).await;
    let v = browser.eval("return [document.documentElement.scrollWidth, window.innerWidth];").await;
    browser.set_window_size(DESKTOP.0, DESKTOP.1).await;
    let (scroll, inner) = (v[0].as_u64().unwrap_or(u64::MAX), v[1].as_u64().unwrap_or(0));
    assert!(scroll <= inner, "{what}: {scroll} px of content in a {inner} px wide phone viewport");
}

/// Focuses the link `#id` and presses Enter on it, as a keyboard user would.
async fn press_enter_on(browser: &Browser, id: &str) {
    let script =
        format!("const a = document.getElementById('{id}'); a.focus(); return document.activeElement === a;");
    assert_eq!(browser.eval(&script).await, json!(true), "#{id} takes the focus");
    let el = browser.client().active_element().await.expect("the focused element");
    el.send_keys(&Key::Enter).await.unwrap_or_else(|e| panic!("Enter on #{id}: {e}"));
}

/// From a browser without cookies: `/login`, the `kind` button (clicked, or Enter with
/// `keyboard`), the upstream (Apple's form post needs its button clicked: no JavaScript
/// submits it), and back at `/account`, since no client's authorization request is pending.
async fn sign_in_with(browser: &Browser, issuer: &str, kind: &str, apple: &FakeUpstream, keyboard: bool) {
    browser.clear_cookies(&format!("{issuer}/jwks")).await;
    browser.goto(&format!("{issuer}/login")).await;
    if keyboard {
        press_enter_on(browser, &format!("provider-{kind}")).await;
    } else {
        browser.click(&format!("#provider-{kind}")).await;
    }
    if kind == "apple" {
        browser.wait_for_url_prefix(&format!("{}/authorize", apple.base()), WAIT).await;
        browser.screenshot("apple-form-post").await;
        browser.click("#continue").await;
    }
    let at = browser.wait_for_url_prefix(&format!("{issuer}/account"), WAIT).await;
    assert_eq!(at.as_str(), format!("{issuer}/account"), "the account page, no client involved");
}

/// Polls until the page no longer shows `needle`.
async fn wait_until_gone(browser: &Browser, needle: &str) {
    let until = Instant::now() + WAIT;
    while browser.source().await.contains(needle) {
        if Instant::now() >= until {
            panic!("{}", browser.report(&format!("the page still shows {needle:?} after {WAIT:?}")).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn users_with(app: &TestApp, slug: &str, email: &str) -> Vec<Value> {
    let (s, v) = app.admin(Method::GET, &format!("/apps/{slug}/users?email={email}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The one user with `email`; returns its id and admin view.
async fn the_user(app: &TestApp, slug: &str, email: &str) -> (String, Value) {
    let users = users_with(app, slug, email).await;
    assert_eq!(users.len(), 1, "one user with {email}: {users:?}");
    let id = users[0]["id"].as_str().expect("id").to_string();
    let (s, view) = app.admin(Method::GET, &format!("/apps/{slug}/users/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{view}");
    (id, view)
}

/// The upstream providers of a user view's identities (not the `email` entry), sorted.
fn providers_of(view: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = view["identities"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i["provider"].as_str().filter(|p| *p != "email").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    kinds.sort();
    kinds
}

/// The app's audit events matching `filter` (a query string), once there are `n` of them.
async fn events(app: &TestApp, slug: &str, filter: &str, n: usize) -> Vec<Value> {
    let until = Instant::now() + WAIT;
    loop {
        let (s, v) = app.admin(Method::GET, &format!("/apps/{slug}/audit?{filter}&limit=100"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n || Instant::now() >= until {
            assert_eq!(items.len(), n, "audit events {filter}: {items:?}");
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn identities_with_subject(app: &TestApp, slug: &str, subject: &str) -> i64 {
    let store = crate::mail::identity_store(app, slug).await;
    crate::mail::count(&store, &format!("SELECT count(*) FROM identities WHERE subject = '{subject}'")).await
}

// All five kinds on one app: the buttons in two brandings, a sign-up per kind through the
// browser, a second sign-in, linking and unlinking on /account, then erasure.
async fn five_providers_in_the_browser(backend: Backend) {
    let app = TestApp::start(backend).await;
    let logo = Logo::start().await;
    let browser = Browser::start(&format!("upstream-{backend:?}")).await;
    let slug = "harbor";
    let issuer = app.issuer(slug);
    let (fake, apple) = five_providers(&app, slug).await;

    // The buttons, in two brandings, at both widths; plain links a keyboard reaches.
    let brandings = [("Harbor Books", "#0f766e", Some(logo.url.clone())), ("Nightjar Club", "#7c3aed", None)];
    for (name, color, logo_url) in brandings {
        let patch = json!({"display_name": name, "branding": {"brand_color": color, "logo_url": logo_url}});
        let (s, v) = app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(patch)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let shot = name.split(' ').next().unwrap_or(name).to_ascii_lowercase();
        for page in ["login", "signup"] {
            browser.goto(&format!("{issuer}/{page}")).await;
            let html = browser.source().await.to_ascii_lowercase();
            assert!(html.contains(color), "/{page} is themed with {color}");
            assert!(html.contains(&name.to_ascii_lowercase()), "/{page} names {name}");
            buttons_are_plain_links(&browser, &issuer, &format!("{name} /{page}")).await;
            fits_phone(&browser, &format!("{name} /{page}")).await;
            browser.screenshot_sizes(&format!("{shot}-{page}")).await;
        }
    }

    // A sign-up per kind, each a different person (Google by keyboard, the others by click).
    let people = [
        ("google", Person::new("g-1001", "gail@example.com"), "Google"),
        (
            "github",
            Person { claims: json!({"name": "Gus Hub"}), ..Person::new("4242", "gus@example.com") },
            "GitHub",
        ),
        (
            "apple",
            Person {
                email_verified: json!("true"),
                ..Person::new("001122.apple", "ann@privaterelay.example")
            },
            "Apple",
        ),
        ("microsoft", Person::new("ms-1001", "mia@example.com"), "Microsoft"),
        (
            "oidc",
            Person { claims: json!({"name": "Otto Sso"}), ..Person::new("sso-1001", "otto@example.com") },
            "Acme SSO",
        ),
    ];
    let mut ids = Vec::new();
    for (kind, person, label) in &people {
        let (upstream, upstream_issuer) =
            if *kind == "apple" { (&apple, apple.base()) } else { (&fake, fake.base()) };
        upstream.person(person.clone());
        sign_in_with(&browser, &issuer, kind, &apple, *kind == "google").await;
        let email = person.email.clone().expect("an address");
        browser.wait_for_text(&email, WAIT).await;
        let linked = browser.text("ul.identities").await;
        assert!(linked.contains(label), "/account lists {label}: {linked:?}");
        let (id, view) = the_user(&app, slug, &email).await;
        // Besides the `email` entry every account shows: the upstream identity.
        let identities: Vec<Value> = view["identities"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i["provider"] != "email")
            .collect();
        assert_eq!(identities.len(), 1, "{view}");
        assert_eq!(identities[0]["provider"], *kind, "{view}");
        assert_eq!(identities[0]["subject"], person.sub.as_str(), "{view}");
        assert_eq!(identities[0]["issuer"], upstream_issuer.as_str(), "{view}");
        assert!(!ids.contains(&id), "{kind}: a new account");
        ids.push(id);
    }
    let signups = events(&app, slug, "type=signup", people.len()).await;
    let mut by: Vec<&str> = signups.iter().filter_map(|e| e["data"]["provider"].as_str()).collect();
    by.sort_unstable();
    assert_eq!(by, ["apple", "github", "google", "microsoft", "oidc"]);
    assert_eq!(apple.apple_secrets().len(), 1, "Apple's client secret was made with the app's key");
    assert_eq!(users_with(&app, slug, "ann@privaterelay.example").await[0]["name"], "Ada Lovelace");

    // The same person again (the generic provider): the same account.
    let (_, otto, _) = &people[4];
    fake.person(otto.clone());
    sign_in_with(&browser, &issuer, "oidc", &apple, false).await;
    browser.wait_for_text("otto@example.com", WAIT).await;
    let (otto_id, _) = the_user(&app, slug, "otto@example.com").await;
    assert_eq!(otto_id, ids[4], "the identity's account");
    let logins = events(&app, slug, &format!("type=login.success&user_id={otto_id}"), 2).await;
    assert!(logins.iter().all(|e| e["data"]["provider"] == "oidc"), "{logins:?}");
    events(&app, slug, "type=signup", people.len()).await;

    // Link GitHub (another person there, another address) from /account, then unlink it.
    browser.goto(&format!("{issuer}/account")).await;
    assert!(!browser.source().await.contains("otto.gh@example.com"));
    fake.person(Person::new("5151", "otto.gh@example.com"));
    browser.click("#link-github").await;
    browser.wait_for_text("otto.gh@example.com", WAIT).await;
    assert_eq!(browser.current_url().await.as_str(), format!("{issuer}/account"));
    assert!(browser.exists("button[id^='unlink-github-']").await, "an unlink button for GitHub");
    assert!(browser.text("ul.identities").await.contains("GitHub"));
    browser.screenshot_sizes("account-linked").await;
    fits_phone(&browser, "/account").await;
    let (_, view) = the_user(&app, slug, "otto@example.com").await;
    assert_eq!(providers_of(&view), ["github", "oidc"], "{view}");
    assert!(users_with(&app, slug, "otto.gh@example.com").await.is_empty(), "linked, not a new account");
    events(&app, slug, &format!("type=identity.linked&user_id={otto_id}"), 2).await;

    browser.click("button[id^='unlink-github-']").await;
    wait_until_gone(&browser, "otto.gh@example.com").await;
    browser.wait_for_text("Linked accounts", WAIT).await;
    assert_eq!(browser.current_url().await.as_str(), format!("{issuer}/account"));
    assert!(!browser.source().await.contains("otto.gh@example.com"), "GitHub is gone from /account");
    assert!(!browser.exists("button[id^='unlink-github-']").await);
    assert!(browser.exists("button[id^='unlink-oidc-']").await, "the generic provider stays");
    let (_, view) = the_user(&app, slug, "otto@example.com").await;
    assert_eq!(providers_of(&view), ["oidc"], "{view}");
    let unlinked = events(&app, slug, &format!("type=identity.unlinked&user_id={otto_id}"), 1).await;
    assert_eq!(unlinked[0]["data"]["provider"], "github");
    assert_eq!(identities_with_subject(&app, slug, "5151").await, 0);

    // Erasure takes the identities along: the same upstream person then signs up afresh.
    let (s, v) = app.admin(Method::DELETE, &format!("/apps/{slug}/users/{otto_id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(identities_with_subject(&app, slug, "sso-1001").await, 0, "erasure removes the identities");
    let (s, _) = app.admin(Method::GET, &format!("/apps/{slug}/users/{otto_id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    fake.person(otto.clone());
    sign_in_with(&browser, &issuer, "oidc", &apple, false).await;
    browser.wait_for_text("otto@example.com", WAIT).await;
    let (fresh, view) = the_user(&app, slug, "otto@example.com").await;
    assert_ne!(fresh, otto_id, "a new account");
    assert_eq!(providers_of(&view), ["oidc"], "{view}");
    let signup = events(&app, slug, &format!("type=signup&user_id={fresh}"), 1).await;
    assert_eq!(signup[0]["data"]["provider"], "oidc");
    assert_eq!(identities_with_subject(&app, slug, "sso-1001").await, 1);

    drop(browser);
    app.stop().await;
}
both!(five_providers_in_the_browser);

/// `oidc-provider` installed from the lock file of `../shared/peers/oidc-provider` into
/// `peer-op` of the cargo target dir (once per lock file; concurrent test processes install
/// side by side and keep the first).
fn peer_op_dir() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../../shared/peers/oidc-provider");
    let lock = std::fs::read(shared.join("package-lock.json")).expect("the peer's package-lock.json");
    let tag = &latchkey::crypto::tokens::sha256_hex(&secrecy::SecretString::from(
        String::from_utf8_lossy(&lock).into_owned(),
    ))[..12];
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../target"));
    let root = target.join(format!("peer-op-{tag}"));
    if root.join("node_modules/oidc-provider/package.json").exists() {
        return root;
    }
    let fresh = target.join(format!("peer-op-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&fresh).expect("peer-op dir");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(shared.join(f), fresh.join(f)).unwrap_or_else(|e| panic!("{f} of the peer: {e}"));
    }
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--omit=dev"])
        .current_dir(&fresh)
        .output()
        .expect("npm (scripts/test installs Node.js)");
    assert!(out.status.success(), "npm ci: {}", String::from_utf8_lossy(&out.stderr));
    if std::fs::rename(&fresh, &root).is_err() {
        let _ = std::fs::remove_dir_all(&fresh);
    }
    root
}

/// The certified provider on a free loopback port, stopped when dropped.
struct PeerOp {
    issuer: String,
    child: std::process::Child,
    script: std::path::PathBuf,
}

impl PeerOp {
    async fn start(redirect_uri: &str, client_id: &str, secret: &str) -> PeerOp {
        let dir = peer_op_dir();
        let script = dir.join(format!("server-{}.mjs", uuid::Uuid::new_v4().simple()));
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer_upstream.mjs");
        std::fs::copy(&source, &script).expect("the peer's configuration");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let child = std::process::Command::new("node")
            .arg(&script)
            .env("PORT", port.to_string())
            .env("REDIRECT_URI", redirect_uri)
            .env("CLIENT_ID", client_id)
            .env("CLIENT_SECRET", secret)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node");
        let issuer = format!("http://127.0.0.1:{port}");
        let peer = PeerOp { issuer, child, script };
        let until = Instant::now() + WAIT;
        let discovery = format!("{}/.well-known/openid-configuration", peer.issuer);
        while !reqwest::get(&discovery).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < until, "the certified provider did not start in {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peer
    }
}

impl Drop for PeerOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}

// The certified provider as the generic upstream: its own login and consent pages in the
// browser, then signed in at the Latchkey app (its ID token has no address: UserInfo gives it).
async fn certified_provider_as_upstream(backend: Backend) {
    let app = TestApp::start(backend).await;
    let slug = "peer";
    app.active_app(slug).await;
    let issuer = app.issuer(slug);
    let peer = PeerOp::start(&format!("{issuer}/oauth/oidc/callback"), "latchkey-peer", SECRET).await;
    let cfg = json!({"oidc": {"display_name": "Peer OP", "issuer": peer.issuer, "client_id": "latchkey-peer",
        "client_secret": SECRET}});
    let (s, v) = app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(json!({"providers": cfg}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let browser = Browser::start(&format!("peer-op-{backend:?}")).await;
    browser.goto(&format!("{issuer}/login")).await;
    browser.click("#provider-oidc").await;
    browser.wait_for_url_prefix(&format!("{}/interaction/", peer.issuer), WAIT).await;
    browser.screenshot("peer-op-login").await;
    // Its login page, then its consent page (whichever it shows), until back at the app.
    let until = Instant::now() + WAIT;
    let mut logged_in = false;
    while !browser.current_url().await.as_str().starts_with(&issuer) {
        assert!(Instant::now() < until, "{}", browser.report("stuck at the certified provider").await);
        if !logged_in && browser.exists("input[name='login']").await {
            browser.fill("input[name='login']", "peer-ada").await;
            browser.fill("input[name='password']", "any password").await;
            browser.click("form button[type='submit']").await;
            logged_in = true;
        } else if logged_in && browser.exists("form button[type='submit']").await {
            browser.click("form button[type='submit']").await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at = browser.wait_for_url_prefix(&format!("{issuer}/account"), WAIT).await;
    assert_eq!(
        at.as_str(),
        format!("{issuer}/account"),
        "{}",
        browser.report("after the certified provider").await
    );
    browser.wait_for_text("peer-ada@peer.example", WAIT).await;
    browser.screenshot("peer-op-account").await;
    let (_, view) = the_user(&app, slug, "peer-ada@peer.example").await;
    let identity =
        view["identities"].as_array().expect("ids").iter().find(|i| i["provider"] == "oidc").cloned();
    let identity = identity.expect("an oidc identity");
    assert_eq!(identity["issuer"], peer.issuer.as_str());
    assert_eq!(identity["subject"], "peer-ada");
    assert_eq!(view["email_verified"], true, "the provider vouched for the address (at UserInfo)");
    assert_eq!(view["name"], "Peer peer-ada");

    drop(browser);
    drop(peer);
    app.stop().await;
}
both!(certified_provider_as_upstream);
