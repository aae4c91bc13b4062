//! Token issuance, introspection and revocation, independent of HTTP.

use std::sync::Arc;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use crate::clients::{Client, GrantType, Scope};
use crate::crypto::tokens;
use crate::keys;
use crate::store::Ts;
use crate::tenant::Issuer;

/// RFC 9068 access-token claims (besides `iat` and `exp`, which the JWT layer carries).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// `service` for client_credentials tokens (no end user), `user` otherwise.
    pub token_type: String,
    /// The browser session the token came from (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's token version when issued (user tokens); `logout-all` moves it on, which
    /// invalidates every outstanding access token of the user at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tv: Option<i64>,
    /// The holder's roles when the token was issued (SPEC §10).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The union of those roles' permissions; left out (with `permissions_omitted`) when there
    /// are more than `roles::MAX_TOKEN_PERMISSIONS`: ask introspection or userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permissions_omitted: bool,
    /// The organization the token is for, and the user's roles there (SPEC §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_roles: Option<Vec<String>>,
}

/// What a token is for beyond its scope: an organization (its id) and a resource (RFC 8707).
#[derive(Debug, Default)]
pub struct Authz {
    pub organization: Option<uuid::Uuid>,
    pub resource: Option<crate::roles::resources::Resource>,
}

/// The resource a token request gets: the one it names, which must be the grant's if the grant
/// began with one, else the grant's; unknown ones are `invalid_target`.
pub async fn token_resource(
    issuer: &Issuer,
    asked: Option<&str>,
    granted: Option<&str>,
) -> Result<Option<crate::roles::resources::Resource>, OAuthError> {
    let wanted = match (asked, granted) {
        (Some(a), Some(g)) if a != g => {
            return Err(OAuthError::invalid_target("the resource is not the one this grant is for"));
        }
        (Some(a), _) => Some(a),
        (None, g) => g,
    };
    let Some(identifier) = wanted else { return Ok(None) };
    if identifier.len() > 512 {
        return Err(OAuthError::invalid_target("unknown resource"));
    }
    crate::roles::resources::by_identifier(&issuer.identity, identifier)
        .await
        .map_err(|e| OAuthError::internal(issuer.app.slug.as_str(), "resource", &e))?
        .map(Some)
        .ok_or_else(|| OAuthError::invalid_target("unknown resource"))
}

/// What a holder is granted now: its app-wide roles (definitions and client grants from the
/// issuer's role book; a user's role names from the store, one query), merged, for a user and
/// `org`, with that organization's (one more query). The organization roles are `None` when the
/// user is not a member.
async fn resolve(
    issuer: &Issuer,
    holder: crate::roles::repo::Holder<'_>,
    org: Option<uuid::Uuid>,
) -> Result<(crate::roles::Grants, Option<Vec<String>>), sqlx::Error> {
    use crate::roles::repo::Holder;
    let mut grants = match holder {
        Holder::Client(c) => {
            issuer.roles.grants(issuer.roles.clients.get(c).map(Vec::as_slice).unwrap_or_default())
        }
        Holder::User(_) => {
            issuer.roles.grants(&crate::roles::repo::roles_of(&issuer.identity, holder).await?)
        }
    };
    let mut org_roles = None;
    if let (Some(org), Holder::User(user)) = (org, holder)
        && let Some(names) = crate::roles::orgs::member_roles(&issuer.identity, org, user).await?
    {
        let there = issuer.roles.grants(&names);
        grants.permissions.extend(there.permissions);
        grants.permissions.sort();
        grants.permissions.dedup();
        org_roles = Some(there.roles);
    }
    Ok((grants, org_roles))
}

/// What a holder's token carries: [`resolve`]d for the organization of `authz`, cut to the
/// resource's permissions; and the roles in the organization. `invalid_grant` for a user who is
/// no longer a member.
pub async fn holder_grants(
    issuer: &Issuer,
    holder: crate::roles::repo::Holder<'_>,
    authz: &Authz,
) -> Result<(crate::roles::Grants, Option<Vec<String>>), OAuthError> {
    let (mut grants, org_roles) = resolve(issuer, holder, authz.organization)
        .await
        .map_err(|e| OAuthError::internal(issuer.app.slug.as_str(), "roles", &e))?;
    if authz.organization.is_some() && org_roles.is_none() {
        return Err(OAuthError::invalid_grant("no longer a member of the organization"));
    }
    if let Some(r) = &authz.resource {
        grants.permissions = crate::roles::resources::cut(&grants.permissions, &r.permissions.0);
    }
    Ok((grants, org_roles))
}

impl AccessClaims {
    /// Sets the audience and organization claims for `authz`.
    pub fn for_authz(mut self, authz: &Authz, org_roles: Option<Vec<String>>) -> Self {
        if let Some(r) = &authz.resource {
            self.aud = r.identifier.clone();
        }
        self.org_id = authz.organization.map(|o| o.to_string());
        self.org_roles = org_roles;
        self
    }
}

impl AccessClaims {
    /// Sets the role claims from what the holder's roles grant.
    pub fn with_grants(mut self, grants: &crate::roles::Grants) -> Self {
        self.roles = grants.roles.clone();
        self.permissions = grants.token_permissions();
        self.permissions_omitted = self.permissions.is_none();
        self
    }
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Resolves requested scopes against what the client may have (RFC 6749 §3.3): absent means
/// everything registered; anything unregistered is `invalid_scope`.
pub fn grant_scopes(client: &Client, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.iter().map(|s| s.as_str().to_string()).collect());
    };
    let mut out: Vec<String> = Vec::new();
    for token in Scope::split(requested) {
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
    resource: Option<&str>,
    now: Ts,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client("client_credentials is not allowed for this client"));
    }
    let scope = grant_scopes(client, requested_scope)?.join(" ");
    let ttl = issuer.app.tokens.access_token_ttl_seconds;
    let holder = crate::roles::repo::Holder::Client(&client.client_id.0);
    let authz = Authz { organization: None, resource: token_resource(issuer, resource, None).await? };
    let (grants, _) = holder_grants(issuer, holder, &authz).await?;
    let claims = AccessClaims {
        iss: issuer.url.clone(),
        sub: client.client_id.to_string(),
        aud: issuer.url.clone(),
        jti: tokens::new_id(),
        client_id: client.client_id.to_string(),
        scope: scope.clone(),
        token_type: "service".into(),
        sid: None,
        tv: None,
        ..AccessClaims::default()
    }
    .with_grants(&grants)
    .for_authz(&authz, None);
    let exp = (now.0 + Duration::seconds(i64::from(ttl))).timestamp();
    let access_token = sign(issuer, "at+jwt", claims, now.unix(), exp).await?;
    metrics::counter!("latchkey_tokens_issued_total", "grant_type" => "client_credentials").increment(1);
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        id_token: None,
        refresh_token: None,
    })
}

/// Signs on the blocking pool: an RSA signature is a few hundred microseconds of CPU, too long
/// to hold an async worker.
pub(super) async fn sign<T: Serialize + Send + 'static>(
    issuer: &Arc<Issuer>,
    typ: &'static str,
    claims: T,
    iat: i64,
    exp: i64,
) -> Result<String, OAuthError> {
    let issuer = issuer.clone();
    let res = tokio::task::spawn_blocking(move || issuer.signer.sign(typ, &claims, iat, exp)).await;
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

/// An access token that verified: its claims and lifetime.
pub struct VerifiedAccess {
    pub claims: AccessClaims,
    pub iat: i64,
    pub exp: i64,
}

/// Verifies an access token issued by this issuer: signature by a published key of the
/// expected algorithm, `typ` `at+jwt` (RFC 9068 §4), `iss`, and expiry at `now`. Revocation is
/// checked separately.
pub fn verify_access_token(issuer: &Issuer, token: &str, now: Ts) -> Option<VerifiedAccess> {
    if token.len() > 8192 {
        return None;
    }
    let kid = keys::material::unverified_kid(token)?;
    let (alg, key) = issuer.verifiers.get(kid.as_str())?;
    let v = keys::material::verify::<AccessClaims>(token, *alg, key, "at+jwt")?;
    let (iat, exp) = (v.iat?, v.exp?);
    (v.claims.iss == issuer.url && exp > now.unix()).then_some(VerifiedAccess { claims: v.claims, iat, exp })
}

/// Why a presented access token could not be checked (not why it is invalid: that is an answer).
#[derive(Debug, thiserror::Error)]
pub enum TokenCheckError {
    #[error(transparent)]
    Grant(#[from] crate::grants::GrantError),
    #[error(transparent)]
    Session(#[from] crate::sessions::SessionError),
    #[error(transparent)]
    User(#[from] crate::users::UserError),
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
    /// The roles and permissions the token carries (all of them, even where the token had to
    /// leave the permissions out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

pub async fn introspect(issuer: &Issuer, token: &str, now: Ts) -> Result<Introspection, TokenCheckError> {
    let Some(VerifiedAccess { claims, iat, exp }) = verify_access_token(issuer, token, now) else {
        return Ok(Introspection::default());
    };
    if !still_valid(issuer, &claims, now).await? {
        return Ok(Introspection::default());
    }
    let permissions = match (&claims.permissions, claims.permissions_omitted) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(current_grants(issuer, &claims).await?.permissions),
        (None, false) => None,
    };
    Ok(Introspection {
        roles: Some(claims.roles.clone()),
        permissions,
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        token_type: Some("Bearer"),
        exp: Some(exp),
        iat: Some(iat),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        jti: Some(claims.jti),
        latchkey_subject_type: Some(claims.token_type),
    })
}

/// RFC 7009: revokes an access token of `client` until it expires. Tokens that are invalid,
/// expired or belong to another client are ignored, as §2.2 asks.
pub async fn revoke(issuer: &Issuer, client: &Client, token: &str, now: Ts) -> Result<bool, TokenCheckError> {
    let Some(VerifiedAccess { claims, exp, .. }) = verify_access_token(issuer, token, now) else {
        return Ok(false);
    };
    if claims.client_id != client.client_id.0 {
        return Ok(false);
    }
    let expires = Ts::new(chrono::DateTime::from_timestamp(exp, 0).unwrap_or(now.0));
    crate::grants::revoke_jti(&issuer.identity, &claims.jti, expires).await?;
    Ok(true)
}

/// What the token's holder is granted now, as the token would carry it (for tokens that had to
/// leave the permissions out): app-wide, the organization's, cut to the resource.
async fn current_grants(
    issuer: &Issuer,
    claims: &AccessClaims,
) -> Result<crate::roles::Grants, TokenCheckError> {
    use crate::roles::repo::Holder;
    let store = |e: sqlx::Error| TokenCheckError::User(crate::users::UserError::from(e));
    let user = claims.sub.parse::<crate::users::UserId>().ok().filter(|_| claims.token_type == "user");
    let holder = match user {
        Some(id) => Holder::User(id),
        None => Holder::Client(&claims.client_id),
    };
    let org = claims.org_id.as_deref().and_then(|o| uuid::Uuid::parse_str(o).ok());
    let (mut grants, _) = resolve(issuer, holder, org).await.map_err(store)?;
    if claims.aud != issuer.url {
        // Fails closed: a token for a resource that is gone (or renamed) gets no permissions.
        let defined =
            crate::roles::resources::by_identifier(&issuer.identity, &claims.aud).await.map_err(store)?;
        grants.permissions = match defined {
            Some(r) => crate::roles::resources::cut(&grants.permissions, &r.permissions.0),
            None => Vec::new(),
        };
    }
    Ok(grants)
}

/// Revocation and, for user tokens, the session they came from.
async fn still_valid(issuer: &Issuer, claims: &AccessClaims, now: Ts) -> Result<bool, TokenCheckError> {
    if crate::grants::is_revoked(&issuer.identity, &claims.jti).await? {
        return Ok(false);
    }
    match &claims.sid {
        Some(sid) => {
            let live = crate::sessions::is_live_for_token(
                &issuer.identity,
                sid,
                claims.tv.unwrap_or(0),
                &issuer.app.policy.session,
                now,
            )
            .await?;
            Ok(live)
        }
        None => Ok(claims.token_type == "service"),
    }
}

/// The userinfo claims for a live user token, or `None` if the token is not (or no longer) good.
pub async fn userinfo(
    issuer: &Issuer,
    token: &str,
    now: Ts,
) -> Result<Option<serde_json::Value>, TokenCheckError> {
    let Some(VerifiedAccess { claims, .. }) = verify_access_token(issuer, token, now) else {
        return Ok(None);
    };
    if claims.token_type != "user" || !still_valid(issuer, &claims, now).await? {
        return Ok(None);
    }
    let Ok(id) = claims.sub.parse::<crate::users::UserId>() else { return Ok(None) };
    let Some(user) = crate::users::get(&issuer.identity, id).await? else { return Ok(None) };
    let scopes: Vec<&str> = Scope::split(&claims.scope).collect();
    let mut out = serde_json::json!({ "sub": user.id.to_string() });
    if scopes.contains(&"email") {
        out["email"] = serde_json::json!(user.email);
        out["email_verified"] = serde_json::json!(user.email_verified);
    }
    if let serde_json::Value::Object(m) = &mut out {
        m.extend(user.scoped_claims(&scopes));
    }
    if scopes.contains(&"roles") {
        // What the token stands for now: its organization's permissions merged, its resource's cut.
        let grants = current_grants(issuer, &claims).await?;
        out["roles"] = serde_json::json!(grants.roles);
        out["permissions"] = serde_json::json!(grants.permissions);
        let org = claims.org_id.as_deref().and_then(|o| uuid::Uuid::parse_str(o).ok());
        if let Some(org) = org {
            let there = crate::roles::orgs::member_roles(&issuer.identity, org, user.id)
                .await
                .map_err(crate::users::UserError::from)?;
            out["org_id"] = serde_json::json!(org.to_string());
            out["org_roles"] = serde_json::json!(there.unwrap_or_default());
        }
    }
    Ok(Some(out))
}
