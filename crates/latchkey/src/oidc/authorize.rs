//! `GET /authorize` (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207) and the issuing of
//! authorization codes once the end user is signed in.
//!
//! `client_id` and `redirect_uri` are checked first: if either is wrong the user sees an error
//! page and is never redirected. Every later error goes back to the registered `redirect_uri`
//! with `error`, `error_description`, `state` and `iss`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::clients::{Client, Scope};
use crate::crypto::tokens;
use crate::grants::GrantError;
use crate::grants::requests::{self, AuthRequest, redirect_with};
use crate::sessions::Session;
use crate::state::AppState;
use crate::store::Ts;
use crate::tenant::Issuer;
use crate::web::form::Form;

/// What `/authorize` decided.
pub enum Outcome {
    /// Client or redirect URI unusable: show this message, never redirect.
    ErrorPage(String),
    /// Redirect to the client (a code, or an error).
    ToClient(String),
    /// The user must sign in first.
    SignIn(Box<AuthRequest>),
}

/// Redirect URIs match by string equality (SPEC §5), with the one exception of RFC 8252 §7.3:
/// a native client's loopback URI (`http://127.0.0.1/…`, `http://[::1]/…`) also matches the
/// same string with any port. Nothing is normalised: not the host's spelling (`127.1`,
/// `0x7f000001`), not the path (`..`, `%2e`), not port `0`.
fn redirect_matches(client: &Client, requested: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r.as_str() == requested) {
        return true;
    }
    if client.token_endpoint_auth_method.is_confidential() {
        return false;
    }
    let Some(req) = Loopback::split(requested) else { return false };
    client
        .redirect_uris
        .iter()
        .any(|r| Loopback::split(r.as_str()).is_some_and(|reg| reg.same_but_port(&req)))
}

/// A loopback redirect URI taken apart as text: its literal host and everything after the port.
struct Loopback<'a> {
    host: &'static str,
    rest: &'a str,
}

impl<'a> Loopback<'a> {
    fn split(uri: &'a str) -> Option<Self> {
        let after_scheme = uri.strip_prefix("http://")?;
        let (host, after_host) = ["127.0.0.1", "[::1]"]
            .into_iter()
            .find_map(|h| after_scheme.strip_prefix(h).map(|rest| (h, rest)))?;
        let rest = match after_host.strip_prefix(':') {
            None => after_host,
            Some(port_on) => {
                let end = port_on.find(['/', '?', '#']).unwrap_or(port_on.len());
                let port = &port_on[..end];
                let canonical = port.bytes().all(|b| b.is_ascii_digit()) && !port.starts_with('0');
                if !canonical || !port.parse::<u16>().is_ok_and(|p| p > 0) {
                    return None;
                }
                &port_on[end..]
            }
        };
        if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
            return None;
        }
        Some(Loopback { host, rest })
    }

    fn same_but_port(&self, other: &Loopback<'_>) -> bool {
        self.host == other.host && self.rest == other.rest
    }
}

fn error_redirect(
    issuer: &Issuer,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Outcome {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer.url.as_str()));
    Outcome::ToClient(redirect_with(redirect_uri, &params))
}

/// Validates the request and decides: error page, redirect, or sign-in.
pub async fn authorize(
    issuer: &Issuer,
    query: &[u8],
    session: Option<&Session>,
    now: Ts,
) -> Result<Outcome, GrantError> {
    let form = match Form::parse(query) {
        Ok(f) => f,
        Err(e) => {
            // Without trustworthy parameters we cannot know where to redirect.
            return Ok(Outcome::ErrorPage(format!("The sign-in request is malformed: {e}.")));
        }
    };
    let Some(client) = form.get("client_id").and_then(|id| issuer.clients.get(id)) else {
        return Ok(Outcome::ErrorPage("The application that sent you here is not registered.".into()));
    };
    let Some(redirect_uri) = form.get("redirect_uri") else {
        return Ok(Outcome::ErrorPage("The sign-in request has no redirect_uri.".into()));
    };
    if !redirect_matches(client, redirect_uri) {
        return Ok(Outcome::ErrorPage(
            "The sign-in request names a redirect address this application did not register.".into(),
        ));
    }
    let state = form.get("state");
    let err = |e: &str, d: &str| Ok(error_redirect(issuer, redirect_uri, state, e, d));

    match form.get("response_type") {
        Some("code") => {}
        Some(_) => return err("unsupported_response_type", "only response_type=code is supported"),
        None => return err("invalid_request", "response_type is required"),
    }
    if !client.allows(crate::clients::GrantType::AuthorizationCode) {
        return err("unauthorized_client", "this client may not use the authorization code flow");
    }
    if form.get("request").is_some() || form.get("request_uri").is_some() {
        return err("request_not_supported", "request objects are not supported");
    }
    let scope = form.get("scope").unwrap_or("");
    let mut granted: Vec<&str> = Vec::new();
    for s in Scope::split(scope) {
        let Ok(parsed) = Scope::try_from(s.to_string()) else {
            return err("invalid_scope", "malformed scope");
        };
        if !client.scopes.contains(&parsed) {
            return err("invalid_scope", &format!("scope {s} is not allowed for this client"));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    // PKCE (RFC 7636): S256 only; required for public clients.
    let challenge = form.get("code_challenge");
    match (challenge, form.get("code_challenge_method")) {
        (Some(c), Some("S256"))
            if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {}
        (Some(_), Some("S256")) => {
            return err("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)");
        }
        (Some(_), Some("plain")) | (Some(_), None) => {
            return err("invalid_request", "code_challenge_method must be S256");
        }
        (Some(_), Some(_)) => return err("invalid_request", "unsupported code_challenge_method"),
        (None, Some(_)) => return err("invalid_request", "code_challenge_method without code_challenge"),
        (None, None) if !client.token_endpoint_auth_method.is_confidential() => {
            return err("invalid_request", "public clients must use PKCE (code_challenge with S256)");
        }
        (None, None) => {}
    }
    let prompt = form.get("prompt");
    let prompts: Vec<&str> = prompt.map(|p| p.split(' ').collect()).unwrap_or_default();
    if prompts.iter().any(|p| !matches!(*p, "none" | "login" | "consent" | "select_account")) {
        return err("invalid_request", "unknown prompt value");
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return err("invalid_request", "prompt=none cannot be combined with other values");
    }
    let max_age = match form.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return err("invalid_request", "max_age must be a non-negative integer"),
        },
    };
    let nonce = form.get("nonce");
    if nonce.is_some_and(|n| n.len() > 512) || state.is_some_and(|s| s.len() > 2048) {
        return err("invalid_request", "state or nonce too long");
    }
    // RFC 8707: one registered resource; SPEC §10: an organization by id or slug, or `select`.
    let resource = form.get("resource");
    if let Some(r) = resource {
        let known =
            r.len() <= 512 && crate::roles::resources::by_identifier(&issuer.identity, r).await?.is_some();
        if !known {
            return err("invalid_target", "unknown resource");
        }
    }
    let organization = form.get("organization");
    if let Some(o) = organization
        && o != "select"
        && crate::roles::orgs::find(&issuer.identity, o).await?.is_none()
    {
        return err("invalid_request", "unknown organization");
    }
    let request = AuthRequest {
        id: tokens::new_id(),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        scope: granted.join(" "),
        state: state.map(str::to_string),
        nonce: nonce.map(str::to_string),
        code_challenge: challenge.map(str::to_string),
        prompt: prompt.map(str::to_string),
        max_age,
        login_hint: form.get("login_hint").map(|h| h.chars().take(254).collect()),
        organization: organization.map(str::to_string),
        resource: resource.map(str::to_string),
        chooser_session: None,
    };

    // An existing session answers at once unless the client asks for a fresh sign-in.
    let fresh_enough = |s: &Session| max_age.is_none_or(|m| now.unix() - s.auth_time.unix() <= m);
    match session {
        Some(s) if !prompts.contains(&"login") && fresh_enough(s) => {
            return Ok(Outcome::ToClient(
                requests::issue_code(&issuer.identity, &issuer.url, &request, s, now).await?,
            ));
        }
        _ if prompts.contains(&"none") => return err("login_required", "the user is not signed in"),
        _ => {}
    }
    requests::save(&issuer.identity, &request, now).await?;
    Ok(Outcome::SignIn(Box::new(request)))
}

/// Turns an outcome into the HTTP answer. Redirects after a POST are 303 (never 307).
pub fn respond(state: &AppState, issuer: &Issuer, outcome: Outcome) -> Response {
    match outcome {
        Outcome::ErrorPage(msg) => {
            state.pages.message(StatusCode::BAD_REQUEST, Some(&issuer.app), "Sign-in request not valid", &msg)
        }
        Outcome::ToClient(url) => Redirect::to(&url).into_response(),
        Outcome::SignIn(r) => Redirect::to(&format!("{}/login?request={}", issuer.url, r.id)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::Loopback;

    fn matches(registered: &str, requested: &str) -> bool {
        match (Loopback::split(registered), Loopback::split(requested)) {
            (Some(reg), Some(req)) => reg.same_but_port(&req),
            _ => false,
        }
    }

    #[test]
    fn loopback_uris_differ_only_by_port() {
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"));
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1/cb"));
        assert!(matches("http://127.0.0.1:4000/cb?x=1", "http://127.0.0.1:65535/cb?x=1"));
        assert!(matches("http://[::1]/cb", "http://[::1]:8080/cb"));
        for near_miss in [
            "http://127.0.0.1:51234/x/../cb",
            "http://127.0.0.1:51234/%2e%2e/cb",
            "http://127.0.0.1:51234/CB",
            "http://127.0.0.1:51234/cb/",
            "http://127.1:51234/cb",
            "http://0x7f000001:51234/cb",
            "http://2130706433:51234/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:00080/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:+80/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1@evil.example/cb",
            "https://127.0.0.1:51234/cb",
            "http://[::1]:51234/cb",
            "http://localhost:51234/cb",
        ] {
            assert!(!matches("http://127.0.0.1/cb", near_miss), "{near_miss}");
        }
    }
}
