//! The back-channel half of an upstream sign-in: the authorization code exchanged at the
//! upstream's token endpoint (RFC 6749 §4.1.3, with PKCE, RFC 7636), and GitHub's user API,
//! which is GitHub's way of saying who signed in, and the UserInfo endpoint of providers whose
//! ID tokens leave the address out.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{UpstreamError, Upstreams};

/// How the client authenticates at the upstream's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
}

/// One code exchange.
pub struct CodeExchange<'a> {
    pub token_endpoint: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    pub auth: ClientAuth,
    pub code: &'a str,
    pub redirect_uri: &'a str,
    /// The PKCE verifier (every round trip has one; `None` only for callers without PKCE).
    pub code_verifier: Option<&'a str>,
}

/// What the token endpoint answered (its tokens are never logged).
#[derive(Deserialize)]
pub struct Tokens {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Who GitHub says signed in: the numeric id is the subject; the address is the verified
/// primary one, if the person has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubUser {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    pub verified_email: Option<String>,
}

impl Upstreams {
    /// Exchanges an authorization code. A refusal (`invalid_grant`…) is `Status` or `Invalid`
    /// with the upstream's `error` code, never its description (it may echo the code).
    pub async fn exchange(&self, x: &CodeExchange<'_>) -> Result<Tokens, UpstreamError> {
        let url = x.token_endpoint;
        let mut form =
            vec![("grant_type", "authorization_code"), ("code", x.code), ("redirect_uri", x.redirect_uri)];
        if let Some(v) = x.code_verifier {
            form.push(("code_verifier", v));
        }
        let mut req = self.http.post(url).header(reqwest::header::ACCEPT, "application/json");
        match x.auth {
            ClientAuth::Basic => {
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                req = req.basic_auth(enc(x.client_id), Some(enc(x.client_secret.expose_secret())));
            }
            ClientAuth::Post => {
                form.push(("client_id", x.client_id));
                form.push(("client_secret", x.client_secret.expose_secret()));
            }
        }
        let res = req.form(&form).send().await.map_err(|e| self.unreachable(url, e))?;
        let status = res.status();
        let body = self.read_capped(url, res).await?;
        let tokens: Tokens = serde_json::from_slice(&body).map_err(|_| UpstreamError::Invalid {
            url: url.into(),
            why: format!("answered {} with something that is not a token response", status.as_u16()),
        })?;
        if let Some(error) = &tokens.error {
            // GitHub answers errors with 200; keep only the code (RFC 6749 §5.2 names).
            let code: String =
                error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return Err(UpstreamError::Invalid { url: url.into(), why: format!("refused the code: {code}") });
        }
        if !status.is_success() {
            return Err(UpstreamError::Status { url: url.into(), status: status.as_u16() });
        }
        Ok(tokens)
    }

    /// GitHub's `GET /user` and `GET /user/emails` with the user's access token.
    pub async fn github_user(&self, api_url: &str, access_token: &str) -> Result<GithubUser, UpstreamError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
            login: String,
            name: Option<String>,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            primary: bool,
            verified: bool,
        }
        let api = api_url.trim_end_matches('/');
        let user: User = self.github_get(&format!("{api}/user"), access_token).await?;
        let emails: Vec<Email> = self.github_get(&format!("{api}/user/emails"), access_token).await?;
        let verified_email = emails.into_iter().find(|e| e.primary && e.verified).map(|e| e.email);
        Ok(GithubUser { id: user.id, login: user.login, name: user.name, verified_email })
    }

    /// The upstream's UserInfo answer (OpenID Connect Core §5.3) as JSON; a signed or
    /// encrypted answer (`application/jwt`) is refused, as is anything not a JSON object.
    pub async fn userinfo(&self, url: &str, access_token: &str) -> Result<serde_json::Value, UpstreamError> {
        let req =
            self.http.get(url).bearer_auth(access_token).header(reqwest::header::ACCEPT, "application/json");
        let res = self.send_ok(url, req).await?;
        let body = self.read_capped(url, res).await?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => Ok(v),
            _ => Err(UpstreamError::Invalid {
                url: url.into(),
                why: "the userinfo answer is not a JSON object".into(),
            }),
        }
    }

    async fn github_get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        token: &str,
    ) -> Result<T, UpstreamError> {
        let req = self
            .http
            .get(url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        let res = self.send_ok(url, req).await?;
        let body = self.read_capped(url, res).await?;
        serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid { url: url.into(), why: format!("unexpected answer: {e}") })
    }
}
