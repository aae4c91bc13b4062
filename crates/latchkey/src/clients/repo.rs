//! SQL for clients in the control-plane store.

use sqlx::types::Json;
use uuid::Uuid;

use super::model::{AuthMethod, Client, ClientId, GrantType, RedirectUri, Scope};
use crate::on_db;
use crate::store::{ControlDb, Ts};

/// Bumps the app's configuration version so every replica reloads its clients.
macro_rules! bump {
    ($exec:expr, $app_id:expr, $now:expr) => {
        sqlx::query("UPDATE apps SET config_version = config_version + 1, updated_at = $2 WHERE id = $1")
            .bind($app_id)
            .bind($now)
            .execute($exec)
            .await
            .map(|_| ())
    };
}

const COLUMNS: &str = "id, app_id, client_id, name, redirect_uris, post_logout_redirect_uris, \
    grant_types, token_endpoint_auth_method, scopes, secret_hash, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: Uuid,
    app_id: Uuid,
    client_id: String,
    name: String,
    redirect_uris: Json<Vec<RedirectUri>>,
    post_logout_redirect_uris: Json<Vec<RedirectUri>>,
    grant_types: Json<Vec<GrantType>>,
    token_endpoint_auth_method: String,
    scopes: Json<Vec<Scope>>,
    secret_hash: Option<String>,
    created_at: Ts,
    updated_at: Ts,
}

impl ClientRow {
    fn into_client(self) -> Result<Client, sqlx::Error> {
        Ok(Client {
            id: self.id,
            app_id: self.app_id,
            client_id: ClientId(self.client_id),
            name: self.name,
            redirect_uris: self.redirect_uris.0,
            post_logout_redirect_uris: self.post_logout_redirect_uris.0,
            grant_types: self.grant_types.0,
            token_endpoint_auth_method: AuthMethod::parse(&self.token_endpoint_auth_method)
                .ok_or_else(|| sqlx::Error::Decode("unknown token_endpoint_auth_method".into()))?,
            scopes: self.scopes.0,
            secret_hash: self.secret_hash,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Whether [`save`] registers a client or changes one that exists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Save {
    New,
    Existing,
}

/// Saves the client and bumps its app's configuration version, in one transaction. A change
/// writes every mutable field of the row it loaded (never `app_id`, `client_id`, `created_at`)
/// and is `false` if that client was deleted meanwhile: a change never brings it back.
pub async fn save(db: &ControlDb, c: &Client, how: Save) -> Result<bool, sqlx::Error> {
    // Both statements take the same twelve parameters, in COLUMNS order.
    let sql = match how {
        Save::New => {
            format!("INSERT INTO clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        }
        Save::Existing => "UPDATE clients SET name = $4, redirect_uris = $5, post_logout_redirect_uris = $6, \
            grant_types = $7, token_endpoint_auth_method = $8, scopes = $9, secret_hash = $10, updated_at = $12 \
            WHERE id = $1 AND app_id = $2 AND client_id = $3 AND created_at = $11"
            .to_string(),
    };
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let saved = sqlx::query(&sql)
            .bind(c.id)
            .bind(c.app_id)
            .bind(&c.client_id)
            .bind(&c.name)
            .bind(Json(&c.redirect_uris))
            .bind(Json(&c.post_logout_redirect_uris))
            .bind(Json(&c.grant_types))
            .bind(c.token_endpoint_auth_method.as_str())
            .bind(Json(&c.scopes))
            .bind(&c.secret_hash)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if saved == 0 {
            return Ok(false);
        }
        bump!(&mut *tx, c.app_id, c.updated_at)?;
        tx.commit().await?;
        Ok(true)
    })
}

pub async fn delete(db: &ControlDb, app_id: Uuid, client_id: &str, now: Ts) -> Result<bool, sqlx::Error> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let res = sqlx::query("DELETE FROM clients WHERE app_id = $1 AND client_id = $2")
            .bind(app_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        bump!(&mut *tx, app_id, now)?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    })
}

pub async fn get(db: &ControlDb, app_id: Uuid, client_id: &str) -> Result<Option<Client>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM clients WHERE app_id = $1 AND client_id = $2");
    let row: Option<ClientRow> =
        on_db!(db, p => sqlx::query_as(&sql).bind(app_id).bind(client_id).fetch_optional(p).await)?;
    row.map(ClientRow::into_client).transpose()
}

/// Clients of an app ordered by `client_id`, after `after`.
pub async fn list(
    db: &ControlDb,
    app_id: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Client>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM clients WHERE app_id = $1 AND client_id > $2 ORDER BY client_id LIMIT $3"
    );
    let rows: Vec<ClientRow> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(app_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(p)
        .await)?;
    rows.into_iter().map(ClientRow::into_client).collect()
}
