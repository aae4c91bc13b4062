//! Key lifecycle: the first keys of an app, rotation with a grace window, listing.

use chrono::Duration;
use sqlx::types::Json;
use uuid::Uuid;

use super::material::{self, MaterialError, Signer};
use super::model::{KeyId, KeyState, SigningAlg, SigningKey};
use super::repo::{self, INSERT, KeyRow, SELECT};
use crate::crypto::{CryptoError, SecretBox, tokens};
use crate::on_db;
use crate::store::{ControlDb, Ts};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Material(#[from] MaterialError),
    #[error("could not open a sealed key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
}

/// Generates a key on the blocking pool (RSA key generation takes tens of milliseconds).
async fn generate(
    secrets: &SecretBox,
    app_id: Uuid,
    alg: SigningAlg,
    state: KeyState,
    now: Ts,
) -> Result<SigningKey, KeyError> {
    let generated = tokio::task::spawn_blocking(move || material::generate(alg))
        .await
        .map_err(|_| MaterialError::Generate)??;
    let kid = tokens::new_id();
    let sealed = secrets.seal(&SigningKey::seal_context(app_id, &kid), &generated.pkcs8);
    Ok(SigningKey {
        kid: KeyId(kid),
        app_id,
        alg,
        state,
        private_key_sealed: sealed,
        public_jwk: generated.public_jwk,
        created_at: now,
        activated_at: (state == KeyState::Current).then_some(now),
        retire_at: None,
    })
}

/// Inserts a key through any executor of either backend (pool or transaction).
macro_rules! insert_key {
    ($exec:expr, $key:expr) => {{
        let key: &SigningKey = $key;
        sqlx::query(INSERT)
            .bind(&key.kid)
            .bind(key.app_id)
            .bind(key.alg.as_str())
            .bind(key.state.as_str())
            .bind(&key.private_key_sealed)
            .bind(Json(&key.public_jwk))
            .bind(key.created_at)
            .bind(key.activated_at)
            .bind(key.retire_at)
            .execute($exec)
            .await
            .map(|_| ())
    }};
}

/// Gives a new app its first `current` key and a published `next` key, unless it has them.
pub async fn ensure_initial(
    db: &ControlDb,
    secrets: &SecretBox,
    app_id: Uuid,
    alg: SigningAlg,
    now: Ts,
) -> Result<(), KeyError> {
    let existing = repo::list(db, app_id).await?;
    let has = |s: KeyState| existing.iter().any(|k| k.state == s && k.alg == alg);
    if !has(KeyState::Current) {
        let key = generate(secrets, app_id, alg, KeyState::Current, now).await?;
        on_db!(db, p => insert_key!(p, &key))?;
    }
    if !has(KeyState::Next) {
        let key = generate(secrets, app_id, alg, KeyState::Next, now).await?;
        on_db!(db, p => insert_key!(p, &key))?;
    }
    Ok(())
}

/// Switches signing to the published `next` key (or a new key if the algorithm changed), keeps
/// the previous key published for `grace_seconds`, and publishes a new `next` key. Runs in one
/// transaction that first bumps the app's configuration version, which serialises concurrent
/// rotations of the same app on both backends.
pub async fn rotate(
    db: &ControlDb,
    secrets: &SecretBox,
    app_id: Uuid,
    alg: SigningAlg,
    grace_seconds: u32,
    now: Ts,
) -> Result<Vec<SigningKey>, KeyError> {
    let fresh_next = generate(secrets, app_id, alg, KeyState::Next, now).await?;
    let fallback_current = generate(secrets, app_id, alg, KeyState::Current, now).await?;
    let retire_at = Ts::new(now.0 + Duration::seconds(i64::from(grace_seconds)));
    let rows: Vec<KeyRow> = on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("UPDATE apps SET config_version = config_version + 1, updated_at = $2 WHERE id = $1")
            .bind(app_id).bind(now).execute(&mut *tx).await?;
        sqlx::query("UPDATE signing_keys SET state = 'retired' WHERE app_id = $1 AND state = 'retiring' AND retire_at <= $2")
            .bind(app_id).bind(now).execute(&mut *tx).await?;
        // A `next` key of another algorithm never signs: the app's algorithm changed.
        sqlx::query("UPDATE signing_keys SET state = 'retired' WHERE app_id = $1 AND state = 'next' AND alg <> $2")
            .bind(app_id).bind(alg.as_str()).execute(&mut *tx).await?;
        sqlx::query("UPDATE signing_keys SET state = 'retiring', retire_at = $2 WHERE app_id = $1 AND state = 'current'")
            .bind(app_id).bind(retire_at).execute(&mut *tx).await?;
        let promoted = sqlx::query("UPDATE signing_keys SET state = 'current', activated_at = $2 WHERE app_id = $1 AND state = 'next'")
            .bind(app_id).bind(now).execute(&mut *tx).await?;
        if promoted.rows_affected() == 0 {
            insert_key!(&mut *tx, &fallback_current)?;
        }
        insert_key!(&mut *tx, &fresh_next)?;
        let rows: Vec<KeyRow> = sqlx::query_as(SELECT).bind(app_id).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows
    });
    Ok(rows.into_iter().map(KeyRow::into_key).collect::<Result<_, _>>()?)
}

pub async fn list(db: &ControlDb, app_id: Uuid) -> Result<Vec<SigningKey>, KeyError> {
    Ok(repo::list(db, app_id).await?)
}

/// Opens a stored key into a [`Signer`]. Parsing is done once per key and cached by callers.
pub fn signer(secrets: &SecretBox, key: &SigningKey) -> Result<Signer, KeyError> {
    let pkcs8 = secrets.open(&SigningKey::seal_context(key.app_id, &key.kid), &key.private_key_sealed)?;
    Ok(Signer::from_pkcs8(&key.kid, key.alg, &pkcs8)?)
}
