//! Background work that walks the fleet: the janitor (housekeeping, once a minute), the mail
//! outbox sender's sweep and `latchkey migrate`. [`for_each_app`] is the one place that
//! enumerates apps for them.

pub mod janitor;

use std::future::Future;

use crate::apps::{self, App, AppStatus, Apps};
use crate::store::ControlDb;

/// Calls `f` for every active app (see [`for_each_app`]).
pub async fn for_each_active_app<F, Fut>(apps: &Apps, what: &'static str, f: F) -> Result<(), apps::AppError>
where
    F: FnMut(App) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for_each_app(&apps.control, true, what, f).await
}

/// Calls `f` for every app (only the active ones with `active_only`), in slug order, a page of
/// apps at a time. A failure of one app is logged and the walk goes on; only a failure to list
/// apps ends it.
pub async fn for_each_app<F, Fut>(
    control: &ControlDb,
    active_only: bool,
    what: &'static str,
    mut f: F,
) -> Result<(), apps::AppError>
where
    F: FnMut(App) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    const PAGE: i64 = 200;
    let mut after: Option<String> = None;
    loop {
        let page = apps::service::list_in(control, after.as_deref(), PAGE).await?;
        let last = page.last().map(|a| a.slug.to_string());
        let full = page.len() as i64 == PAGE;
        for app in page.into_iter().filter(|a| !active_only || a.status == AppStatus::Active) {
            let slug = app.slug.to_string();
            if let Err(err) = f(app).await {
                tracing::warn!(app.slug = %slug, error = %format!("{err:#}"), job = what, "pass over one app failed");
            }
        }
        if !full {
            return Ok(());
        }
        after = last;
    }
}
