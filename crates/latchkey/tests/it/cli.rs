//! The operator CLI end to end (SPEC §4): the real `latchkey` binary against a running server,
//! on both stores. Assertions use exit codes and the `--json` output, not wording.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::both;
use crate::kit::{ADMIN_TOKEN, Backend, TestApp};

/// What a finished `latchkey` process left behind.
#[derive(Debug)]
pub(crate) struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts exit code 0 and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert_clean(&self.stderr);
        self
    }

    /// Asserts a non-zero exit (not a signal) and a clean error message; returns stderr.
    #[track_caller]
    pub fn failed(&self) -> &str {
        assert!(matches!(self.code, Some(c) if c != 0), "expected failure: {self:?}");
        assert_clean(&self.stderr);
        let last = self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        assert!(last.starts_with("error: "), "no `error: …` line: {self:?}");
        &self.stderr
    }
}

/// No panic and no backtrace, even with RUST_BACKTRACE=1.
#[track_caller]
pub(crate) fn assert_clean(stderr: &str) {
    for bad in ["panicked", "stack backtrace", "Stack backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "stderr contains {bad:?}:\n{stderr}");
    }
}

/// A `latchkey` command that inherits no `LATCHKEY_*` variable (nor RUST_LOG) from the test
/// runner, with RUST_BACKTRACE=1 so that a backtrace would show if one were printed. Killed if
/// dropped before it exits.
pub(crate) fn latchkey_cmd() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_none_or(|k| k.starts_with("LATCHKEY_") || k == "RUST_LOG") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("RUST_BACKTRACE", "1").stdin(std::process::Stdio::null()).kill_on_drop(true);
    cmd
}

/// Runs a command to completion within `limit`, killing it otherwise.
pub(crate) async fn finish(mut cmd: tokio::process::Command, limit: Duration) -> Output {
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {limit:?}"))
        .expect("run latchkey");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `latchkey <args>` against `app` with `--url` and `--token`.
pub(crate) async fn run(app: &TestApp, args: &[&str]) -> Output {
    run_with_env(app, args, &[]).await
}

/// [`run`] with environment variables added.
pub(crate) async fn run_with_env(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = latchkey_cmd();
    cmd.args(args).args(["--url", &app.base, "--token", ADMIN_TOKEN]).envs(env.iter().copied());
    finish(cmd, Duration::from_secs(90)).await
}

/// `latchkey <args>` with exactly the given environment additions.
async fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = latchkey_cmd();
    cmd.args(args).envs(env.iter().copied());
    finish(cmd, Duration::from_secs(60)).await
}

async fn token_status(app: &TestApp, slug: &str, id: &str, secret: &str) -> StatusCode {
    app.form(slug, "token", Some((id, secret)), "grant_type=client_credentials").await.0
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap_or_else(|| panic!("no items: {v}"))
}

fn kids(list: &Value, state: &str) -> Vec<String> {
    items(list)
        .iter()
        .filter(|k| k["state"] == state)
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

async fn cli_end_to_end(backend: Backend) {
    let app = TestApp::start(backend).await;
    let issuer = app.issuer("demo");

    // Apps.
    let created = run(&app, &["app", "create", "demo", "--name", "Demo", "--wait", "--json"]).await.json();
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(created["slug"], "demo");
    assert_eq!(created["display_name"], "Demo");
    assert_eq!(created["issuer"], format!("{}/apps/demo", app.base));

    let list = run(&app, &["app", "list", "--json"]).await.json();
    assert!(items(&list).iter().any(|a| a["slug"] == "demo" && a["status"] == "active"), "{list}");
    // The same through LATCHKEY_URL / LATCHKEY_ADMIN_TOKEN instead of flags.
    let list_env = run_env(
        &["app", "list", "--json"],
        &[("LATCHKEY_URL", &app.base), ("LATCHKEY_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await
    .json();
    assert_eq!(list_env, list);

    let table = run(&app, &["app", "list"]).await;
    table.ok();
    let mut lines = table.stdout.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().expect("header row");
    assert!(header.to_lowercase().contains("slug"), "{}", table.stdout);
    assert!(lines.any(|l| l.split_whitespace().next() == Some("demo")), "{}", table.stdout);

    let got = run(&app, &["app", "get", "demo", "--json"]).await.json();
    assert_eq!((got["slug"].as_str(), got["status"].as_str()), (Some("demo"), Some("active")), "{got}");
    assert_eq!(got["issuer"], issuer);

    // Policy: shown, then changed with --set (nested keys merge; JSON values parse).
    let policy = run(&app, &["app", "policy", "demo"]).await.json();
    assert_eq!(policy["signup_policy"], "open");
    let policy = run(
        &app,
        &[
            "app",
            "policy",
            "demo",
            "--set",
            "signup_policy=invite_only",
            "--set",
            "password.min_length=14",
            "--set",
            "allowed_email_domains=[\"demo.test\"]",
        ],
    )
    .await
    .json();
    assert_eq!(policy["signup_policy"], "invite_only");
    assert_eq!(policy["password"]["min_length"], 14);
    assert_eq!(policy["password"]["require_uppercase"], false, "the rest of password stays");
    assert_eq!(policy["allowed_email_domains"], serde_json::json!(["demo.test"]));
    assert_eq!(app.get_app("demo").await["policy"], policy);
    let bad = run(&app, &["app", "policy", "demo", "--set", "password.min_length=3"]).await;
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("min_length"), "{}", bad.stderr);

    // Clients.
    let c = run(
        &app,
        &[
            "client",
            "create",
            "demo",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
            "--json",
        ],
    )
    .await
    .json();
    let id = c["client_id"].as_str().unwrap_or_else(|| panic!("client_id: {c}")).to_string();
    let secret = c["client_secret"].as_str().unwrap_or_else(|| panic!("client_secret: {c}")).to_string();
    let res = app
        .http
        .post(format!("{issuer}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("token json");
    assert!(body["access_token"].is_string(), "{body}");

    let clients = run(&app, &["client", "list", "demo", "--json"]).await.json();
    let listed = items(&clients).iter().find(|x| x["client_id"] == id.as_str()).expect("client listed");
    assert!(listed.get("client_secret").is_none(), "{clients}");
    assert_eq!(listed["name"], "svc");

    let rotated = run(&app, &["client", "rotate-secret", "demo", &id, "--json"]).await.json();
    let new_secret = rotated["client_secret"].as_str().expect("new secret").to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(token_status(&app, "demo", &id, &secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(token_status(&app, "demo", &id, &new_secret).await, StatusCode::OK);

    run(&app, &["client", "delete", "demo", &id]).await.ok();
    assert_eq!(token_status(&app, "demo", &id, &new_secret).await, StatusCode::UNAUTHORIZED);
    let clients = run(&app, &["client", "list", "demo", "--json"]).await.json();
    assert!(items(&clients).iter().all(|x| x["client_id"] != id.as_str()), "{clients}");

    // Keys.
    let keys = run(&app, &["keys", "list", "demo", "--json"]).await.json();
    let (current, next) = (kids(&keys, "current"), kids(&keys, "next"));
    assert_eq!((current.len(), next.len()), (1, 1), "{keys}");
    let after = run(&app, &["keys", "rotate", "demo", "--grace-seconds", "60", "--json"]).await.json();
    assert_eq!(kids(&after, "current"), next, "{after}");
    assert_eq!(kids(&after, "retiring"), current, "{after}");
    let new_next = kids(&after, "next");
    assert_eq!(new_next.len(), 1, "{after}");
    assert!(!current.contains(&new_next[0]) && !next.contains(&new_next[0]), "{after}");
    assert_eq!(run(&app, &["keys", "list", "demo", "--json"]).await.json(), after);

    // Lifecycle.
    let c = run(&app, &["client", "create", "demo", "--name", "svc2", "--json"]).await.json();
    let (id, secret) = (
        c["client_id"].as_str().expect("id").to_string(),
        c["client_secret"].as_str().expect("secret").to_string(),
    );
    assert_eq!(token_status(&app, "demo", &id, &secret).await, StatusCode::OK);
    run(&app, &["app", "disable", "demo"]).await.ok();
    assert_eq!(app.get_app("demo").await["status"], "disabled");
    assert_eq!(token_status(&app, "demo", &id, &secret).await, StatusCode::SERVICE_UNAVAILABLE);
    let enabled = run(&app, &["app", "enable", "demo", "--wait", "--json"]).await.json();
    assert_eq!(enabled["status"], "active", "{enabled}");
    assert_eq!(token_status(&app, "demo", &id, &secret).await, StatusCode::OK);

    run(&app, &["app", "delete", "demo", "--erase-data"]).await.ok();
    let (s, v) = app.admin(reqwest::Method::GET, "/apps/demo", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    run(&app, &["app", "get", "demo", "--json"]).await.failed();
    if backend == Backend::Sqlite {
        assert!(
            !app.dir.path().join("apps").join("demo.db").exists(),
            "--erase-data left the identity store"
        );
    }
    app.stop().await;
}
both!(cli_end_to_end);

async fn cli_errors(backend: Backend) {
    let app = TestApp::start(backend).await;

    // Wrong token.
    let mut cmd = latchkey_cmd();
    cmd.args(["app", "list", "--url", &app.base, "--token", "lka_not-the-right-token-at-all"]);
    let wrong = finish(cmd, Duration::from_secs(60)).await;
    let err = wrong.failed();
    assert!(err.contains("401") || err.contains("Unauthorized"), "{wrong:?}");
    assert!(wrong.stdout.trim().is_empty(), "{wrong:?}");

    // Missing token (only the URL in the environment).
    let missing = run_env(&["app", "list", "--json"], &[("LATCHKEY_URL", &app.base)]).await;
    assert!(missing.failed().contains("LATCHKEY_ADMIN_TOKEN"), "{missing:?}");

    // Unknown app, for each kind of command.
    for args in [
        &["app", "get", "nope", "--json"][..],
        &["app", "enable", "nope"],
        &["app", "disable", "nope"],
        &["app", "delete", "nope"],
        &["client", "list", "nope"],
        &["client", "create", "nope", "--name", "x"],
        &["keys", "list", "nope"],
        &["keys", "rotate", "nope"],
    ] {
        let out = run(&app, args).await;
        assert!(out.failed().contains("404"), "{args:?}: {out:?}");
    }
    // A slug that is refused by the API.
    run(&app, &["app", "create", "Not A Slug", "--json"]).await.failed();
    app.stop().await;
}
both!(cli_errors);

#[tokio::test]
async fn cli_unreachable_server() {
    let mut cmd = latchkey_cmd();
    cmd.args(["app", "list", "--url", "http://127.0.0.1:1", "--token", ADMIN_TOKEN]);
    let out = finish(cmd, Duration::from_secs(60)).await;
    let err = out.failed();
    assert_eq!(err.trim().lines().count(), 1, "{out:?}");
    assert!(err.contains("127.0.0.1:1"), "{out:?}");
}

async fn cli_users(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("crew").await;
    crate::mail::sign_up(&app, "crew", "kai@example.com", "correct horse battery").await;
    crate::mail::sign_up(&app, "crew", "lea@example.com", "correct horse battery").await;
    let list = run(&app, &["user", "list", "crew", "--email", "kai", "--json"]).await.json();
    let kai = items(&list)[0]["id"].as_str().expect("id").to_string();
    assert_eq!(items(&list).len(), 1);
    let table = run(&app, &["user", "list", "crew"]).await;
    assert!(
        table.stdout.contains("lea@example.com") && table.stdout.contains("kai@example.com"),
        "{}",
        table.stdout
    );
    let one = run(&app, &["user", "get", "crew", &kai, "--json"]).await.json();
    assert_eq!(one["active_sessions"], 1);
    let out = run(&app, &["user", "logout-all", "crew", &kai, "--json"]).await.json();
    assert_eq!(out["sessions_ended"], 1);
    let inv = run(&app, &["user", "invite", "crew", "max@example.com", "--json"]).await.json();
    assert!(inv["link"].as_str().expect("link").contains("/signup?invitation="));
    // Erasure asks for --yes, then removes the user.
    let refused = run(&app, &["user", "erase", "crew", &kai]).await;
    assert_eq!(refused.code, Some(2));
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    run(&app, &["user", "erase", "crew", &kai, "--yes"]).await.ok();
    let (s, _) = app.admin(reqwest::Method::GET, &format!("/apps/crew/users/{kai}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let missing = run(&app, &["user", "erase", "crew", &kai, "--yes"]).await;
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
    app.stop().await;
}
both!(cli_users);
