//! Registering, changing and authenticating clients.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::{AuthMethod, Client, ClientId, GrantType, RedirectUri, Scope};
use super::repo;
use crate::crypto::{SecretBox, tokens};
use crate::store::{ControlDb, Ts};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no such client")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
}

/// The operator-settable fields of a client (create body; PATCH merges into it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// 1 to 200 characters, not all spaces.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<RedirectUri>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    #[schema(min_items = 1)]
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    /// Scopes the client may request. Default: `openid profile email phone offline_access` for
    /// user-facing clients, none for machine clients.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
}

fn default_scopes(grants: &[GrantType]) -> Vec<Scope> {
    if grants.contains(&GrantType::AuthorizationCode) {
        ["openid", "profile", "email", "phone", "offline_access", "roles"]
            .iter()
            .filter_map(|s| Scope::try_from(s.to_string()).ok())
            .collect()
    } else {
        Vec::new()
    }
}

fn dedup<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

fn apply(c: &mut Client, s: &ClientSettings) {
    c.name = s.name.trim().to_string();
    c.redirect_uris = dedup(&s.redirect_uris);
    c.post_logout_redirect_uris = dedup(&s.post_logout_redirect_uris);
    c.grant_types = dedup(&s.grant_types);
    c.token_endpoint_auth_method = s.token_endpoint_auth_method;
    c.scopes = dedup(&s.scopes.clone().unwrap_or_else(|| default_scopes(&s.grant_types)));
}

/// Registers a client; returns it with its secret (confidential clients), shown only now.
pub async fn create(
    db: &ControlDb,
    secrets: &SecretBox,
    app_id: Uuid,
    settings: ClientSettings,
    now: Ts,
) -> Result<(Client, Option<SecretString>), ClientError> {
    let mut client = Client {
        id: Uuid::now_v7(),
        app_id,
        client_id: ClientId(tokens::new_id()),
        name: String::new(),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![],
        token_endpoint_auth_method: AuthMethod::None,
        scopes: vec![],
        secret_hash: None,
        created_at: now,
        updated_at: now,
    };
    apply(&mut client, &settings);
    client.validate().map_err(ClientError::Invalid)?;
    let secret = client
        .token_endpoint_auth_method
        .is_confidential()
        .then(|| tokens::new_secret(tokens::CLIENT_SECRET_PREFIX));
    client.secret_hash =
        secret.as_ref().map(|s| secrets.hash_secret(secrecy::ExposeSecret::expose_secret(s)));
    repo::save(db, &client, repo::Save::New).await?;
    Ok((client, secret))
}

pub async fn get(db: &ControlDb, app_id: Uuid, client_id: &str) -> Result<Client, ClientError> {
    repo::get(db, app_id, client_id).await?.ok_or(ClientError::NotFound)
}

pub async fn list(
    db: &ControlDb,
    app_id: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Client>, ClientError> {
    Ok(repo::list(db, app_id, after, limit).await?)
}

/// The settings of `c` as JSON, the document a merge patch applies to.
pub fn settings_of(c: &Client) -> ClientSettings {
    ClientSettings {
        name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        grant_types: c.grant_types.clone(),
        token_endpoint_auth_method: c.token_endpoint_auth_method,
        scopes: Some(c.scopes.clone()),
    }
}

/// Applies already-merged settings. Switching between public and confidential is refused:
/// register a new client instead.
pub async fn update(
    db: &ControlDb,
    mut client: Client,
    settings: ClientSettings,
    now: Ts,
) -> Result<Client, ClientError> {
    if settings.token_endpoint_auth_method.is_confidential()
        != client.token_endpoint_auth_method.is_confidential()
    {
        return Err(ClientError::Invalid(
            "a client cannot switch between public and confidential; register a new client".into(),
        ));
    }
    apply(&mut client, &settings);
    client.validate().map_err(ClientError::Invalid)?;
    client.updated_at = now;
    if !repo::save(db, &client, repo::Save::Existing).await? {
        return Err(ClientError::NotFound);
    }
    Ok(client)
}

/// Applies a JSON merge patch (RFC 7396) to the client's settings; returns the client and the
/// new value of every changed setting (for the operator audit).
pub async fn patch(
    db: &ControlDb,
    client: Client,
    patch: &serde_json::Value,
    now: Ts,
) -> Result<(Client, serde_json::Map<String, serde_json::Value>), ClientError> {
    if !patch.is_object() {
        return Err(ClientError::Invalid("a merge patch must be a JSON object".into()));
    }
    let to_doc =
        |c: &Client| serde_json::to_value(settings_of(c)).map_err(|e| ClientError::Invalid(e.to_string()));
    let before = to_doc(&client)?;
    let mut doc = before.clone();
    crate::apps::service::merge_patch(&mut doc, patch);
    let settings: ClientSettings =
        serde_json::from_value(doc).map_err(|e| ClientError::Invalid(e.to_string()))?;
    let client = update(db, client, settings, now).await?;
    let after = to_doc(&client)?;
    let changes = after
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((client, changes))
}

/// Replaces the secret of a confidential client; the old one stops working at once.
pub async fn rotate_secret(
    db: &ControlDb,
    secrets: &SecretBox,
    mut client: Client,
    now: Ts,
) -> Result<(Client, SecretString), ClientError> {
    if !client.token_endpoint_auth_method.is_confidential() {
        return Err(ClientError::Invalid("public clients have no secret".into()));
    }
    let secret = tokens::new_secret(tokens::CLIENT_SECRET_PREFIX);
    client.secret_hash = Some(secrets.hash_secret(secrecy::ExposeSecret::expose_secret(&secret)));
    client.updated_at = now;
    if !repo::save(db, &client, repo::Save::Existing).await? {
        return Err(ClientError::NotFound);
    }
    Ok((client, secret))
}

pub async fn delete(db: &ControlDb, app_id: Uuid, client_id: &str, now: Ts) -> Result<(), ClientError> {
    if repo::delete(db, app_id, client_id, now).await? { Ok(()) } else { Err(ClientError::NotFound) }
}
