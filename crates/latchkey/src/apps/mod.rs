//! Apps (tenants): configuration, lifecycle and provisioning of their identity stores.

pub mod changes;
pub mod model;
pub mod providers;
pub mod provision;
mod repo;
pub mod service;

pub use changes::ChangeFeed;
pub use model::{App, AppSlug, AppStatus};
pub use service::{AppError, Apps, AppsDeps};

/// The configuration version of an app, for caches checking whether they are stale.
pub async fn config_version(db: &crate::store::ControlDb, slug: &str) -> Result<Option<i64>, sqlx::Error> {
    repo::version(db, slug).await
}
