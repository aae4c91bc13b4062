//! SQL for signing keys in the control-plane store.

use sqlx::types::Json;
use uuid::Uuid;

use super::model::{KeyId, KeyState, SigningAlg, SigningKey};
use crate::on_db;
use crate::store::{ControlDb, Ts};

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    kid: String,
    app_id: Uuid,
    alg: String,
    state: String,
    private_key: String,
    public_jwk: Json<serde_json::Value>,
    created_at: Ts,
    activated_at: Option<Ts>,
    retire_at: Option<Ts>,
}

impl KeyRow {
    pub(super) fn into_key(self) -> Result<SigningKey, sqlx::Error> {
        let bad =
            |what: &str| sqlx::Error::Decode(format!("signing_keys.{what} holds an unknown value").into());
        Ok(SigningKey {
            alg: SigningAlg::parse(&self.alg).ok_or_else(|| bad("alg"))?,
            state: KeyState::parse(&self.state).ok_or_else(|| bad("state"))?,
            kid: KeyId(self.kid),
            app_id: self.app_id,
            private_key_sealed: self.private_key,
            public_jwk: self.public_jwk.0,
            created_at: self.created_at,
            activated_at: self.activated_at,
            retire_at: self.retire_at,
        })
    }
}

pub(super) const SELECT: &str = "SELECT kid, app_id, alg, state, private_key, public_jwk, created_at, \
    activated_at, retire_at FROM signing_keys WHERE app_id = $1 ORDER BY created_at, kid";

pub(super) const INSERT: &str = "INSERT INTO signing_keys (kid, app_id, alg, state, private_key, \
    public_jwk, created_at, activated_at, retire_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Every key of the app, oldest first.
pub async fn list(db: &ControlDb, app_id: Uuid) -> Result<Vec<SigningKey>, sqlx::Error> {
    let rows: Vec<KeyRow> = on_db!(db, p => sqlx::query_as(SELECT).bind(app_id).fetch_all(p).await)?;
    rows.into_iter().map(KeyRow::into_key).collect()
}

/// Writes down `retired` for keys whose grace window has ended (janitor); returns how many.
pub async fn retire_expired(db: &ControlDb, now: Ts) -> Result<u64, sqlx::Error> {
    let sql = "UPDATE signing_keys SET state = 'retired' WHERE state = 'retiring' AND retire_at <= $1";
    let res = on_db!(db, p => sqlx::query(sql).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(res)
}
