//! Roles and permissions (SPEC §10, issue 13): the admin API, grants to users and clients
//! reflected in tokens issued afterwards (verified with the `openidconnect` crate's keys, not
//! Latchkey's), introspection and userinfo, deleting a role, erasure, two apps apart.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use crate::signin::{Flow, location, public_client, query_of};

async fn role(app: &TestApp, slug: &str, name: &str, permissions: &[&str]) {
    let body = json!({"name": name, "description": format!("The {name} role"), "permissions": permissions});
    let (s, v) = app.admin(Method::POST, &format!("/apps/{slug}/roles"), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Signs a new user up through the code flow with scope `openid roles offline_access`; returns
/// the user id, the client id and the token response.
async fn user_tokens(app: &TestApp, slug: &str, email: &str) -> (String, String, Value) {
    let client_id = public_client(app, slug).await;
    let mut flow = Flow::new(&client_id);
    let res = flow.authorize(app, slug, "&scope=openid%20roles%20offline_access").await;
    let signup = location(&res).replace("/login?", "/signup?");
    let res = flow.submit(&signup, &[("email", email), ("password", "correct horse battery")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = query_of(&location(&res))["code"].clone();
    let (s, tokens) = flow.exchange(app, slug, &code).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let jwks = format!("{}/jwks", app.issuer(slug));
    let (_, id) =
        verify_with_jwks(&app.http, &jwks, tokens["id_token"].as_str().expect("id")).await.expect("id");
    (id["sub"].as_str().expect("sub").to_string(), client_id, tokens)
}

async fn claims(app: &TestApp, slug: &str, token: &str) -> Value {
    let jwks = format!("{}/jwks", app.issuer(slug));
    verify_with_jwks(&app.http, &jwks, token).await.expect("verifies against the JWKS").1
}

async fn refresh(app: &TestApp, slug: &str, client_id: &str, token: &str) -> Value {
    let body = format!("grant_type=refresh_token&refresh_token={token}&client_id={client_id}");
    let (s, _, v) = app.form(slug, "token", None, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn roles_admin_api(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("ra").await;
    role(&app, "ra", "reader", &["invoices:read", "invoices:read", "customers:read"]).await;
    let (s, v) = app.admin(Method::GET, "/apps/ra/roles/reader", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["permissions"], json!(["customers:read", "invoices:read"]), "sorted, without repeats");
    let dup = json!({"name": "reader", "permissions": []});
    assert_eq!(app.admin(Method::POST, "/apps/ra/roles", Some(dup)).await.0, StatusCode::CONFLICT);
    for bad in [
        json!({"name": "Reader", "permissions": []}),
        json!({"name": "", "permissions": []}),
        json!({"name": "x", "permissions": ["invoices"]}),
        json!({"name": "x", "permissions": ["Invoices:read"]}),
        json!({"name": "x", "permissions": ["a:b:c"]}),
        json!({"name": "x", "permissions": [7]}),
        json!({"name": "x"}),
        json!({"name": "x", "permissions": [], "extra": 1}),
        json!(["x", "The x role", ["a:b"]]),
        json!({"name": "x", "permissions": (0..501).map(|i| format!("r:{i}")).collect::<Vec<_>>()}),
    ] {
        let (s, v) = app.admin(Method::POST, "/apps/ra/roles", Some(bad.clone())).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{bad}: {s} {v}");
    }
    let (s, v) =
        app.admin(Method::POST, "/apps/ra/roles", Some(json!({"name": "x", "permissions": ["nope"]}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["detail"].as_str().unwrap_or("").contains("\"nope\""), "names the bad permission: {v}");
    // Paging by name.
    for n in ["a1", "a2", "a3"] {
        role(&app, "ra", n, &[]).await;
    }
    let (_, page) = app.admin(Method::GET, "/apps/ra/roles?limit=2", None).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (_, rest) = app.admin(Method::GET, &format!("/apps/ra/roles?limit=2&cursor={cursor}"), None).await;
    let names: Vec<&str> =
        rest["items"].as_array().expect("a").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["a3", "reader"]);
    // Patch, unknown ones.
    let (s, v) =
        app.admin(Method::PATCH, "/apps/ra/roles/reader", Some(json!({"permissions": ["invoices:*"]}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["permissions"], json!(["invoices:*"]));
    assert_eq!(v["description"], "The reader role", "left as it was");
    assert_eq!(app.admin(Method::GET, "/apps/ra/roles/nobody", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.admin(Method::PATCH, "/apps/ra/roles/nobody", Some(json!({}))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.admin(Method::DELETE, "/apps/ra/roles/nobody", None).await.0, StatusCode::NOT_FOUND);
    let unknown_user = "/apps/ra/users/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/roles";
    assert_eq!(
        app.admin(Method::PUT, unknown_user, Some(json!({"roles": []}))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::PUT, "/apps/ra/users/nope/roles", Some(json!({"roles": []}))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::PUT, "/apps/ra/clients/nope/roles", Some(json!({"roles": []}))).await.0,
        StatusCode::NOT_FOUND
    );
    // Another app knows none of these roles.
    app.active_app("rb").await;
    let (id, _) = app.machine_client("rb").await;
    let (s, v) = app
        .admin(Method::PUT, &format!("/apps/rb/clients/{id}/roles"), Some(json!({"roles": ["reader"]})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(app.admin(Method::GET, "/apps/rb/roles/reader", None).await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}
both!(roles_admin_api);

async fn user_roles_in_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rt").await;
    role(&app, "rt", "reader", &["invoices:read"]).await;
    role(&app, "rt", "billing", &["invoices:*", "customers:read"]).await;
    let (user, client_id, tokens) = user_tokens(&app, "rt", "ada@example.com").await;
    let first = claims(&app, "rt", tokens["access_token"].as_str().expect("at")).await;
    assert_eq!((first["roles"].clone(), first["permissions"].clone()), (json!([]), json!([])));

    let path = format!("/apps/rt/users/{user}/roles");
    let (s, v) = app.admin(Method::PUT, &path, Some(json!({"roles": ["reader", "billing", "reader"]}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["roles"], json!(["billing", "reader"]));
    assert_eq!(v["granted"], json!(["billing", "reader"]));
    let (s, v) = app.admin(Method::PUT, &path, Some(json!({"roles": ["ghost"]}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // The token already issued is unchanged; the next one carries the grants.
    let next = refresh(&app, "rt", &client_id, tokens["refresh_token"].as_str().expect("rt")).await;
    let at = next["access_token"].as_str().expect("at").to_string();
    let c = claims(&app, "rt", &at).await;
    assert_eq!(c["roles"], json!(["billing", "reader"]));
    assert_eq!(c["permissions"], json!(["customers:read", "invoices:*", "invoices:read"]));
    // Introspection and userinfo (scope `roles`) say the same.
    let (mid, msecret) = app.machine_client("rt").await;
    let intro = app.introspect("rt", &mid, &msecret, &at).await;
    assert_eq!(intro["roles"], json!(["billing", "reader"]));
    assert_eq!(intro["permissions"], c["permissions"]);
    let (s, info) = crate::mail::userinfo(&app, "rt", &at).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(info["roles"], json!(["billing", "reader"]));

    // Revoking one and deleting the other: the answer counts the grants removed with it.
    let (_, v) = app.admin(Method::PUT, &path, Some(json!({"roles": ["billing"]}))).await;
    assert_eq!(v["revoked"], json!(["reader"]));
    let (s, v) = app.admin(Method::DELETE, "/apps/rt/roles/billing", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["users_revoked"], 1);
    let after = refresh(&app, "rt", &client_id, next["refresh_token"].as_str().expect("rt")).await;
    let c = claims(&app, "rt", after["access_token"].as_str().expect("at")).await;
    assert_eq!((c["roles"].clone(), c["permissions"].clone()), (json!([]), json!([])));
    let events = audit(&app, "rt", "role.granted", 2).await;
    assert!(events.iter().all(|e| e["user_id"] == user.as_str()), "{events:?}");
    assert_eq!(audit(&app, "rt", "role.revoked", 1).await[0]["data"]["role"], "reader");

    // Erasure leaves no grant.
    role(&app, "rt", "kept", &["x:y"]).await;
    app.admin(Method::PUT, &path, Some(json!({"roles": ["kept"]}))).await;
    let store = crate::mail::identity_store(&app, "rt").await;
    assert_eq!(crate::mail::count(&store, "SELECT count(*) FROM user_roles").await, 1);
    assert_eq!(
        app.admin(Method::DELETE, &format!("/apps/rt/users/{user}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(crate::mail::count(&store, "SELECT count(*) FROM user_roles").await, 0);
    app.stop().await;
}
both!(user_roles_in_tokens);

async fn audit(app: &TestApp, slug: &str, kind: &str, n: usize) -> Vec<Value> {
    let mut items = Vec::new();
    for _ in 0..50 {
        let (_, v) = app.admin(Method::GET, &format!("/apps/{slug}/audit?type={kind}"), None).await;
        items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    items
}

async fn client_roles_and_the_permission_cap(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rc").await;
    role(&app, "rc", "sync", &["orders:read", "orders:write"]).await;
    let (id, secret) = app.machine_client("rc").await;
    let before = claims(&app, "rc", &app.service_token("rc", &id, &secret).await).await;
    assert_eq!(before["roles"], json!([]));
    let (s, v) = app
        .admin(Method::PUT, &format!("/apps/rc/clients/{id}/roles"), Some(json!({"roles": ["sync"]})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = claims(&app, "rc", &app.service_token("rc", &id, &secret).await).await;
    assert_eq!(c["roles"], json!(["sync"]));
    assert_eq!(c["permissions"], json!(["orders:read", "orders:write"]));
    let granted = audit(&app, "rc", "role.granted", 1).await;
    assert_eq!(granted[0]["data"]["client_id"], id.as_str());

    // More permissions than a token carries: none in the token, all in introspection.
    let many: Vec<String> = (0..150).map(|i| format!("res{i:03}:read")).collect();
    let (s, _) =
        app.admin(Method::POST, "/apps/rc/roles", Some(json!({"name": "big", "permissions": many}))).await;
    assert_eq!(s, StatusCode::CREATED);
    app.admin(Method::PUT, &format!("/apps/rc/clients/{id}/roles"), Some(json!({"roles": ["big", "sync"]})))
        .await;
    let token = app.service_token("rc", &id, &secret).await;
    let c = claims(&app, "rc", &token).await;
    assert!(c.get("permissions").is_none(), "{c}");
    assert_eq!(c["permissions_omitted"], true);
    assert!(token.len() < 4096, "the token stays small: {} bytes", token.len());
    let intro = app.introspect("rc", &id, &secret, &token).await;
    assert_eq!(intro["permissions"].as_array().map(Vec::len), Some(152));
    app.stop().await;
}
both!(client_roles_and_the_permission_cap);
