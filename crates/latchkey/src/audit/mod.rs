//! Audit trail. End-user events go to the app's own identity store through an asynchronous,
//! bounded writer (a request waits only if the writer is a full queue behind); the queue is
//! drained on graceful shutdown. Operator actions go to the control plane, with no end-user data.

pub mod operator;
mod writer;

pub use writer::{AuditSink, AuditWriter};

use uuid::Uuid;

use crate::store::{Db, Ts};

/// One event about an app's end users or tokens, bound for that app's identity store.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The app the event belongs to; events are grouped per app when written.
    pub app_id: Uuid,
    /// The app's identity store.
    pub store: Db,
    pub time: Ts,
    /// Dotted event type, e.g. `login.success`, `key.rotated`.
    pub kind: &'static str,
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Extra detail. Never a secret, password, token or code.
    pub data: serde_json::Value,
}
