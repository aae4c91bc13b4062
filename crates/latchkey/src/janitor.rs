//! Background housekeeping, once a minute: records retired keys and purges expired revocation
//! entries, authorization requests, codes, refresh tokens, sessions, mailed links and finished
//! outbox rows, so tables stay bounded. Idempotent, so several replicas may run it at once.

use std::time::Duration;

use crate::state::AppState;
use crate::apps::AppStatus;
use crate::on_db;

pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = run_once(&state).await {
                tracing::warn!(error = %err, "janitor pass failed");
            }
        }
    });
}

pub async fn run_once(state: &AppState) -> anyhow::Result<()> {
    let now = state.now();
    let retired = crate::keys::retire_expired(&state.control, now).await?;
    if retired > 0 {
        tracing::info!(count = retired, "signing keys retired");
    }
    state.mail_throttle.sweep();
    let week_ago = crate::store::Ts::new(now.0 - chrono::Duration::days(7));
    let day_ago = crate::store::Ts::new(now.0 - chrono::Duration::days(1));
    for_each_active_app(state, |store| async move {
        let sql = "DELETE FROM revoked_tokens WHERE expires_at < $1";
        on_db!(&store, p => sqlx::query(sql).bind(now).execute(p).await.map(|_| ()))?;
        // Mailed links a day past expiry, and delivered or abandoned mail after a week.
        let sql = "DELETE FROM email_tokens WHERE expires_at < $1";
        on_db!(&store, p => sqlx::query(sql).bind(day_ago).execute(p).await.map(|_| ()))?;
        let sql = "DELETE FROM outbox WHERE status <> 'pending' AND finished_at < $1";
        on_db!(&store, p => sqlx::query(sql).bind(week_ago).execute(p).await.map(|_| ()))?;
        // Sign-ins abandoned on a step; first-access links (invitations stay for operators).
        let sql = "DELETE FROM pending_logins WHERE expires_at < $1";
        on_db!(&store, p => sqlx::query(sql).bind(now).execute(p).await.map(|_| ()))?;
        let sql = "DELETE FROM invitations WHERE kind = 'first_access' AND expires_at < $1";
        on_db!(&store, p => sqlx::query(sql).bind(day_ago).execute(p).await.map(|_| ()))
    })
    .await
}

/// The one place that walks every active app's identity store.
async fn for_each_active_app<F, Fut>(state: &AppState, mut f: F) -> anyhow::Result<()>
where
    F: FnMut(crate::store::IdentityDb) -> Fut,
    Fut: Future<Output = Result<(), sqlx::Error>>,
{
    let mut after: Option<String> = None;
    loop {
        let page = crate::apps::service::list(state, after.as_deref(), 200).await?;
        for app in page.iter().filter(|a| a.status == AppStatus::Active) {
            let store = crate::apps::service::identity_store(state, app)?;
            if let Err(err) = f(store).await {
                tracing::warn!(app.slug = %app.slug, error = %err, "janitor: identity store pass failed");
            }
        }
        if page.len() < 200 {
            return Ok(());
        }
        after = page.last().map(|a| a.slug.to_string());
    }
}
