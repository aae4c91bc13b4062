//! Audit trail. End-user events go to the app's own identity store through an asynchronous,
//! bounded writer (a request waits only if the writer is a full queue behind); the queue is
//! drained on graceful shutdown. Operator actions go to the control plane, with no end-user data.

pub mod operator;
mod writer;

pub use writer::{AuditSink, AuditWriter};

use uuid::Uuid;

use crate::store::{IdentityDb, Ts};
use crate::users::UserId;

/// One event about an app's end users or tokens, bound for that app's identity store.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The app the event belongs to; events are grouped per app when written.
    pub app_id: Uuid,
    /// The app's identity store.
    pub store: IdentityDb,
    pub time: Ts,
    /// Dotted event type, e.g. `login.success`, `key.rotated`.
    pub kind: &'static str,
    pub user_id: Option<UserId>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Extra detail. Never a secret, password, token or code.
    pub data: serde_json::Value,
}

impl AuditEvent {
    /// An event of `kind` in `store` (app `app_id`) at `time`; the rest is added as known.
    pub fn new(app_id: Uuid, store: IdentityDb, time: Ts, kind: &'static str) -> Self {
        AuditEvent {
            app_id,
            store,
            time,
            kind,
            user_id: None,
            client_id: None,
            ip: None,
            user_agent: None,
            data: serde_json::json!({}),
        }
    }

    pub fn user(mut self, user_id: Option<UserId>) -> Self {
        self.user_id = user_id;
        self
    }

    pub fn client(mut self, client_id: Option<&str>) -> Self {
        self.client_id = client_id.map(str::to_string);
        self
    }

    /// Who sent the request: its address and `User-Agent` (at most 512 characters kept).
    pub fn from(mut self, ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        self.ip = ip.map(|ip| ip.to_string());
        self.user_agent = user_agent.map(|s| s.chars().take(512).collect());
        self
    }

    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// A stored event, as the admin API lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: Uuid,
    pub time: Ts,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub user_id: Option<UserId>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub data: sqlx::types::Json<serde_json::Value>,
}

/// Filters of the audit query; all optional.
#[derive(Debug, Default)]
pub struct EventFilter {
    pub user_id: Option<UserId>,
    pub kind: Option<String>,
    pub since: Option<Ts>,
    pub until: Option<Ts>,
}

/// Events newest first; the cursor is the last event id of the previous page.
pub async fn query(
    db: &IdentityDb,
    f: &EventFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = "SELECT id, time, type, user_id, client_id, ip, user_agent, data FROM audit_events \
        WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR time >= $3) \
        AND ($4 IS NULL OR time < $4) AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6";
    crate::on_db!(db, p => sqlx::query_as(sql)
        .bind(f.user_id).bind(&f.kind).bind(f.since).bind(f.until).bind(before).bind(limit)
        .fetch_all(p).await)
}
