//! The operator CLI: `latchkey app|client|keys …` drive the admin API over HTTP, printing a
//! table for people or JSON with `--json`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

mod access;
mod provider;
pub use access::{OrgCmd, ResourceCmd, RoleCmd, org, resource, role};
pub use provider::ProviderCmd;

#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Base URL of the Latchkey server.
    #[arg(long, env = "LATCHKEY_URL", default_value = "http://localhost:8080", global = true)]
    pub url: String,
    /// Admin bearer token.
    #[arg(long, env = "LATCHKEY_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once from the command line")]
pub enum AppCmd {
    /// Create an app (it becomes active in the background; see --wait).
    Create {
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        /// postgres:// URL of the app's own database.
        #[arg(long)]
        database_url: Option<String>,
        /// RS256 (default), ES256 or EdDSA.
        #[arg(long)]
        signing_alg: Option<String>,
        /// Wait until the app is active (or failed).
        #[arg(long)]
        wait: bool,
    },
    /// List apps.
    List,
    /// Show one app.
    Get { slug: String },
    /// Provision a failed or disabled app again.
    Enable {
        slug: String,
        #[arg(long)]
        wait: bool,
    },
    /// Stop serving an app (its data stays).
    Disable { slug: String },
    /// Show an app's policy, or change it: `--set signup_policy=invite_only
    /// --set password.min_length=12 --set allowed_email_domains='["acme.com"]'` (values are JSON
    /// when they parse as JSON, text otherwise; `null` restores the default).
    Policy {
        slug: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Delete an app's configuration (and with --erase-data its identity store).
    Delete {
        slug: String,
        #[arg(long)]
        erase_data: bool,
    },
    /// Upstream identity providers of an app (SPEC §7a): `set` or `remove`.
    Provider {
        #[command(subcommand)]
        cmd: ProviderCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Register a client; prints its secret once.
    Create {
        app: String,
        #[arg(long)]
        name: String,
        /// Repeatable.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Repeatable: authorization_code, refresh_token, client_credentials. Default:
        /// authorization_code + refresh_token with redirect URIs, else client_credentials.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// client_secret_basic (default), client_secret_post or none.
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// Repeatable.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List an app's clients.
    List { app: String },
    /// Replace a client's secret; prints the new one once.
    RotateSecret {
        app: String,
        /// Client ids are base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Delete a client.
    Delete {
        app: String,
        /// Client ids are base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// List signing keys and their states.
    List { app: String },
    /// Switch to a new signing key; the old one stays published for the grace window.
    Rotate {
        app: String,
        #[arg(long)]
        grace_seconds: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// List operator tokens with their last use (never the tokens).
    List,
    /// Create a named operator token (printed once).
    Create { name: String },
    /// Revoke an operator token by id; it stops working at once.
    Revoke { id: String },
}

const TOKEN_COLUMNS: &[&str] = &["id", "name", "created_at", "last_used_at"];

pub async fn token(remote: &Remote, cmd: TokenCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    match cmd {
        TokenCmd::List => {
            let list = api.get("/tokens").await?;
            api.show_table(list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]), TOKEN_COLUMNS);
        }
        TokenCmd::Create { name } => {
            let t = api.post("/tokens", json!({ "name": name })).await?;
            api.show_one(&t, &["id", "name", "created_at", "token"]);
        }
        TokenCmd::Revoke { id } => {
            let enc: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
            api.call(reqwest::Method::DELETE, &format!("/tokens/{enc}"), None).await?;
            if api.json {
                println!("{}", json!({"revoked": id}));
            } else {
                println!("revoked token {id}");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// List or search users.
    List {
        app: String,
        /// Part of the address.
        #[arg(long)]
        email: Option<String>,
        /// active, pending_approval or disabled.
        #[arg(long)]
        status: Option<String>,
        /// Holds this app-wide role.
        #[arg(long)]
        role: Option<String>,
        /// Is a member of this organization (its id).
        #[arg(long)]
        organization: Option<String>,
    },
    /// Show one user (identities, sessions, second factor).
    Get { app: String, id: String },
    /// Invite an address (prints the link once).
    Invite {
        app: String,
        email: String,
        #[arg(long)]
        expires_in: Option<u32>,
    },
    /// Approve a user waiting for approval.
    Approve { app: String, id: String },
    /// End every session of a user and invalidate their tokens.
    LogoutAll { app: String, id: String },
    /// GDPR erasure: remove the user and everything of theirs from the app's identity store.
    Erase {
        app: String,
        id: String,
        /// Required: erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

const USER_COLUMNS: &[&str] = &["id", "email", "email_verified", "status", "created_at"];

pub async fn user(remote: &Remote, cmd: UserCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    match cmd {
        UserCmd::List { app, email, status, role, organization } => {
            let q: Vec<String> =
                [("email", email), ("status", status), ("role", role), ("organization", organization)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", enc(&v))))
                    .collect();
            let path = if q.is_empty() {
                format!("/apps/{app}/users")
            } else {
                format!("/apps/{app}/users?{}", q.join("&"))
            };
            let items = api.all(&path).await?;
            api.show_table(&items, USER_COLUMNS);
        }
        UserCmd::Get { app, id } => {
            let u = api.get(&format!("/apps/{app}/users/{}", enc(&id))).await?;
            api.show_one(
                &u,
                &["id", "email", "email_verified", "status", "created_at", "active_sessions", "mfa"],
            );
        }
        UserCmd::Invite { app, email, expires_in } => {
            let mut body = json!({ "email": email });
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            let inv = api.post(&format!("/apps/{app}/invitations"), body).await?;
            api.show_one(&inv, &["id", "email", "link", "expires_at"]);
        }
        UserCmd::Approve { app, id } => {
            let u = api.post(&format!("/apps/{app}/users/{}/approve", enc(&id)), json!({})).await?;
            api.show_one(&u, USER_COLUMNS);
        }
        UserCmd::LogoutAll { app, id } => {
            let r = api.post(&format!("/apps/{app}/users/{}/logout-all", enc(&id)), json!({})).await?;
            api.show_one(&r, &["sessions_ended"]);
        }
        UserCmd::Erase { app, id, yes } => {
            if !yes {
                bail!("erasure cannot be undone; pass --yes to erase user {id} of app {app}");
            }
            api.call(reqwest::Method::DELETE, &format!("/apps/{app}/users/{}", enc(&id)), None).await?;
            if api.json {
                println!("{}", json!({"erased": id}));
            } else {
                println!("erased user {id}");
            }
        }
    }
    Ok(())
}

/// A merge patch for `policy` from `key.path=value` pairs.
fn policy_patch(pairs: &[String]) -> anyhow::Result<Value> {
    let mut patch = json!({});
    for pair in pairs {
        let (key, raw) =
            pair.split_once('=').with_context(|| format!("--set {pair:?}: expected KEY=VALUE"))?;
        let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let mut at = &mut patch;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                bail!("--set {pair:?}: empty key");
            }
            if i + 1 == parts.len() {
                at[*part] = value.clone();
            } else {
                if !at[*part].is_object() {
                    at[*part] = json!({});
                }
                at = &mut at[*part];
            }
        }
    }
    Ok(patch)
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    json: bool,
}

impl Api {
    fn new(remote: &Remote) -> anyhow::Result<Api> {
        let token =
            remote.token.clone().context("no admin token: pass --token or set LATCHKEY_ADMIN_TOKEN")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Api { http, base: remote.url.trim_end_matches('/').to_string(), token, json: remote.json })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req =
            self.http.request(method, format!("{}/admin/v1{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            let problem: Value = serde_json::from_str(&text).unwrap_or(json!({"detail": text}));
            bail!(
                "{} ({}): {}",
                problem["title"].as_str().unwrap_or("request failed"),
                status.as_u16(),
                problem["detail"].as_str().unwrap_or("")
            );
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Every page of a list endpoint.
    async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let p = match &cursor {
                Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
                None => format!("{path}{sep}limit=200"),
            };
            let page = self.get(&p).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }

    async fn wait_active(&self, slug: &str) -> anyhow::Result<Value> {
        for _ in 0..120 {
            let app = self.get(&format!("/apps/{slug}")).await?;
            match app["status"].as_str() {
                Some("active") => return Ok(app),
                Some("failed") => {
                    bail!("app {slug} failed: {}", app["failure_reason"].as_str().unwrap_or(""))
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        bail!("app {slug} did not become active within 60 s")
    }

    fn show_one(&self, v: &Value, fields: &[&str]) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            return;
        }
        let width = fields.iter().map(|f| f.len()).max().unwrap_or(0);
        for f in fields {
            println!("{f:<width$}  {}", cell(&v[*f]));
        }
    }

    fn show_table(&self, items: &[Value], fields: &[&str]) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&json!({ "items": items })).unwrap_or_default());
            return;
        }
        let rows: Vec<Vec<String>> =
            items.iter().map(|v| fields.iter().map(|f| cell(&v[*f])).collect()).collect();
        let widths: Vec<usize> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| rows.iter().map(|r| r[i].len()).chain([f.len()]).max().unwrap_or(0))
            .collect();
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("{}", line(fields.iter().map(|f| f.to_uppercase()).collect()));
        for r in rows {
            println!("{}", line(r));
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

const APP_FIELDS: &[&str] =
    &["slug", "display_name", "status", "issuer", "failure_reason", "signing_alg", "database", "created_at"];
const APP_COLUMNS: &[&str] = &["slug", "display_name", "status", "issuer"];
const CLIENT_FIELDS: &[&str] = &[
    "client_id",
    "name",
    "grant_types",
    "token_endpoint_auth_method",
    "redirect_uris",
    "scopes",
    "client_secret",
];
const CLIENT_COLUMNS: &[&str] = &["client_id", "name", "grant_types", "token_endpoint_auth_method"];
const KEY_COLUMNS: &[&str] = &["kid", "alg", "state", "created_at", "retire_at"];

pub async fn app(remote: &Remote, cmd: AppCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    match cmd {
        AppCmd::Create { slug, name, database_url, signing_alg, wait } => {
            let mut body = json!({"slug": slug, "display_name": name.unwrap_or_else(|| slug.clone())});
            if let Some(u) = database_url {
                body["database_url"] = json!(u);
            }
            if let Some(a) = signing_alg {
                body["signing_alg"] = json!(a);
            }
            let mut app = api.post("/apps", body).await?;
            if wait {
                app = api.wait_active(&slug).await?;
            }
            api.show_one(&app, APP_FIELDS);
        }
        AppCmd::List => api.show_table(&api.all("/apps").await?, APP_COLUMNS),
        AppCmd::Get { slug } => api.show_one(&api.get(&format!("/apps/{slug}")).await?, APP_FIELDS),
        AppCmd::Enable { slug, wait } => {
            let mut app = api.post(&format!("/apps/{slug}/enable"), json!({})).await?;
            if wait {
                app = api.wait_active(&slug).await?;
            }
            api.show_one(&app, APP_FIELDS);
        }
        AppCmd::Policy { slug, set } => {
            let app = if set.is_empty() {
                api.get(&format!("/apps/{slug}")).await?
            } else {
                let patch = policy_patch(&set)?;
                api.call(reqwest::Method::PATCH, &format!("/apps/{slug}"), Some(json!({ "policy": patch })))
                    .await?
            };
            println!("{}", serde_json::to_string_pretty(&app["policy"]).unwrap_or_default());
        }
        AppCmd::Disable { slug } => {
            api.show_one(&api.post(&format!("/apps/{slug}/disable"), json!({})).await?, APP_FIELDS)
        }
        AppCmd::Provider { cmd } => provider::run(&api, cmd).await?,
        AppCmd::Delete { slug, erase_data } => {
            api.call(reqwest::Method::DELETE, &format!("/apps/{slug}?erase_data={erase_data}"), None).await?;
            if !api.json {
                println!("deleted {slug}{}", if erase_data { " and its identity data" } else { "" });
            }
        }
    }
    Ok(())
}

pub async fn client(remote: &Remote, cmd: ClientCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    match cmd {
        ClientCmd::Create { app, name, redirect_uris, grant_types, auth_method, scopes } => {
            let grant_types = if !grant_types.is_empty() {
                grant_types
            } else if redirect_uris.is_empty() {
                vec!["client_credentials".into()]
            } else {
                vec!["authorization_code".into(), "refresh_token".into()]
            };
            let mut body = json!({
                "name": name, "redirect_uris": redirect_uris, "grant_types": grant_types,
                "token_endpoint_auth_method": auth_method,
            });
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            let c = api.post(&format!("/apps/{app}/clients"), body).await?;
            api.show_one(&c, CLIENT_FIELDS);
            if !api.json && c["client_secret"].is_string() {
                eprintln!("\nThe client secret is shown only now; store it safely.");
            }
        }
        ClientCmd::List { app } => {
            api.show_table(&api.all(&format!("/apps/{app}/clients")).await?, CLIENT_COLUMNS)
        }
        ClientCmd::RotateSecret { app, client_id } => {
            let c = api.post(&format!("/apps/{app}/clients/{client_id}/secret"), json!({})).await?;
            api.show_one(&c, CLIENT_FIELDS);
        }
        ClientCmd::Delete { app, client_id } => {
            api.call(reqwest::Method::DELETE, &format!("/apps/{app}/clients/{client_id}"), None).await?;
            if !api.json {
                println!("deleted client {client_id}");
            }
        }
    }
    Ok(())
}

pub async fn keys(remote: &Remote, cmd: KeysCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    let list = match cmd {
        KeysCmd::List { app } => api.get(&format!("/apps/{app}/keys")).await?,
        KeysCmd::Rotate { app, grace_seconds } => {
            let body = match grace_seconds {
                Some(g) => json!({"grace_seconds": g}),
                None => json!({}),
            };
            api.post(&format!("/apps/{app}/keys/rotate"), body).await?
        }
    };
    api.show_table(list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]), KEY_COLUMNS);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_may_start_with_a_hyphen() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            cmd: ClientCmd,
        }
        for verb in ["rotate-secret", "delete"] {
            let parsed = T::try_parse_from(["t", verb, "acme", "-kQ3xYz"]).expect("parses");
            let id = match parsed.cmd {
                ClientCmd::RotateSecret { client_id, .. } | ClientCmd::Delete { client_id, .. } => client_id,
                other => panic!("{other:?}"),
            };
            assert_eq!(id, "-kQ3xYz");
        }
    }

    #[test]
    fn policy_patch_nests_and_parses_json() {
        let p = policy_patch(&[
            "signup_policy=invite_only".into(),
            "password.min_length=12".into(),
            "password.require_symbol=true".into(),
            "allowed_email_domains=[\"acme.com\"]".into(),
            "session.max_concurrent=null".into(),
        ])
        .expect("patch");
        assert_eq!(
            p,
            json!({"signup_policy": "invite_only", "password": {"min_length": 12, "require_symbol": true},
                   "allowed_email_domains": ["acme.com"], "session": {"max_concurrent": null}})
        );
        assert!(policy_patch(&["no-equals".into()]).is_err());
        assert!(policy_patch(&["a..b=1".into()]).is_err());
    }
}
