//! Operator authentication: a bearer token compared, by SHA-256 hash, in constant time.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use secrecy::SecretString;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::crypto::tokens;
use crate::state::AppState;

/// Hashes of every accepted operator token.
#[derive(Default)]
pub struct AdminTokens {
    hashes: RwLock<Vec<String>>,
}

impl AdminTokens {
    pub fn add_hash(&self, hash: String) {
        let mut h = self.hashes.write();
        if !h.contains(&hash) {
            h.push(hash);
        }
    }

    pub fn accepts(&self, presented: &str) -> bool {
        let hash = tokens::sha256_hex(&SecretString::from(presented.to_string()));
        let mut ok = false;
        for known in self.hashes.read().iter() {
            // Check all, without stopping early.
            ok |= bool::from(known.as_bytes().ct_eq(hash.as_bytes()));
        }
        ok
    }
}

/// Who made an admin call, for the operator audit: `token:` and the first 12 hex digits of the
/// SHA-256 of the bearer token used (never the token).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

pub async fn require_admin(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match presented {
        Some(t) if !t.is_empty() && state.admin_tokens.accepts(t) => {
            let hash = tokens::sha256_hex(&SecretString::from(t.to_string()));
            let actor = Actor(format!("token:{}", &hash[..12]));
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}
