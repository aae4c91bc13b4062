//! Sign in with Apple's client secret: instead of a fixed secret, a short-lived ES256 JWT that
//! the app signs with its own key (Apple's "Creating a client secret"): `iss` the team id,
//! `sub` the client (services) id, `aud` Apple's issuer, header `kid` the key id.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::keys::{Signer, SigningAlg};

/// How long a client secret is valid; made afresh for every code exchange.
const LIFETIME: i64 = 300;

/// The client secret for one token request. `pem`: the app's P-256 key, PKCS#8 PEM.
pub fn client_secret(
    pem: &str,
    team_id: &str,
    key_id: &str,
    client_id: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|_| "the key is not PEM")?;
    if label != "PRIVATE KEY" {
        return Err("the key is not a PKCS#8 PRIVATE KEY".into());
    }
    let signer = Signer::from_pkcs8(key_id, SigningAlg::ES256, &der).map_err(|e| e.to_string())?;
    let claims = json!({"iss": team_id, "sub": client_id, "aud": audience});
    let iat = now.timestamp();
    signer.sign("JWT", &claims, iat, iat + LIFETIME).map_err(|e| e.to_string())
}
