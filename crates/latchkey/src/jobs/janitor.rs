//! Housekeeping, once a minute: records retired keys and asks each domain to purge what expired
//! in every active app's identity store, so tables stay bounded. Idempotent, so several
//! replicas may run it at once.

use std::sync::Arc;
use std::time::Duration;

use crate::apps::{self, Apps};
use crate::mail::throttle::MailThrottle;

/// What the janitor works with.
#[derive(Clone)]
pub struct Janitor {
    pub apps: Apps,
    pub mail_throttle: Arc<MailThrottle>,
}

impl Janitor {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = self.run_once().await {
                    tracing::warn!(error = %format!("{err:#}"), "janitor pass failed");
                }
            }
        });
    }

    pub async fn run_once(&self) -> anyhow::Result<()> {
        let now = self.apps.now();
        let retired = crate::keys::retire_expired(&self.apps.control, now).await?;
        if retired > 0 {
            tracing::info!(count = retired, "signing keys retired");
        }
        self.mail_throttle.sweep();
        let apps = &self.apps;
        super::for_each_active_app(apps, "janitor", |app| async move {
            let store = apps::service::identity_store(apps, &app)?;
            crate::grants::purge_expired(&store, now).await?;
            crate::mail::purge_expired(&store, now).await?;
            crate::signin::purge_expired(&store, now).await?;
            crate::invitations::purge_expired(&store, now).await?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}
