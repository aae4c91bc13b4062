//! OAuth clients of an app and the values that describe them.

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::Ts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// How a client authenticates at the token endpoint (RFC 6749 §2.3, OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client (native or browser app) using PKCE.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "client_secret_basic" => AuthMethod::ClientSecretBasic,
            "client_secret_post" => AuthMethod::ClientSecretPost,
            "none" => AuthMethod::None,
            _ => return None,
        })
    }

    pub fn is_confidential(self) -> bool {
        self != AuthMethod::None
    }
}

/// A registered redirect URI: absolute, no fragment, no userinfo; `https`, `http` only on a
/// loopback host (RFC 8252 §7.3), or a private-use scheme with a dot (RFC 8252 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "https://app.example.com/callback")]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        if raw.len() > 2000 {
            return Err("redirect URI longer than 2000 characters".into());
        }
        let url = Url::parse(&raw).map_err(|_| format!("{raw:?} is not an absolute URI"))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(format!("{raw:?} must not contain a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{raw:?} must not contain userinfo"));
        }
        match url.scheme() {
            "https" => {}
            "http" if crate::apps::model::is_loopback(&url) => {}
            "http" => return Err(format!("{raw:?}: http is allowed only for loopback hosts")),
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
                return Err(format!("{raw:?}: scheme not allowed"));
            }
            s if s.contains('.') => {}
            _ => {
                return Err(format!(
                    "{raw:?}: use https, a loopback http URI or a reverse-DNS private-use scheme"
                ));
            }
        }
        // Stored exactly as registered: matching is string equality (SPEC §5).
        Ok(RedirectUri(raw))
    }
}

impl From<RedirectUri> for String {
    fn from(u: RedirectUri) -> String {
        u.0
    }
}

/// A scope token (RFC 6749 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "openid")]
pub struct Scope(String);

impl Scope {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tokens of a space-delimited `scope` parameter (RFC 6749 §3.3), empty ones skipped.
    pub fn split(list: &str) -> impl Iterator<Item = &str> {
        list.split(' ').filter(|s| !s.is_empty())
    }
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if ok { Ok(Scope(s)) } else { Err(format!("{s:?} is not a valid scope token")) }
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.0
    }
}

crate::text_id!(
    /// An OAuth client's `client_id` (RFC 6749 §2.2), unique within its app.
    ClientId
);

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: Uuid,
    pub app_id: Uuid,
    pub client_id: ClientId,
    pub name: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    pub scopes: Vec<Scope>,
    /// Keyed hash of the secret; `None` for public clients.
    pub secret_hash: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

impl Client {
    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err("name must be 1 to 200 characters".into());
        }
        if self.grant_types.is_empty() {
            return Err("grant_types must not be empty".into());
        }
        if self.grant_types.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err("authorization_code clients need at least one redirect_uri".into());
        }
        if self.grant_types.contains(&GrantType::ClientCredentials)
            && !self.token_endpoint_auth_method.is_confidential()
        {
            return Err(
                "client_credentials needs a confidential client (client_secret_basic or client_secret_post)"
                    .into(),
            );
        }
        if self.grant_types == [GrantType::RefreshToken] {
            return Err("refresh_token alone grants nothing; add authorization_code".into());
        }
        if self.redirect_uris.len() > 50
            || self.post_logout_redirect_uris.len() > 50
            || self.scopes.len() > 100
        {
            return Err("too many redirect URIs or scopes".into());
        }
        Ok(())
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Result<RedirectUri, String> {
        RedirectUri::try_from(s.to_string())
    }

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:4000/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/relative",
            "https://app.example.com/cb#frag",
            "https://app.example.com/cb#",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "https://user:pw@app.example.com/cb",
            "myapp:/cb",
            "",
        ] {
            assert!(uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_rules() {
        assert!(Scope::try_from("api:read".to_string()).is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(Scope::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
