//! What Latchkey learns from upstream identity providers (SPEC §7a): their discovery documents
//! (OpenID Connect Discovery 1.0) and signing keys (JWKS), fetched with bounded timeouts and
//! sizes, cached for as long as their `Cache-Control` says (within bounds; an hour without
//! one), and the keys fetched again when a token names a `kid` the cached set lacks.
//!
//! One [`Upstreams`] serves every app: entries are keyed by URL, so apps that use the same
//! upstream (Google, say) share its documents, and an idle app holds nothing.

pub mod apple;
pub mod exchange;
pub mod flow;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Deserialize;
use url::Url;

use crate::apps::model::is_loopback;
use crate::clock::Clock;

/// The largest document accepted from an upstream.
const MAX_BODY: usize = 256 * 1024;
/// Cache lifetime without `Cache-Control: max-age`, and the bounds of one that has it.
const DEFAULT_TTL: i64 = 3600;
const MIN_TTL: i64 = 60;
const MAX_TTL: i64 = 86_400;
/// A key set is fetched again for an unknown `kid` at most this often (a token with a made-up
/// `kid` must not make every request a fetch).
const REFETCH_EVERY: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {why}")]
    Invalid { url: String, why: String },
    #[error("no key {kid:?} in {url}")]
    UnknownKey { url: String, kid: String },
    /// What the upstream said does not hold: its ID token (signature, issuer, audience, time,
    /// nonce), a missing one, the answer's `iss`, or UserInfo about another subject.
    #[error("answer refused: {0}")]
    Token(String),
}

/// What an upstream ID token must say to be accepted.
pub struct Expected<'a> {
    /// Our client id at the upstream: the audience.
    pub client_id: &'a str,
    /// The `nonce` sent with the authorization request.
    pub nonce: &'a str,
    pub now: DateTime<Utc>,
}

/// How far an upstream's clock may be from ours.
const LEEWAY: i64 = 60;

/// The parts of a discovery document a sign-in uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// How the token endpoint takes our secret (absent: `client_secret_basic`, Discovery §3).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the authorization response always names the issuer.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

struct Cached<T> {
    value: Arc<T>,
    fetched_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// The discovery documents and key sets of upstream providers, cached.
pub struct Upstreams {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    metadata: Mutex<HashMap<String, Cached<Metadata>>>,
    keys: Mutex<HashMap<String, Cached<Vec<serde_json::Value>>>>,
}

impl Upstreams {
    /// `wait`: the longest one fetch may take, connection included (connecting alone gets at
    /// most half of it).
    pub fn new(clock: Arc<dyn Clock>, wait: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(wait / 2)
            .timeout(wait)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Latchkey/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Upstreams { http, clock, metadata: Mutex::new(HashMap::new()), keys: Mutex::new(HashMap::new()) })
    }

    /// The discovery document of `issuer`, whose `issuer` must be `issuer` itself (Discovery
    /// §4.3). A Microsoft multi-tenant issuer (`…/common/v2.0`, `…/organizations/v2.0`,
    /// `…/consumers/v2.0`) publishes the template `…/{tenantid}/v2.0`, accepted for it.
    pub async fn metadata(&self, issuer: &str) -> Result<Arc<Metadata>, UpstreamError> {
        let issuer = issuer.trim_end_matches('/');
        let now = self.clock.now();
        if let Some(c) = self.metadata.lock().get(issuer).filter(|c| c.expires_at > now) {
            return Ok(c.value.clone());
        }
        let url = format!("{issuer}/.well-known/openid-configuration");
        let (body, ttl) = self.fetch(&url).await?;
        let doc: Metadata = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: url.clone(),
            why: format!("not a discovery document: {e}"),
        })?;
        if !issuer_matches(issuer, &doc.issuer) {
            return Err(UpstreamError::Invalid {
                url,
                why: format!("its issuer is {:?}, not {issuer:?}", doc.issuer),
            });
        }
        // The endpoints it names get our client secret and are fetched from here: https only
        // (http only for an upstream that is itself on loopback, as in tests).
        let loopback = Url::parse(issuer).is_ok_and(|u| u.scheme() == "http" && is_loopback(&u));
        for (name, endpoint) in [
            ("authorization_endpoint", Some(&doc.authorization_endpoint)),
            ("token_endpoint", Some(&doc.token_endpoint)),
            ("jwks_uri", Some(&doc.jwks_uri)),
            ("userinfo_endpoint", doc.userinfo_endpoint.as_ref()),
        ] {
            let Some(endpoint) = endpoint else { continue };
            let ok = Url::parse(endpoint).is_ok_and(|u| {
                u.scheme() == "https" || (loopback && u.scheme() == "http" && is_loopback(&u))
            });
            if !ok {
                return Err(UpstreamError::Invalid { url, why: format!("its {name} is not an https URL") });
            }
        }
        let value = Arc::new(doc);
        let entry = Cached { value: value.clone(), fetched_at: now, expires_at: now + ttl };
        self.metadata.lock().insert(issuer.to_string(), entry);
        Ok(value)
    }

    /// The JWK with `kid` from the key set at `jwks_uri`: from the cache, or fetched when the
    /// cache has expired or lacks `kid` (at most every [`REFETCH_EVERY`] seconds).
    pub async fn key(&self, jwks_uri: &str, kid: &str) -> Result<serde_json::Value, UpstreamError> {
        let now = self.clock.now();
        let cached = self.keys.lock().get(jwks_uri).map(|c| (c.value.clone(), c.fetched_at, c.expires_at));
        if let Some((keys, fetched_at, expires_at)) = &cached {
            let found = find_key(keys, kid);
            let may_refetch = now - *fetched_at >= chrono::Duration::seconds(REFETCH_EVERY);
            match found {
                Some(k) if *expires_at > now => return Ok(k),
                None if !may_refetch => {
                    return Err(UpstreamError::UnknownKey { url: jwks_uri.into(), kid: kid.into() });
                }
                _ => {}
            }
        }
        let (body, ttl) = self.fetch(jwks_uri).await?;
        #[derive(Deserialize)]
        struct KeySet {
            keys: Vec<serde_json::Value>,
        }
        let set: KeySet = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: jwks_uri.into(),
            why: format!("not a JWK set: {e}"),
        })?;
        let keys = Arc::new(set.keys);
        let entry = Cached { value: keys.clone(), fetched_at: now, expires_at: now + ttl };
        self.keys.lock().insert(jwks_uri.to_string(), entry);
        find_key(&keys, kid)
            .ok_or_else(|| UpstreamError::UnknownKey { url: jwks_uri.into(), kid: kid.into() })
    }

    /// GETs `url` as JSON: the body (at most [`MAX_BODY`]) and how long it may be cached.
    async fn fetch(&self, url: &str) -> Result<(Vec<u8>, chrono::Duration), UpstreamError> {
        let res =
            self.send_ok(url, self.http.get(url).header(reqwest::header::ACCEPT, "application/json")).await?;
        let ttl = max_age(res.headers()).unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL);
        let body = self.read_capped(url, res).await?;
        Ok((body, chrono::Duration::seconds(ttl)))
    }

    /// Sends `req` (to `url`); an answer other than 2xx is `Status`.
    async fn send_ok(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let res = req.send().await.map_err(|e| self.unreachable(url, e))?;
        if !res.status().is_success() {
            return Err(UpstreamError::Status { url: url.into(), status: res.status().as_u16() });
        }
        Ok(res)
    }

    /// The body of `res`, refused beyond [`MAX_BODY`] bytes.
    async fn read_capped(&self, url: &str, mut res: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| self.unreachable(url, e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(UpstreamError::Invalid {
                    url: url.into(),
                    why: format!("larger than {MAX_BODY} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn unreachable(&self, url: &str, e: reqwest::Error) -> UpstreamError {
        UpstreamError::Unreachable { url: url.into(), why: describe(e) }
    }
}

impl Upstreams {
    /// Verifies an upstream ID token (OpenID Connect Core §3.1.3.7): signed by a key of the
    /// upstream's JWKS with the algorithm that key is for (RS256, ES256 or EdDSA; never `none`
    /// or a MAC), `iss` the upstream's issuer, `aud` holding our client id (and `azp` equal to
    /// it when present or when there are several audiences), not expired, `nonce` ours, and a
    /// `sub`. Returns the claims.
    pub async fn verify_id_token(
        &self,
        meta: &Metadata,
        token: &str,
        expected: &Expected<'_>,
    ) -> Result<serde_json::Value, UpstreamError> {
        use crate::keys::SigningAlg;
        use crate::keys::material;
        let refuse = |why: &str| UpstreamError::Token(why.to_string());
        let (alg_name, kid) =
            material::unverified_alg_kid(token).ok_or_else(|| refuse("not a compact JWS"))?;
        let alg = SigningAlg::parse(&alg_name).ok_or_else(|| refuse("unsupported or missing alg"))?;
        let kid = kid.ok_or_else(|| refuse("no kid in the header"))?;
        let jwk = self.key(&meta.jwks_uri, &kid).await?;
        if jwk.get("alg").and_then(|a| a.as_str()).is_some_and(|a| a != alg.as_str()) {
            return Err(refuse("the key is for another algorithm"));
        }
        if jwk.get("use").and_then(|u| u.as_str()).is_some_and(|u| u != "sig") {
            return Err(refuse("the key is not a signing key"));
        }
        let key = material::public_key(&jwk).map_err(|e| refuse(&e.to_string()))?;
        let verified = material::verify_foreign::<serde_json::Value>(token, alg, &key)
            .ok_or_else(|| refuse("bad signature"))?;
        let claims = verified.claims;
        let now = expected.now.timestamp();
        let exp = verified.exp.ok_or_else(|| refuse("no exp"))?;
        if exp + LEEWAY <= now {
            return Err(refuse("expired"));
        }
        if verified.iat.is_some_and(|iat| iat > now + LEEWAY) {
            return Err(refuse("issued in the future"));
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + LEEWAY) {
            return Err(refuse("not valid yet (nbf)"));
        }
        let iss = claims["iss"].as_str().unwrap_or_default();
        let issuer_ok = match meta.issuer.contains("{tenantid}") {
            // Microsoft multi-tenant: the token names its tenant, and the issuer must be the
            // template filled in with it.
            true => claims["tid"]
                .as_str()
                .is_some_and(|tid| !tid.is_empty() && iss == meta.issuer.replace("{tenantid}", tid)),
            // Google documents both spellings of its issuer.
            false => {
                iss == meta.issuer
                    || (meta.issuer == "https://accounts.google.com" && iss == "accounts.google.com")
            }
        };
        if !issuer_ok {
            return Err(refuse("wrong issuer"));
        }
        let audiences: Vec<&str> = match &claims["aud"] {
            serde_json::Value::String(a) => vec![a.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&expected.client_id) {
            return Err(refuse("not for this client (aud)"));
        }
        let azp = claims["azp"].as_str();
        if (audiences.len() > 1 || azp.is_some()) && azp != Some(expected.client_id) {
            return Err(refuse("not for this client (azp)"));
        }
        if claims["nonce"].as_str() != Some(expected.nonce) {
            return Err(refuse("wrong nonce"));
        }
        if claims["sub"].as_str().is_none_or(str::is_empty) {
            return Err(refuse("no sub"));
        }
        Ok(claims)
    }
}

fn find_key(keys: &[serde_json::Value], kid: &str) -> Option<serde_json::Value> {
    keys.iter().find(|k| k["kid"] == kid).cloned()
}

/// `max-age` of a `Cache-Control` header (`no-store`/`no-cache`: 0, clamped up by the caller).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        let (k, v) = d.split_once('=')?;
        k.trim().eq_ignore_ascii_case("max-age").then(|| v.trim().trim_matches('"').parse().ok()).flatten()
    })
}

/// The fixed tenant of Microsoft personal accounts, which the `consumers` issuer publishes.
const MICROSOFT_CONSUMERS: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

fn issuer_matches(configured: &str, published: &str) -> bool {
    let configured = configured.trim_end_matches('/');
    if configured == published.trim_end_matches('/') {
        return true;
    }
    let microsoft = "https://login.microsoftonline.com/";
    if configured == format!("{microsoft}consumers/v2.0") {
        return published == format!("{microsoft}{MICROSOFT_CONSUMERS}/v2.0");
    }
    ["common", "organizations"].iter().any(|t| {
        configured.starts_with("https://login.microsoftonline.com/")
            && configured.ends_with(&format!("/{t}/v2.0"))
            && published == configured.replace(&format!("/{t}/v2.0"), "/{tenantid}/v2.0")
    })
}

/// Why a request failed, without the URL's query (reqwest's text repeats the URL).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_and_issuers() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=19971, must-revalidate".parse().expect("value"),
        );
        assert_eq!(max_age(&h), Some(19971));
        h.insert(reqwest::header::CACHE_CONTROL, "no-store".parse().expect("value"));
        assert_eq!(max_age(&h), Some(0));
        assert_eq!(max_age(&reqwest::header::HeaderMap::new()), None);

        assert!(issuer_matches("https://sso.example/", "https://sso.example"));
        assert!(!issuer_matches("https://sso.example", "https://evil.example"));
        let common = "https://login.microsoftonline.com/common/v2.0";
        assert!(issuer_matches(common, "https://login.microsoftonline.com/{tenantid}/v2.0"));
        let tenant = "https://login.microsoftonline.com/contoso.example/v2.0";
        assert!(!issuer_matches(tenant, "https://login.microsoftonline.com/{tenantid}/v2.0"));
        let consumers = "https://login.microsoftonline.com/consumers/v2.0";
        assert!(issuer_matches(
            consumers,
            &format!("https://login.microsoftonline.com/{MICROSOFT_CONSUMERS}/v2.0")
        ));
        assert!(!issuer_matches(consumers, "https://login.microsoftonline.com/{tenantid}/v2.0"));
    }
}
