//! Operator authentication: a bearer token, compared by SHA-256 hash with the configured
//! `LATCHKEY_ADMIN_TOKEN` (in constant time) or looked up among the stored operator tokens, so
//! a revocation on one replica holds on every replica at once. Failed attempts are throttled
//! per client address before any lookup.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use secrecy::SecretString;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::ApiError;
use crate::crypto::tokens;
use crate::signin::throttle::{Ladder, Limits, Throttle};
use crate::state::AppState;

/// The configured token (if any) and the limiter of failed attempts.
pub struct AdminTokens {
    configured: Option<String>,
    failures: Throttle,
}

/// Ten wrong tokens from one address, then waits from 1 s doubling to 15 min; one failure is
/// forgiven a minute. Only wrong tokens are refused while an address waits: a right one always
/// gets in, so nobody can lock operators out.
fn limits() -> Limits {
    let per_address = Ladder {
        free: 10,
        first: Duration::seconds(1),
        max: Duration::minutes(15),
        forgive_every: Duration::minutes(1),
    };
    let never = Ladder { free: u32::MAX, ..per_address };
    Limits {
        // The account is always "operator", so (account, address) is the address, and a right
        // token clears it.
        account_address: per_address,
        address: never,
        account: never,
        trust_for: Duration::zero(),
        max_keys: 100_000,
    }
}

impl AdminTokens {
    /// `configured`: the SHA-256 hex of `LATCHKEY_ADMIN_TOKEN`, when it is set.
    pub fn new(configured: Option<String>) -> Self {
        AdminTokens { configured, failures: Throttle::new(limits()) }
    }

    /// Whether `LATCHKEY_ADMIN_TOKEN` is set (a way in besides the stored tokens).
    pub fn has_configured(&self) -> bool {
        self.configured.is_some()
    }

    fn is_configured(&self, hash: &str) -> bool {
        self.configured.as_ref().is_some_and(|c| bool::from(c.as_bytes().ct_eq(hash.as_bytes())))
    }
}

/// Who made an admin call, for the operator audit: `token:` and the stored token's name, or
/// `token:LATCHKEY_ADMIN_TOKEN` (never the token).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

pub async fn require_admin(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let Some(presented) = presented else { return ApiError::unauthorized().into_response() };
    let hash = tokens::sha256_hex(&SecretString::from(presented.to_string()));
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let now = state.now();
    // The token is checked first: a right token always gets in, so wrong ones sent from the
    // same address (a shared proxy or NAT) cannot lock operators out.
    let actor = if state.admin_tokens.is_configured(&hash) {
        Some("token:LATCHKEY_ADMIN_TOKEN".to_string())
    } else {
        match crate::operators::repo::find(&state.control, &hash).await {
            Ok(Some(t)) => {
                // At most one write a minute per token: most requests only read.
                let stale = t.last_used_at.is_none_or(|at| now.0 - at.0 >= chrono::Duration::minutes(1));
                if stale && let Err(e) = crate::operators::repo::touch(&state.control, t.id, now).await {
                    tracing::warn!(error = %e, "operator token last use not recorded");
                }
                Some(format!("token:{}", t.name))
            }
            Ok(None) => None,
            // A store that is down is not a wrong token: nothing is counted.
            Err(e) => return ApiError::internal(&e).into_response(),
        }
    };
    let attempt = state.admin_tokens.failures.begin(Uuid::nil(), "operator", addr, now.0);
    match (actor, attempt) {
        (Some(actor), attempt) => {
            if let Ok(a) = attempt {
                a.succeeded(now.0);
            }
            req.extensions_mut().insert(Actor(actor));
            next.run(req).await
        }
        (None, Ok(a)) => {
            a.failed(now.0);
            metrics::counter!("latchkey_admin_auth_failures_total").increment(1);
            ApiError::unauthorized().into_response()
        }
        (None, Err(wait)) => {
            metrics::counter!("latchkey_admin_auth_throttled_total").increment(1);
            let mut res = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many attempts",
                format!(
                    "too many wrong admin tokens from this address; retry in {} s",
                    wait.retry_after_secs
                ),
            )
            .into_response();
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.retry_after_secs));
            res
        }
    }
}
