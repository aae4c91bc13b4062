//! Authorization requests kept while the end user signs in, and the single-use codes that
//! complete them (RFC 6749 §4.1.2, RFC 9207).

use chrono::Duration;
use secrecy::ExposeSecret;
use url::Url;

use super::GrantError;
use crate::crypto::tokens;
use crate::on_db;
use crate::sessions::Session;
use crate::store::{IdentityDb, Ts};

/// A validated authorization request, kept while the user signs in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthRequest {
    pub id: String,
    pub client_id: crate::clients::ClientId,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// `organization` as asked: an id, a slug, or `select` (SPEC §10).
    pub organization: Option<String>,
    /// `resource` (RFC 8707): a registered resource identifier.
    pub resource: Option<String>,
    /// The session the organization chooser was shown to (only it may answer).
    #[sqlx(default)]
    pub chooser_session: Option<String>,
}

/// Appends the response parameters to the redirect URI (keeping its own query).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

pub async fn save(db: &IdentityDb, r: &AuthRequest, now: Ts) -> Result<(), GrantError> {
    let sql = "INSERT INTO auth_requests (id, client_id, redirect_uri, scope, state, nonce, code_challenge, prompt, max_age, login_hint, created_at, expires_at, organization, resource) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    let expires = Ts::new(now.0 + Duration::minutes(30));
    Ok(on_db!(db, p => sqlx::query(sql)
        .bind(&r.id).bind(&r.client_id).bind(&r.redirect_uri).bind(&r.scope).bind(&r.state).bind(&r.nonce)
        .bind(&r.code_challenge).bind(&r.prompt).bind(r.max_age).bind(&r.login_hint).bind(now).bind(expires)
        .bind(&r.organization).bind(&r.resource)
        .execute(p).await.map(|_| ()))?)
}

/// The redirect that answers request `r` with an error (RFC 6749 §4.1.2.1, `iss` per RFC 9207).
fn error_to_client(r: &AuthRequest, issuer_url: &str, error: &str, description: &str) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = &r.state {
        params.push(("state", s));
    }
    params.push(("iss", issuer_url));
    redirect_with(&r.redirect_uri, &params)
}

/// Drops a pending request (answered).
async fn forget(db: &IdentityDb, id: &str) -> Result<(), GrantError> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM auth_requests WHERE id = $1").bind(id).execute(p).await.map(|_| ()))?,
    )
}

/// Records the organization chosen on the chooser page for a pending request.
pub async fn choose_organization(db: &IdentityDb, id: &str, organization: &str) -> Result<(), GrantError> {
    let sql = "UPDATE auth_requests SET organization = $2 WHERE id = $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(id).bind(organization).execute(p).await.map(|_| ()))?)
}

/// A pending request by id, if it has not expired.
pub async fn pending(db: &IdentityDb, id: &str, now: Ts) -> Result<Option<AuthRequest>, GrantError> {
    if id.len() > 64 {
        return Ok(None);
    }
    let sql = "SELECT id, client_id, redirect_uri, scope, state, nonce, code_challenge, prompt, max_age, login_hint, \
        organization, resource, chooser_session FROM auth_requests WHERE id = $1 AND expires_at > $2";
    Ok(on_db!(db, p => sqlx::query_as(sql).bind(id).bind(now).fetch_optional(p).await)?)
}

/// Issues a single-use code (≤ 60 s, stored hashed) for a signed-in session and returns the
/// redirect to the client, with `iss` (RFC 9207). A request for an organization is settled
/// first: a member gets a code for it; `select` with several memberships goes to the chooser
/// (`{issuer}/organization`); anyone else goes back to the client with `access_denied`.
pub async fn issue_code(
    db: &IdentityDb,
    issuer_url: &str,
    r: &AuthRequest,
    session: &Session,
    now: Ts,
) -> Result<String, GrantError> {
    let organization = match r.organization.as_deref() {
        None => None,
        Some(asked) => {
            let chosen = match asked {
                "select" => {
                    let mine = crate::roles::orgs::of_user(db, session.user_id).await?;
                    match mine.as_slice() {
                        [only] => Some(only.id),
                        [] => None,
                        // No page may be shown for `prompt=none` (OpenID Connect Core §3.1.2.1).
                        _ if r.prompt.as_deref() == Some("none") => {
                            forget(db, &r.id).await?;
                            let why = "choose an organization";
                            return Ok(error_to_client(r, issuer_url, "account_selection_required", why));
                        }
                        _ => {
                            // The chooser answers a stored request (one answered at once by
                            // `/authorize` was never stored), and only for this session.
                            if pending(db, &r.id, now).await?.is_none() {
                                save(db, r, now).await?;
                            }
                            let sql = "UPDATE auth_requests SET chooser_session = $2 WHERE id = $1";
                            on_db!(db, p => sqlx::query(sql).bind(&r.id).bind(&session.id).execute(p).await.map(|_| ()))?;
                            return Ok(format!("{issuer_url}/organization?request={}", r.id));
                        }
                    }
                }
                id_or_slug => match crate::roles::orgs::find(db, id_or_slug).await? {
                    Some(o) if crate::roles::orgs::is_member(db, o.id, session.user_id).await? => Some(o.id),
                    _ => None,
                },
            };
            match chosen {
                Some(id) => Some(id.to_string()),
                None => {
                    forget(db, &r.id).await?;
                    let why = "not a member of the organization";
                    return Ok(error_to_client(r, issuer_url, "access_denied", why));
                }
            }
        }
    };
    let code = tokens::new_secret("lkc_");
    let hash = tokens::sha256_hex(&code);
    let sql = "INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, user_id, session_id, scope, nonce, code_challenge, created_at, expires_at, organization_id, resource) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    let expires = Ts::new(now.0 + Duration::seconds(60));
    on_db!(db, p => sqlx::query(sql)
        .bind(&hash).bind(&r.client_id).bind(&r.redirect_uri).bind(session.user_id).bind(&session.id)
        .bind(&r.scope).bind(&r.nonce).bind(&r.code_challenge).bind(now).bind(expires)
        .bind(&organization).bind(&r.resource)
        .execute(p).await.map(|_| ()))?;
    forget(db, &r.id).await?;
    let code = code.expose_secret().to_string();
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &r.state {
        params.push(("state", s));
    }
    params.push(("iss", issuer_url));
    Ok(redirect_with(&r.redirect_uri, &params))
}
