//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`, `none`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

use super::error::OAuthError;
use crate::clients::{AuthMethod, Client};
use crate::crypto::SecretBox;
use crate::tenant::Issuer;
use crate::web::form::Form;

/// A stand-in hash so an unknown client costs the same as a known one.
const DUMMY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct Presented {
    client_id: String,
    secret: Option<String>,
    method: AuthMethod,
}

fn form_decode(s: &str) -> Option<String> {
    // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
    percent_decode_str(&s.replace('+', " ")).decode_utf8().ok().map(|c| c.into_owned())
}

fn presented(realm: &str, authorization: Option<&str>, form: &Form) -> Result<Presented, OAuthError> {
    let basic = match authorization {
        None => None,
        Some(h) => {
            let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(realm, "unsupported authorization scheme"));
            }
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client(realm, "malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client(realm, "malformed Basic credentials"))?;
            let id = form_decode(id)
                .ok_or_else(|| OAuthError::invalid_client(realm, "malformed Basic credentials"))?;
            let secret = form_decode(secret)
                .ok_or_else(|| OAuthError::invalid_client(realm, "malformed Basic credentials"))?;
            Some((id, secret))
        }
    };
    match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => {
            Err(OAuthError::invalid_request("use exactly one client authentication method"))
        }
        (Some((id, _)), Some(form_id), None) if form_id != id => {
            Err(OAuthError::invalid_request("client_id does not match the Authorization header"))
        }
        (Some((id, secret)), _, None) => {
            Ok(Presented { client_id: id, secret: Some(secret), method: AuthMethod::ClientSecretBasic })
        }
        (None, Some(id), Some(secret)) => Ok(Presented {
            client_id: id.into(),
            secret: Some(secret.into()),
            method: AuthMethod::ClientSecretPost,
        }),
        (None, Some(id), None) => {
            Ok(Presented { client_id: id.into(), secret: None, method: AuthMethod::None })
        }
        (None, None, _) => Err(OAuthError::invalid_client(realm, "client authentication is required")),
    }
}

/// Authenticates the calling client against the issuer's registered clients.
pub fn authenticate<'a>(
    issuer: &'a Issuer,
    secrets: &SecretBox,
    authorization: Option<&str>,
    form: &Form,
) -> Result<&'a Client, OAuthError> {
    let realm = issuer.url.as_str();
    let p = presented(realm, authorization, form)?;
    let client = issuer.clients.get(p.client_id.as_str());
    let Some(client) = client else {
        if let Some(secret) = &p.secret {
            let _ = secrets.verify_secret(secret, DUMMY_HASH);
        }
        return Err(OAuthError::invalid_client(realm, "unknown client or wrong credentials"));
    };
    let registered = client.token_endpoint_auth_method;
    match (registered, p.method, &p.secret, &client.secret_hash) {
        (AuthMethod::None, AuthMethod::None, None, _) => Ok(client),
        (r, m, Some(secret), Some(hash)) if r == m => {
            if secrets.verify_secret(secret, hash) {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client(realm, "unknown client or wrong credentials"))
            }
        }
        _ => Err(OAuthError::invalid_client(
            realm,
            format!("this client authenticates with {}", registered.as_str()),
        )),
    }
}
