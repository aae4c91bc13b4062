//! Operators' bearer tokens for the admin API: named, listed with their last use, revocable,
//! and stored only as SHA-256 hashes in the control plane. `LATCHKEY_ADMIN_TOKEN`, when set, is
//! accepted besides them without being stored (see `docs/decisions.md`).

pub mod repo;

use uuid::Uuid;

use crate::store::Ts;

/// A stored operator token (never the token itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OperatorToken {
    pub id: Uuid,
    pub name: String,
    pub created_at: Ts,
    /// When the token last authenticated a request (to the minute), if ever.
    pub last_used_at: Option<Ts>,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("a token with this name already exists")]
    NameTaken,
    #[error("{0}")]
    Invalid(String),
    #[error("no such token")]
    NotFound,
    #[error("this is the last operator token; create another one first")]
    LastToken,
    #[error("operator token store: {0}")]
    Store(#[from] sqlx::Error),
}

/// A token name: 1–64 characters, letters, digits, space, `.`, `_` and `-`, starting with a
/// letter or digit.
pub fn valid_name(name: &str) -> Result<&str, OperatorError> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(OperatorError::Invalid(
            "name must be 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit"
                .into(),
        ))
    }
}

pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
