//! Provisioning (SPEC §3): pending → provisioning_schema → deploying → active, in a background
//! task that holds a lease on the app row, so exactly one task in any replica works on an app
//! and a crash leaves it resumable, never half-active.

use std::time::Duration;

use super::model::{App, AppStatus};
use super::repo;
use super::service::{Apps, identity_location};
use crate::keys;
use crate::store::{self, Ts};

const LEASE: Duration = Duration::from_secs(120);

pub fn spawn(apps: &Apps, slug: &str) {
    let apps = apps.clone();
    let slug = slug.to_string();
    tokio::spawn(async move {
        if let Err(err) = provision(&apps, &slug).await {
            tracing::error!(app.slug = %slug, error = %err, "provisioning stopped");
        }
    });
}

/// Resumes every app whose provisioning was interrupted (start-up).
pub async fn resume_interrupted(apps: &Apps) -> Result<(), super::AppError> {
    for app in repo::list_in_progress(&apps.control).await? {
        spawn(apps, app.slug.as_str());
    }
    Ok(())
}

async fn provision(apps: &Apps, slug: &str) -> Result<(), super::AppError> {
    // Wait for a live lease held by another task (a crashed process's lease expires). A
    // provisioning slot is held only while this task owns the lease, never while it waits.
    let (app, _slot) = loop {
        let Ok(slot) = apps.provisioning.acquire().await else { return Ok(()) };
        let Some(app) = repo::get(&apps.control, slug).await? else { return Ok(()) };
        if !app.status.in_progress() {
            return Ok(());
        }
        let now = apps.now();
        let until = Ts::new(now.0 + chrono::Duration::from_std(LEASE).unwrap_or_default());
        if repo::claim_lease(&apps.control, app.id, now, until).await? {
            break (app, slot);
        }
        drop(slot);
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    match run_steps(apps, &app).await {
        Ok(true) => {
            repo::release_lease(&apps.control, app.id).await?;
            apps.changes.touch(slug);
            tracing::info!(app.slug = slug, "app active");
            Ok(())
        }
        Ok(false) => {
            // Disabled or deleted meanwhile: leave it as the operator set it.
            repo::release_lease(&apps.control, app.id).await?;
            apps.changes.touch(slug);
            Ok(())
        }
        Err(reason) => {
            tracing::warn!(app.slug = slug, reason = %reason, "app provisioning failed");
            apps.identity.forget(app.id).await;
            repo::set_failed(&apps.control, app.id, &reason, apps.now()).await?;
            apps.changes.touch(slug);
            Ok(())
        }
    }
}

/// The provisioning steps. `Ok(false)` if the app left the in-progress states meanwhile;
/// `Err` carries the human-readable failure reason.
async fn run_steps(apps: &Apps, app: &App) -> Result<bool, String> {
    use AppStatus::*;
    let db = &apps.control;
    let step = |from: &'static [AppStatus], to: AppStatus| async move {
        repo::transition(db, app.id, from, to, apps.now())
            .await
            .map_err(|e| format!("control-plane store: {}", store::describe(&e)))
    };
    if !step(&[Pending, ProvisioningSchema, Deploying], ProvisioningSchema).await? {
        return Ok(false);
    }
    apps.changes.touch(app.slug.as_str());
    let location = identity_location(apps, app).map_err(|e| e.to_string())?;
    let identity = tokio::time::timeout(Duration::from_secs(15), apps.identity.prepare(app.id, &location))
        .await
        .map_err(|_| "could not connect to database: timed out after 15 s".to_string())?
        .map_err(|e| e.to_string())?;
    apps.identity.migrate(&identity).await.map_err(|e| e.to_string())?;
    if !step(&[ProvisioningSchema], Deploying).await? {
        return Ok(false);
    }
    apps.changes.touch(app.slug.as_str());
    keys::service::ensure_initial(db, &apps.secrets, app.id, app.signing_alg, apps.now())
        .await
        .map_err(|e| format!("could not create signing keys: {e}"))?;
    step(&[Deploying], Active).await
}
