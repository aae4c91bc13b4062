//! Token issuance, introspection and revocation, independent of HTTP.

use std::sync::Arc;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use super::issuer::Issuer;
use crate::clients::{Client, GrantType, Scope};
use crate::crypto::tokens;
use crate::on_db;
use crate::store::Ts;

/// RFC 9068 access-token claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// `service` for client_credentials tokens (no end user).
    pub token_type: String,
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// Resolves requested scopes against what the client may have (RFC 6749 §3.3): absent means
/// everything registered; anything unregistered is `invalid_scope`.
pub fn grant_scopes(client: &Client, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.iter().map(|s| s.as_str().to_string()).collect());
    };
    let mut out: Vec<String> = Vec::new();
    for token in requested.split(' ').filter(|s| !s.is_empty()) {
        let scope = Scope::try_from(token.to_string()).map_err(OAuthError::invalid_scope)?;
        if !client.scopes.contains(&scope) {
            return Err(OAuthError::invalid_scope(format!("scope {token:?} is not allowed for this client")));
        }
        if !out.iter().any(|s| s == token) {
            out.push(token.to_string());
        }
    }
    Ok(out)
}

/// `client_credentials` (RFC 6749 §4.4): a service token whose subject is the client.
pub async fn client_credentials(
    issuer: &Arc<Issuer>,
    client: &Client,
    requested_scope: Option<&str>,
    now: Ts,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client("client_credentials is not allowed for this client"));
    }
    let scope = grant_scopes(client, requested_scope)?.join(" ");
    let ttl = issuer.app.tokens.access_token_ttl_seconds;
    let claims = AccessClaims {
        iss: issuer.url.clone(),
        sub: client.client_id.clone(),
        aud: issuer.url.clone(),
        exp: (now.0 + Duration::seconds(i64::from(ttl))).timestamp(),
        iat: now.unix(),
        jti: tokens::new_id(),
        client_id: client.client_id.clone(),
        scope: scope.clone(),
        token_type: "service".into(),
    };
    let access_token = sign(issuer, claims).await?;
    metrics::counter!("latchkey_tokens_issued_total", "grant_type" => "client_credentials").increment(1);
    Ok(TokenResponse { access_token, token_type: "Bearer", expires_in: ttl, scope })
}

/// Signs on the blocking pool: an RSA signature is a few hundred microseconds of CPU, too long
/// to hold an async worker.
async fn sign(issuer: &Arc<Issuer>, claims: AccessClaims) -> Result<String, OAuthError> {
    let issuer = issuer.clone();
    let res = tokio::task::spawn_blocking(move || issuer.signer.sign("at+jwt", &claims)).await;
    match res {
        Ok(Ok(token)) => Ok(token),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "token signing failed");
            Err(OAuthError::server_error())
        }
        Err(err) => {
            tracing::error!(error = %err, "token signing task failed");
            Err(OAuthError::server_error())
        }
    }
}

/// Verifies an access token issued by this issuer: signature by a published key, `typ`,
/// `iss`, and expiry at `now`. Revocation is checked separately.
pub fn verify_access_token(issuer: &Issuer, token: &str, now: Ts) -> Option<AccessClaims> {
    if token.len() > 8192 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")) {
        return None;
    }
    let (alg, key) = issuer.verifiers.get(header.kid.as_deref()?)?;
    let mut validation = jsonwebtoken::Validation::new(alg.jwt());
    validation.set_issuer(&[&issuer.url]);
    validation.validate_aud = false;
    // Expiry is checked against the injected clock below.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).ok()?;
    (data.claims.exp > now.unix()).then_some(data.claims)
}

pub async fn is_revoked(issuer: &Issuer, jti: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM revoked_tokens WHERE jti = $1";
    let found: Option<i32> =
        on_db!(&issuer.identity, p => sqlx::query_scalar(sql).bind(jti).fetch_optional(p).await)?;
    Ok(found.is_some())
}

/// RFC 7662 response.
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `service` or `user`: who the token speaks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latchkey_subject_type: Option<String>,
}

pub async fn introspect(issuer: &Issuer, token: &str, now: Ts) -> Result<Introspection, sqlx::Error> {
    let Some(claims) = verify_access_token(issuer, token, now) else {
        return Ok(Introspection::default());
    };
    if is_revoked(issuer, &claims.jti).await? {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        token_type: Some("Bearer"),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        jti: Some(claims.jti),
        latchkey_subject_type: Some(claims.token_type),
    })
}

/// RFC 7009: revokes an access token of `client` until it expires. Tokens that are invalid,
/// expired or belong to another client are ignored, as §2.2 asks.
pub async fn revoke(issuer: &Issuer, client: &Client, token: &str, now: Ts) -> Result<bool, sqlx::Error> {
    let Some(claims) = verify_access_token(issuer, token, now) else { return Ok(false) };
    if claims.client_id != client.client_id {
        return Ok(false);
    }
    let expires = Ts::new(chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now.0));
    let sql = "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
    on_db!(&issuer.identity, p => sqlx::query(sql).bind(&claims.jti).bind(expires).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(true)
}
