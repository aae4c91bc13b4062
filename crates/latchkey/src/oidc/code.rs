//! The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3) and the
//! ID token it returns.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::error::OAuthError;
use super::service::{AccessClaims, Authz, TokenResponse, holder_grants, token_resource};
use crate::clients::{Client, GrantType, Scope};
use crate::crypto::tokens;
use crate::grants::{self, codes, refresh};
use crate::store::Ts;
use crate::tenant::Issuer;
use crate::users::{UserId, UserStatus};
use crate::web::form::Form;
use crate::{sessions, users};

/// OIDC Core §2 ID token claims (besides `iat` and `exp`).
#[derive(Serialize)]
struct IdClaims {
    iss: String,
    sub: String,
    aud: String,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    sid: String,
    amr: Vec<String>,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    /// Profile and phone claims by scope.
    #[serde(flatten)]
    profile: serde_json::Map<String, serde_json::Value>,
    /// With scope `roles`: the user's roles, and the organization's (SPEC §10).
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_roles: Option<Vec<String>>,
}

/// RFC 7636 §4.1: 43–128 characters of [A-Z a-z 0-9 - . _ ~].
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

/// OIDC Core §3.1.3.6: left half of SHA-256 of the access token, base64url.
fn at_hash(access_token: &str) -> String {
    let d = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

pub async fn exchange(
    issuer: &Arc<Issuer>,
    client: &Client,
    form: &Form,
    now: Ts,
) -> Result<TokenResponse, OAuthError> {
    let db = &issuer.identity;
    let internal = |e: &(dyn std::error::Error + 'static)| {
        OAuthError::internal(issuer.app.slug.as_str(), "code exchange", e)
    };
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(OAuthError::unauthorized_client("authorization_code is not allowed for this client"));
    }
    let code = form.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri =
        form.get("redirect_uri").ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let verifier = form.get("code_verifier");
    if verifier.is_some_and(|v| !valid_verifier(v)) {
        return Err(OAuthError::invalid_request("code_verifier must be 43 to 128 unreserved characters"));
    }
    if code.len() > 128 {
        return Err(OAuthError::invalid_grant("unknown code"));
    }
    let hash = tokens::sha256_hex(&SecretString::from(code.to_string()));
    // Claim the code: of any number of parallel redemptions exactly one updates the row.
    let claimed = codes::claim(db, &hash, now).await.map_err(|e| internal(&e))?;
    let row = codes::find(db, &hash).await.map_err(|e| internal(&e))?;
    let Some(row) = row else { return Err(OAuthError::invalid_grant("unknown code")) };
    if !claimed {
        // A second use: revoke what the first one issued (RFC 6749 §4.1.2).
        if let Some(jti) = &row.access_jti {
            grants::revoke_jti(db, jti, Ts::new(now.0 + Duration::days(1)))
                .await
                .map_err(|e| internal(&e))?;
        }
        if let Some(family) = &row.refresh_family {
            refresh::revoke_family(db, family, now).await.map_err(|e| internal(&e))?;
        }
        tracing::warn!(app.slug = %issuer.app.slug, client.id = %client.client_id, "authorization code reused; tokens revoked");
        return Err(OAuthError::invalid_grant("code already used"));
    }
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("code was issued to another client"));
    }
    if row.expires_at <= now || row.used_at.is_none() {
        return Err(OAuthError::invalid_grant("code expired"));
    }
    if row.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&row.code_challenge, verifier) {
        (Some(c), Some(v)) if s256(v) == *c => {}
        (Some(_), Some(_)) => return Err(OAuthError::invalid_grant("code_verifier does not match")),
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        // A verifier for a code issued without a challenge: a downgrade attempt.
        (None, Some(_)) => return Err(OAuthError::invalid_grant("no code_challenge was sent for this code")),
        (None, None) => {}
    }
    let session = sessions::get(db, &row.session_id, &issuer.app.policy.session, now)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| OAuthError::invalid_grant("the session has ended"))?;
    let user = users::get(db, row.user_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;

    let authz = Authz {
        organization: row.organization_id.as_deref().and_then(|o| uuid::Uuid::parse_str(o).ok()),
        resource: token_resource(issuer, form.get("resource"), row.resource.as_deref()).await?,
    };
    let (access_token, jti, ttl, grants, org_roles) =
        mint_user_access(issuer, &client.client_id, &user, &session.id, &row.scope, &authz, now).await?;
    let wants_refresh =
        Scope::split(&row.scope).any(|s| s == "offline_access") || client.allows(GrantType::RefreshToken);
    let refresh = if wants_refresh {
        let grant = refresh::Grant {
            family_id: tokens::new_id(),
            client_id: client.client_id.clone(),
            user_id: user.id,
            session_id: session.id.clone(),
            scope: row.scope.clone(),
            organization_id: row.organization_id.clone(),
            resource: row.resource.clone(),
        };
        let token = refresh::issue(db, &grant, issuer.app.tokens.refresh_token_ttl_seconds, now)
            .await
            .map_err(|e| internal(&e))?;
        Some((grant.family_id, token))
    } else {
        None
    };
    codes::record_issued(db, &hash, &jti, refresh.as_ref().map(|(f, _)| f.as_str()))
        .await
        .map_err(|e| internal(&e))?;

    let scopes: Vec<&str> = Scope::split(&row.scope).collect();
    let id_token = if scopes.contains(&"openid") {
        let claims = IdClaims {
            iss: issuer.url.clone(),
            sub: user.id.to_string(),
            aud: client.client_id.to_string(),
            auth_time: session.auth_time.unix(),
            nonce: row.nonce.clone(),
            sid: session.id.to_string(),
            amr: session.amr.0.clone(),
            at_hash: at_hash(&access_token),
            email: scopes.contains(&"email").then(|| user.email.clone()),
            email_verified: scopes.contains(&"email").then_some(user.email_verified),
            profile: user.scoped_claims(&scopes),
            roles: scopes.contains(&"roles").then(|| grants.roles.clone()),
            org_id: scopes.contains(&"roles").then(|| authz.organization.map(|o| o.to_string())).flatten(),
            org_roles: scopes.contains(&"roles").then_some(org_roles).flatten(),
        };
        let exp = (now.0 + Duration::seconds(i64::from(issuer.app.tokens.id_token_ttl_seconds))).timestamp();
        Some(super::service::sign(issuer, "JWT", claims, now.unix(), exp).await?)
    } else {
        None
    };
    metrics::counter!("latchkey_tokens_issued_total", "grant_type" => "authorization_code").increment(1);
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: row.scope,
        id_token,
        refresh_token: refresh.map(|(_, t)| t.expose_secret().to_string()),
    })
}

/// What [`mint_user_access`] made: the token, its id and lifetime, and the grants and
/// organization roles it carries.
type Minted = (String, String, u32, crate::roles::Grants, Option<Vec<String>>);

/// An RFC 9068 access token for a user's session, with the user's roles as they are now (in
/// the organization and for the resource of `authz`).
async fn mint_user_access(
    issuer: &Arc<Issuer>,
    client_id: &str,
    user: &crate::users::User,
    sid: &str,
    scope: &str,
    authz: &Authz,
    now: Ts,
) -> Result<Minted, OAuthError> {
    let user_id = user.id;
    let (grants, org_roles) = holder_grants(issuer, crate::roles::repo::Holder::User(user_id), authz).await?;
    let ttl = issuer.app.tokens.access_token_ttl_seconds;
    let jti = tokens::new_id();
    let access = AccessClaims {
        iss: issuer.url.clone(),
        sub: user_id.to_string(),
        aud: issuer.url.clone(),
        jti: jti.clone(),
        client_id: client_id.to_string(),
        scope: scope.to_string(),
        token_type: "user".into(),
        sid: Some(sid.to_string()),
        tv: Some(user.token_version),
        ..AccessClaims::default()
    }
    .with_grants(&grants)
    .for_authz(authz, org_roles.clone());
    let exp = (now.0 + Duration::seconds(i64::from(ttl))).timestamp();
    let token = super::service::sign(issuer, "at+jwt", access, now.unix(), exp).await?;
    Ok((token, jti, ttl, grants, org_roles))
}

/// The error for a rotation that gave no token: reuse (the family is now revoked) or a token
/// that is not valid.
fn refused(outcome: refresh::Rotation) -> (OAuthError, Option<UserId>) {
    match outcome {
        refresh::Rotation::ReuseDetected { grant } => (
            OAuthError::invalid_grant("refresh token already used; its family is revoked"),
            Some(grant.user_id),
        ),
        _ => (OAuthError::invalid_grant("unknown, expired or revoked refresh token"), None),
    }
}

/// The `refresh_token` grant (RFC 6749 §6). `Err` carries the OAuth error; a detected reuse is
/// reported through `on_reuse` before the error is returned.
pub async fn refresh(
    issuer: &Arc<Issuer>,
    secrets: &crate::crypto::SecretBox,
    client: &Client,
    form: &Form,
    now: Ts,
) -> Result<(TokenResponse, Option<UserId>), (OAuthError, Option<UserId>)> {
    let internal = |e: &(dyn std::error::Error + 'static)| {
        (OAuthError::internal(issuer.app.slug.as_str(), "refresh", e), None)
    };
    if !client.allows(GrantType::RefreshToken) && !client.allows(GrantType::AuthorizationCode) {
        return Err((OAuthError::unauthorized_client("refresh_token is not allowed for this client"), None));
    }
    let presented =
        form.get("refresh_token").ok_or((OAuthError::invalid_request("refresh_token is required"), None))?;
    // A refresh may narrow the scope, never widen it (RFC 6749 §6); checked before rotating so
    // a refused request does not use the token up.
    let peeked = match refresh::peek(&issuer.identity, presented, &client.client_id)
        .await
        .map_err(|e| internal(&e))?
    {
        None => return Err((OAuthError::invalid_grant("unknown, expired or revoked refresh token"), None)),
        Some(p) => p,
    };
    let grant = peeked.grant;
    let rules = refresh::RotationRules {
        ttl_seconds: issuer.app.tokens.refresh_token_ttl_seconds,
        grace_seconds: issuer.app.tokens.refresh_race_grace_seconds,
    };
    let rotate = || refresh::rotate(&issuer.identity, secrets, presented, &client.client_id, &rules, now);
    // A token rotated before is settled first: reuse kills its family whatever else is wrong
    // with the request; a racing duplicate of the newest rotation reads its successor.
    let settled = if peeked.rotated {
        match rotate().await.map_err(|e| internal(&e))? {
            refresh::Rotation::Rotated { grant, token } => Some((grant, token)),
            other => return Err(refused(other)),
        }
    } else {
        None
    };
    let granted: Vec<&str> = Scope::split(&grant.scope).collect();
    let scope = match form.get("scope") {
        None => grant.scope.clone(),
        Some(req) => {
            let asked: Vec<&str> = Scope::split(req).collect();
            if let Some(extra) = asked.iter().find(|s| !granted.contains(s)) {
                return Err((OAuthError::invalid_scope(format!("scope {extra} was not granted")), None));
            }
            asked.join(" ")
        }
    };
    // Refresh tokens die with their session.
    if !sessions::is_live(&issuer.identity, &grant.session_id, &issuer.app.policy.session, now)
        .await
        .map_err(|e| internal(&e))?
    {
        refresh::revoke_family(&issuer.identity, &grant.family_id, now).await.map_err(|e| internal(&e))?;
        return Err((OAuthError::invalid_grant("the session has ended"), None));
    }
    let user = match crate::users::get(&issuer.identity, grant.user_id).await.map_err(|e| internal(&e))? {
        Some(u) if u.status == UserStatus::Active => u,
        _ => return Err((OAuthError::invalid_grant("the account cannot sign in"), None)),
    };
    // The answer is ready before the token is used up: once the rotation commits, nothing is
    // left that can fail, and a rotation that fails leaves the presented token usable.
    let authz = Authz {
        organization: grant.organization_id.as_deref().and_then(|o| uuid::Uuid::parse_str(o).ok()),
        resource: token_resource(issuer, form.get("resource"), grant.resource.as_deref())
            .await
            .map_err(|e| (e, None))?,
    };
    let (access_token, _, ttl, _, _) =
        mint_user_access(issuer, &client.client_id, &user, &grant.session_id, &scope, &authz, now)
            .await
            .map_err(|e| (e, None))?;
    let (grant, token) = match settled {
        Some(done) => done,
        None => match rotate().await.map_err(|e| internal(&e))? {
            refresh::Rotation::Rotated { grant, token } => (grant, token),
            other => return Err(refused(other)),
        },
    };
    // A refresh is activity on the session (idle timeout); the tokens are issued either way.
    if let Err(e) = sessions::touch(&issuer.identity, &grant.session_id, now).await {
        tracing::warn!(app.slug = %issuer.app.slug, error = %e, "refresh: session activity not recorded");
    }
    metrics::counter!("latchkey_tokens_issued_total", "grant_type" => "refresh_token").increment(1);
    Ok((
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            scope,
            id_token: None,
            refresh_token: Some(token.expose_secret().to_string()),
        },
        Some(grant.user_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
