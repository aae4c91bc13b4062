//! `latchkey role|org|resource` and `user list --role/--organization` against a real server
//! (SPEC §10), through the built binary.

use serde_json::Value;

use crate::both;
use crate::cli::run;
use crate::kit::{Backend, TestApp};

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_else(|| v.as_array().cloned().unwrap_or_default())
}

async fn cli_roles_orgs_resources(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("cx").await;
    let role =
        run(&app, &["role", "create", "cx", "billing", "--permission", "invoices:*", "--json"]).await.json();
    assert_eq!(role["permissions"], serde_json::json!(["invoices:*"]), "{role}");
    let bad = run(&app, &["role", "create", "cx", "Bad Name"]).await;
    assert!(bad.failed().contains("name"), "a bad role name is refused, saying why");
    let list = run(&app, &["role", "list", "cx", "--json"]).await.json();
    assert_eq!(items(&list).len(), 1, "{list}");

    let (client, _) = app.machine_client("cx").await;
    let g = run(&app, &["role", "grant", "cx", "--client", &client, "billing", "--json"]).await.json();
    assert_eq!(g["granted"], serde_json::json!(["billing"]), "{g}");

    let org = run(&app, &["org", "create", "cx", "acme", "--name", "Acme", "--json"]).await.json();
    let org_id = org["id"].as_str().expect("id").to_string();
    let invited = run(
        &app,
        &["org", "add", "cx", &org_id, "--email", "new@example.com", "--role", "billing", "--json"],
    )
    .await
    .json();
    assert!(invited["link"].as_str().is_some_and(|l| l.contains("invitation=")), "{invited}");
    let members = run(&app, &["org", "members", "cx", &org_id, "--json"]).await.json();
    assert!(items(&members).is_empty(), "invited, not yet a member: {members}");
    let orgs = run(&app, &["org", "list", "cx", "--json"]).await.json();
    assert_eq!(items(&orgs)[0]["slug"], "acme");
    let users = run(&app, &["user", "list", "cx", "--organization", &org_id, "--json"]).await.json();
    assert!(items(&users).is_empty());

    let r = run(
        &app,
        &[
            "resource",
            "create",
            "cx",
            "https://api.example.com",
            "--name",
            "API",
            "--permission",
            "invoices:read",
            "--json",
        ],
    )
    .await
    .json();
    let rid = r["id"].as_str().expect("id").to_string();
    assert_eq!(items(&run(&app, &["resource", "list", "cx", "--json"]).await.json()).len(), 1);
    run(&app, &["resource", "delete", "cx", &rid]).await.ok();
    run(&app, &["org", "delete", "cx", &org_id]).await.ok();
    let deleted = run(&app, &["role", "delete", "cx", "billing", "--json"]).await.json();
    assert_eq!(deleted["clients_revoked"], 1, "{deleted}");
    app.stop().await;
}
both!(cli_roles_orgs_resources);
