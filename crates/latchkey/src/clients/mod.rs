//! OAuth clients of each app: registration, secrets (stored as keyed hashes), settings.

pub mod model;
mod repo;
pub mod service;

pub use model::{AuthMethod, Client, ClientId, GrantType, RedirectUri, Scope};
pub use service::{ClientError, ClientSettings};

/// Lists every client of an app, for the issuer cache.
pub async fn all_of_app(
    db: &crate::store::ControlDb,
    app_id: uuid::Uuid,
) -> Result<Vec<Client>, sqlx::Error> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = repo::list(db, app_id, after.as_deref(), 500).await?;
        let done = page.len() < 500;
        after = page.last().map(|c| c.client_id.0.clone());
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}
