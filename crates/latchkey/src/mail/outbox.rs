//! The persistent outbox and its background sender.
//!
//! A message is a row in the app's identity store, written in the transaction that creates the
//! link it carries ([`super::links`]). The sender delivers it off the request path:
//!
//! - **Woken at once** by the request that queued the message, and **sweeps** every active app
//!   every few seconds for retries and for messages left by a crash or restart.
//! - **At least once:** a message is claimed with a lease (a conditional update, so replicas
//!   never send the same row at the same time), sent, then marked sent. A process that dies
//!   between sending and marking sends it again after the lease runs out.
//! - **A few at a time:** up to four messages of an app are handed over at once, the next due
//!   one starting as soon as one is done, each under a 30 s deadline (connecting times out
//!   after 10 s), so one hung connection delays one message.
//! - **Retries** with exponential backoff (2 s, 4 s, 8 s … up to 30 min, 12 attempts). A message
//!   whose link has expired is not sent any more. Failures are counted in `/metrics`
//!   (`latchkey_mail_failures_total`, `latchkey_mail_given_up_total`) and logged with the app and
//!   message id and the SMTP error, never the link or the recipient.
//! - The sealed message is dropped from the row once it is sent or given up; the janitor deletes
//!   finished rows after a week.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::templates::Letter;
use super::transport::Transport;
use crate::apps::Apps;
use crate::config::Config;
use crate::tenant::IssuerCache;

use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::tenant::{Issuer, Lookup};
use crate::users::UserId;

/// How often every active app's outbox is looked at without being woken.
const SWEEP: Duration = Duration::from_secs(5);
/// How long a claimed message is reserved for the replica sending it.
const LEASE: chrono::Duration = chrono::Duration::minutes(2);
const MAX_ATTEMPTS: i32 = 12;
/// Messages of one app in flight at once.
const SEND_CONCURRENCY: usize = 4;
/// The longest one message may take to hand over, connection included.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// The sealed content of an outbox row.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    pub letter: Letter,
    /// Logged by the dev transport only.
    pub link: String,
}

/// The outbox row of a message, sealed and ready to insert in the caller's transaction with
/// [`insert_queued!`](crate::insert_queued).
pub struct Queued {
    pub id: Uuid,
    pub kind: &'static str,
    pub user_id: Option<UserId>,
    pub recipient: String,
    pub sealed: String,
    pub now: Ts,
    pub expires: Ts,
}

pub const INSERT: &str = "INSERT INTO outbox (id, kind, user_id, recipient, message_sealed, status, attempts, \
    next_attempt_at, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $7)";

impl Queued {
    /// Seals `letter` (with `link`, for the dev transport's log) for `app_id`.
    #[expect(clippy::too_many_arguments, reason = "each is a distinct part of the row or request")]
    pub fn seal(
        secrets: &crate::crypto::SecretBox,
        app_id: Uuid,
        kind: super::Kind,
        user_id: Option<UserId>,
        recipient: &str,
        letter: Letter,
        link: String,
        now: Ts,
        expires: Ts,
    ) -> Result<Queued, serde_json::Error> {
        let id = Uuid::now_v7();
        let sealed = secrets.seal(&seal_ctx(app_id, id), &serde_json::to_vec(&Sealed { letter, link })?);
        Ok(Queued {
            id,
            kind: kind.as_str(),
            user_id,
            recipient: recipient.to_string(),
            sealed,
            now,
            expires,
        })
    }
}

/// Inserts a [`Queued`] message with the given executor (a transaction).
#[macro_export]
macro_rules! insert_queued {
    ($exec:expr, $q:expr) => {
        sqlx::query($crate::mail::outbox::INSERT)
            .bind($q.id)
            .bind($q.kind)
            .bind($q.user_id)
            .bind(&$q.recipient)
            .bind(&$q.sealed)
            .bind($q.now)
            .bind($q.expires)
            .execute($exec)
            .await
    };
}

/// Associated data binding a sealed message to its app and row.
pub fn seal_ctx(app_id: Uuid, id: Uuid) -> String {
    format!("app:{app_id}:outbox:{id}")
}

/// Wakes the sender. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    tx: mpsc::Sender<Arc<Issuer>>,
}

impl Mailer {
    pub fn new() -> (Mailer, mpsc::Receiver<Arc<Issuer>>) {
        let (tx, rx) = mpsc::channel(1024);
        (Mailer { tx }, rx)
    }

    /// Asks for `issuer`'s outbox to be drained now. If the queue is full the sweep finds the
    /// message a few seconds later; nothing is lost.
    pub fn wake(&self, issuer: &Arc<Issuer>) {
        let _ = self.tx.try_send(issuer.clone());
    }
}

/// Stops the sender.
pub struct SenderHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SenderHandle {
    /// Takes no new work and waits (bounded) for messages being sent; what is left stays queued
    /// for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(25), self.task).await;
    }
}

#[derive(Default)]
struct Shared {
    /// Apps being drained, and whether a wake arrived meanwhile.
    busy: Mutex<HashMap<Uuid, bool>>,
    /// One transport per app, rebuilt when the app's configuration changes.
    transports: Mutex<HashMap<Uuid, (i64, Arc<Transport>)>>,
}

/// What the sender works with.
#[derive(Clone)]
pub struct SenderDeps {
    /// The apps (listed on each sweep) and the clock.
    pub apps: Apps,
    pub issuers: IssuerCache,
    /// Transport settings (`LATCHKEY_SMTP_*`, the data dir of the dev transport).
    pub config: Arc<Config>,
}

impl SenderDeps {
    fn now(&self) -> Ts {
        self.apps.now()
    }
}

pub fn start(state: SenderDeps, rx: mpsc::Receiver<Arc<Issuer>>) -> SenderHandle {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(state, rx, stopped));
    SenderHandle { stop, task }
}

async fn run(state: SenderDeps, mut rx: mpsc::Receiver<Arc<Issuer>>, mut stop: watch::Receiver<bool>) {
    let shared = Arc::new(Shared::default());
    let mut drains = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(issuer) = rx.recv() => spawn_drain(&state, &shared, &mut drains, &stop, issuer),
            _ = sweep.tick() => {
                for issuer in active_issuers(&state).await {
                    spawn_drain(&state, &shared, &mut drains, &stop, issuer);
                }
            }
            Some(_) = drains.join_next(), if !drains.is_empty() => {}
        }
    }
    while drains.join_next().await.is_some() {}
}

/// Every active app's issuer (which also guarantees its identity store is migrated).
async fn active_issuers(state: &SenderDeps) -> Vec<Arc<Issuer>> {
    let out = parking_lot::Mutex::new(Vec::new());
    let walk = crate::jobs::for_each_active_app(&state.apps, "mail sender", |app| {
        let out = &out;
        async move {
            if let Lookup::Active(i) = state.issuers.lookup(app.slug.as_str()).await? {
                out.lock().push(i);
            }
            Ok(())
        }
    })
    .await;
    if let Err(err) = walk {
        tracing::warn!(error = %err, "mail sender: apps could not be listed");
    }
    out.into_inner()
}

fn spawn_drain(
    state: &SenderDeps,
    shared: &Arc<Shared>,
    drains: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
    issuer: Arc<Issuer>,
) {
    {
        let mut busy = shared.busy.lock();
        if let Some(again) = busy.get_mut(&issuer.app.id) {
            *again = true;
            return;
        }
        busy.insert(issuer.app.id, false);
    }
    let (state, shared, stop) = (state.clone(), shared.clone(), stop.clone());
    drains.spawn(async move {
        loop {
            if let Err(err) = drain(&state, &shared, &issuer, &stop).await {
                tracing::warn!(app.slug = %issuer.app.slug, error = %err, "mail sender: outbox pass failed");
            }
            let mut busy = shared.busy.lock();
            match busy.get_mut(&issuer.app.id) {
                Some(again) if *again && !*stop.borrow() => *again = false,
                _ => {
                    busy.remove(&issuer.app.id);
                    return;
                }
            }
        }
    });
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    recipient: String,
    message_sealed: Option<String>,
    attempts: i32,
    expires_at: Ts,
}

fn transport(state: &SenderDeps, shared: &Shared, issuer: &Issuer) -> Result<Arc<Transport>, String> {
    let app = &issuer.app;
    let mut cache = shared.transports.lock();
    if let Some((version, t)) = cache.get(&app.id)
        && *version == app.config_version
    {
        return Ok(t.clone());
    }
    let t = Arc::new(Transport::for_app(&state.config, &state.apps.secrets, app).map_err(|e| e.to_string())?);
    cache.insert(app.id, (app.config_version, t.clone()));
    Ok(t)
}

/// Sends everything due in one app's outbox, [`SEND_CONCURRENCY`] messages at a time: as soon
/// as one is done the next due message takes its place, so a hung SMTP connection holds one
/// slot (for at most [`SEND_DEADLINE`]) while the others keep the queue moving.
async fn drain(
    state: &SenderDeps,
    shared: &Shared,
    issuer: &Issuer,
    stop: &watch::Receiver<bool>,
) -> Result<(), sqlx::Error> {
    let db = &issuer.identity;
    let select = "SELECT id, recipient, message_sealed, attempts, expires_at FROM outbox \
        WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
        ORDER BY next_attempt_at LIMIT $2";
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut sending: HashSet<Uuid> = HashSet::new();
    let mut first_error = None;
    loop {
        if !*stop.borrow() && in_flight.len() < SEND_CONCURRENCY {
            // Rows being sent right now may not carry their lease yet: skip them by id.
            let want = (SEND_CONCURRENCY - in_flight.len() + sending.len()) as i64;
            let due: Vec<Due> =
                on_db!(db, p => sqlx::query_as(select).bind(state.now()).bind(want).fetch_all(p).await)?;
            let room = SEND_CONCURRENCY - in_flight.len();
            let fresh: Vec<Due> = due.into_iter().filter(|r| !sending.contains(&r.id)).take(room).collect();
            for row in fresh {
                sending.insert(row.id);
                let id = row.id;
                in_flight.push(async move { (id, send_one(state, shared, issuer, stop, row).await) });
            }
        }
        let Some((id, result)) = in_flight.next().await else { break };
        sending.remove(&id);
        if let Err(e) = result {
            tracing::warn!(app.slug = %issuer.app.slug, outbox.id = %id, error = %e, "mail sender: recording a send failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Claims, sends and records one due message.
async fn send_one(
    state: &SenderDeps,
    shared: &Shared,
    issuer: &Issuer,
    stop: &watch::Receiver<bool>,
    row: Due,
) -> Result<(), sqlx::Error> {
    let db = &issuer.identity;
    if *stop.borrow() || !claim(db, row.id, state.now()).await? {
        return Ok(());
    }
    let attempt = row.attempts + 1;
    let now = state.now();
    if row.expires_at <= now {
        finish(db, row.id, "expired", None, now).await?;
        metrics::counter!("latchkey_mail_expired_total").increment(1);
        return Ok(());
    }
    let outcome = match open(state, issuer.app.id, &row) {
        Ok(sealed) => match transport(state, shared, issuer) {
            Ok(t) => match tokio::time::timeout(
                SEND_DEADLINE,
                t.send(&row.recipient, &sealed.letter, &sealed.link),
            )
            .await
            {
                Ok(sent) => sent.map(|()| t.kind()).map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer from the mail server within {} s", SEND_DEADLINE.as_secs())),
            },
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let now = state.now();
    match outcome {
        Ok(kind) => {
            finish(db, row.id, "sent", None, now).await?;
            metrics::counter!("latchkey_mail_sent_total", "transport" => kind).increment(1);
            tracing::info!(app.slug = %issuer.app.slug, outbox.id = %row.id, attempt, "mail sent");
        }
        Err(err) if attempt >= MAX_ATTEMPTS => {
            finish(db, row.id, "failed", Some(&err), now).await?;
            metrics::counter!("latchkey_mail_failures_total").increment(1);
            metrics::counter!("latchkey_mail_given_up_total").increment(1);
            tracing::error!(app.slug = %issuer.app.slug, outbox.id = %row.id, attempt, error = %err, "mail could not be delivered; giving up");
        }
        Err(err) => {
            let next = Ts::new(now.0 + backoff(attempt));
            retry_later(db, row.id, &err, next).await?;
            metrics::counter!("latchkey_mail_failures_total").increment(1);
            tracing::warn!(app.slug = %issuer.app.slug, outbox.id = %row.id, attempt, error = %err, retry_at = %next.0, "mail delivery failed; will retry");
        }
    }
    Ok(())
}

/// Messages waiting after failed attempts, for the app's health.
pub struct Backlog {
    pub retrying: i64,
    pub last_error: Option<String>,
}

pub async fn backlog(db: &IdentityDb) -> Result<Backlog, sqlx::Error> {
    // `attempts` counts a send in flight too: only a recorded failure makes a message "retrying".
    let count = "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND last_error IS NOT NULL";
    let last = "SELECT last_error FROM outbox WHERE status = 'pending' AND last_error IS NOT NULL \
        ORDER BY next_attempt_at DESC LIMIT 1";
    let retrying: i64 = on_db!(db, p => sqlx::query_scalar(count).fetch_one(p).await)?;
    let last_error: Option<Option<String>> =
        on_db!(db, p => sqlx::query_scalar(last).fetch_optional(p).await)?;
    Ok(Backlog { retrying, last_error: last_error.flatten() })
}

fn open(state: &SenderDeps, app_id: Uuid, row: &Due) -> Result<Sealed, String> {
    let sealed = row.message_sealed.as_deref().ok_or("message is gone")?;
    let bytes = state
        .apps
        .secrets
        .open(&seal_ctx(app_id, row.id), sealed)
        .map_err(|e| format!("message cannot be unsealed: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("message cannot be read: {e}"))
}

/// Delay before the attempt after `attempt` failed ones: 2 s doubling, at most 30 minutes.
fn backoff(attempt: i32) -> chrono::Duration {
    let secs = 2i64.saturating_pow(attempt.clamp(1, 20) as u32).min(30 * 60);
    chrono::Duration::seconds(secs)
}

async fn claim(db: &IdentityDb, id: Uuid, now: Ts) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE outbox SET lease_until = $2, attempts = attempts + 1 \
        WHERE id = $1 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3)";
    let lease = Ts::new(now.0 + LEASE);
    let n = on_db!(db, p => sqlx::query(sql).bind(id).bind(lease).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

async fn finish(
    db: &IdentityDb,
    id: Uuid,
    status: &str,
    error: Option<&str>,
    now: Ts,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE outbox SET status = $2, message_sealed = NULL, lease_until = NULL, last_error = $3, \
        finished_at = $4 WHERE id = $1";
    let error = error.map(|e| e.chars().take(500).collect::<String>());
    on_db!(db, p => sqlx::query(sql).bind(id).bind(status).bind(error).bind(now).execute(p).await.map(|_| ()))
}

async fn retry_later(db: &IdentityDb, id: Uuid, error: &str, next: Ts) -> Result<(), sqlx::Error> {
    let sql = "UPDATE outbox SET lease_until = NULL, last_error = $2, next_attempt_at = $3 WHERE id = $1";
    let error: String = error.chars().take(500).collect();
    on_db!(db, p => sqlx::query(sql).bind(id).bind(error).bind(next).execute(p).await.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1).num_seconds(), 2);
        assert_eq!(backoff(2).num_seconds(), 4);
        assert_eq!(backoff(5).num_seconds(), 32);
        assert_eq!(backoff(11).num_seconds(), 1800);
        assert_eq!(backoff(i32::MAX).num_seconds(), 1800);
    }
}
