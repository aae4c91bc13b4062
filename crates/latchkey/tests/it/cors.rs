//! CORS (oidc::cors): the endpoints a browser app calls itself answer its registered origins and
//! nobody else's; `/authorize` and the hosted pages never carry CORS headers.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp};

const SPA: &str = "https://spa.example.com";
const LOCAL: &str = "http://localhost:3000";

async fn client(app: &TestApp, slug: &str, redirect_uris: &[&str]) -> String {
    let (s, c) = app
        .admin(
            Method::POST,
            &format!("/apps/{slug}/clients"),
            Some(json!({
                "name": "spa", "redirect_uris": redirect_uris, "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "none"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["client_id"].as_str().expect("id").to_string()
}

/// One CORS endpoint: method, URL, Basic credentials, form body, and the methods a preflight
/// must allow.
struct Call {
    method: Method,
    url: String,
    basic: Option<(String, String)>,
    body: Option<String>,
    preflight_methods: &'static str,
}

/// Every endpoint that must answer an allowed origin.
fn calls(app: &TestApp, slug: &str, machine: &(String, String), public: &str) -> Vec<Call> {
    let issuer = app.issuer(slug);
    let get =
        |url: String| Call { method: Method::GET, url, basic: None, body: None, preflight_methods: "GET" };
    vec![
        get(format!("{issuer}/.well-known/openid-configuration")),
        get(format!("{issuer}/.well-known/oauth-authorization-server")),
        get(format!("{}/.well-known/oauth-authorization-server/apps/{slug}", app.base)),
        get(format!("{issuer}/jwks")),
        // No token: a 401 the browser app must be able to read.
        Call { preflight_methods: "GET, POST", ..get(format!("{issuer}/userinfo")) },
        Call {
            method: Method::POST,
            url: format!("{issuer}/userinfo"),
            basic: None,
            body: None,
            preflight_methods: "GET, POST",
        },
        Call {
            method: Method::POST,
            url: format!("{issuer}/token"),
            basic: Some(machine.clone()),
            body: Some("grant_type=client_credentials".into()),
            preflight_methods: "POST",
        },
        // An error answer carries the headers too.
        Call {
            method: Method::POST,
            url: format!("{issuer}/token"),
            basic: None,
            body: Some(format!("grant_type=authorization_code&code=nope&client_id={public}")),
            preflight_methods: "POST",
        },
        Call {
            method: Method::POST,
            url: format!("{issuer}/revoke"),
            basic: None,
            body: Some(format!("token=not-a-token&client_id={public}")),
            preflight_methods: "POST",
        },
    ]
}

async fn send(app: &TestApp, call: &Call, origin: Option<&str>) -> (StatusCode, HeaderMap) {
    let mut req = app.http.request(call.method.clone(), &call.url);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some((u, p)) = &call.basic {
        req = req.basic_auth(u, Some(p));
    }
    if let Some(b) = &call.body {
        req = req.header("content-type", "application/x-www-form-urlencoded").body(b.clone());
    }
    let res = req.send().await.expect("request");
    (res.status(), res.headers().clone())
}

async fn preflight(app: &TestApp, url: &str, origin: &str, method: &str) -> (StatusCode, HeaderMap) {
    let res = app
        .http
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .expect("preflight");
    (res.status(), res.headers().clone())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().expect("ascii"))
}

fn varies_by_origin(h: &HeaderMap) -> bool {
    h.get_all("vary").iter().any(|v| v.to_str().is_ok_and(|s| s.to_ascii_lowercase().contains("origin")))
}

fn no_cors(h: &HeaderMap, what: &str) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-allow-credentials",
        "access-control-max-age",
        "access-control-expose-headers",
    ] {
        assert!(h.get(name).is_none(), "{what}: unexpected {name}: {:?}", h.get(name));
    }
}

async fn registered_origins_get_cors(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("co").await;
    let machine = app.machine_client("co").await;
    let public = client(
        &app,
        "co",
        &["https://spa.example.com/cb", "http://localhost:3000/callback", "com.example.app:/oauth2redirect"],
    )
    .await;
    for call in calls(&app, "co", &machine, &public) {
        let what = format!("{} {}", call.method, call.url);
        for origin in [SPA, LOCAL] {
            let (s, h) = send(&app, &call, Some(origin)).await;
            assert!(s != StatusCode::NOT_FOUND && s != StatusCode::METHOD_NOT_ALLOWED, "{what}: {s}");
            assert_eq!(header(&h, "access-control-allow-origin"), Some(origin), "{what}");
            assert!(varies_by_origin(&h), "{what}: Vary: Origin");
            assert!(h.get("access-control-allow-credentials").is_none(), "{what}");

            let method = call.method.as_str();
            let (s, h) = preflight(&app, &call.url, origin, method).await;
            assert_eq!(s, StatusCode::NO_CONTENT, "preflight {what}");
            assert_eq!(header(&h, "access-control-allow-origin"), Some(origin), "preflight {what}");
            assert_eq!(
                header(&h, "access-control-allow-methods"),
                Some(call.preflight_methods),
                "preflight {what}"
            );
            assert_eq!(
                header(&h, "access-control-allow-headers"),
                Some("Authorization, Content-Type"),
                "preflight {what}"
            );
            assert_eq!(header(&h, "access-control-max-age"), Some("600"), "preflight {what}");
            assert!(h.get("access-control-allow-credentials").is_none(), "preflight {what}");
        }
        // Without an Origin: no CORS headers, but caches are told the answer varies by it.
        let (_, h) = send(&app, &call, None).await;
        no_cors(&h, &format!("{what} without Origin"));
        assert!(varies_by_origin(&h), "{what}: Vary: Origin without Origin");
    }
    // The real answers are unchanged by CORS.
    let (s, h) = send(&app, &calls(&app, "co", &machine, &public)[0], Some(SPA)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "cache-control"), Some("public, max-age=300"));
    let (s, _, v) =
        app.form("co", "token", Some((&machine.0, &machine.1)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.stop().await;
}
both!(registered_origins_get_cors);

async fn foreign_origins_get_none(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cf").await;
    let machine = app.machine_client("cf").await;
    let public = client(&app, "cf", &["https://spa.example.com/cb", "com.example.app:/oauth2redirect"]).await;
    // Another app's origin is foreign here.
    app.active_app("other").await;
    client(&app, "other", &["https://other.example.com/cb"]).await;
    for call in calls(&app, "cf", &machine, &public) {
        let what = format!("{} {}", call.method, call.url);
        for origin in [
            "https://evil.example",
            "https://other.example.com",
            "https://spa.example.com:8443",
            "http://spa.example.com",
            "https://spa.example.com.evil.example",
            "https://spa.example.com/",
            "https://SPA.example.com",
            "null",
            "com.example.app:",
            "*",
        ] {
            let (s, h) = send(&app, &call, Some(origin)).await;
            assert!(s != StatusCode::NOT_FOUND, "{what}");
            no_cors(&h, &format!("{what} from {origin}"));
            let (s, h) = preflight(&app, &call.url, origin, call.method.as_str()).await;
            assert_eq!(s, StatusCode::NO_CONTENT, "preflight {what} from {origin}");
            no_cors(&h, &format!("preflight {what} from {origin}"));
        }
        // A repeated Origin is not trusted either.
        let res = app
            .http
            .request(Method::OPTIONS, &call.url)
            .header("origin", SPA)
            .header("origin", SPA)
            .header("access-control-request-method", call.method.as_str())
            .send()
            .await
            .expect("preflight");
        no_cors(res.headers(), &format!("preflight {what} with two Origin headers"));
        // A plain OPTIONS (no preflight) answers with Allow only.
        let res = app.http.request(Method::OPTIONS, &call.url).send().await.expect("options");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(header(res.headers(), "allow").is_some_and(|a| a.contains(call.method.as_str())), "{what}");
        no_cors(res.headers(), &format!("OPTIONS {what}"));
    }
    // Unknown app: no CORS either.
    let res = app
        .http
        .get(format!("{}/jwks", app.issuer("nope")))
        .header("origin", SPA)
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    no_cors(res.headers(), "unknown app");
    app.stop().await;
}
both!(foreign_origins_get_none);

async fn pages_never_get_cors(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cp").await;
    let machine = app.machine_client("cp").await;
    let public = client(&app, "cp", &["https://spa.example.com/cb"]).await;
    let issuer = app.issuer("cp");
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = format!(
        "{issuer}/authorize?response_type=code&client_id={public}&redirect_uri=https%3A%2F%2Fspa.example.com%2Fcb&scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256"
    );
    let res = browser.get(&authorize).header("origin", SPA).send().await.expect("authorize");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    no_cors(res.headers(), "/authorize");
    let login = res.headers()["location"].to_str().expect("ascii").to_string();
    let signup = login.replace("/login?", "/signup?");
    let request = login.split("request=").nth(1).expect("request id").to_string();
    for url in [&login, &signup] {
        let res = browser.get(url).header("origin", SPA).send().await.expect("page");
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        no_cors(res.headers(), url);
        let html = res.text().await.expect("html");
        let at = html.find("name=\"csrf\" value=\"").expect("csrf") + "name=\"csrf\" value=\"".len();
        let csrf = html[at..].split('"').next().expect("csrf").to_string();
        let res = browser
            .post(url)
            .header("origin", SPA)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&request={request}&email=pat%40example.com&password=long+enough+pw"))
            .send()
            .await
            .expect("post");
        no_cors(res.headers(), &format!("POST {url}"));
    }
    for url in [authorize.as_str(), login.as_str(), signup.as_str()] {
        let (_, h) = preflight(&app, url, SPA, "POST").await;
        no_cors(&h, &format!("preflight {url}"));
    }
    // Introspection is for confidential clients, server to server: no CORS.
    let (_, h, _) = app.form("cp", "introspect", Some((&machine.0, &machine.1)), "token=x").await;
    no_cors(&h, "introspect");
    let res = app
        .http
        .post(format!("{issuer}/introspect"))
        .header("origin", SPA)
        .basic_auth(&machine.0, Some(&machine.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=x")
        .send()
        .await
        .expect("introspect");
    assert_eq!(res.status(), StatusCode::OK);
    no_cors(res.headers(), "introspect with Origin");
    app.stop().await;
}
both!(pages_never_get_cors);

async fn client_changes_apply_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cc").await;
    client(&app, "cc", &["https://first.example.com/cb"]).await;
    let discovery = format!("{}/.well-known/openid-configuration", app.issuer("cc"));
    let acao = |origin: &'static str| {
        let (http, url) = (app.http.clone(), discovery.clone());
        async move {
            let res = http.get(url).header("origin", origin).send().await.expect("discovery");
            assert_eq!(res.status(), StatusCode::OK);
            header(res.headers(), "access-control-allow-origin").map(str::to_string)
        }
    };
    const NEW: &str = "https://new.example.com";
    // The issuer is cached (and this origin refused) before the change.
    assert_eq!(acao("https://first.example.com").await.as_deref(), Some("https://first.example.com"));
    assert_eq!(acao(NEW).await, None);
    let id = client(&app, "cc", &["https://new.example.com/callback"]).await;
    assert_eq!(acao(NEW).await.as_deref(), Some(NEW));
    let (s, h) = preflight(&app, &format!("{}/token", app.issuer("cc")), NEW, "POST").await;
    assert_eq!((s, header(&h, "access-control-allow-origin")), (StatusCode::NO_CONTENT, Some(NEW)));

    // Changing the redirect URIs away, or deleting the client, withdraws the origin at once.
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/apps/cc/clients/{id}"),
            Some(json!({"redirect_uris": ["https://newer.example.com/cb"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(acao(NEW).await, None);
    assert_eq!(acao("https://newer.example.com").await.as_deref(), Some("https://newer.example.com"));
    let (s, v): (StatusCode, Value) =
        app.admin(Method::DELETE, &format!("/apps/cc/clients/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(acao("https://newer.example.com").await, None);
    assert_eq!(acao("https://first.example.com").await.as_deref(), Some("https://first.example.com"));
    app.stop().await;
}
both!(client_changes_apply_at_once);
