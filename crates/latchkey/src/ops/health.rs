//! An app's own health (SPEC §12), for `GET /admin/v1/apps/{slug}/health` and `/readyz`: its
//! identity store, its mail transport and its signing key, each `ok`, `degraded` or `down`
//! with a reason an operator can act on.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::apps::{App, AppStatus};
use crate::config::Config;
use crate::tenant::{Issuer, IssuerCache, Lookup};

/// The longest a store may take to answer a health check.
pub const PING_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Degraded,
    Down,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub status: Level,
    /// Why it is not `ok`; null when it is.
    pub reason: Option<String>,
}

impl Check {
    fn ok() -> Self {
        Check { status: Level::Ok, reason: None }
    }
    fn not(status: Level, reason: impl Into<String>) -> Self {
        Check { status, reason: Some(reason.into()) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// The worst of the checks below.
    pub status: Level,
    pub app_status: AppStatus,
    pub identity_store: Check,
    pub mail: Check,
    pub signing_key: Check,
}

/// Checks `app` now (a round trip to its identity store, bounded by [`PING_WAIT`]).
pub async fn of_app(issuers: &IssuerCache, config: &Config, app: &App) -> Health {
    if app.status != AppStatus::Active {
        let why = format!("the app is {}", app.status.as_str());
        return Health {
            status: Level::Down,
            app_status: app.status,
            identity_store: Check::not(Level::Down, why.clone()),
            mail: Check::not(Level::Down, why.clone()),
            signing_key: Check::not(Level::Down, why),
        };
    }
    let (identity_store, mail, signing_key) = match issuers.lookup(app.slug.as_str()).await {
        Ok(Lookup::Active(issuer)) => {
            let store = ping(&issuer).await.map_or_else(|why| Check::not(Level::Down, why), |()| Check::ok());
            let mail = if store.status == Level::Ok {
                mail(config, &issuer).await
            } else {
                mail_transport(config, app)
            };
            (store, mail, Check::ok())
        }
        Ok(_) => {
            let why = "the app is not active any more";
            (Check::not(Level::Down, why), Check::not(Level::Down, why), Check::not(Level::Down, why))
        }
        // The issuer could not be built: its store is out of reach, or its keys are unusable.
        Err(e) if crate::store::unavailable(&e) => (
            Check::not(Level::Down, e.to_string()),
            mail_transport(config, app),
            Check::not(Level::Degraded, "not checked: the identity store is down"),
        ),
        Err(e) => (
            Check::not(Level::Degraded, "not checked: the app's issuer could not be loaded"),
            mail_transport(config, app),
            Check::not(Level::Down, e.to_string()),
        ),
    };
    let status = identity_store.status.max(mail.status).max(signing_key.status);
    Health { status, app_status: app.status, identity_store, mail, signing_key }
}

async fn ping(issuer: &Issuer) -> Result<(), String> {
    match tokio::time::timeout(PING_WAIT, issuer.identity.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot be reached: {}", crate::store::describe(&e))),
        Err(_) => Err(format!("no answer within {} s", PING_WAIT.as_secs())),
    }
}

/// Which transport the app's mail takes: the dev transport delivers nothing.
fn mail_transport(config: &Config, app: &App) -> Check {
    if app.smtp.is_some() || config.smtp_url.is_some() {
        Check::ok()
    } else {
        Check::not(
            Level::Degraded,
            "no SMTP configured: messages are only written to the data dir's outbox folder",
        )
    }
}

/// The transport, then the outbox: messages waiting after failed attempts make mail degraded.
async fn mail(config: &Config, issuer: &Issuer) -> Check {
    let transport = mail_transport(config, &issuer.app);
    if transport.status != Level::Ok {
        return transport;
    }
    match crate::mail::outbox::backlog(&issuer.identity).await {
        Ok(b) if b.retrying > 0 => Check::not(
            Level::Degraded,
            format!(
                "{} message(s) waiting after failed attempts; last error: {}",
                b.retrying,
                b.last_error.unwrap_or_else(|| "unknown".into())
            ),
        ),
        Ok(_) => Check::ok(),
        Err(e) => {
            Check::not(Level::Degraded, format!("outbox cannot be read: {}", crate::store::describe(&e)))
        }
    }
}

/// How old the list of unreachable apps that `/readyz` shows may be.
const READY_FRESH: Duration = Duration::from_secs(5);

/// What `/readyz` says about the apps: the slugs of the apps in use on this replica whose
/// identity store did not answer the last check. A check runs in the background when the last
/// one is older than [`READY_FRESH`], so a probe never waits on an app's store, and however
/// often `/readyz` is called, each store is pinged at most once per [`READY_FRESH`].
#[derive(Default)]
pub struct Readiness {
    last: parking_lot::Mutex<Option<(std::time::Instant, Vec<String>)>>,
    checking: std::sync::atomic::AtomicBool,
}

impl Readiness {
    /// The slugs the last check found unreachable; starts a new check if that one is stale.
    pub fn unreachable(self: &Arc<Self>, issuers: &IssuerCache) -> Vec<String> {
        use std::sync::atomic::Ordering;
        let (fresh, slugs) = match &*self.last.lock() {
            Some((at, slugs)) => (at.elapsed() < READY_FRESH, slugs.clone()),
            None => (false, Vec::new()),
        };
        if !fresh && !self.checking.swap(true, Ordering::AcqRel) {
            let (me, issuers) = (self.clone(), issuers.clone());
            tokio::spawn(async move {
                let found = unreachable_apps(&issuers).await;
                *me.last.lock() = Some((std::time::Instant::now(), found));
                me.checking.store(false, Ordering::Release);
            });
        }
        slugs
    }
}

/// The apps in use on this replica (issuers in memory) whose identity store does not answer
/// within [`PING_WAIT`].
async fn unreachable_apps(issuers: &IssuerCache) -> Vec<String> {
    let mut slugs: Vec<String> =
        futures::stream::iter(issuers.loaded())
            .map(|issuer: Arc<Issuer>| async move {
                ping(&issuer).await.err().map(|_| issuer.app.slug.to_string())
            })
            .buffer_unordered(16)
            .filter_map(|x| async move { x })
            .collect()
            .await;
    slugs.sort();
    slugs
}
