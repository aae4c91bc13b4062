//! Background work that walks the fleet: the janitor (housekeeping, once a minute) and the mail
//! outbox sender's sweep. [`for_each_active_app`] is the one place that enumerates apps for them.

pub mod janitor;

use std::future::Future;

use crate::apps::{self, App, AppStatus, Apps};

/// Calls `f` for every active app, a page of apps at a time. A failure of one app is logged
/// and the walk goes on; only a failure to list apps ends it.
pub async fn for_each_active_app<F, Fut>(
    apps: &Apps,
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
        let page = apps::service::list(apps, after.as_deref(), PAGE).await?;
        let last = page.last().map(|a| a.slug.to_string());
        let full = page.len() as i64 == PAGE;
        for app in page.into_iter().filter(|a| a.status == AppStatus::Active) {
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
