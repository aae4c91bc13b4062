//! The upstream identity providers an app signs people in with (SPEC §7a): their settings as
//! an operator gives them, as stored (the secret sealed with the master key) and as shown (the
//! secret never, only that it is set).
//!
//! One entry per kind: `google`, `microsoft`, `apple`, `github` and a generic `oidc`. The
//! secret is the client secret, or Apple's private key (a P-256 key in PKCS#8 PEM, from which
//! the client-secret JWT is signed).

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::Provider;
use crate::crypto::SecretBox;

/// The settings of one provider as an operator gives them. Which fields a kind takes: every
/// kind `client_id`; `google`, `microsoft`, `github` and `oidc` a `client_secret`; `apple`
/// `team_id`, `key_id` and `private_key`; OIDC kinds (`google`, `microsoft`, `apple`, `oidc`)
/// `issuer` (required for `oidc`); `microsoft` `tenant` (default `common`); `github`
/// `base_url` and `api_url`; `oidc` `display_name` and `scopes`. Secrets are write-only: left
/// out of a PATCH, the stored one is kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    #[schema(min_length = 1, max_length = 255)]
    pub client_id: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1024)]
    pub client_secret: Option<SecretString>,
    /// The upstream's issuer (its discovery document is `{issuer}/.well-known/openid-configuration`).
    #[schema(max_length = 2048)]
    pub issuer: Option<String>,
    /// Microsoft: the Entra tenant (`common`, `organizations`, `consumers` or a tenant id).
    #[schema(
        pattern = "^(common|organizations|consumers|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
    )]
    pub tenant: Option<String>,
    /// Apple: the developer team id.
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9]+$")]
    pub team_id: Option<String>,
    /// Apple: the id of the key `private_key` is.
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9]+$")]
    pub key_id: Option<String>,
    /// Apple: the P-256 private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Write-only.
    #[schema(value_type = Option<String>, max_length = 8192)]
    pub private_key: Option<SecretString>,
    /// GitHub: the web address (default `https://github.com`; GitHub Enterprise: its own).
    #[schema(max_length = 2048)]
    pub base_url: Option<String>,
    /// GitHub: the API address (default `https://api.github.com`).
    #[schema(max_length = 2048)]
    pub api_url: Option<String>,
    /// `oidc`: the button's label ("Acme SSO").
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// `oidc`: the scopes asked for; must include `openid` (default `openid email profile`).
    pub scopes: Option<Vec<String>>,
}

/// An app's providers as an operator gives them, one entry per kind.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvidersInput {
    pub google: Option<ProviderInput>,
    pub microsoft: Option<ProviderInput>,
    pub apple: Option<ProviderInput>,
    pub github: Option<ProviderInput>,
    pub oidc: Option<ProviderInput>,
}

impl ProvidersInput {
    pub fn into_entries(self) -> Vec<(Provider, ProviderInput)> {
        [
            (Provider::Google, self.google),
            (Provider::Microsoft, self.microsoft),
            (Provider::Apple, self.apple),
            (Provider::Github, self.github),
            (Provider::Oidc, self.oidc),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// One provider as stored in the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSettings {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The client secret, or Apple's private key, sealed for this app and provider.
    pub secret_sealed: String,
}

/// An app's providers, by kind.
pub type Providers = BTreeMap<Provider, ProviderSettings>;

/// One provider as shown: every setting, the defaults filled in, and whether the secret is set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Every kind but `apple`: the client secret is stored (it is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_set: Option<bool>,
    /// `apple`: the private key is stored (it is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_set: Option<bool>,
}

/// The name of a provider kind in the API (`google`, …).
pub fn name(kind: Provider) -> &'static str {
    match kind {
        Provider::Email => "email",
        Provider::Google => "google",
        Provider::Microsoft => "microsoft",
        Provider::Apple => "apple",
        Provider::Github => "github",
        Provider::Oidc => "oidc",
    }
}

fn seal_ctx(app_id: Uuid, kind: Provider) -> String {
    format!("app:{app_id}:provider:{}:secret", name(kind))
}

impl ProviderSettings {
    /// The issuer the upstream is reached at: the configured one, or the kind's default.
    pub fn issuer_url(&self, kind: Provider) -> Option<String> {
        self.issuer.clone().or_else(|| match kind {
            Provider::Google => Some("https://accounts.google.com".into()),
            Provider::Microsoft => Some(format!(
                "https://login.microsoftonline.com/{}/v2.0",
                self.tenant.as_deref().unwrap_or("common")
            )),
            Provider::Apple => Some("https://appleid.apple.com".into()),
            _ => None,
        })
    }

    /// The client secret (or Apple's private key, PEM), opened with the master key.
    pub fn secret(&self, secrets: &SecretBox, app_id: Uuid, kind: Provider) -> Option<SecretString> {
        secrets.open_string(&seal_ctx(app_id, kind), &self.secret_sealed).ok().map(SecretString::from)
    }

    pub fn view(&self, kind: Provider) -> ProviderView {
        let apple = kind == Provider::Apple;
        ProviderView {
            client_id: self.client_id.clone(),
            issuer: self.issuer_url(kind),
            tenant: (kind == Provider::Microsoft)
                .then(|| self.tenant.clone().unwrap_or_else(|| "common".into())),
            team_id: self.team_id.clone(),
            key_id: self.key_id.clone(),
            base_url: (kind == Provider::Github)
                .then(|| self.base_url.clone().unwrap_or_else(|| "https://github.com".into())),
            api_url: (kind == Provider::Github)
                .then(|| self.api_url.clone().unwrap_or_else(|| "https://api.github.com".into())),
            display_name: self.display_name.clone(),
            scopes: self.scopes.clone(),
            client_secret_set: (!apple).then_some(true),
            private_key_set: apple.then_some(true),
        }
    }

    /// The settings as a merge patch sees them: what was given, never the secret.
    pub fn editable(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.remove("secret_sealed");
        }
        v
    }
}

/// Checks `input` for provider `kind` of app `app_id` and seals its secret; a secret left out
/// keeps `stored`'s. The error names the field (`providers.apple.private_key: …`).
pub fn settle(
    secrets: &SecretBox,
    app_id: Uuid,
    kind: Provider,
    input: ProviderInput,
    stored: Option<&ProviderSettings>,
) -> Result<ProviderSettings, String> {
    use secrecy::ExposeSecret;
    let at = |field: &str| format!("providers.{}.{field}", name(kind));
    let not_here = |field: &str| format!("{} is not a setting of {}", at(field), name(kind));
    let oidc_kind = matches!(kind, Provider::Google | Provider::Microsoft | Provider::Apple | Provider::Oidc);
    if kind == Provider::Email {
        return Err("providers.email: email is not an upstream provider".into());
    }
    let given = |field: &str, present: bool, allowed: bool| {
        if present && !allowed { Err(not_here(field)) } else { Ok(()) }
    };
    given("client_secret", input.client_secret.is_some(), kind != Provider::Apple)?;
    given("issuer", input.issuer.is_some(), oidc_kind)?;
    given("tenant", input.tenant.is_some(), kind == Provider::Microsoft)?;
    given("team_id", input.team_id.is_some(), kind == Provider::Apple)?;
    given("key_id", input.key_id.is_some(), kind == Provider::Apple)?;
    given("private_key", input.private_key.is_some(), kind == Provider::Apple)?;
    given("base_url", input.base_url.is_some(), kind == Provider::Github)?;
    given("api_url", input.api_url.is_some(), kind == Provider::Github)?;
    given("display_name", input.display_name.is_some(), kind == Provider::Oidc)?;
    given("scopes", input.scopes.is_some(), kind == Provider::Oidc)?;

    let client_id = required(input.client_id, &at("client_id"))?;
    token_text(&client_id, 255, &at("client_id"))?;
    let issuer = input.issuer.map(|u| web_url(&u, &at("issuer"))).transpose()?;
    if kind == Provider::Oidc && issuer.is_none() {
        return Err(format!("{} is required", at("issuer")));
    }
    let base_url = input.base_url.map(|u| web_url(&u, &at("base_url"))).transpose()?;
    let api_url = input.api_url.map(|u| web_url(&u, &at("api_url"))).transpose()?;
    let ident =
        |v: Option<String>, field: &str, max: usize, extra: &[char]| -> Result<Option<String>, String> {
            match v {
                Some(s)
                    if s.is_empty()
                        || s.len() > max
                        || !s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c)) =>
                {
                    Err(format!("{} must be 1 to {max} letters or digits", at(field)))
                }
                other => Ok(other),
            }
        };
    let tenant = match input.tenant {
        None => None,
        Some(t)
            if MICROSOFT_TENANTS.contains(&t.as_str())
                || Uuid::parse_str(&t).is_ok_and(|u| u.hyphenated().to_string() == t) =>
        {
            Some(t)
        }
        Some(_) => {
            return Err(format!(
                "{} must be common, organizations, consumers or a tenant id (a GUID)",
                at("tenant")
            ));
        }
    };
    let (team_id, key_id) = if kind == Provider::Apple {
        (
            ident(Some(required(input.team_id, &at("team_id"))?), "team_id", 64, &[])?,
            ident(Some(required(input.key_id, &at("key_id"))?), "key_id", 64, &[])?,
        )
    } else {
        (None, None)
    };
    let display_name = match (kind, input.display_name) {
        (Provider::Oidc, None) => {
            return Err(format!("{} is required (the button's label)", at("display_name")));
        }
        (_, Some(d)) => {
            let d = d.trim().to_string();
            if d.is_empty() || d.chars().count() > 100 || d.chars().any(char::is_control) {
                return Err(format!("{} must be 1 to 100 printable characters", at("display_name")));
            }
            Some(d)
        }
        (_, None) => None,
    };
    let scopes = match input.scopes {
        None => None,
        Some(s) => {
            if !s.iter().any(|x| x == "openid") {
                return Err(format!("{} must include openid", at("scopes")));
            }
            if s.len() > 20
                || s.iter().any(|x| {
                    x.is_empty()
                        || x.len() > 100
                        || !x.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
                })
            {
                return Err(format!("{} must be up to 20 scope names", at("scopes")));
            }
            Some(s)
        }
    };

    let secret_field = if kind == Provider::Apple { "private_key" } else { "client_secret" };
    let new_secret = if kind == Provider::Apple { input.private_key } else { input.client_secret };
    let secret_sealed = match new_secret {
        Some(secret) => {
            let raw = secret.expose_secret();
            if kind == Provider::Apple {
                p256_pkcs8(raw).map_err(|why| format!("{}: {why}", at("private_key")))?;
            } else if raw.is_empty() || raw.len() > 1024 || raw.chars().any(char::is_control) {
                return Err(format!("{} must be 1 to 1024 characters", at("client_secret")));
            }
            secrets.seal(&seal_ctx(app_id, kind), raw.as_bytes())
        }
        // Kept only while it goes to the same client at the same upstream: a secret that an
        // operator cannot read must not be sent to a new address with a PATCH.
        None => match stored {
            Some(s)
                if s.client_id == client_id
                    && s.issuer == issuer
                    && s.tenant == tenant
                    && s.base_url == base_url
                    && s.api_url == api_url =>
            {
                s.secret_sealed.clone()
            }
            Some(_) => {
                return Err(format!(
                    "{} must be given again when client_id or an upstream address changes",
                    at(secret_field)
                ));
            }
            None => return Err(format!("{} is required", at(secret_field))),
        },
    };
    Ok(ProviderSettings {
        client_id,
        issuer,
        tenant,
        team_id,
        key_id,
        base_url,
        api_url,
        display_name,
        scopes,
        secret_sealed,
    })
}

/// The Microsoft tenants that are not a tenant id.
const MICROSOFT_TENANTS: &[&str] = &["common", "organizations", "consumers"];

fn required(v: Option<String>, field: &str) -> Result<String, String> {
    v.filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("{field} is required"))
}

/// An identifier an upstream issued: printable, no spaces.
fn token_text(v: &str, max: usize, field: &str) -> Result<(), String> {
    if v.len() > max || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("{field} must be 1 to {max} printable characters without spaces"));
    }
    Ok(())
}

/// An https URL (http only on a loopback host, for local upstreams), without query or fragment;
/// stored without a trailing slash.
fn web_url(raw: &str, field: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|_| format!("{field} is not an absolute URL"))?;
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && super::model::is_loopback(&url));
    if !ok_scheme || url.host_str().is_none() {
        return Err(format!("{field} must be an https URL"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || raw.len() > 2048
    {
        return Err(format!("{field} must be a plain URL (no query, fragment or credentials)"));
    }
    // Stored as the parser reads it (host in lower case, no stray spaces), so that it compares
    // equal to what the upstream publishes.
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Apple signs in clients with an ES256 JWT: the key must be a P-256 key in PKCS#8 PEM.
fn p256_pkcs8(pem: &str) -> Result<(), &'static str> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
        .map_err(|_| "not a PEM block (-----BEGIN PRIVATE KEY-----)")?;
    if label != "PRIVATE KEY" {
        return Err("must be a PKCS#8 \"PRIVATE KEY\" PEM block");
    }
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .map(|_| ())
        .map_err(|_| "not a P-256 (ES256) private key in PKCS#8")
}

/// Applies a merge patch's `providers` (already merged into the editable document) to the
/// stored ones: kinds left out are removed, the others settled against what was stored.
pub fn apply(
    secrets: &SecretBox,
    app_id: Uuid,
    merged: &serde_json::Value,
    stored: &Providers,
) -> Result<Providers, String> {
    let input: ProvidersInput =
        serde_path_to_error::deserialize(merged.clone()).map_err(|e| format!("providers.{e}"))?;
    let mut out = Providers::new();
    for (kind, given) in input.into_entries() {
        out.insert(kind, settle(secrets, app_id, kind, given, stored.get(&kind))?);
    }
    Ok(out)
}

/// The providers as a merge patch sees them.
pub fn editable(providers: &Providers) -> serde_json::Value {
    serde_json::Value::Object(providers.iter().map(|(k, v)| (name(*k).to_string(), v.editable())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_identifiers() {
        assert_eq!(web_url("https://sso.example/", "f").as_deref(), Ok("https://sso.example"));
        assert!(web_url("http://127.0.0.1:8080/x", "f").is_ok());
        for bad in [
            "http://sso.example",
            "sso.example",
            "https://sso.example/?a=1",
            "https://u:p@sso.example",
            "ftp://x",
        ] {
            assert!(web_url(bad, "f").is_err(), "{bad}");
        }
        assert!(p256_pkcs8("not a key").is_err());
    }
}
