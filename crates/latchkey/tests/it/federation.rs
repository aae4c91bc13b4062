//! Signing in with upstream providers over HTTP (SPEC §7a, issue 12): the round trip to a fake
//! upstream on loopback and back, tokens verified against the JWKS, every kind of upstream
//! trouble answered with a page and no session, the linking rules, and the app's policy.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use crate::signin::{Flow, REDIRECT, browser, csrf_of, location, public_client, query_of};
use crate::upstream_kit::{FakeUpstream, Faults, Person, es256, pem};

pub(crate) const CLIENT_ID: &str = "latchkey-at-fake";
pub(crate) const SECRET: &str = "fake-client-secret-0123456789";

/// An active app whose `kind` provider is the fake.
pub(crate) async fn app_with(app: &TestApp, slug: &str, fake: &FakeUpstream, kinds: &[&str]) {
    app.active_app(slug).await;
    let mut providers = serde_json::Map::new();
    for kind in kinds {
        let cfg = match *kind {
            "github" => {
                json!({"client_id": CLIENT_ID, "client_secret": SECRET, "base_url": fake.base(), "api_url": fake.base()})
            }
            "oidc" => {
                json!({"client_id": CLIENT_ID, "client_secret": SECRET, "issuer": fake.base(), "display_name": "Acme SSO"})
            }
            _ => json!({"client_id": CLIENT_ID, "client_secret": SECRET, "issuer": fake.base()}),
        };
        providers.insert(kind.to_string(), cfg);
    }
    let (s, v) =
        app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(json!({"providers": providers}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Follows a round trip from `start` (a URL under the issuer) through the fake and back;
/// returns the response of the callback (not followed further).
pub(crate) async fn round_trip(b: &reqwest::Client, start: &str) -> reqwest::Response {
    let res = b.get(start).send().await.expect("start");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "start redirects to the upstream");
    callback_of(b, &location(&res)).await
}

/// Visits the upstream's authorization URL and delivers its answer (a redirect, or Apple's
/// form post) to the callback.
pub(crate) async fn callback_of(b: &reqwest::Client, authorize_url: &str) -> reqwest::Response {
    let at_upstream = b.get(authorize_url).send().await.expect("upstream");
    if at_upstream.status() == StatusCode::OK {
        let html = at_upstream.text().await.expect("form");
        let action =
            html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("action").to_string();
        let fields: Vec<(String, String)> = html
            .split("<input type=\"hidden\" ")
            .skip(1)
            .map(|f| {
                let name = f.split("name=\"").nth(1).and_then(|s| s.split('"').next()).expect("name");
                let value = f.split("value=\"").nth(1).and_then(|s| s.split('"').next()).expect("value");
                (name.to_string(), value.replace("&quot;", "\"").replace("&lt;", "<").replace("&amp;", "&"))
            })
            .collect();
        return b.post(action).form(&fields).send().await.expect("form post");
    }
    assert!(at_upstream.status().is_redirection(), "{}", at_upstream.status());
    b.get(location(&at_upstream)).send().await.expect("callback")
}

fn sets_session(res: &reqwest::Response) -> bool {
    res.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap_or("").starts_with("lk_session="))
}

/// The app's audit events of `kind`, once at least `n` are written (the trail is written
/// behind the request; up to 5 s).
async fn audit(app: &TestApp, slug: &str, kind: &str, n: usize) -> Vec<Value> {
    let mut items = Vec::new();
    for _ in 0..50 {
        let (s, v) = app.admin(Method::GET, &format!("/apps/{slug}/audit?type={kind}&limit=200"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    items
}

async fn users_named(app: &TestApp, slug: &str, email: &str) -> Vec<Value> {
    let (s, v) = app.admin(Method::GET, &format!("/apps/{slug}/users?email={email}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn oidc_sign_up_then_sign_in_with_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    let fake = FakeUpstream::start(CLIENT_ID, SECRET).await;
    app_with(&app, "fed", &fake, &["oidc"]).await;
    fake.person(Person {
        claims: json!({"name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace"}),
        ..Person::new("ada-123", "ada@example.com")
    });
    let client = public_client(&app, "fed").await;
    let mut flow = Flow::new(&client);
    let res = flow.authorize(&app, "fed", "&login_hint=ada%40example.com").await;
    let login = location(&res);
    let html = flow.browser.get(&login).send().await.expect("login").text().await.expect("html");
    assert!(html.contains("Continue with Acme SSO"), "the button is on /login");
    let request = query_of(&login)["request"].clone();
    let start = format!("{}/oauth/oidc/start?request={request}", app.issuer("fed"));
    assert!(html.contains(&format!("oidc&#x2f;start?request={request}\"")), "the button keeps the request");

    let back = round_trip(&flow.browser, &start).await;
    let asked = fake.last_authorize();
    assert_eq!(asked["code_challenge_method"], "S256");
    assert!(asked["nonce"].len() >= 32 && asked["state"].len() >= 32);
    assert_eq!(asked["login_hint"], "ada@example.com", "the login_hint goes upstream");
    assert_eq!(asked["redirect_uri"], format!("{}/oauth/oidc/callback", app.issuer("fed")));
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert!(sets_session(&back));
    let to_client = location(&back);
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    let code = query_of(&to_client)["code"].clone();
    let (s, tokens) = flow.exchange(&app, "fed", &code).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let jwks = format!("{}/jwks", app.issuer("fed"));
    let (_, claims) = verify_with_jwks(&app.http, &jwks, tokens["id_token"].as_str().expect("id_token"))
        .await
        .expect("the ID token verifies against the JWKS");
    assert_eq!(claims["amr"], json!(["fed"]), "federated, never pwd");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["name"], "Ada Lovelace", "profile claims are kept from upstream");

    let users = users_named(&app, "fed", "ada@example.com").await;
    assert_eq!(users.len(), 1);
    let id = users[0]["id"].as_str().expect("id");
    let (_, view) = app.admin(Method::GET, &format!("/apps/fed/users/{id}"), None).await;
    let ids = view["identities"].as_array().expect("identities");
    let upstream = ids.iter().find(|i| i["provider"] == "oidc").expect("the oidc identity");
    assert_eq!(upstream["subject"], "ada-123");
    assert_eq!(upstream["issuer"], fake.base());
    assert!(view["email_verified"].as_bool().expect("bool"));

    // Again, from a fresh browser: the same account (by subject, even with a new address, here
    // given at UserInfo rather than in the ID token).
    fake.person(Person::new("ada-123", "ada.l@example.com"));
    fake.faults(Faults { claims_at_userinfo: true, ..Faults::default() });
    let b = browser();
    let again = round_trip(&b, &format!("{}/oauth/oidc/start", app.issuer("fed"))).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), format!("{}/account", app.issuer("fed")));
    assert_eq!(users_named(&app, "fed", "ada@example.com").await.len(), 1);
    assert!(
        users_named(&app, "fed", "ada.l@example.com").await.is_empty(),
        "the address is data, not the key"
    );
    let (_, view) = app.admin(Method::GET, &format!("/apps/fed/users/{id}"), None).await;
    let upstream =
        view["identities"].as_array().expect("ids").iter().find(|i| i["provider"] == "oidc").cloned();
    assert_eq!(
        upstream.expect("oidc")["email"],
        "ada.l@example.com",
        "the identity keeps the latest address (from UserInfo)"
    );
    assert_eq!(audit(&app, "fed", "signup", 1).await.len(), 1);
    let logins = audit(&app, "fed", "login.success", 2).await;
    assert_eq!(logins.len(), 2);
    assert!(logins.iter().all(|e| e["data"]["provider"] == "oidc"), "{logins:?}");
    assert_eq!(audit(&app, "fed", "identity.linked", 1).await.len(), 1);
    let metrics =
        app.http.get(format!("{}/metrics", app.base)).send().await.expect("m").text().await.expect("t");
    assert!(metrics.contains("latchkey_upstream_signins_total{provider=\"oidc\",result=\"success\"}"));
    app.stop().await;
}
both!(oidc_sign_up_then_sign_in_with_tokens);

/// Each kind of upstream trouble: a page (never a 5xx), an audit event, no session.
async fn upstream_trouble_never_signs_in(backend: Backend) {
    let mut opts = TestApp::options(backend);
    opts.extra_args = vec!["--upstream-timeout-secs".into(), "1".into()];
    let app = TestApp::start_with(opts).await;
    let fake = FakeUpstream::start(CLIENT_ID, SECRET).await;
    app_with(&app, "bad", &fake, &["google"]).await;
    fake.person(Person::new("g-1", "g@example.com"));
    let start = format!("{}/oauth/google/start", app.issuer("bad"));
    let slow = Faults { token_delay: std::time::Duration::from_secs(3), ..Faults::default() };
    let cases: Vec<(&str, Faults, StatusCode)> = vec![
        ("wrong aud", Faults { wrong_aud: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("wrong iss", Faults { wrong_iss: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("expired", Faults { expired: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("bad signature", Faults { bad_signature: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("wrong nonce", Faults { wrong_nonce: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("unknown kid", Faults { new_kid: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("denied", Faults { deny: true, ..Faults::default() }, StatusCode::FORBIDDEN),
        ("500", Faults { token_status: Some(500), ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("garbage", Faults { token_garbage: true, ..Faults::default() }, StatusCode::FAILED_DEPENDENCY),
        ("slow", slow, StatusCode::FAILED_DEPENDENCY),
        (
            "userinfo about another subject",
            Faults { claims_at_userinfo: true, userinfo_other_sub: true, ..Faults::default() },
            StatusCode::FAILED_DEPENDENCY,
        ),
    ];
    let n = cases.len();
    for (what, faults, want) in cases {
        fake.faults(faults);
        let b = browser();
        let t = std::time::Instant::now();
        let res = round_trip(&b, &start).await;
        assert_eq!(res.status(), want, "{what}");
        assert!(t.elapsed() < std::time::Duration::from_secs(3), "{what}: bounded wait");
        assert!(!sets_session(&res), "{what}: no session");
        let html = res.text().await.expect("page");
        assert!(html.contains("Back to sign in"), "{what}: a page that says what happened");
        assert!(!html.contains(SECRET));
    }
    fake.faults(Faults::default());
    // A rotated key: found once the key set may be fetched again.
    fake.faults(Faults { new_kid: true, ..Faults::default() });
    fake.rotate();
    app.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(
        round_trip(&browser(), &start).await.status(),
        StatusCode::SEE_OTHER,
        "the rotated key is fetched"
    );
    fake.faults(Faults::default());

    // The browser's round trip is bound to it: another state, another browser, a stale one,
    // a repeated parameter.
    let b = browser();
    let res = b.get(&start).send().await.expect("start");
    let at = b.get(location(&res)).send().await.expect("upstream");
    let callback = location(&at);
    let q = query_of(&callback);
    let base = callback.split('?').next().expect("path").to_string();
    let calls = fake.token_calls();
    let forged = format!("{base}?code={}&state=not-the-state", q["code"]);
    assert_eq!(b.get(&forged).send().await.expect("cb").status(), StatusCode::BAD_REQUEST);
    let stranger = browser().get(&callback).send().await.expect("cb");
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST, "another browser cannot finish it");
    let repeated = format!("{callback}&state=x");
    assert_eq!(b.get(&repeated).send().await.expect("cb").status(), StatusCode::BAD_REQUEST);
    assert_eq!(fake.token_calls(), calls, "no code is exchanged for an answer that is not ours");
    let b2 = browser();
    let res = b2.get(&start).send().await.expect("start");
    let at = b2.get(location(&res)).send().await.expect("upstream");
    app.clock.advance(chrono::Duration::minutes(11));
    let late = b2.get(location(&at)).send().await.expect("cb");
    assert_eq!(late.status(), StatusCode::BAD_REQUEST, "a round trip expires");
    assert!(!sets_session(&late));
    // Junk on the callback itself.
    // An answer naming another issuer (RFC 9207 mix-up) is refused before any exchange.
    let b3 = browser();
    let res = b3.get(&start).send().await.expect("start");
    let at = b3.get(location(&res)).send().await.expect("upstream");
    let calls = fake.token_calls();
    let mixed = b3.get(format!("{}&iss=https%3A%2F%2Fevil.example", location(&at))).send().await.expect("cb");
    assert_eq!(mixed.status(), StatusCode::FAILED_DEPENDENCY);
    assert_eq!(fake.token_calls(), calls, "the code is not sent anywhere");
    for junk in ["", "?code=x", "?state=%ff%fe", "?error=server_error&state=y"] {
        let res = browser().get(format!("{base}{junk}")).send().await.expect("cb");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{junk:?}");
    }
    // Audited: every answer to a round trip this browser started (the cases, the forged
    // state, the late one, the mix-up); not the callbacks requested without one.
    let failed = audit(&app, "bad", "login.failed", n + 3).await;
    assert_eq!(failed.len(), n + 3, "{failed:?}");
    assert!(failed.iter().all(|e| e["data"]["provider"] == "google"));
    assert!(users_named(&app, "bad", "g@example.com").await.len() <= 1);
    // A provider the app does not offer, and one the policy turns off.
    assert_eq!(
        browser().get(format!("{}/oauth/github/start", app.issuer("bad"))).send().await.expect("s").status(),
        StatusCode::NOT_FOUND
    );
    let (s, _) = app
        .admin(Method::PATCH, "/apps/bad", Some(json!({"policy": {"allowed_providers": ["email"]}})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(browser().get(&start).send().await.expect("s").status(), StatusCode::NOT_FOUND);
    let login = browser()
        .get(format!("{}/login", app.issuer("bad")))
        .send()
        .await
        .expect("l")
        .text()
        .await
        .expect("t");
    assert!(!login.contains("Continue with Google"), "no button for a provider the policy turns off");
    // Upstream only: the buttons without the email forms.
    let (s, _) = app
        .admin(Method::PATCH, "/apps/bad", Some(json!({"policy": {"allowed_providers": ["google"]}})))
        .await;
    assert_eq!(s, StatusCode::OK);
    for page in ["login", "signup"] {
        let res = browser().get(format!("{}/{page}", app.issuer("bad"))).send().await.expect("page");
        assert_eq!(res.status(), StatusCode::OK, "/{page}");
        let html = res.text().await.expect("t");
        assert!(html.contains("Continue with Google") && !html.contains("name=\"password\""), "/{page}");
    }
    app.stop().await;
}
both!(upstream_trouble_never_signs_in);

/// GitHub (code flow, then its API) and Apple (form post, ES256 client secret, the name sent
/// only the first time).
async fn github_and_apple(backend: Backend) {
    let app = TestApp::start(backend).await;
    let gh = FakeUpstream::start(CLIENT_ID, SECRET).await;
    app_with(&app, "kinds", &gh, &["github"]).await;
    gh.person(Person { claims: json!({"name": "Octo Ada"}), ..Person::new("583231", "octo@example.com") });
    let b = browser();
    let res = round_trip(&b, &format!("{}/oauth/github/start", app.issuer("kinds"))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    assert_eq!(gh.last_authorize()["scope"], "read:user user:email");
    assert_eq!(gh.auth_methods(), vec!["client_secret_post"]);
    let users = users_named(&app, "kinds", "octo@example.com").await;
    assert_eq!(users.len(), 1, "the verified primary address, not another one");
    let id = users[0]["id"].as_str().expect("id");
    let (_, view) = app.admin(Method::GET, &format!("/apps/kinds/users/{id}"), None).await;
    let github =
        view["identities"].as_array().expect("ids").iter().find(|i| i["provider"] == "github").cloned();
    assert_eq!(github.expect("github")["subject"], "583231", "GitHub's numeric id is the subject");

    // A GitHub account without a verified primary address cannot sign up.
    gh.person(Person { email_verified: json!(false), ..Person::new("999", "nov@example.com") });
    let res = round_trip(&browser(), &format!("{}/oauth/github/start", app.issuer("kinds"))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&res));

    let apple = FakeUpstream::start("com.example.web", "unused").await;
    let (der, jwk) = es256("APPLEKEY01");
    apple.apple_key(jwk);
    app.active_app("fruit").await;
    let cfg = json!({"apple": {"client_id": "com.example.web", "team_id": "TEAM123456", "key_id": "APPLEKEY01",
        "private_key": pem(&der), "issuer": apple.base()}});
    let (s, v) = app.admin(Method::PATCH, "/apps/fruit", Some(json!({"providers": cfg}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["providers"]["apple"]["private_key_set"], true);
    apple.person(Person {
        email_verified: json!("true"),
        ..Person::new("001234.abc", "relay@privaterelay.example")
    });
    let start = format!("{}/oauth/apple/start", app.issuer("fruit"));
    let res = round_trip(&browser(), &start).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    assert_eq!(apple.last_authorize()["response_mode"], "form_post");
    let secrets = apple.apple_secrets();
    assert_eq!(secrets.len(), 1, "the client secret verified with the app's public key");
    assert_eq!(secrets[0]["iss"], "TEAM123456");
    let users = users_named(&app, "fruit", "relay@privaterelay.example").await;
    assert_eq!(users[0]["name"], "Ada Lovelace", "the name Apple sends once is kept");
    // The second time Apple sends no name; the one kept stays.
    let res = round_trip(&browser(), &start).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(users_named(&app, "fruit", "relay@privaterelay.example").await[0]["name"], "Ada Lovelace");
    app.stop().await;
}
both!(github_and_apple);

/// An upstream that vouches for an address links to its account; one that does not (or an
/// account that never confirmed it) never takes it over.
async fn linking_rules(backend: Backend) {
    let app = TestApp::start(backend).await;
    let fake = FakeUpstream::start(CLIENT_ID, SECRET).await;
    app_with(&app, "link", &fake, &["oidc", "github", "microsoft"]).await;
    let issuer = app.issuer("link");
    // A confirmed account (made through the generic provider).
    fake.person(Person::new("first", "owner@example.com"));
    assert_eq!(
        round_trip(&browser(), &format!("{issuer}/oauth/oidc/start")).await.status(),
        StatusCode::SEE_OTHER
    );
    // GitHub says the same address but not verified: refused, nothing linked.
    fake.person(Person { email_verified: json!(false), ..Person::new("42", "owner@example.com") });
    let res = round_trip(&browser(), &format!("{issuer}/oauth/github/start")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text().await.expect("t").contains("did not share a confirmed email address"),
        "GitHub's address counts only verified"
    );
    // Microsoft's email without xms_edov is not vouched for, whatever email_verified says… absent.
    fake.person(Person { email_verified: json!(null), ..Person::new("ms-1", "owner@example.com") });
    let res = round_trip(&browser(), &format!("{issuer}/oauth/microsoft/start")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.expect("t").contains("then link Microsoft from your account page"));
    // Verified: linked to the existing account.
    fake.person(Person::new("42", "owner@example.com"));
    assert_eq!(
        round_trip(&browser(), &format!("{issuer}/oauth/github/start")).await.status(),
        StatusCode::SEE_OTHER
    );
    let users = users_named(&app, "link", "owner@example.com").await;
    assert_eq!(users.len(), 1);
    let id = users[0]["id"].as_str().expect("id").to_string();
    let (_, view) = app.admin(Method::GET, &format!("/apps/link/users/{id}"), None).await;
    let kinds: Vec<&str> =
        view["identities"].as_array().expect("a").iter().filter_map(|i| i["provider"].as_str()).collect();
    assert!(kinds.contains(&"oidc") && kinds.contains(&"github"), "{kinds:?}");

    // A password account that never confirmed its address is not taken over even by a
    // verified upstream (it may have been registered by someone else in advance).
    let f = Flow::new("none");
    let signup = f
        .submit(
            &format!("{issuer}/signup"),
            &[("email", "squat@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert!(signup.status().is_redirection());
    fake.person(Person::new("victim", "squat@example.com"));
    let res = round_trip(&browser(), &format!("{issuer}/oauth/oidc/start")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&res));
    let text = res.text().await.expect("t");
    assert!(text.contains("link"), "says to sign in another way and link");

    // A new address the upstream does not vouch for makes no account.
    fake.person(Person { email_verified: json!(false), ..Person::new("nv", "fresh@example.com") });
    let res = round_trip(&browser(), &format!("{issuer}/oauth/oidc/start")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.expect("t").contains("did not confirm that this email address is yours"));
    assert!(users_named(&app, "link", "fresh@example.com").await.is_empty());

    // /account: link another provider while signed in, unlink, never the last way.
    fake.person(Person::new("solo", "solo@example.com"));
    let b = browser();
    assert_eq!(round_trip(&b, &format!("{issuer}/oauth/oidc/start")).await.status(), StatusCode::SEE_OTHER);
    let page = b.get(format!("{issuer}/account")).send().await.expect("a").text().await.expect("t");
    assert!(page.contains("Linked accounts") && page.contains("Acme SSO"));
    let csrf = csrf_of(&page);
    let unlink = |provider: &str, iss: &str, sub: &str| {
        let body = serde_urlencoded::to_string([
            ("csrf", csrf.as_str()),
            ("provider", provider),
            ("issuer", iss),
            ("subject", sub),
        ])
        .expect("f");
        b.post(format!("{issuer}/account/identities/unlink"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let last = unlink("oidc", &fake.base(), "solo").await.expect("u");
    assert_eq!(last.status(), StatusCode::CONFLICT, "the only way to sign in stays");
    assert!(last.text().await.expect("t").contains("only way to sign in"));
    fake.person(Person::new("7", "solo@example.com"));
    let body = serde_urlencoded::to_string([("csrf", csrf.as_str()), ("provider", "github")]).expect("f");
    let res = b
        .post(format!("{issuer}/account/identities/link"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("l");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = callback_of(&b, &location(&res)).await;
    assert_eq!(location(&back), format!("{issuer}/account"));
    assert_eq!(unlink("oidc", &fake.base(), "solo").await.expect("u").status(), StatusCode::SEE_OTHER);
    assert_eq!(audit(&app, "link", "identity.unlinked", 1).await.len(), 1);
    // GitHub "7" is now solo's; another signed-in user cannot link it.
    fake.person(Person::new("other", "other@example.com"));
    let o = browser();
    assert_eq!(round_trip(&o, &format!("{issuer}/oauth/oidc/start")).await.status(), StatusCode::SEE_OTHER);
    let csrf_o =
        csrf_of(&o.get(format!("{issuer}/account")).send().await.expect("a").text().await.expect("t"));
    fake.person(Person::new("7", "solo@example.com"));
    let body = serde_urlencoded::to_string([("csrf", csrf_o.as_str()), ("provider", "github")]).expect("f");
    let res = o
        .post(format!("{issuer}/account/identities/link"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("l");
    assert_eq!(callback_of(&o, &location(&res)).await.status(), StatusCode::CONFLICT);
    // Erasure removes the identities: the same upstream account then signs up afresh.
    let solo = users_named(&app, "link", "solo@example.com").await[0]["id"].as_str().expect("id").to_string();
    let (s, _) = app.admin(Method::DELETE, &format!("/apps/link/users/{solo}"), None).await;
    assert!(s.is_success());
    assert_eq!(
        round_trip(&browser(), &format!("{issuer}/oauth/github/start")).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        audit(&app, "link", "signup", 5).await.iter().filter(|e| e["data"]["provider"] == "github").count(),
        1
    );
    app.stop().await;
}
both!(linking_rules);

/// The app's policy applies: signup modes, domains, required profile fields, TOTP.
async fn policy_applies_to_upstream_sign_ins(backend: Backend) {
    let app = TestApp::start(backend).await;
    let fake = FakeUpstream::start(CLIENT_ID, SECRET).await;
    app_with(&app, "pol", &fake, &["oidc"]).await;
    let issuer = app.issuer("pol");
    let start = format!("{issuer}/oauth/oidc/start");
    let a = &app;
    let policy = move |p: Value| async move {
        let (s, v) = a.admin(Method::PATCH, "/apps/pol", Some(json!({"policy": p}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    };
    policy(json!({"signup_policy": "invite_only"})).await;
    fake.person(Person::new("i-1", "invited@example.com"));
    assert_eq!(round_trip(&browser(), &start).await.status(), StatusCode::FORBIDDEN, "no invitation");
    let (s, _) =
        app.admin(Method::POST, "/apps/pol/invitations", Some(json!({"email": "Invited@example.com"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    // An upstream that does not vouch for the address cannot use the invitation.
    fake.person(Person { email_verified: json!(false), ..Person::new("i-1", "invited@example.com") });
    assert_eq!(round_trip(&browser(), &start).await.status(), StatusCode::FORBIDDEN);
    fake.person(Person::new("i-1", "invited@example.com"));
    assert_eq!(
        round_trip(&browser(), &start).await.status(),
        StatusCode::SEE_OTHER,
        "the invitation for that address"
    );
    let (_, invs) = app.admin(Method::GET, "/apps/pol/invitations", None).await;
    assert_eq!(invs["items"][0]["status"], "used", "{invs}");

    policy(json!({"signup_policy": "admin_approval"})).await;
    fake.person(Person::new("p-1", "pending@example.com"));
    let res = round_trip(&browser(), &start).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&res));
    assert_eq!(users_named(&app, "pol", "pending@example.com").await[0]["status"], "pending_approval");
    // An invited person needs no approval.
    let (s, _) = app
        .admin(Method::POST, "/apps/pol/invitations", Some(json!({"email": "expected@example.com"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    fake.person(Person::new("e-1", "expected@example.com"));
    let res = round_trip(&browser(), &start).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(sets_session(&res));
    assert_eq!(users_named(&app, "pol", "expected@example.com").await[0]["status"], "active");
    let signups = audit(&app, "pol", "signup", 3).await;
    let invited: Vec<bool> = signups.iter().filter_map(|e| e["data"]["invited"].as_bool()).collect();
    assert_eq!(invited.iter().filter(|i| **i).count(), 2, "{signups:?}");

    policy(json!({"signup_policy": "auto_on_first_access", "blocked_email_domains": ["blocked.example"]}))
        .await;
    fake.person(Person::new("b-1", "x@blocked.example"));
    assert_eq!(round_trip(&browser(), &start).await.status(), StatusCode::FORBIDDEN);
    assert!(users_named(&app, "pol", "x@blocked.example").await.is_empty());
    fake.person(Person::new("a-1", "auto@example.com"));
    let res = round_trip(&browser(), &start).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(sets_session(&res), "created and signed in on first access");
    assert_eq!(users_named(&app, "pol", "auto@example.com").await[0]["status"], "active");

    // Required fields: prefilled from the upstream's claims, the rest asked for.
    policy(json!({"signup_policy": "open", "blocked_email_domains": [], "required_profile_fields": ["given_name", "phone_number"]})).await;
    fake.person(Person { claims: json!({"given_name": "Grace"}), ..Person::new("r-1", "grace@example.com") });
    let b = browser();
    let res = round_trip(&b, &start).await;
    assert_eq!(location(&res), format!("{issuer}/continue"));
    let page = b.get(format!("{issuer}/continue")).send().await.expect("c").text().await.expect("t");
    assert!(
        page.contains("name=\"phone_number\"") && !page.contains("name=\"given_name\""),
        "only the missing field is asked"
    );

    // TOTP after the upstream first factor.
    policy(json!({"required_profile_fields": []})).await;
    fake.person(Person::new("t-1", "totp@example.com"));
    let b = browser();
    assert_eq!(round_trip(&b, &start).await.status(), StatusCode::SEE_OTHER);
    let (secret, _) = crate::mfa::enrol(&app, "pol", &b).await;
    let again = browser();
    let res = round_trip(&again, &start).await;
    assert_eq!(location(&res), format!("{issuer}/mfa"), "the second factor is asked");
    assert!(!sets_session(&res));
    crate::mfa::next_step(&app);
    let page = again.get(format!("{issuer}/mfa")).send().await.expect("mfa").text().await.expect("t");
    let code = crate::mfa::code_now(&app, &secret);
    let form = [("csrf", csrf_of(&page)), ("step", "totp".into()), ("code", code)];
    let done = again.post(format!("{issuer}/mfa")).form(&form).send().await.expect("post");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(sets_session(&done), "signed in after the second factor");
    app.stop().await;
}
both!(policy_applies_to_upstream_sign_ins);

/// One upstream nobody wrote for these tests: another Latchkey app as the generic OpenID
/// Connect provider of the first, through its real hosted pages (issuer chaining).
async fn another_latchkey_app_as_upstream(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("up").await;
    app.active_app("down").await;
    let (up, down) = (app.issuer("up"), app.issuer("down"));
    let (s, client) = app
        .admin(
            Method::POST,
            "/apps/up/clients",
            Some(json!({
                "name": "down", "redirect_uris": [format!("{down}/oauth/oidc/callback")],
                "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{client}");
    let cfg = json!({"oidc": {"display_name": "Up SSO", "issuer": up, "client_id": client["client_id"],
        "client_secret": client["client_secret"], "scopes": ["openid", "email", "profile"]}});
    let (s, v) = app.admin(Method::PATCH, "/apps/down", Some(json!({"providers": cfg}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // An account at the upstream app.
    let f = Flow::new("none");
    let res = f
        .submit(
            &format!("{up}/signup"),
            &[("email", "chain@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert!(res.status().is_redirection());

    let b = browser();
    let res = b.get(format!("{down}/oauth/oidc/start")).send().await.expect("start");
    let authorize = location(&res);
    assert!(authorize.starts_with(&format!("{up}/authorize?")), "{authorize}");
    let res = b.get(&authorize).send().await.expect("authorize");
    let login = location(&res);
    assert!(login.starts_with(&format!("{up}/login")), "{login}");
    let page = b.get(&login).send().await.expect("login").text().await.expect("t");
    let request = query_of(&login)["request"].clone();
    let form = [
        ("csrf", csrf_of(&page)),
        ("request", request),
        ("email", "chain@example.com".into()),
        ("password", "correct horse battery".into()),
    ];
    let res = b.post(format!("{up}/login")).form(&form).send().await.expect("login");
    let callback = location(&res);
    assert!(callback.starts_with(&format!("{down}/oauth/oidc/callback?")), "{callback}");
    // The upstream app says the address is not confirmed yet: no account here.
    let res = b.get(&callback).send().await.expect("callback");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(users_named(&app, "down", "chain@example.com").await.is_empty());
    // Once it is confirmed there (as its mailed link does), the same browser goes through with
    // its session at the upstream app: no second password.
    let store = crate::mail::identity_store(&app, "up").await;
    latchkey::on_db!(&store, p => sqlx::query("UPDATE users SET email_verified = TRUE").execute(p).await.map(|_| ()))
        .expect("confirm");
    let res = b.get(format!("{down}/oauth/oidc/start")).send().await.expect("start");
    let res = b.get(location(&res)).send().await.expect("authorize");
    let callback = location(&res);
    assert!(
        callback.starts_with(&format!("{down}/oauth/oidc/callback?")),
        "single sign-on upstream: {callback}"
    );
    let res = b.get(&callback).send().await.expect("callback");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
    assert_eq!(location(&res), format!("{down}/account"));
    let users = users_named(&app, "down", "chain@example.com").await;
    assert_eq!(users.len(), 1);
    let up_user =
        users_named(&app, "up", "chain@example.com").await[0]["id"].as_str().expect("id").to_string();
    let (_, view) = app
        .admin(Method::GET, &format!("/apps/down/users/{}", users[0]["id"].as_str().expect("id")), None)
        .await;
    let identity = view["identities"]
        .as_array()
        .expect("a")
        .iter()
        .find(|i| i["provider"] == "oidc")
        .cloned()
        .expect("oidc");
    assert_eq!(identity["subject"], up_user.as_str(), "the upstream app's user id is the subject");
    assert_eq!(identity["issuer"], up.as_str());
    app.stop().await;
}
both!(another_latchkey_app_as_upstream);
