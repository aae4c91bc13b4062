//! The background writer behind [`AuditSink`].

use std::collections::HashMap;
use std::time::Duration;

use sqlx::types::Json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::AuditEvent;
use crate::on_db;
use crate::store::IdentityDb;

const QUEUE: usize = 10_000;
const BATCH: usize = 256;

/// Hands events to the writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
}

enum Msg {
    Event(AuditEvent),
    /// Answered once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AuditSink {
    /// Queues the event. Returns at once unless the queue is full, in which case it waits for
    /// room rather than lose the event.
    pub async fn record(&self, event: AuditEvent) {
        let kind = event.kind;
        if self.tx.send(Msg::Event(event)).await.is_err() {
            // Only after shutdown has begun, when no request is in flight any more.
            tracing::error!(audit.kind = kind, "audit event arrived after shutdown and was not written");
            metrics::counter!("latchkey_audit_events_lost_total").increment(1);
        }
    }
}

impl AuditSink {
    /// Waits until every event queued so far is written (for GDPR erasure, which must not be
    /// followed by late events about the erased user).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Owns the writer task.
pub struct AuditWriter {
    task: JoinHandle<()>,
    close: tokio::sync::oneshot::Sender<()>,
}

impl AuditWriter {
    pub fn start() -> (AuditSink, AuditWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (close, closed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(rx, closed));
        (AuditSink { tx }, AuditWriter { task, close })
    }

    /// Stops taking events and writes everything still queued.
    pub async fn shutdown(self) {
        let _ = self.close.send(());
        let _ = self.task.await;
    }
}

async fn run(mut rx: mpsc::Receiver<Msg>, mut closed: tokio::sync::oneshot::Receiver<()>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 { break; }
                handle(std::mem::take(&mut batch)).await;
            }
            _ = &mut closed => {
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    handle(std::mem::take(&mut batch)).await;
                }
                break;
            }
        }
    }
}

/// Writes the events in order, answering each flush once what came before it is written.
async fn handle(msgs: Vec<Msg>) {
    let mut events = Vec::new();
    for m in msgs {
        match m {
            Msg::Event(e) => events.push(e),
            Msg::Flush(done) => {
                write_batch(std::mem::take(&mut events)).await;
                let _ = done.send(());
            }
        }
    }
    write_batch(events).await;
}

async fn write_batch(batch: Vec<AuditEvent>) {
    let mut per_app: HashMap<Uuid, Vec<AuditEvent>> = HashMap::new();
    for ev in batch {
        per_app.entry(ev.app_id).or_default().push(ev);
    }
    for (app_id, events) in per_app {
        let store = events[0].store.clone();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            match insert_all(&store, &events).await {
                Ok(()) => {
                    metrics::counter!("latchkey_audit_events_written_total").increment(events.len() as u64);
                    break;
                }
                Err(err) if attempt < 5 => {
                    tracing::warn!(app.id = %app_id, error = %err, attempt, "audit write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(err) => {
                    tracing::error!(app.id = %app_id, error = %err, count = events.len(), "audit events could not be written");
                    metrics::counter!("latchkey_audit_events_lost_total").increment(events.len() as u64);
                }
            }
        }
    }
}

async fn insert_all(store: &IdentityDb, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO audit_events (id, time, type, user_id, client_id, ip, user_agent, data) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    on_db!(store, p => {
        let mut tx = p.begin().await?;
        for ev in events {
            sqlx::query(sql)
                .bind(Uuid::now_v7())
                .bind(ev.time)
                .bind(ev.kind)
                .bind(ev.user_id)
                .bind(&ev.client_id)
                .bind(&ev.ip)
                .bind(&ev.user_agent)
                .bind(Json(&ev.data))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
}
