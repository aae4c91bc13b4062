//! Operator actions in the control plane: what was done to which app, never end-user data.

use sqlx::types::Json;
use uuid::Uuid;

use crate::on_db;
use crate::store::{ControlDb, Ts};

pub async fn record(
    db: &ControlDb,
    time: Ts,
    action: &str,
    app_slug: Option<&str>,
    target: Option<&str>,
    data: serde_json::Value,
) {
    let sql = "INSERT INTO operator_audit (id, time, action, app_slug, target, data) VALUES ($1, $2, $3, $4, $5, $6)";
    let res = on_db!(db, p => sqlx::query(sql)
        .bind(Uuid::now_v7())
        .bind(time)
        .bind(action)
        .bind(app_slug)
        .bind(target)
        .bind(Json(&data))
        .execute(p)
        .await.map(|r| r.rows_affected()));
    if let Err(err) = res {
        tracing::error!(audit.action = action, error = %err, "operator audit record failed");
    }
}
