//! Response shapes of the admin API (SPEC §4). Secrets never appear here except
//! `client_secret` in the responses that create or rotate it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::apps::model::{Branding, EmailTemplates, Policy, SmtpSettings, TokenSettings};
use crate::apps::{App, AppStatus};
use crate::clients::{AuthMethod, Client, GrantType, RedirectUri, Scope};
use crate::keys::{KeyState, SigningAlg, SigningKey};
use crate::store::Ts;

#[derive(Debug, Serialize, ToSchema)]
pub struct AppResponse {
    pub slug: String,
    pub display_name: String,
    pub status: AppStatus,
    /// Why provisioning failed; null unless `status` is `failed`.
    pub failure_reason: Option<String>,
    /// `{PUBLIC_URL}/apps/{slug}`; never changes.
    pub issuer: String,
    pub branding: Branding,
    pub policy: Policy,
    /// Outgoing mail; the password inside `url` is never returned.
    pub smtp: Option<SmtpSettings>,
    /// Operator wording of outgoing mail, by kind; empty means the defaults.
    pub email_templates: EmailTemplates,
    pub tokens: TokenSettings,
    pub signing_alg: SigningAlg,
    /// Upstream identity providers by kind (`google`, `microsoft`, `apple`, `github`, `oidc`);
    /// secrets are never shown, only `client_secret_set` / `private_key_set`.
    pub providers: std::collections::BTreeMap<String, crate::apps::providers::ProviderView>,
    /// `embedded` (default store) or `external` (the app's own `database_url`).
    pub database: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AppResponse {
    pub fn new(app: App, public_base: &str) -> Self {
        AppResponse {
            issuer: format!("{public_base}/apps/{}", app.slug),
            slug: app.slug.to_string(),
            display_name: app.display_name,
            status: app.status,
            failure_reason: app.failure_reason,
            branding: app.branding,
            policy: app.policy,
            smtp: app.smtp,
            email_templates: app.email_templates,
            tokens: app.tokens,
            signing_alg: app.signing_alg,
            providers: app
                .providers
                .iter()
                .map(|(k, v)| (crate::apps::providers::name(*k).to_string(), v.view(*k)))
                .collect(),
            database: if app.database_url_sealed.is_some() { "external" } else { "embedded" }.into(),
            created_at: app.created_at.0,
            updated_at: app.updated_at.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientResponse {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    pub scopes: Vec<Scope>,
    /// Only in the responses that create or rotate it; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClientResponse {
    pub fn new(c: Client, secret: Option<String>) -> Self {
        ClientResponse {
            client_id: c.client_id.0,
            name: c.name,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            grant_types: c.grant_types,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            scopes: c.scopes,
            client_secret: secret,
            created_at: c.created_at.0,
            updated_at: c.updated_at.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResponse {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When a retiring key leaves the JWKS.
    pub retire_at: Option<DateTime<Utc>>,
}

impl KeyResponse {
    pub fn new(k: &SigningKey, now: Ts) -> Self {
        KeyResponse {
            kid: k.kid.to_string(),
            alg: k.alg,
            state: k.state_at(now),
            created_at: k.created_at.0,
            activated_at: k.activated_at.map(|t| t.0),
            retire_at: k.retire_at.map(|t| t.0),
        }
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Paging of a list ordered by name (apps, clients): any cursor is a position in that order.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// From a previous page's `next_cursor`.
    #[param(max_length = 256)]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Paging of a list ordered by time-ordered ids (invitations).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IdPageQuery {
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A list request's page: where it starts (decoded from the opaque cursor of the previous page)
/// and how many items it holds. The one place list parameters are checked.
pub struct Paging<C> {
    pub after: Option<C>,
    pub limit: i64,
}

/// What a cursor encodes: the sort key of the last item of a page.
pub trait CursorKey: Sized {
    fn encode(&self) -> String;
    fn decode(cursor: &str) -> Option<Self>;
}

/// Text keys (slugs, client ids) travel as they are: any text is a position in their order.
impl CursorKey for String {
    fn encode(&self) -> String {
        self.clone()
    }
    fn decode(cursor: &str) -> Option<Self> {
        (cursor.len() <= 256).then(|| cursor.to_string())
    }
}

/// Time-ordered ids (users, invitations, audit events) travel as they are.
impl CursorKey for uuid::Uuid {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(cursor: &str) -> Option<Self> {
        cursor.parse().ok()
    }
}

impl CursorKey for crate::users::UserId {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(cursor: &str) -> Option<Self> {
        cursor.parse().ok()
    }
}

impl<C: CursorKey> Paging<C> {
    /// `limit` 1 to 200 (default 50); a cursor this API issued, or none.
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self, ApiError> {
        let limit = i64::from(limit.unwrap_or(50));
        if !(1..=200).contains(&limit) {
            return Err(ApiError::validation("limit must be between 1 and 200"));
        }
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(|c| C::decode(c).ok_or_else(|| ApiError::malformed("cursor is not one this API issued")))
            .transpose()?;
        Ok(Paging { after, limit })
    }

    /// The page of `items`, with the cursor of the next page when this one is full.
    pub fn list<T, R>(&self, items: Vec<T>, key: impl Fn(&T) -> C, view: impl FnMut(T) -> R) -> List<R> {
        let next_cursor =
            (items.len() as i64 == self.limit).then(|| items.last().map(|i| key(i).encode())).flatten();
        List { items: items.into_iter().map(view).collect(), next_cursor }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteAppQuery {
    /// Also drop the app's identity store (users, sessions, audit). Default false.
    #[serde(default)]
    pub erase_data: bool,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysRequest {
    /// How long the previous key stays published. Default: the longest signed-token lifetime.
    #[schema(maximum = 2592000)]
    pub grace_seconds: Option<u32>,
}

/// A JSON merge patch (RFC 7396) of an app: the fields given replace the app's, nested objects
/// merge, and `smtp: null` removes the app's own mail server. Documentation only; the handler
/// merges into the stored settings and checks the result.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documentation only: the OpenAPI schema of a body the handler reads as JSON")]
pub struct AppPatch {
    #[schema(
        required = false,
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    display_name: String,
    #[schema(required = false)]
    branding: Branding,
    #[schema(required = false)]
    policy: Policy,
    #[schema(required = false, nullable)]
    smtp: crate::apps::service::SmtpInput,
    #[schema(required = false)]
    email_templates: EmailTemplates,
    #[schema(required = false)]
    tokens: TokenSettings,
    #[schema(required = false)]
    signing_alg: SigningAlg,
    /// Merged per provider; `null` removes one; a secret left out is kept.
    #[schema(required = false)]
    providers: crate::apps::providers::ProvidersInput,
}

/// A JSON merge patch (RFC 7396) of a client: the fields given replace the client's.
/// Documentation only; the handler merges into the stored settings and checks the result.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documentation only: the OpenAPI schema of a body the handler reads as JSON")]
pub struct ClientPatch {
    #[schema(required = false, min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    #[schema(required = false)]
    redirect_uris: Vec<RedirectUri>,
    #[schema(required = false)]
    post_logout_redirect_uris: Vec<RedirectUri>,
    #[schema(required = false, min_items = 1)]
    grant_types: Vec<GrantType>,
    #[schema(required = false)]
    token_endpoint_auth_method: AuthMethod,
    /// `null`: the default scopes for the client's grant types.
    #[schema(required = false, nullable)]
    scopes: Vec<Scope>,
}
