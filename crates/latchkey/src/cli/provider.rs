//! `latchkey app provider set|remove`: an app's upstream identity providers (SPEC §7a).

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::Api;

#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once from the command line")]
pub enum ProviderCmd {
    /// Add or change a provider (google, microsoft, apple, github or oidc); settings not given
    /// are kept. Secrets come from a file or the environment, never the command line.
    Set {
        app: String,
        provider: String,
        #[arg(long)]
        client_id: Option<String>,
        /// A file holding the client secret.
        #[arg(long, value_name = "PATH", conflicts_with = "client_secret_env")]
        client_secret_file: Option<std::path::PathBuf>,
        /// The name of an environment variable holding the client secret.
        #[arg(long, value_name = "VAR")]
        client_secret_env: Option<String>,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        team_id: Option<String>,
        #[arg(long)]
        key_id: Option<String>,
        /// Apple: the PKCS#8 PEM file of the P-256 key.
        #[arg(long, value_name = "PATH")]
        private_key_file: Option<std::path::PathBuf>,
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        api_url: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Repeat for each scope (oidc).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Remove a provider.
    Remove { app: String, provider: String },
}

/// `latchkey app provider set|remove`: a merge patch of the app's `providers`.
pub(super) async fn run(api: &Api, cmd: ProviderCmd) -> anyhow::Result<()> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .with_context(|| format!("reading {}", path.display()))
    };
    let (slug, name, settings) = match cmd {
        ProviderCmd::Remove { app, provider } => (app, provider, serde_json::Value::Null),
        ProviderCmd::Set {
            app,
            provider,
            client_id,
            client_secret_file,
            client_secret_env,
            issuer,
            tenant,
            team_id,
            key_id,
            private_key_file,
            base_url,
            api_url,
            display_name,
            scopes,
        } => {
            let client_secret = match (client_secret_file, client_secret_env) {
                (Some(path), _) => Some(read(&path)?),
                (None, Some(var)) => Some(
                    std::env::var(&var)
                        .ok()
                        .filter(|s| !s.is_empty())
                        .with_context(|| format!("{var} is not set"))?,
                ),
                (None, None) => None,
            };
            let private_key = private_key_file.map(|p| read(&p)).transpose()?;
            let mut settings = serde_json::Map::new();
            for (key, value) in [
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("issuer", issuer),
                ("tenant", tenant),
                ("team_id", team_id),
                ("key_id", key_id),
                ("private_key", private_key),
                ("base_url", base_url),
                ("api_url", api_url),
                ("display_name", display_name),
            ] {
                if let Some(v) = value {
                    settings.insert(key.into(), json!(v));
                }
            }
            if !scopes.is_empty() {
                settings.insert("scopes".into(), json!(scopes));
            }
            (app, provider, serde_json::Value::Object(settings))
        }
    };
    let patch = json!({ "providers": { name.as_str(): settings } });
    let app = api.call(reqwest::Method::PATCH, &format!("/apps/{slug}"), Some(patch)).await?;
    let shown = &app["providers"][name.as_str()];
    if api.json {
        println!("{}", serde_json::to_string(shown).unwrap_or_default());
    } else if shown.is_null() {
        println!("removed provider {name} of {slug}");
    } else {
        println!("{}", serde_json::to_string_pretty(shown).unwrap_or_default());
    }
    Ok(())
}
