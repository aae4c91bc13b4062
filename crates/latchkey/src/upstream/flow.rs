//! One round trip to an upstream provider (SPEC §7a): [`begin`] makes the authorization URL
//! (code flow with `state`, `nonce` and PKCE S256; Apple with `response_mode=form_post`) and the
//! [`Round`] the browser keeps sealed until it comes back; [`complete`] exchanges the code and
//! says who the upstream vouches for ([`Asserted`]): an ID token verified against the upstream's
//! keys, or GitHub's user API.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::exchange::{ClientAuth, CodeExchange};
use super::{Expected, Metadata, UpstreamError, Upstreams};
use crate::apps::model::Provider;
use crate::apps::providers::ProviderSettings;
use crate::crypto::{SecretBox, tokens};
use crate::users::{self, UserId};

/// How long a browser may take at the upstream, in seconds.
pub const ROUND_TTL: i64 = 600;

/// What the browser carries (sealed) to the upstream and back: the values the answer must
/// match and where the sign-in goes on from.
#[derive(Clone, Serialize, Deserialize)]
pub struct Round {
    pub provider: Provider,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The pending authorization request the sign-in continues (empty: none).
    pub request: String,
    /// Linking from `/account`: the signed-in user the identity is for, and the session that
    /// asked (Apple's answer is a cross-site post that carries no session cookie).
    pub link: Option<(UserId, String)>,
    /// Unix seconds.
    pub expires: i64,
}

impl std::fmt::Debug for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Round")
            .field("provider", &self.provider)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

fn seal_ctx(app_id: Uuid) -> String {
    format!("app:{app_id}:upstream-round")
}

impl Round {
    pub fn seal(&self, secrets: &SecretBox, app_id: Uuid) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        secrets.seal(&seal_ctx(app_id), &json)
    }

    /// The round sealed in `sealed` for this app, if it opens and has not expired.
    pub fn open(secrets: &SecretBox, app_id: Uuid, sealed: &str, now: DateTime<Utc>) -> Option<Round> {
        let json = secrets.open(&seal_ctx(app_id), sealed).ok()?;
        let round: Round = serde_json::from_slice(&json).ok()?;
        (round.expires > now.timestamp()).then_some(round)
    }

    /// Whether `state` from the answer is this round's (compared in constant time).
    pub fn state_matches(&self, state: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.state.as_bytes(), state.as_bytes()).is_ok()
    }
}

/// Where a round trip starts from.
pub struct Start<'a> {
    pub kind: Provider,
    pub settings: &'a ProviderSettings,
    /// `{issuer}/oauth/{provider}/callback`.
    pub redirect_uri: &'a str,
    pub login_hint: Option<&'a str>,
    /// The client asked for a fresh sign-in (`prompt=login` or `max_age`): the upstream is asked
    /// for one too.
    pub fresh: bool,
    pub request: &'a str,
    pub link: Option<(UserId, String)>,
    pub now: DateTime<Utc>,
}

/// The scopes asked of each kind (a generic provider's own list when configured).
fn scopes(kind: Provider, settings: &ProviderSettings) -> String {
    match kind {
        Provider::Github => "read:user user:email".into(),
        Provider::Apple => "openid email name".into(),
        Provider::Oidc => {
            settings.scopes.as_ref().map(|s| s.join(" ")).unwrap_or_else(|| "openid email profile".into())
        }
        _ => "openid email profile".into(),
    }
}

fn github_base(settings: &ProviderSettings) -> &str {
    settings.base_url.as_deref().unwrap_or("https://github.com").trim_end_matches('/')
}

fn github_api(settings: &ProviderSettings) -> &str {
    settings.api_url.as_deref().unwrap_or("https://api.github.com").trim_end_matches('/')
}

/// The upstream's discovery document (OIDC kinds).
async fn discover(
    ups: &Upstreams,
    kind: Provider,
    settings: &ProviderSettings,
) -> Result<std::sync::Arc<Metadata>, UpstreamError> {
    let issuer = settings
        .issuer_url(kind)
        .ok_or_else(|| UpstreamError::Invalid { url: String::new(), why: "no issuer configured".into() })?;
    ups.metadata(&issuer).await
}

/// The URL to send the browser to, and the round to keep for its return.
pub async fn begin(ups: &Upstreams, s: &Start<'_>) -> Result<(String, Round), UpstreamError> {
    let round = Round {
        provider: s.kind,
        state: tokens::random_b64(24),
        nonce: tokens::random_b64(24),
        verifier: tokens::random_b64(48),
        request: s.request.to_string(),
        link: s.link.clone(),
        expires: s.now.timestamp() + ROUND_TTL,
    };
    let endpoint = match s.kind {
        Provider::Github => format!("{}/login/oauth/authorize", github_base(s.settings)),
        _ => discover(ups, s.kind, s.settings).await?.authorization_endpoint.clone(),
    };
    let mut url = Url::parse(&endpoint)
        .map_err(|_| UpstreamError::Invalid { url: endpoint.clone(), why: "not a URL".into() })?;
    let challenge =
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, round.verifier.as_bytes()).as_ref());
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &s.settings.client_id)
            .append_pair("redirect_uri", s.redirect_uri)
            .append_pair("scope", &scopes(s.kind, s.settings))
            .append_pair("state", &round.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if s.kind != Provider::Github {
            q.append_pair("nonce", &round.nonce);
        }
        if s.kind == Provider::Apple {
            // Apple posts the answer (and sends the name only this way).
            q.append_pair("response_mode", "form_post");
        }
        if let Some(hint) = s.login_hint.filter(|h| !h.is_empty() && s.kind != Provider::Github) {
            q.append_pair("login_hint", hint);
        }
        if s.fresh && !matches!(s.kind, Provider::Github | Provider::Apple) {
            q.append_pair("prompt", "login");
        }
    }
    Ok((url.into(), round))
}

/// Who the upstream vouches for.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// The upstream's issuer (GitHub: its API address), the scope of `subject`.
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// Whether the upstream says it checked that the person holds `email`.
    pub email_verified: bool,
    /// Profile claims the upstream gave (`name`, `given_name`, …), cleaned like typed ones.
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// The answer's parts that [`complete`] uses.
pub struct Answer<'a> {
    pub kind: Provider,
    pub settings: &'a ProviderSettings,
    /// The client secret, or Apple's private key (PEM).
    pub secret: &'a SecretString,
    pub redirect_uri: &'a str,
    pub code: &'a str,
    /// Apple's `user` form field (JSON, first sign-in only).
    pub apple_user: Option<&'a str>,
    /// The answer's `iss` parameter, if the upstream sends one (RFC 9207).
    pub iss: Option<&'a str>,
    pub round: &'a Round,
    pub now: DateTime<Utc>,
}

/// Exchanges the code and verifies who signed in.
pub async fn complete(ups: &Upstreams, a: &Answer<'_>) -> Result<Asserted, UpstreamError> {
    if a.kind == Provider::Github {
        return github(ups, a).await;
    }
    let meta = discover(ups, a.kind, a.settings).await?;
    // RFC 9207: an answer that names its issuer must name this one (a mix-up attack sends the
    // browser back with another upstream's code). Multi-tenant templates cannot be compared.
    if let Some(iss) = a.iss
        && !meta.issuer.contains("{tenantid}")
        && iss.trim_end_matches('/') != meta.issuer.trim_end_matches('/')
    {
        return Err(UpstreamError::Token("the answer names another issuer (iss)".into()));
    }
    if a.iss.is_none() && meta.authorization_response_iss_parameter_supported == Some(true) {
        return Err(UpstreamError::Token("the answer does not name its issuer (iss)".into()));
    }
    let apple_secret;
    let (secret, auth) = match a.kind {
        Provider::Apple => {
            let (team, key) = (a.settings.team_id.as_deref(), a.settings.key_id.as_deref());
            let made = super::apple::client_secret(
                a.secret.expose_secret(),
                team.unwrap_or_default(),
                key.unwrap_or_default(),
                &a.settings.client_id,
                &meta.issuer,
                a.now,
            )
            .map_err(|why| UpstreamError::Invalid { url: meta.token_endpoint.clone(), why })?;
            apple_secret = SecretString::from(made);
            (&apple_secret, ClientAuth::Post)
        }
        Provider::Oidc => (a.secret, client_auth(&meta)),
        _ => (a.secret, ClientAuth::Post),
    };
    let tokens = ups
        .exchange(&CodeExchange {
            token_endpoint: &meta.token_endpoint,
            client_id: &a.settings.client_id,
            client_secret: secret,
            auth,
            code: a.code,
            redirect_uri: a.redirect_uri,
            code_verifier: Some(&a.round.verifier),
        })
        .await?;
    let id_token = tokens.id_token.ok_or_else(|| UpstreamError::Token("no id_token in the answer".into()))?;
    let expected = Expected { client_id: &a.settings.client_id, nonce: &a.round.nonce, now: a.now };
    let mut claims = ups.verify_id_token(&meta, &id_token, &expected).await?;
    // Providers that keep end-user claims out of ID tokens of the code flow (OpenID Connect
    // Core §5.4 allows it) give them at UserInfo; only for the same subject (§5.3.2).
    if claims.get("email").is_none()
        && let (Some(url), Some(access)) = (meta.userinfo_endpoint.as_deref(), tokens.access_token.as_deref())
    {
        let info = ups.userinfo(url, access).await?;
        if info["sub"] != claims["sub"] {
            return Err(UpstreamError::Token("userinfo is about another subject".into()));
        }
        if let (Some(into), Some(from)) = (claims.as_object_mut(), info.as_object()) {
            for (k, v) in from {
                into.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    // The scope of `sub`: the issuer itself (a Microsoft multi-tenant template: the tenant's).
    let issuer = if meta.issuer.contains("{tenantid}") {
        claims["iss"].as_str().unwrap_or_default().to_string()
    } else {
        meta.issuer.clone()
    };
    let mut profile = serde_json::Map::new();
    for (field, _) in users::PROFILE_FIELDS {
        if let Some(v) = claims[*field].as_str().and_then(|v| users::clean_profile_value(field, v).ok()) {
            profile.insert(field.to_string(), v.into());
        }
    }
    if let Some(name) = a.apple_user.and_then(apple_name) {
        for (k, v) in name {
            profile.entry(k).or_insert(v.into());
        }
    }
    let email = claims["email"].as_str().and_then(clean_email);
    Ok(Asserted {
        issuer,
        subject: claims["sub"].as_str().unwrap_or_default().to_string(),
        email_verified: email.is_some() && verified(a.kind, &claims),
        email,
        profile,
    })
}

/// An address as given, if it is one (anything else is no address).
fn clean_email(raw: &str) -> Option<String> {
    users::Email::parse(raw).ok().map(|_| raw.to_string())
}

/// Whether the ID token vouches for its `email`. Microsoft's `email` is whatever a tenant
/// administrator typed: it counts only with `xms_edov` (domain owner verified) or an explicit
/// `email_verified` (the "nOAuth" takeover class).
fn verified(kind: Provider, claims: &serde_json::Value) -> bool {
    let truthy = |v: &serde_json::Value| v.as_bool() == Some(true) || v.as_str() == Some("true");
    match kind {
        Provider::Microsoft => truthy(&claims["email_verified"]) || truthy(&claims["xms_edov"]),
        _ => truthy(&claims["email_verified"]),
    }
}

/// `client_secret_basic` unless the upstream supports only `client_secret_post`.
fn client_auth(meta: &Metadata) -> ClientAuth {
    match &meta.token_endpoint_auth_methods_supported {
        Some(m)
            if !m.iter().any(|a| a == "client_secret_basic")
                && m.iter().any(|a| a == "client_secret_post") =>
        {
            ClientAuth::Post
        }
        _ => ClientAuth::Basic,
    }
}

/// The name in Apple's `user` field: `{"name": {"firstName": …, "lastName": …}, …}`.
fn apple_name(raw: &str) -> Option<Vec<(String, String)>> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let clean = |field: &str, key: &str| {
        v["name"][key]
            .as_str()
            .and_then(|s| users::clean_profile_value(field, s).ok())
            .filter(|s| !s.is_empty())
    };
    let given = clean("given_name", "firstName");
    let family = clean("family_name", "lastName");
    let mut out = Vec::new();
    let full = [given.as_deref(), family.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    if !full.is_empty() {
        out.push(("name".to_string(), full));
    }
    out.extend(given.map(|g| ("given_name".to_string(), g)));
    out.extend(family.map(|f| ("family_name".to_string(), f)));
    Some(out)
}

async fn github(ups: &Upstreams, a: &Answer<'_>) -> Result<Asserted, UpstreamError> {
    let base = github_base(a.settings);
    let token_endpoint = format!("{base}/login/oauth/access_token");
    let tokens = ups
        .exchange(&CodeExchange {
            token_endpoint: &token_endpoint,
            client_id: &a.settings.client_id,
            client_secret: a.secret,
            auth: ClientAuth::Post,
            code: a.code,
            redirect_uri: a.redirect_uri,
            code_verifier: Some(&a.round.verifier),
        })
        .await?;
    let access = tokens.access_token.ok_or_else(|| UpstreamError::Invalid {
        url: token_endpoint.clone(),
        why: "no access_token in the answer".into(),
    })?;
    let api = github_api(a.settings);
    let user = ups.github_user(api, &access).await?;
    let mut profile = serde_json::Map::new();
    if let Some(name) = user.name.as_deref().and_then(|n| users::clean_profile_value("name", n).ok()) {
        profile.insert("name".into(), name.into());
    }
    if let Ok(nick) = users::clean_profile_value("nickname", &user.login) {
        profile.insert("nickname".into(), nick.into());
    }
    Ok(Asserted {
        issuer: api.to_string(),
        subject: user.id.to_string(),
        email: user.verified_email.as_deref().and_then(clean_email),
        email_verified: user.verified_email.is_some(),
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_names_and_verification() {
        let name = apple_name(r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@x.example"}"#);
        let name = name.expect("parsed");
        assert!(name.contains(&("name".into(), "Ada Lovelace".into())));
        assert!(name.contains(&("family_name".into(), "Lovelace".into())));
        assert_eq!(apple_name("not json"), None);

        let ms = serde_json::json!({"email": "a@x.example"});
        assert!(!verified(Provider::Microsoft, &ms));
        assert!(verified(Provider::Microsoft, &serde_json::json!({"xms_edov": true})));
        assert!(verified(Provider::Apple, &serde_json::json!({"email_verified": "true"})));
        assert!(!verified(Provider::Google, &serde_json::json!({"email_verified": "yes"})));
    }

    #[test]
    fn a_round_opens_only_for_its_app_and_in_time() {
        let secrets = SecretBox::new(crate::crypto::MasterKey::generate());
        let now = Utc::now();
        let round = Round {
            provider: Provider::Google,
            state: "s".repeat(32),
            nonce: "n".into(),
            verifier: "v".into(),
            request: String::new(),
            link: None,
            expires: now.timestamp() + 10,
        };
        let app = Uuid::now_v7();
        let sealed = round.seal(&secrets, app);
        assert!(Round::open(&secrets, app, &sealed, now).is_some_and(|r| r.state_matches(&"s".repeat(32))));
        assert!(Round::open(&secrets, Uuid::now_v7(), &sealed, now).is_none());
        assert!(Round::open(&secrets, app, &sealed, now + chrono::Duration::seconds(11)).is_none());
        assert!(!round.state_matches("s"));
    }
}
