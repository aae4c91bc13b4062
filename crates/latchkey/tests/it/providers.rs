//! Upstream identity providers as configuration (SPEC §7a, issue 12 item 1): set at creation
//! and by PATCH (merged per provider, `null` removes one), secrets write-only and sealed with
//! the master key, every unworkable setting a 422 naming its field; the CLI.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latchkey::apps::model::Provider;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp};

/// A fresh EC private key in PKCS#8 PEM.
fn pem_key(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> String {
    let der = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).expect("key");
    let b64 = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

/// The stored secret of `kind`, opened with the server's master key.
async fn stored_secret(app: &TestApp, slug: &str, kind: Provider) -> String {
    let a = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app");
    let p = a.providers.get(&kind).unwrap_or_else(|| panic!("no {kind:?}"));
    p.secret(&app.state.secrets, a.id, kind).expect("opens").expose_secret().to_string()
}

async fn stored_column(app: &TestApp, slug: &str) -> String {
    let sql = format!("SELECT CAST(providers AS TEXT) FROM apps WHERE slug = '{slug}'");
    latchkey::on_db!(&app.control(), p => sqlx::query_scalar(&sql).fetch_one(p).await).expect("row")
}

async fn patch(app: &TestApp, slug: &str, providers: Value) -> (StatusCode, Value) {
    app.admin(Method::PATCH, &format!("/apps/{slug}"), Some(json!({ "providers": providers }))).await
}

async fn providers_are_configured_with_write_only_secrets(backend: Backend) {
    let app = TestApp::start(backend).await;
    let apple_key = pem_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let created = app
        .create_app(json!({"slug": "soc", "display_name": "Social", "providers": {
            "google": {"client_id": "g-id.apps.example", "client_secret": "g-secret-0001"},
            "github": {"client_id": "gh-id", "client_secret": "gh-secret-0002",
                       "base_url": "http://127.0.0.1:9/", "api_url": "http://127.0.0.1:9/api"},
            "apple": {"client_id": "com.example.web", "team_id": "TEAM123456", "key_id": "KEY1234567",
                      "private_key": apple_key},
            "oidc": {"display_name": "Acme SSO", "issuer": "https://sso.acme.example/", "client_id": "acme",
                     "client_secret": "oidc-secret-0003"}
        }}))
        .await;
    let p = &created["providers"];
    assert_eq!(p["google"]["client_secret_set"], true, "{p}");
    assert_eq!(p["google"]["issuer"], "https://accounts.google.com", "the default: {p}");
    assert_eq!(p["apple"]["private_key_set"], true, "{p}");
    assert!(p["apple"].get("client_secret_set").is_none(), "{p}");
    assert_eq!(p["apple"]["issuer"], "https://appleid.apple.com");
    assert_eq!(p["github"]["base_url"], "http://127.0.0.1:9");
    assert_eq!(p["oidc"]["issuer"], "https://sso.acme.example");
    assert_eq!(p["oidc"]["display_name"], "Acme SSO");
    // Never shown, stored only sealed; the master key opens them.
    let column = stored_column(&app, "soc").await;
    for secret in ["g-secret-0001", "gh-secret-0002", "oidc-secret-0003", "PRIVATE KEY"] {
        assert!(!created.to_string().contains(secret), "{secret} shown: {created}");
        assert!(!column.contains(secret), "{secret} stored in plain: {column}");
    }
    assert_eq!(stored_secret(&app, "soc", Provider::Google).await, "g-secret-0001");
    assert!(stored_secret(&app, "soc", Provider::Apple).await.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(app.get_app("soc").await["providers"], created["providers"]);

    // Merged per provider: a secret left out is kept (other providers' untouched ones too).
    let (s, v) =
        patch(&app, "soc", json!({"google": {"client_id": "g-id.apps.example"}, "github": {}})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(stored_secret(&app, "soc", Provider::Google).await, "g-secret-0001");
    assert_eq!(stored_secret(&app, "soc", Provider::Github).await, "gh-secret-0002");
    let (s, v) = patch(&app, "soc", json!({"google": {"client_secret": "g-secret-0004"}})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(stored_secret(&app, "soc", Provider::Google).await, "g-secret-0004");
    // Another client id needs its secret again.
    let (s, v) = patch(&app, "soc", json!({"google": {"client_id": "g-id-2"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) =
        patch(&app, "soc", json!({"google": {"client_id": "g-id-2", "client_secret": "g-secret-0005"}}))
            .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["providers"]["google"]["client_id"], "g-id-2");
    assert_eq!(stored_secret(&app, "soc", Provider::Google).await, "g-secret-0005");
    let (s, v) = patch(
        &app,
        "soc",
        json!({"microsoft": {"client_id": "m-id", "client_secret": "m-secret", "tenant": "0a1b2c3d-0000-4000-8000-000000000001"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["providers"]["microsoft"]["issuer"],
        "https://login.microsoftonline.com/0a1b2c3d-0000-4000-8000-000000000001/v2.0"
    );
    // The secret stays only while it goes to the same client at the same upstream.
    let (s, v) = patch(&app, "soc", json!({"microsoft": {"tenant": "consumers"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("providers.microsoft.client_secret must be given again"),
        "{v}"
    );
    let (s, v) =
        patch(&app, "soc", json!({"microsoft": {"tenant": "consumers", "client_secret": "m-secret-2"}}))
            .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = patch(&app, "soc", json!({"oidc": {"issuer": "https://attacker.example"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a stored secret is not sent to a new host: {v}");
    assert_eq!(stored_secret(&app, "soc", Provider::Oidc).await, "oidc-secret-0003");
    // `null` removes one.
    let (s, v) = patch(&app, "soc", json!({"github": null})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["providers"].get("github").is_none(), "{v}");
    assert!(v["providers"].get("google").is_some(), "{v}");

    // Settings that cannot work: a 422 naming the field, and nothing changes.
    let before = app.wait_status("soc", "active").await;
    let p384 = pem_key(&ECDSA_P384_SHA384_FIXED_SIGNING);
    for (bad, field) in [
        (json!({"oidc": {"issuer": "not a url"}}), "providers.oidc.issuer"),
        (json!({"oidc": {"issuer": "http://sso.acme.example"}}), "providers.oidc.issuer"),
        (json!({"oidc": {"scopes": ["email"]}}), "providers.oidc.scopes"),
        (json!({"apple": {"private_key": p384}}), "providers.apple.private_key"),
        (json!({"apple": {"private_key": "not a key"}}), "providers.apple.private_key"),
        (json!({"apple": {"client_secret": "x"}}), "providers.apple.client_secret"),
        (json!({"google": {"tenant": "x"}}), "providers.google.tenant"),
        (
            json!({"microsoft": {"tenant": "contoso.example", "client_secret": "x"}}),
            "providers.microsoft.tenant",
        ),
        (json!({"microsoft": {"tenant": "..", "client_secret": "x"}}), "providers.microsoft.tenant"),
        (
            json!({"oidc": {"issuer": "https://:pw@sso.acme.example", "client_secret": "x"}}),
            "providers.oidc.issuer",
        ),
        (json!({"google": {"client_id": ""}}), "providers.google.client_id"),
        (json!({"github": {"client_id": "gh"}}), "providers.github.client_secret"),
        (json!({"oidc": {"client_idd": "x"}}), "providers.oidc"),
        (json!({"facebook": {"client_id": "x"}}), "facebook"),
    ] {
        let (s, v) = patch(&app, "soc", bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert_eq!(v["code"], "validation_failed", "{v}");
        assert!(v["detail"].as_str().unwrap_or_default().contains(field), "{bad} must name {field}: {v}");
    }
    let after = app.get_app("soc").await;
    assert_eq!((&after["providers"], &after["updated_at"]), (&before["providers"], &before["updated_at"]));

    // At creation too, and then nothing is created.
    let (s, v) = app
        .admin(
            Method::POST,
            "/apps",
            Some(json!({"slug": "soc-bad", "display_name": "Bad",
                "providers": {"apple": {"client_id": "a", "team_id": "T", "key_id": "K", "private_key": "x"}}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap_or_default().contains("providers.apple.private_key"), "{v}");
    assert_eq!(app.admin(Method::GET, "/apps/soc-bad", None).await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}
both!(providers_are_configured_with_write_only_secrets);

/// `latchkey app provider set|remove`: secrets from a file, never from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_from_the_cli() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.active_app("cli-soc").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "gh-cli-secret\n").expect("write");
    use crate::cli::{run, run_with_env};
    let file = secret_file.display().to_string();
    let set = ["app", "provider", "set", "cli-soc"];
    // A variable it was not told to read is never used.
    let unasked = [&set[..], &["google", "--client-id", "g", "--json"]].concat();
    let unasked = run_with_env(&app, &unasked, &[("LATCHKEY_PROVIDER_CLIENT_SECRET", "leaked")]).await;
    assert!(unasked.stderr.contains("providers.google.client_secret is required"), "{unasked:?}");
    let github =
        [&set[..], &["github", "--client-id", "gh-cli", "--client-secret-file", &file, "--json"]].concat();
    let shown = run(&app, &github).await.json();
    assert_eq!(
        (&shown["client_id"], &shown["client_secret_set"]),
        (&json!("gh-cli"), &json!(true)),
        "{shown}"
    );
    assert_eq!(stored_secret(&app, "cli-soc", Provider::Github).await, "gh-cli-secret");
    let oidc =
        [&set[..], &["oidc", "--client-id", "x", "--issuer", "https://sso.example", "--display-name", "SSO"]]
            .concat();
    let oidc = run(&app, &[&oidc[..], &["--scope", "openid", "--scope", "email", "--json"]].concat()).await;
    assert_ne!(oidc.code, Some(0), "no secret given: {oidc:?}");
    assert!(oidc.stderr.contains("providers.oidc.client_secret"), "{oidc:?}");
    // From a named variable; a changed address needs the secret again, which it is.
    let moved = [
        &set[..],
        &["github", "--api-url", "https://ghe.example/api/v3", "--client-secret-env", "GH_SECRET"],
    ]
    .concat();
    run_with_env(&app, &[&moved[..], &["--json"]].concat(), &[("GH_SECRET", "gh-env-secret")]).await.json();
    assert_eq!(stored_secret(&app, "cli-soc", Provider::Github).await, "gh-env-secret");
    let removed = run(&app, &["app", "provider", "remove", "cli-soc", "github"]).await;
    assert!(removed.ok().stdout.contains("removed provider github"), "{removed:?}");
    assert_eq!(app.get_app("cli-soc").await["providers"], json!({}));
    app.stop().await;
}

/// Upstream identities (SPEC §7a): a provider's subject belongs to one user, shows in the
/// admin user view, and goes with the user's erasure.
async fn upstream_identities_belong_to_one_user(backend: Backend) {
    use latchkey::users::identities::{self, IdentityError, Upstream};
    let app = TestApp::start(backend).await;
    app.active_app("ids").await;
    crate::mail::sign_up(&app, "ids", "ida@example.com", "long enough pw").await;
    crate::mail::sign_up(&app, "ids", "ian@example.com", "long enough pw").await;
    let user_id = |email: &'static str| {
        let app = &app;
        async move {
            let (_, list) = app.admin(Method::GET, &format!("/apps/ids/users?email={email}"), None).await;
            list["items"][0]["id"].as_str().unwrap_or_else(|| panic!("{list}")).to_string()
        }
    };
    let (ida, ian) = (user_id("ida@example.com").await, user_id("ian@example.com").await);
    let as_id = |s: &str| latchkey::users::UserId(s.parse().expect("uuid"));
    let db = crate::mail::identity_store(&app, "ids").await;
    let now = app.state.now();
    let github = Upstream { provider: "github", issuer: "https://api.github.com", subject: "1001" };
    let google = Upstream { provider: "google", issuer: "https://accounts.google.com", subject: "g-77" };
    identities::link(&db, as_id(&ida), github, Some("ida@users.example"), now).await.expect("links");
    identities::link(&db, as_id(&ian), google, None, now).await.expect("links");
    // The same subject again: the same user refreshes it, another user is refused.
    identities::link(&db, as_id(&ida), github, Some("ida@new.example"), now).await.expect("relinks");
    let taken = identities::link(&db, as_id(&ian), github, None, now).await;
    assert!(matches!(taken, Err(IdentityError::Taken { .. })), "{taken:?}");
    assert_eq!(identities::owner(&db, github).await.expect("owner"), Some(as_id(&ida)));
    // The same number at another GitHub (Enterprise) is someone else.
    let enterprise = Upstream { issuer: "https://ghe.example/api/v3", ..github };
    assert_eq!(identities::owner(&db, enterprise).await.expect("owner"), None);
    identities::link(&db, as_id(&ian), enterprise, None, now)
        .await
        .expect("another issuer, another identity");

    let (s, shown) = app.admin(Method::GET, &format!("/apps/ids/users/{ida}"), None).await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    let list = shown["identities"].as_array().expect("identities");
    assert_eq!(list[0]["provider"], "email", "{shown}");
    assert_eq!(list[0]["has_password"], true, "{shown}");
    assert_eq!(
        (&list[1]["provider"], &list[1]["issuer"], &list[1]["subject"], &list[1]["email"]),
        (&json!("github"), &json!("https://api.github.com"), &json!("1001"), &json!("ida@new.example")),
        "{shown}"
    );
    assert!(list[1]["linked_at"].is_string(), "{shown}");

    // Erasure takes them along; another user's stay.
    let (s, v) = app.admin(Method::DELETE, &format!("/apps/ids/users/{ida}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let ida_left = "SELECT count(*) FROM identities WHERE issuer = 'https://api.github.com'";
    assert_eq!(crate::mail::count(&db, ida_left).await, 0);
    assert_eq!(identities::of_user(&db, as_id(&ian)).await.expect("list").len(), 2, "ian's stay");
    assert!(identities::unlink(&db, as_id(&ian), google).await.expect("unlinks"));
    assert!(!identities::unlink(&db, as_id(&ian), google).await.expect("nothing left"));
    assert_eq!(identities::of_user(&db, as_id(&ian)).await.expect("list").len(), 1, "the other one stays");
    app.stop().await;
}
both!(upstream_identities_belong_to_one_user);
