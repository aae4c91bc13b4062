//! The OAuth surface driven by a real client library: discovery, client_credentials with both
//! secret methods, JWKS verification with an independent implementation, introspection and
//! revocation, and every signing algorithm.

use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{AuthType, ClientId, ClientSecret, IssuerUrl, OAuth2TokenResponse, Scope};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};

async fn client_credentials_with_openidconnect(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("acme").await;
    let (id, secret) = app.machine_client("acme").await;
    let issuer = app.issuer("acme");

    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).expect("url"), &app.http)
        .await
        .expect("OIDC discovery");
    assert_eq!(meta.issuer().as_str(), issuer);
    assert_eq!(meta.jwks_uri().as_str(), format!("{issuer}/jwks"));

    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(id.clone()),
            Some(ClientSecret::new(secret.clone())),
        )
        .set_auth_type(auth.clone());
        // client_secret_post is refused for a client registered for client_secret_basic.
        let res = client
            .exchange_client_credentials()
            .expect("token endpoint known")
            .add_scope(Scope::new("api:read".into()))
            .request_async(&app.http)
            .await;
        if matches!(auth, AuthType::RequestBody) {
            assert!(res.is_err(), "client_secret_post must be refused for a client_secret_basic client");
            continue;
        }
        let res = res.expect("token");
        assert_eq!(res.expires_in().map(|d| d.as_secs()), Some(900));
        let token = res.access_token().secret();
        let (header, claims) = verify_with_jwks(&app.http, &format!("{issuer}/jwks"), token)
            .await
            .expect("verifies against JWKS");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["iss"], issuer);
        assert_eq!(claims["sub"], id);
        assert_eq!(claims["client_id"], id);
        assert_eq!(claims["aud"], issuer);
        assert_eq!(claims["scope"], "api:read");
        assert_eq!(claims["token_type"], "service");
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 900);
    }
    app.stop().await;
}
both!(client_credentials_with_openidconnect);

async fn client_secret_post_client(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("post").await;
    let (s, c) = app
        .admin(Method::POST, "/apps/post/clients", Some(json!({
            "name": "post", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"
        })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (id, secret) = (c["client_id"].as_str().expect("id"), c["client_secret"].as_str().expect("secret"));
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (s, h, v) = app.form("post", "token", None, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h["cache-control"], "no-store");
    // No scopes registered: the token carries none.
    assert!(v.get("scope").is_none(), "{v}");
    // Basic is refused for a client_secret_post client.
    let (s, _, v) = app.form("post", "token", Some((id, secret)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    app.stop().await;
}
both!(client_secret_post_client);

async fn scope_selection(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("scopes").await;
    let (id, secret) = app.machine_client("scopes").await;
    let (_, _, all) =
        app.form("scopes", "token", Some((&id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(all["scope"], "api:read api:write");
    let (_, _, one) = app
        .form("scopes", "token", Some((&id, &secret)), "grant_type=client_credentials&scope=api%3Awrite")
        .await;
    assert_eq!(one["scope"], "api:write");
    let (s, _, bad) =
        app.form("scopes", "token", Some((&id, &secret)), "grant_type=client_credentials&scope=admin").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"], "invalid_scope");
    app.stop().await;
}
both!(scope_selection);

async fn introspection_and_revocation(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("intro").await;
    let (id, secret) = app.machine_client("intro").await;
    let (other_id, other_secret) = app.machine_client("intro").await;
    let token = app.service_token("intro", &id, &secret).await;

    let v = app.introspect("intro", &other_id, &other_secret, &token).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], id);
    assert_eq!(v["sub"], id);
    assert_eq!(v["scope"], "api:read api:write");
    assert_eq!(v["iss"], app.issuer("intro"));
    assert!(v["exp"].as_i64().is_some());

    // Garbage and tampered tokens are inactive, not errors.
    assert_eq!(app.introspect("intro", &id, &secret, "not-a-token").await, json!({"active": false}));
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.introspect("intro", &id, &secret, &tampered).await["active"], false);

    // Another client cannot revoke it (RFC 7009 §2.1): still 200, still active.
    let (s, _, _) =
        app.form("intro", "revoke", Some((&other_id, &other_secret)), &format!("token={token}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.introspect("intro", &id, &secret, &token).await["active"], true);

    let (s, h, _) = app
        .form("intro", "revoke", Some((&id, &secret)), &format!("token={token}&token_type_hint=access_token"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(app.introspect("intro", &id, &secret, &token).await, json!({"active": false}));
    // Revoking twice is fine.
    let (s, _, _) = app.form("intro", "revoke", Some((&id, &secret)), &format!("token={token}")).await;
    assert_eq!(s, StatusCode::OK);

    // Expired: move the clock past the lifetime.
    let fresh = app.service_token("intro", &id, &secret).await;
    assert_eq!(app.introspect("intro", &id, &secret, &fresh).await["active"], true);
    app.clock.advance(chrono::Duration::seconds(901));
    assert_eq!(app.introspect("intro", &id, &secret, &fresh).await["active"], false);
    app.stop().await;
}
both!(introspection_and_revocation);

async fn every_signing_algorithm(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (slug, alg) in [("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA")] {
        app.create_app(json!({"slug": slug, "display_name": slug, "signing_alg": alg})).await;
        app.wait_status(slug, "active").await;
        let (id, secret) = app.machine_client(slug).await;
        let token = app.service_token(slug, &id, &secret).await;
        let (header, claims) = verify_with_jwks(&app.http, &format!("{}/jwks", app.issuer(slug)), &token)
            .await
            .expect("verifies");
        assert_eq!(header["alg"], alg);
        assert_eq!(claims["iss"], app.issuer(slug));
        let disco: serde_json::Value = app
            .http
            .get(format!("{}/.well-known/openid-configuration", app.issuer(slug)))
            .send()
            .await
            .expect("disco")
            .json()
            .await
            .expect("json");
        assert_eq!(disco["id_token_signing_alg_values_supported"], json!([alg]));
        assert_eq!(app.introspect(slug, &id, &secret, &token).await["active"], true);
    }
    app.stop().await;
}
both!(every_signing_algorithm);

async fn discovery_documents(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("disco").await;
    let issuer = app.issuer("disco");
    let get = |url: String| {
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("get") }
    };
    let oidc = get(format!("{issuer}/.well-known/openid-configuration")).await;
    assert_eq!(oidc.status(), StatusCode::OK);
    assert!(oidc.headers()["cache-control"].to_str().expect("ascii").contains("max-age"));
    let oidc: serde_json::Value = oidc.json().await.expect("json");
    for (k, v) in [
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("jwks_uri", "/jwks"),
    ] {
        assert_eq!(oidc[k], format!("{issuer}{v}"));
    }
    assert_eq!(oidc["response_types_supported"], json!(["code"]));
    assert_eq!(oidc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    // RFC 8414, both locations.
    for url in [
        format!("{issuer}/.well-known/oauth-authorization-server"),
        format!("{}/.well-known/oauth-authorization-server/apps/disco", app.base),
    ] {
        let res = get(url).await;
        assert_eq!(res.status(), StatusCode::OK);
        let doc: serde_json::Value = res.json().await.expect("json");
        assert_eq!(doc["issuer"], issuer);
        assert!(doc.get("subject_types_supported").is_none());
    }
    let jwks = get(format!("{issuer}/jwks")).await;
    let cc = jwks.headers()["cache-control"].to_str().expect("ascii").to_string();
    assert!(cc.contains("max-age=300"), "{cc}");
    let jwks: serde_json::Value = jwks.json().await.expect("json");
    // current + next are published.
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 2);
    for k in jwks["keys"].as_array().expect("keys") {
        assert!(k.get("d").is_none() && k.get("p").is_none(), "private material in JWKS: {k}");
        assert_eq!(k["use"], "sig");
    }
    app.stop().await;
}
both!(discovery_documents);
