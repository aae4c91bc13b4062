//! Signing keys and their states (SPEC §6).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::Ts;

/// JWS algorithm of an app's signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
pub enum SigningAlg {
    #[default]
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(SigningAlg::RS256),
            "ES256" => Some(SigningAlg::ES256),
            "EdDSA" => Some(SigningAlg::EdDSA),
            _ => None,
        }
    }
}

/// `next` (published, not signing) → `current` (signing) → `retiring` (published until its
/// grace window ends) → `retired` (gone from JWKS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Next,
    Current,
    Retiring,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "next" => KeyState::Next,
            "current" => KeyState::Current,
            "retiring" => KeyState::Retiring,
            "retired" => KeyState::Retired,
            _ => return None,
        })
    }
}

crate::text_id!(
    /// A signing key's `kid`, unique within its app.
    KeyId
);

/// A signing key as stored: the private half sealed with the master key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: KeyId,
    pub app_id: Uuid,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub private_key_sealed: String,
    pub public_jwk: serde_json::Value,
    pub created_at: Ts,
    pub activated_at: Option<Ts>,
    pub retire_at: Option<Ts>,
}

impl SigningKey {
    /// The state at `now`: a retiring key whose grace window has ended counts as retired even
    /// before the janitor writes that down.
    pub fn state_at(&self, now: Ts) -> KeyState {
        match (self.state, self.retire_at) {
            (KeyState::Retiring, Some(t)) if t <= now => KeyState::Retired,
            (s, _) => s,
        }
    }

    /// Whether the key belongs in the JWKS at `now`.
    pub fn published_at(&self, now: Ts) -> bool {
        self.state_at(now) != KeyState::Retired
    }

    /// Context string binding the sealed private key to this row.
    pub fn seal_context(app_id: Uuid, kid: &str) -> String {
        format!("app:{app_id}:signing_key:{kid}")
    }
}
