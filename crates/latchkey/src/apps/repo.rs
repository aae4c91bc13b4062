//! SQL for apps in the control-plane store.

use sqlx::types::Json;
use uuid::Uuid;

use super::model::{
    App, AppSlug, AppStatus, Branding, EmailTemplates, Policy, SigningAlg, SmtpSettings, TokenSettings,
};
use crate::on_db;
use crate::store::{ControlDb, Ts};

const COLUMNS: &str = "id, slug, display_name, status, failure_reason, database_url, database_schema, \
     signing_alg, branding, policy, smtp, smtp_password, email_templates, tokens, providers, config_version, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
struct AppRow {
    id: Uuid,
    slug: String,
    display_name: String,
    status: String,
    failure_reason: Option<String>,
    database_url: Option<String>,
    database_schema: Option<String>,
    signing_alg: String,
    branding: Json<Branding>,
    policy: Json<Policy>,
    smtp: Option<Json<SmtpSettings>>,
    smtp_password: Option<String>,
    email_templates: Json<EmailTemplates>,
    tokens: Json<TokenSettings>,
    providers: Json<super::providers::Providers>,
    config_version: i64,
    created_at: Ts,
    updated_at: Ts,
}

impl AppRow {
    fn into_app(self) -> Result<App, sqlx::Error> {
        let bad = |what: &str| sqlx::Error::Decode(format!("apps.{what} holds an unknown value").into());
        Ok(App {
            id: self.id,
            slug: AppSlug::parse(&self.slug).map_err(|_| bad("slug"))?,
            display_name: self.display_name,
            status: AppStatus::parse(&self.status).ok_or_else(|| bad("status"))?,
            failure_reason: self.failure_reason,
            database_url_sealed: self.database_url,
            database_schema: self.database_schema,
            signing_alg: SigningAlg::parse(&self.signing_alg).ok_or_else(|| bad("signing_alg"))?,
            branding: self.branding.0,
            policy: self.policy.0,
            smtp: self.smtp.map(|j| j.0),
            smtp_password_sealed: self.smtp_password,
            email_templates: self.email_templates.0,
            tokens: self.tokens.0,
            providers: self.providers.0,
            config_version: self.config_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert(db: &ControlDb, app: &App) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO apps (id, slug, display_name, status, failure_reason, database_url, \
        database_schema, signing_alg, branding, policy, smtp, smtp_password, tokens, config_version, \
        created_at, updated_at, email_templates, providers) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
    on_db!(db, p => sqlx::query(sql)
        .bind(app.id)
        .bind(app.slug.as_str())
        .bind(&app.display_name)
        .bind(app.status.as_str())
        .bind(&app.failure_reason)
        .bind(&app.database_url_sealed)
        .bind(&app.database_schema)
        .bind(app.signing_alg.as_str())
        .bind(Json(&app.branding))
        .bind(Json(&app.policy))
        .bind(app.smtp.as_ref().map(Json))
        .bind(&app.smtp_password_sealed)
        .bind(Json(&app.tokens))
        .bind(app.config_version)
        .bind(app.created_at)
        .bind(app.updated_at)
        .bind(Json(&app.email_templates))
        .bind(Json(&app.providers))
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get(db: &ControlDb, slug: &str) -> Result<Option<App>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM apps WHERE slug = $1");
    let row: Option<AppRow> = on_db!(db, p => sqlx::query_as(&sql).bind(slug).fetch_optional(p).await)?;
    row.map(AppRow::into_app).transpose()
}

/// Apps ordered by slug, starting after `after`.
pub async fn list(db: &ControlDb, after: Option<&str>, limit: i64) -> Result<Vec<App>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM apps WHERE slug > $1 ORDER BY slug LIMIT $2");
    let rows: Vec<AppRow> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(p)
        .await)?;
    rows.into_iter().map(AppRow::into_app).collect()
}

/// Every app whose provisioning has not finished: resumed at start-up.
pub async fn list_in_progress(db: &ControlDb) -> Result<Vec<App>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM apps WHERE status IN ('pending', 'provisioning_schema', 'deploying')");
    let rows: Vec<AppRow> = on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await)?;
    rows.into_iter().map(AppRow::into_app).collect()
}

/// The app's configuration version and status: the cheap check behind the config cache.
pub async fn version(db: &ControlDb, slug: &str) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT config_version FROM apps WHERE slug = $1";
    on_db!(db, p => sqlx::query_scalar(sql).bind(slug).fetch_optional(p).await)
}

/// Saves the operator-editable settings and bumps the configuration version.
pub async fn update_settings(db: &ControlDb, app: &App, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE apps SET display_name = $2, branding = $3, policy = $4, smtp = $5, \
        smtp_password = $6, tokens = $7, signing_alg = $9, email_templates = $10, providers = $11, \
        config_version = config_version + 1, updated_at = $8 WHERE id = $1";
    on_db!(db, p => sqlx::query(sql)
        .bind(app.id)
        .bind(&app.display_name)
        .bind(Json(&app.branding))
        .bind(Json(&app.policy))
        .bind(app.smtp.as_ref().map(Json))
        .bind(&app.smtp_password_sealed)
        .bind(Json(&app.tokens))
        .bind(now)
        .bind(app.signing_alg.as_str())
        .bind(Json(&app.email_templates))
        .bind(Json(&app.providers))
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Marks an in-progress app `failed` with a reason an operator can act on.
pub async fn set_failed(db: &ControlDb, id: Uuid, failure_reason: &str, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE apps SET status = 'failed', failure_reason = $2, lease_until = NULL, \
        config_version = config_version + 1, updated_at = $3 WHERE id = $1 \
        AND status IN ('pending', 'provisioning_schema', 'deploying')";
    on_db!(db, p => sqlx::query(sql).bind(id).bind(failure_reason).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Moves the app from `from` to `to` only if it is still in `from`; true if it moved.
pub async fn transition(
    db: &ControlDb,
    id: Uuid,
    from: &[AppStatus],
    to: AppStatus,
    now: Ts,
) -> Result<bool, sqlx::Error> {
    // The `from` states are our own constants, never input.
    let states = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "UPDATE apps SET status = $2, failure_reason = NULL, \
         config_version = config_version + 1, updated_at = $3 WHERE id = $1 AND status IN ({states})"
    );
    let res = on_db!(db, p => sqlx::query(&sql).bind(id).bind(to.as_str()).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(res == 1)
}

/// Takes the provisioning lease of an in-progress app until `until`; false if another task
/// (in this or another replica) holds a live lease.
pub async fn claim_lease(db: &ControlDb, id: Uuid, now: Ts, until: Ts) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE apps SET lease_until = $2 WHERE id = $1 \
        AND status IN ('pending', 'provisioning_schema', 'deploying') \
        AND (lease_until IS NULL OR lease_until < $3)";
    let res = on_db!(db, p => sqlx::query(sql).bind(id).bind(until).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(res == 1)
}

pub async fn release_lease(db: &ControlDb, id: Uuid) -> Result<(), sqlx::Error> {
    let sql = "UPDATE apps SET lease_until = NULL WHERE id = $1";
    on_db!(db, p => sqlx::query(sql).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete(db: &ControlDb, id: Uuid) -> Result<bool, sqlx::Error> {
    let res = on_db!(db, p => sqlx::query("DELETE FROM apps WHERE id = $1").bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(res == 1)
}

/// Moves the app's configuration version (caches of every replica reload).
pub async fn bump_version(db: &ControlDb, id: Uuid, now: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE apps SET config_version = config_version + 1, updated_at = $2 WHERE id = $1";
    on_db!(db, p => sqlx::query(sql).bind(id).bind(now).execute(p).await.map(|_| ()))
}
