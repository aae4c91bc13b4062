//! Organizations, memberships and API resources (SPEC §10, issue 13): the admin API, tokens for
//! an organization (`organization=` on `/authorize`, kept through refresh, the chooser for
//! `select`, `access_denied` for others), resources as audiences with permissions cut to theirs
//! (verified with the `openidconnect` crate's keys), invitations that make members, erasure.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::kit::{Backend, TestApp, verify_with_jwks};
use crate::signin::{Flow, REDIRECT, csrf_of, location, public_client, query_of};

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, v) = app.admin(Method::POST, path, Some(body)).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

async fn claims(app: &TestApp, slug: &str, token: &str) -> Value {
    verify_with_jwks(&app.http, &format!("{}/jwks", app.issuer(slug)), token).await.expect("verifies").1
}

/// A user signed up through the code flow (no extra parameters); returns the user id.
async fn sign_up(app: &TestApp, slug: &str, client: &str, email: &str) -> (String, Flow) {
    let mut flow = Flow::new(client);
    let res = flow.authorize(app, slug, "").await;
    let signup = location(&res).replace("/login?", "/signup?");
    let res = flow.submit(&signup, &[("email", email), ("password", "correct horse battery")]).await;
    let code = query_of(&location(&res))["code"].clone();
    let (s, tokens) = flow.exchange(app, slug, &code).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let id = claims(app, slug, tokens["access_token"].as_str().expect("at")).await["sub"]
        .as_str()
        .expect("sub")
        .to_string();
    (id, flow)
}

/// With the flow's browser signed in: `/authorize` with `extra`; returns the final redirect
/// (to the client, or the chooser).
async fn authorize(app: &TestApp, slug: &str, flow: &mut Flow, extra: &str) -> String {
    let res = flow.authorize(app, slug, &format!("&scope=openid%20roles%20offline_access{extra}")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res)
}

async fn organizations_admin_api(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("oa").await;
    post(&app, "/apps/oa/roles", json!({"name": "org_admin", "permissions": ["members:*"]})).await;
    let acme = post(&app, "/apps/oa/organizations", json!({"slug": "acme", "name": "Acme Corp"})).await;
    let id = acme["id"].as_str().expect("id").to_string();
    for (bad, want) in [
        (json!({"slug": "acme", "name": "Again"}), StatusCode::CONFLICT),
        (json!({"slug": "select", "name": "x"}), StatusCode::CONFLICT),
        (json!({"slug": "-x", "name": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"slug": "ok", "name": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"slug": "ok"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, v) = app.admin(Method::POST, "/apps/oa/organizations", Some(bad.clone())).await;
        assert!(
            s == want || (want == StatusCode::UNPROCESSABLE_ENTITY && s == StatusCode::BAD_REQUEST),
            "{bad}: {s} {v}"
        );
    }
    let (s, v) = app
        .admin(Method::PATCH, &format!("/apps/oa/organizations/{id}"), Some(json!({"name": "Acme Inc"})))
        .await;
    assert_eq!((s, v["name"].clone()), (StatusCode::OK, json!("Acme Inc")));
    for path in ["/apps/oa/organizations/nope", "/apps/oa/organizations/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"]
    {
        assert_eq!(app.admin(Method::GET, path, None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.admin(Method::GET, &format!("{path}/members"), None).await.0, StatusCode::NOT_FOUND);
    }
    // Members: by id, by the address of an account, and an address without one (invited).
    let client = public_client(&app, "oa").await;
    let mut ids = Vec::new();
    for e in ["m1@example.com", "m2@example.com", "m3@example.com"] {
        ids.push(sign_up(&app, "oa", &client, e).await.0);
    }
    let members = format!("/apps/oa/organizations/{id}/members");
    post(&app, &members, json!({"user_id": ids[0], "roles": ["org_admin"]})).await;
    post(&app, &members, json!({"email": "M2@example.com"})).await;
    post(&app, &members, json!({"user_id": ids[2]})).await;
    let (s, v) = app
        .admin(Method::POST, &members, Some(json!({"email": "new@example.com", "roles": ["org_admin"]})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert!(v["link"].as_str().is_some_and(|l| l.contains("/signup?invitation=")));
    for (bad, want) in [
        (json!({"user_id": ids[0], "roles": ["ghost"]}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"roles": []}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"user_id": ids[0], "email": "m1@example.com"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"user_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"user_id": ids[0], "roles": vec!["r"; 101]}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, v) = app.admin(Method::POST, &members, Some(bad.clone())).await;
        assert_eq!(s, want, "{bad}: {v}");
    }
    // Hostile paging and bodies.
    for q in ["limit=10000", "limit=0", "cursor=nope", "limit=-1"] {
        let (s, v) = app.admin(Method::GET, &format!("{members}?{q}"), None).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{q}: {s} {v}");
    }
    let huge = json!({"email": "x@example.com", "roles": ["r".repeat(70_000)]});
    assert_eq!(app.admin(Method::POST, &members, Some(huge)).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // Paged by user id.
    let (_, page) = app.admin(Method::GET, &format!("{members}?limit=2"), None).await;
    let first: Vec<Value> = page["items"].as_array().expect("a").clone();
    assert_eq!(first.len(), 2);
    let cursor = page["next_cursor"].as_str().expect("more");
    let (_, rest) = app.admin(Method::GET, &format!("{members}?limit=2&cursor={cursor}"), None).await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    let m1 = first
        .iter()
        .chain(rest["items"].as_array().expect("a"))
        .find(|m| m["user_id"] == ids[0].as_str())
        .cloned();
    assert_eq!(m1.expect("m1")["roles"], json!(["org_admin"]));
    // Users by organization and by role.
    let (_, by_org) = app.admin(Method::GET, &format!("/apps/oa/users?organization={id}"), None).await;
    assert_eq!(by_org["items"].as_array().map(Vec::len), Some(3));
    app.admin(
        Method::PUT,
        &format!("/apps/oa/users/{}/roles", ids[1]),
        Some(json!({"roles": ["org_admin"]})),
    )
    .await;
    let (_, by_role) = app.admin(Method::GET, "/apps/oa/users?role=org_admin", None).await;
    assert_eq!(by_role["items"][0]["id"], ids[1].as_str());
    let (s, _) = app.admin(Method::GET, "/apps/oa/users?organization=nope", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Roles of a member; removal; deleting a role counts the members who had it.
    let one = format!("{members}/{}", ids[2]);
    let (s, v) = app.admin(Method::PATCH, &one, Some(json!({"roles": ["org_admin"]}))).await;
    assert_eq!((s, v["roles"].clone()), (StatusCode::OK, json!(["org_admin"])));
    assert_eq!(
        app.admin(Method::DELETE, &format!("{members}/{}", ids[1]), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin(Method::DELETE, &format!("{members}/{}", ids[1]), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::PATCH, &format!("{members}/{}", ids[1]), Some(json!({"roles": []}))).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = app.admin(Method::DELETE, "/apps/oa/roles/org_admin", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((v["members_revoked"].clone(), v["users_revoked"].clone()), (json!(2), json!(1)));
    // Erasure leaves no membership; deleting the organization takes the rest.
    let store = crate::mail::identity_store(&app, "oa").await;
    assert_eq!(
        app.admin(Method::DELETE, &format!("/apps/oa/users/{}", ids[0]), None).await.0,
        StatusCode::NO_CONTENT
    );
    let q = "SELECT count(*) FROM memberships WHERE organization_id IN (SELECT id FROM organizations WHERE slug = 'acme')";
    assert_eq!(crate::mail::count(&store, q).await, 1);
    assert_eq!(
        app.admin(Method::DELETE, &format!("/apps/oa/organizations/{id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(crate::mail::count(&store, "SELECT count(*) FROM memberships").await, 0);
    // Another app sees none of it.
    app.active_app("ob").await;
    let (_, list) = app.admin(Method::GET, "/apps/ob/organizations", None).await;
    assert_eq!(list["items"], json!([]));
    app.stop().await;
}
both!(organizations_admin_api);

async fn organization_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("ot").await;
    post(&app, "/apps/ot/roles", json!({"name": "reader", "permissions": ["docs:read"]})).await;
    post(&app, "/apps/ot/roles", json!({"name": "org_admin", "permissions": ["members:*", "docs:write"]}))
        .await;
    let acme = post(&app, "/apps/ot/organizations", json!({"slug": "acme", "name": "Acme"})).await;
    let globex = post(&app, "/apps/ot/organizations", json!({"slug": "globex", "name": "Globex"})).await;
    let client = public_client(&app, "ot").await;
    let (ada, mut flow) = sign_up(&app, "ot", &client, "ada@example.com").await;
    app.admin(Method::PUT, &format!("/apps/ot/users/{ada}/roles"), Some(json!({"roles": ["reader"]}))).await;
    let acme_members = format!("/apps/ot/organizations/{}/members", acme["id"].as_str().expect("id"));
    post(&app, &acme_members, json!({"user_id": ada, "roles": ["org_admin"]})).await;

    // A member, named by slug: org claims, permissions merged; kept through refresh.
    let back = authorize(&app, "ot", &mut flow, "&organization=acme").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let (s, tokens) = flow.exchange(&app, "ot", &query_of(&back)["code"]).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let c = claims(&app, "ot", tokens["access_token"].as_str().expect("at")).await;
    assert_eq!(c["org_id"], acme["id"]);
    assert_eq!(c["org_roles"], json!(["org_admin"]));
    assert_eq!(c["roles"], json!(["reader"]));
    assert_eq!(c["permissions"], json!(["docs:read", "docs:write", "members:*"]));
    let id = claims(&app, "ot", tokens["id_token"].as_str().expect("id")).await;
    assert_eq!((id["org_id"].clone(), id["org_roles"].clone()), (acme["id"].clone(), json!(["org_admin"])));
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client}",
        tokens["refresh_token"].as_str().expect("rt")
    );
    let (s, _, refreshed) = app.form("ot", "token", None, &body).await;
    assert_eq!(s, StatusCode::OK, "{refreshed}");
    assert_eq!(
        claims(&app, "ot", refreshed["access_token"].as_str().expect("at")).await["org_id"],
        acme["id"]
    );
    // Removed from the organization: the next refresh is refused.
    app.admin(Method::DELETE, &format!("{acme_members}/{ada}"), None).await;
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client}",
        refreshed["refresh_token"].as_str().expect("rt")
    );
    let (s, _, v) = app.form("ot", "token", None, &body).await;
    assert_eq!((s, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_grant")));

    // Not a member: access_denied at the client. Unknown: invalid_request.
    let back = authorize(&app, "ot", &mut flow, "&organization=globex").await;
    assert_eq!(query_of(&back)["error"], "access_denied", "{back}");
    let back = authorize(&app, "ot", &mut flow, "&organization=nowhere").await;
    assert_eq!(query_of(&back)["error"], "invalid_request", "{back}");

    // `select`: one membership goes straight through; two show the chooser.
    post(&app, &acme_members, json!({"user_id": ada})).await;
    let back = authorize(&app, "ot", &mut flow, "&organization=select").await;
    assert!(back.starts_with(REDIRECT), "one membership: {back}");
    let globex_members = format!("/apps/ot/organizations/{}/members", globex["id"].as_str().expect("id"));
    post(&app, &globex_members, json!({"user_id": ada, "roles": ["reader"]})).await;
    let chooser = authorize(&app, "ot", &mut flow, "&organization=select").await;
    assert!(chooser.starts_with(&format!("{}/organization?request=", app.issuer("ot"))), "{chooser}");
    let page = flow.browser.get(&chooser).send().await.expect("chooser").text().await.expect("html");
    assert!(page.contains("Acme") && page.contains("Globex"));
    let request = query_of(&chooser)["request"].clone();
    let choose = |org: &str| {
        let form =
            [("csrf", csrf_of(&page)), ("request", request.clone()), ("organization", org.to_string())];
        flow.browser.post(format!("{}/organization", app.issuer("ot"))).form(&form).send()
    };
    // Only the session the chooser was shown to, and only for that request: another browser
    // signed in as someone else, or a request that did not ask for `select`, gets nothing.
    let (_, mut other) = sign_up(&app, "ot", &client, "eve@example.com").await;
    let stolen = other.browser.get(&chooser).send().await.expect("chooser");
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST, "another session cannot use this chooser");
    let plain = authorize(&app, "ot", &mut other, "&prompt=login").await;
    let other_request = query_of(&plain)["request"].clone();
    let page_other = other
        .browser
        .get(format!("{}/organization?request={other_request}", app.issuer("ot")))
        .send()
        .await
        .expect("c");
    assert_eq!(page_other.status(), StatusCode::BAD_REQUEST, "a request that did not ask for select");
    let foreign = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    assert_eq!(choose(foreign).await.expect("post").status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = choose(globex["id"].as_str().expect("id")).await.expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = query_of(&location(&res))["code"].clone();
    let (_, tokens) = flow.exchange(&app, "ot", &code).await;
    let at = tokens["access_token"].as_str().expect("at");
    let c = claims(&app, "ot", at).await;
    assert_eq!((c["org_id"].clone(), c["org_roles"].clone()), (globex["id"].clone(), json!(["reader"])));
    let (s, info) = crate::mail::userinfo(&app, "ot", at).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (info["org_id"].clone(), info["org_roles"].clone()),
        (globex["id"].clone(), json!(["reader"]))
    );
    assert_eq!(info["permissions"], json!(["docs:read"]), "userinfo says what the token stands for");
    // prompt=none never shows the chooser.
    let back = authorize(&app, "ot", &mut flow, "&organization=select&prompt=none").await;
    assert_eq!(query_of(&back)["error"], "account_selection_required", "{back}");
    app.stop().await;
}
both!(organization_tokens);

async fn resources_cut_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("rs").await;
    post(&app, "/apps/rs/roles", json!({"name": "staff", "permissions": ["invoices:*", "docs:read"]})).await;
    let api = "https://billing.example.com/api";
    let r = post(
        &app,
        "/apps/rs/resources",
        json!({"identifier": api, "name": "Billing", "permissions": ["invoices:read", "invoices:pay"]}),
    )
    .await;
    for bad in [
        json!({"identifier": api, "name": "Again", "permissions": []}),
        json!({"identifier": "not a uri", "name": "x", "permissions": []}),
        json!({"identifier": "https://x.example/#frag", "name": "x", "permissions": []}),
        json!({"identifier": "https://x.example", "name": "x", "permissions": ["Bad"]}),
    ] {
        let (s, v) = app.admin(Method::POST, "/apps/rs/resources", Some(bad.clone())).await;
        assert!(s == StatusCode::CONFLICT || s == StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {s} {v}");
    }
    let (id, secret) = app.machine_client("rs").await;
    app.admin(Method::PUT, &format!("/apps/rs/clients/{id}/roles"), Some(json!({"roles": ["staff"]}))).await;
    // client_credentials: the audience is the resource, the permissions are cut to its own.
    let body = format!("grant_type=client_credentials&resource={}", crate::signin::urlencode(api));
    let (s, _, v) = app.form("rs", "token", Some((&id, &secret)), &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = claims(&app, "rs", v["access_token"].as_str().expect("at")).await;
    assert_eq!(c["aud"], api);
    assert_eq!(
        c["permissions"],
        json!(["invoices:pay", "invoices:read"]),
        "a wildcard held becomes the resource's own"
    );
    let (s, _, v) = app
        .form(
            "rs",
            "token",
            Some((&id, &secret)),
            "grant_type=client_credentials&resource=https%3A%2F%2Fnope.example",
        )
        .await;
    assert_eq!((s, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_target")));
    let plain = claims(&app, "rs", &app.service_token("rs", &id, &secret).await).await;
    assert_eq!(plain["aud"], app.issuer("rs"), "without resource the issuer is the audience");
    let issuer_as_resource = json!({"identifier": app.issuer("rs"), "name": "x", "permissions": []});
    let (s, _) = app.admin(Method::POST, "/apps/rs/resources", Some(issuer_as_resource)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "the issuer cannot be a resource");
    // A token too big to carry its permissions: introspection cuts them, and fails closed once
    // its resource is gone.
    let many: Vec<String> = (0..150).map(|i| format!("bulk{i:03}:read")).collect();
    post(&app, "/apps/rs/roles", json!({"name": "bulk", "permissions": many})).await;
    let bulk = post(
        &app,
        "/apps/rs/resources",
        json!({"identifier": "urn:example:bulk", "name": "Bulk", "permissions": many}),
    )
    .await;
    app.admin(
        Method::PUT,
        &format!("/apps/rs/clients/{id}/roles"),
        Some(json!({"roles": ["staff", "bulk"]})),
    )
    .await;
    let (_, _, v) = app
        .form(
            "rs",
            "token",
            Some((&id, &secret)),
            "grant_type=client_credentials&resource=urn%3Aexample%3Abulk",
        )
        .await;
    let big = v["access_token"].as_str().expect("at").to_string();
    assert_eq!(claims(&app, "rs", &big).await["permissions_omitted"], true);
    assert_eq!(
        app.introspect("rs", &id, &secret, &big).await["permissions"].as_array().map(Vec::len),
        Some(150)
    );
    let bulk_id = bulk["id"].as_str().expect("id");
    assert_eq!(
        app.admin(Method::DELETE, &format!("/apps/rs/resources/{bulk_id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.introspect("rs", &id, &secret, &big).await["permissions"], json!([]), "fails closed");
    // The code flow: resource on /authorize, kept for the token; another one is refused.
    let client = public_client(&app, "rs").await;
    let (user, mut flow) = sign_up(&app, "rs", &client, "bo@example.com").await;
    app.admin(Method::PUT, &format!("/apps/rs/users/{user}/roles"), Some(json!({"roles": ["staff"]}))).await;
    let back =
        authorize(&app, "rs", &mut flow, &format!("&resource={}", crate::signin::urlencode(api))).await;
    let (s, tokens) = flow.exchange(&app, "rs", &query_of(&back)["code"]).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let c = claims(&app, "rs", tokens["access_token"].as_str().expect("at")).await;
    assert_eq!(
        (c["aud"].clone(), c["permissions"].clone()),
        (json!(api), json!(["invoices:pay", "invoices:read"]))
    );
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client}&resource=https%3A%2F%2Fother.example",
        tokens["refresh_token"].as_str().expect("rt")
    );
    let (s, _, v) = app.form("rs", "token", None, &body).await;
    assert_eq!((s, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_target")));
    let back = authorize(&app, "rs", &mut flow, "&resource=https%3A%2F%2Fnope.example").await;
    assert_eq!(query_of(&back)["error"], "invalid_target");
    // Resource admin: patch and delete.
    let rid = r["id"].as_str().expect("id");
    let (s, v) = app
        .admin(Method::PATCH, &format!("/apps/rs/resources/{rid}"), Some(json!({"permissions": ["docs:*"]})))
        .await;
    assert_eq!((s, v["permissions"].clone()), (StatusCode::OK, json!(["docs:*"])));
    assert_eq!(
        app.admin(Method::DELETE, &format!("/apps/rs/resources/{rid}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin(Method::DELETE, &format!("/apps/rs/resources/{rid}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, list) = app.admin(Method::GET, "/apps/rs/resources", None).await;
    assert_eq!((s, list["items"].clone()), (StatusCode::OK, json!([])));
    app.stop().await;
}
both!(resources_cut_tokens);

/// An organization's invitation: the account and the membership on acceptance; under
/// `admin_approval` it still waits for an operator.
async fn organization_invitations(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("oi").await;
    post(&app, "/apps/oi/roles", json!({"name": "member", "permissions": ["docs:read"]})).await;
    let org = post(&app, "/apps/oi/organizations", json!({"slug": "acme", "name": "Acme"})).await;
    let members = format!("/apps/oi/organizations/{}/members", org["id"].as_str().expect("id"));
    for (policy, email, status) in [
        ("invite_only", "inv@example.com", "active"),
        ("admin_approval", "appr@example.com", "pending_approval"),
    ] {
        app.admin(Method::PATCH, "/apps/oi", Some(json!({"policy": {"signup_policy": policy}}))).await;
        let v = post(&app, &members, json!({"email": email, "roles": ["member"]})).await;
        let link = v["link"].as_str().expect("link").to_string();
        let f = Flow::new("none");
        let token = query_of(&link)["invitation"].clone();
        let res = f.submit(&link, &[("invitation", &token), ("password", "correct horse battery")]).await;
        assert!(
            res.status().is_redirection() || res.status() == StatusCode::FORBIDDEN,
            "{policy}: {}",
            res.status()
        );
        let (_, users) = app.admin(Method::GET, &format!("/apps/oi/users?email={email}"), None).await;
        assert_eq!(users["items"][0]["status"], status, "{policy}");
    }
    let (_, list) = app.admin(Method::GET, &members, None).await;
    let items = list["items"].as_array().expect("a");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|m| m["roles"] == json!(["member"])), "{list}");
    // Domain lists still apply to the invited address.
    app.admin(
        Method::PATCH,
        "/apps/oi",
        Some(json!({"policy": {"blocked_email_domains": ["blocked.example"]}})),
    )
    .await;
    let (s, _) = app.admin(Method::POST, &members, Some(json!({"email": "x@blocked.example"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}
both!(organization_invitations);

/// An organization with 10,000 members pages through in full: every member once, in order,
/// at most 200 a page.
async fn ten_thousand_members_page_through(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("big").await;
    let org = post(&app, "/apps/big/organizations", json!({"slug": "huge", "name": "Huge"})).await;
    let org_id: uuid::Uuid = org["id"].as_str().expect("id").parse().expect("uuid");
    let store = crate::mail::identity_store(&app, "big").await;
    let now = latchkey::store::Ts::new(chrono::Utc::now());
    let ids: Vec<latchkey::users::UserId> =
        (0..10_000).map(|_| latchkey::users::UserId::generate()).collect();
    let users = "INSERT INTO users (id, email, email_normalized, email_verified, status, profile, token_version, created_at, updated_at) \
        VALUES ($1, $2, $2, FALSE, 'active', '{}', 0, $3, $3)";
    let members = "INSERT INTO memberships (user_id, organization_id, created_at) VALUES ($1, $2, $3)";
    let inserted: Result<(), sqlx::Error> = latchkey::on_db!(&store, p => async {
        let mut tx = p.begin().await?;
        for (i, id) in ids.iter().enumerate() {
            sqlx::query(users).bind(*id).bind(format!("m{i}@example.com")).bind(now).execute(&mut *tx).await?;
            sqlx::query(members).bind(*id).bind(org_id).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
    .await);
    inserted.expect("10,000 members");
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let started = std::time::Instant::now();
    loop {
        let path = match &cursor {
            Some(c) => format!("/apps/big/organizations/{org_id}/members?limit=200&cursor={c}"),
            None => format!("/apps/big/organizations/{org_id}/members?limit=200"),
        };
        let (s, page) = app.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 200);
        for m in items {
            assert!(seen.insert(m["user_id"].as_str().expect("id").to_string()), "a member twice");
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000);
    assert!(pages <= 51, "{pages} pages");
    eprintln!("10,000 members in {pages} pages in {:?}", started.elapsed());
    app.stop().await;
}
both!(ten_thousand_members_page_through);
