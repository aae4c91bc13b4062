//! App lifecycle (SPEC §3): create → pending → provisioning_schema → deploying → active, with
//! `failed`, `disabled`, re-enable and delete. Provisioning runs in a background task that holds
//! a lease on the app row, so a crash leaves the app resumable and never half-active.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ChangeFeed;
use super::model::{
    App, AppSlug, AppStatus, Branding, EmailTemplates, Policy, SigningAlg, SmtpSettings, TokenSettings,
};
use super::repo;
use crate::audit::{AuditSink, operator};
use crate::clock::Clock;
use crate::config::StoreConfig;
use crate::crypto::SecretBox;
use crate::keys;
use crate::store::{
    self, ControlDb, IdentityDb, IdentityLocation, IdentityStores, StoreError, Ts, is_postgres_url,
};
use std::sync::Arc;

/// The handles the app lifecycle works with. Cheap to clone; built once at start-up.
#[derive(Clone)]
pub struct Apps(Arc<AppsDeps>);

/// What [`Apps`] is made of: the control plane, the registry of identity stores, the master
/// key's `SecretBox`, the store settings, the clock, the change feed and the audit sink.
pub struct AppsDeps {
    pub control: ControlDb,
    pub identity: Arc<IdentityStores>,
    pub secrets: Arc<SecretBox>,
    pub store: StoreConfig,
    pub clock: Arc<dyn Clock>,
    pub changes: Arc<ChangeFeed>,
    pub audit: AuditSink,
    /// How many apps this process provisions at once: each holds a few database connections
    /// while it does, and a burst of app creations must not exhaust the server's.
    pub provisioning: Arc<tokio::sync::Semaphore>,
}

impl Apps {
    pub fn new(deps: AppsDeps) -> Self {
        Apps(Arc::new(deps))
    }

    pub fn now(&self) -> Ts {
        Ts::new(self.clock.now())
    }
}

impl std::ops::Deref for Apps {
    type Target = AppsDeps;
    fn deref(&self) -> &AppsDeps {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no such app")]
    NotFound,
    #[error("an app with this slug already exists")]
    SlugTaken,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("identity store: {0}")]
    IdentityStore(#[from] store::StoreError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("{0}")]
    Unexpected(String),
}

/// Outgoing mail settings as given by an operator: the URL may carry a password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpInput {
    /// `smtp://user:password@host:port`, `smtps://…` (implicit TLS) or `smtp+starttls://…`.
    #[schema(
        max_length = 2048,
        pattern = r"^(smtps?|smtp\+starttls)://([^\s/?#@]+@)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[1-9][0-9]{0,3})?/?$"
    )]
    pub url: String,
    #[schema(max_length = 254, pattern = r"^[!-?A-~]+@[!-?A-~]*\.[!-?A-~]*$")]
    pub from: String,
    #[schema(max_length = 254, pattern = r"^[!-?A-~]+@[!-?A-~]*\.[!-?A-~]*$")]
    pub reply_to: Option<String>,
}

/// What an operator gives to create an app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    #[schema(min_length = 2, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]{1,62}$")]
    pub slug: String,
    /// 1 to 100 characters, not all spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: String,
    /// `postgres://` URL of the app's own database (write-only). Default: embedded store.
    #[schema(value_type = Option<String>)]
    pub database_url: Option<SecretString>,
    /// Schema for the identity tables in `database_url` (default `latchkey`).
    pub database_schema: Option<String>,
    pub signing_alg: Option<SigningAlg>,
    pub branding: Option<Branding>,
    pub policy: Option<Policy>,
    pub smtp: Option<SmtpInput>,
    pub email_templates: Option<EmailTemplates>,
    pub tokens: Option<TokenSettings>,
    /// Upstream identity providers (SPEC §7a); secrets are write-only.
    pub providers: Option<super::providers::ProvidersInput>,
}

/// The settings a merge patch may change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Editable {
    display_name: String,
    branding: Branding,
    policy: Policy,
    smtp: Option<serde_json::Value>,
    email_templates: EmailTemplates,
    tokens: TokenSettings,
    signing_alg: SigningAlg,
    /// By kind; never the secrets (a PATCH that gives none keeps the stored ones).
    #[serde(default)]
    providers: serde_json::Value,
}

fn validate_display_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::Invalid("display_name must be 1 to 100 printable characters".into()));
    }
    Ok(name.to_string())
}

/// A sender or reply-to address: deliberately looser than `users::Email` (which is what end
/// users may register with), so settings saved before stay valid; the SMTP transport parses it
/// again as a mailbox when it sends.
fn validate_email_address(what: &str, addr: &str) -> Result<(), AppError> {
    let ok = addr.len() <= 254
        && addr.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        && !addr.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok { Ok(()) } else { Err(AppError::Invalid(format!("{what} is not an email address"))) }
}

/// Splits the password out of an SMTP URL so it can be sealed apart from what is shown.
fn split_smtp(input: &SmtpInput) -> Result<(SmtpSettings, Option<String>), AppError> {
    let mut url = Url::parse(&input.url).map_err(|_| AppError::Invalid("smtp.url is not a URL".into()))?;
    if !matches!(url.scheme(), "smtp" | "smtps" | "smtp+starttls") || url.host_str().is_none() {
        return Err(AppError::Invalid(
            "smtp.url must be smtp://, smtps:// or smtp+starttls://host[:port]".into(),
        ));
    }
    validate_email_address("smtp.from", &input.from)?;
    if let Some(r) = &input.reply_to {
        validate_email_address("smtp.reply_to", r)?;
    }
    let password = url.password().map(str::to_string);
    let _ = url.set_password(None);
    Ok((
        SmtpSettings { url: url.to_string(), from: input.from.clone(), reply_to: input.reply_to.clone() },
        password,
    ))
}

fn seal_ctx(app_id: Uuid, what: &str) -> String {
    format!("app:{app_id}:{what}")
}

/// Where the app's identity store lives.
pub fn identity_location(apps: &Apps, app: &App) -> Result<IdentityLocation, AppError> {
    identity_location_for(&apps.secrets, &apps.store, app)
}

/// Where the app's identity store lives, from the store settings alone (used by `migrate`).
pub fn identity_location_for(
    secrets: &SecretBox,
    store_cfg: &StoreConfig,
    app: &App,
) -> Result<IdentityLocation, AppError> {
    if let Some(sealed) = &app.database_url_sealed {
        let url = secrets
            .open_string(&seal_ctx(app.id, "database_url"), sealed)
            .map_err(|e| AppError::Unexpected(format!("cannot open the stored database_url: {e}")))?;
        let schema = app.database_schema.clone().unwrap_or_else(|| "latchkey".into());
        return Ok(IdentityLocation::Postgres { url: SecretString::from(url), schema });
    }
    let control = store_cfg.database_url.expose_secret();
    if is_postgres_url(control) {
        Ok(IdentityLocation::Postgres {
            url: SecretString::from(control.to_string()),
            schema: app.slug.default_schema(),
        })
    } else {
        let file = store_cfg.data_dir.join("apps").join(format!("{}.db", app.slug));
        Ok(IdentityLocation::SqliteFile(file))
    }
}

/// The app's identity store handle (pool opened lazily).
pub fn identity_store(apps: &Apps, app: &App) -> Result<IdentityDb, AppError> {
    let location = identity_location(apps, app)?;
    Ok(apps.identity.get(app.id, &location)?)
}

/// Same database as the control plane, and the control plane's schema?
fn collides_with_control(apps: &Apps, url: &str, schema: &str) -> bool {
    let control = apps.store.database_url.expose_secret();
    if schema != store::CONTROL_SCHEMA || !is_postgres_url(control) {
        return false;
    }
    let key = |u: &str| {
        Url::parse(u)
            .ok()
            .map(|u| (u.host_str().map(str::to_string), u.port_or_known_default(), u.path().to_string()))
    };
    key(url) == key(control)
}

pub async fn create(apps: &Apps, new: NewApp) -> Result<App, AppError> {
    let slug = AppSlug::parse(&new.slug).map_err(AppError::Invalid)?;
    let display_name = validate_display_name(&new.display_name)?;
    let id = Uuid::now_v7();
    let mut policy = new.policy.unwrap_or_default();
    policy.validate().map_err(AppError::Invalid)?;
    let tokens = new.tokens.unwrap_or_default();
    tokens.validate().map_err(AppError::Invalid)?;
    let database_url_sealed = match &new.database_url {
        None => None,
        Some(url) => {
            let raw = url.expose_secret();
            if !is_postgres_url(raw) || store::pg_options(raw, "latchkey").is_err() {
                return Err(AppError::Invalid("database_url must be a postgres:// URL".into()));
            }
            let schema = new.database_schema.as_deref().unwrap_or("latchkey");
            if collides_with_control(apps, raw, schema) {
                return Err(AppError::Invalid(
                    "schema \"latchkey\" of this database holds the control plane; set database_schema"
                        .into(),
                ));
            }
            Some(apps.secrets.seal(&seal_ctx(id, "database_url"), raw.as_bytes()))
        }
    };
    if let Some(schema) = &new.database_schema {
        if new.database_url.is_none() {
            return Err(AppError::Invalid("database_schema needs database_url".into()));
        }
        if !store::valid_schema_name(schema) {
            return Err(AppError::Invalid("database_schema must match ^[a-z_][a-z0-9_]{0,62}$".into()));
        }
    }
    let email_templates = new.email_templates.unwrap_or_default();
    crate::mail::templates::validate(&email_templates).map_err(AppError::Invalid)?;
    let (smtp, smtp_password_sealed) = match &new.smtp {
        None => (None, None),
        Some(input) => {
            let (settings, password) = split_smtp(input)?;
            let sealed = password.map(|p| apps.secrets.seal(&seal_ctx(id, "smtp_password"), p.as_bytes()));
            (Some(settings), sealed)
        }
    };
    let mut providers = super::providers::Providers::new();
    for (kind, input) in new.providers.unwrap_or_default().into_entries() {
        let settled =
            super::providers::settle(&apps.secrets, id, kind, input, None).map_err(AppError::Invalid)?;
        providers.insert(kind, settled);
    }
    // An unreachable database is the operator's input error: say so now, create nothing.
    if let Some(url) = &new.database_url {
        store::check_reachable(url.expose_secret()).await.map_err(|e| AppError::Invalid(e.to_string()))?;
    }
    let now = apps.now();
    let app = App {
        id,
        slug,
        display_name,
        status: AppStatus::Pending,
        failure_reason: None,
        database_url_sealed,
        database_schema: new.database_schema,
        signing_alg: new.signing_alg.unwrap_or_default(),
        branding: new.branding.unwrap_or_default(),
        policy,
        smtp,
        smtp_password_sealed,
        email_templates,
        tokens,
        providers,
        config_version: 1,
        created_at: now,
        updated_at: now,
    };
    repo::insert(&apps.control, &app)
        .await
        .map_err(|e| if store::is_unique_violation(&e) { AppError::SlugTaken } else { AppError::Store(e) })?;
    operator::record(&apps.control, now, "app.created", Some(app.slug.as_str()), None, json!({})).await;
    tracing::info!(app.slug = %app.slug, "app created");
    super::provision::spawn(apps, app.slug.as_str());
    Ok(app)
}

pub async fn get(apps: &Apps, slug: &str) -> Result<App, AppError> {
    repo::get(&apps.control, slug).await?.ok_or(AppError::NotFound)
}

pub async fn list(apps: &Apps, after: Option<&str>, limit: i64) -> Result<Vec<App>, AppError> {
    list_in(&apps.control, after, limit).await
}

pub async fn list_in(control: &ControlDb, after: Option<&str>, limit: i64) -> Result<Vec<App>, AppError> {
    Ok(repo::list(control, after, limit).await?)
}

/// The JSON document a merge patch applies to.
fn editable_of(app: &App) -> Result<serde_json::Value, AppError> {
    let ed = Editable {
        display_name: app.display_name.clone(),
        branding: app.branding.clone(),
        policy: app.policy.clone(),
        smtp: app.smtp.as_ref().map(|s| json!({"url": s.url, "from": s.from, "reply_to": s.reply_to})),
        email_templates: app.email_templates.clone(),
        tokens: app.tokens.clone(),
        signing_alg: app.signing_alg,
        providers: super::providers::editable(&app.providers),
    };
    serde_json::to_value(ed).map_err(|e| AppError::Unexpected(e.to_string()))
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    if let serde_json::Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        if let serde_json::Value::Object(t) = target {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// Applies a JSON merge patch to the app's settings; takes effect at once.
pub async fn update(apps: &Apps, slug: &str, patch: serde_json::Value, actor: &str) -> Result<App, AppError> {
    if !patch.is_object() {
        return Err(AppError::Invalid("a merge patch must be a JSON object".into()));
    }
    let mut app = get(apps, slug).await?;
    let mut doc = editable_of(&app)?;
    let before = doc.clone();
    merge_patch(&mut doc, &patch);
    // The error names the field (`policy.session.ttl_hours: …`).
    let ed: Editable = serde_path_to_error::deserialize(doc).map_err(|e| AppError::Invalid(e.to_string()))?;
    app.display_name = validate_display_name(&ed.display_name)?;
    let mut policy = ed.policy;
    policy.validate().map_err(AppError::Invalid)?;
    ed.tokens.validate().map_err(AppError::Invalid)?;
    let smtp_url_changed = patch.get("smtp").is_some_and(|s| s.is_null() || s.get("url").is_some());
    match ed.smtp {
        None => {
            app.smtp = None;
            app.smtp_password_sealed = None;
        }
        Some(v) => {
            let input: SmtpInput =
                serde_json::from_value(v).map_err(|e| AppError::Invalid(format!("smtp: {e}")))?;
            let (settings, password) = split_smtp(&input)?;
            if smtp_url_changed {
                app.smtp_password_sealed =
                    password.map(|p| apps.secrets.seal(&seal_ctx(app.id, "smtp_password"), p.as_bytes()));
            }
            app.smtp = Some(settings);
        }
    }
    crate::mail::templates::validate(&ed.email_templates).map_err(AppError::Invalid)?;
    let providers_before = app.providers.clone();
    let merged = if ed.providers.is_null() { json!({}) } else { ed.providers };
    app.providers =
        super::providers::apply(&apps.secrets, app.id, &merged, &app.providers).map_err(AppError::Invalid)?;
    app.email_templates = ed.email_templates;
    app.policy = policy;
    app.tokens = ed.tokens;
    app.branding = ed.branding;
    app.signing_alg = ed.signing_alg;
    let now = apps.now();
    repo::update_settings(&apps.control, &app, now).await?;
    apps.changes.touch(slug);
    // Who changed what: the new value of every changed setting, except mail settings and
    // templates and providers, which are only named (they may hold an operator's addresses or
    // client ids; a changed secret alone counts as a change too).
    let after = editable_of(&app)?;
    let mut changes = serde_json::Map::new();
    for (k, v) in after.as_object().into_iter().flatten() {
        if before.get(k) != Some(v) {
            let named_only = ["smtp", "email_templates", "providers"].contains(&k.as_str());
            let shown = if named_only { json!("changed") } else { v.clone() };
            changes.insert(k.clone(), shown);
        }
    }
    if app.providers != providers_before {
        changes.insert("providers".into(), json!("changed"));
    }
    operator::record(
        &apps.control,
        now,
        "app.updated",
        Some(slug),
        None,
        json!({"actor": actor, "changes": changes}),
    )
    .await;
    get(apps, slug).await
}

/// Starts (or resumes) provisioning a failed, disabled or stuck app.
/// Something the issuer caches from the app's identity store changed (roles, client roles):
/// moves the configuration version so every replica reloads the issuer, this one at once.
pub async fn identity_config_changed(apps: &Apps, app: &App) -> Result<(), AppError> {
    super::repo::bump_version(&apps.control, app.id, apps.now()).await?;
    apps.changes.touch(app.slug.as_str());
    Ok(())
}

pub async fn enable(apps: &Apps, slug: &str) -> Result<App, AppError> {
    let app = get(apps, slug).await?;
    let now = apps.now();
    match app.status {
        AppStatus::Active => return Ok(app),
        AppStatus::Failed | AppStatus::Disabled => {
            repo::transition(
                &apps.control,
                app.id,
                &[AppStatus::Failed, AppStatus::Disabled],
                AppStatus::Pending,
                now,
            )
            .await?;
        }
        _ => {}
    }
    operator::record(&apps.control, now, "app.enabled", Some(slug), None, json!({})).await;
    apps.changes.touch(slug);
    super::provision::spawn(apps, slug);
    get(apps, slug).await
}

/// Stops serving the app's issuer and pages; its identity data is untouched.
pub async fn disable(apps: &Apps, slug: &str) -> Result<App, AppError> {
    let app = get(apps, slug).await?;
    let now = apps.now();
    let from = [
        AppStatus::Pending,
        AppStatus::ProvisioningSchema,
        AppStatus::Deploying,
        AppStatus::Active,
        AppStatus::Failed,
    ];
    repo::transition(&apps.control, app.id, &from, AppStatus::Disabled, now).await?;
    repo::release_lease(&apps.control, app.id).await?;
    apps.changes.touch(slug);
    apps.identity.forget(app.id).await;
    operator::record(&apps.control, now, "app.disabled", Some(slug), None, json!({})).await;
    get(apps, slug).await
}

/// Removes the app's configuration; with `erase_data`, its identity store too.
pub async fn delete(apps: &Apps, slug: &str, erase_data: bool) -> Result<(), AppError> {
    let app = get(apps, slug).await?;
    let location = identity_location(apps, &app)?;
    apps.identity.forget(app.id).await;
    if erase_data {
        match &location {
            IdentityLocation::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(AppError::Unexpected(format!(
                                "could not remove identity store: {e}"
                            )));
                        }
                    }
                }
            }
            IdentityLocation::Postgres { url, schema } => {
                store::drop_pg_schema(url.expose_secret(), schema).await.map_err(|e| match e {
                    StoreError::Db(e) => AppError::Store(e),
                    other => AppError::Conflict(format!("could not erase identity data: {other}")),
                })?;
            }
        }
    }
    repo::delete(&apps.control, app.id).await?;
    apps.changes.touch(slug);
    let now = apps.now();
    operator::record(&apps.control, now, "app.deleted", Some(slug), None, json!({"erase_data": erase_data}))
        .await;
    tracing::info!(app.slug = slug, erase_data, "app deleted");
    Ok(())
}

/// Rotates the app's signing keys (SPEC §6). `grace_seconds` defaults to the longest lifetime of
/// a signed token, so no live token stops validating.
pub async fn rotate_keys(
    apps: &Apps,
    slug: &str,
    grace_seconds: Option<u32>,
) -> Result<Vec<keys::SigningKey>, AppError> {
    let app = get(apps, slug).await?;
    if app.status != AppStatus::Active && app.status != AppStatus::Disabled {
        return Err(AppError::Conflict(format!(
            "the app is {}; keys can be rotated once it is active",
            app.status.as_str()
        )));
    }
    let grace = grace_seconds.unwrap_or_else(|| app.tokens.longest_signed_ttl());
    if grace > 30 * 86_400 {
        return Err(AppError::Invalid("grace_seconds must be at most 2592000 (30 days)".into()));
    }
    let now = apps.now();
    let keys =
        keys::service::rotate(&apps.control, &apps.secrets, app.id, app.signing_alg, grace, now).await?;
    apps.changes.touch(slug);
    let current = keys.iter().find(|k| k.state == keys::KeyState::Current).map(|k| k.kid.clone());
    operator::record(
        &apps.control,
        now,
        "key.rotated",
        Some(slug),
        current.as_deref(),
        json!({"grace_seconds": grace}),
    )
    .await;
    if let Ok(store) = identity_store(apps, &app) {
        apps.audit
            .record(
                crate::audit::AuditEvent::new(app.id, store, now, "key.rotated")
                    .data(json!({"kid": current, "grace_seconds": grace})),
            )
            .await;
    }
    Ok(keys)
}
