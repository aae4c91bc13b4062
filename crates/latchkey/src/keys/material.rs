//! Key generation and the signing/verification halves, on aws-lc-rs. JWT framing is done by
//! `jsonwebtoken` with its aws-lc-rs backend; keys are parsed once and kept.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde::Serialize;
use serde_json::json;

use super::model::SigningAlg;

#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("key generation failed")]
    Generate,
    #[error("stored key is unusable: {0}")]
    Unusable(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A freshly generated key pair: PKCS#8 private key and public JWK (without `kid`).
pub struct Generated {
    pub pkcs8: Vec<u8>,
    pub public_jwk: serde_json::Value,
}

pub fn generate(alg: SigningAlg) -> Result<Generated, MaterialError> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match alg {
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| MaterialError::Generate)?;
            let der = kp.as_der().map_err(|_| MaterialError::Generate)?;
            let pub_c = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            Ok(Generated {
                pkcs8: der.as_ref().to_vec(),
                public_jwk: json!({"kty": "RSA", "n": b64(&pub_c.n), "e": b64(&pub_c.e)}),
            })
        }
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| MaterialError::Generate)?;
            let doc = kp.to_pkcs8v1().map_err(|_| MaterialError::Generate)?;
            // Uncompressed point: 0x04 || x || y.
            let point = kp.public_key().as_ref();
            if point.len() != 65 {
                return Err(MaterialError::Generate);
            }
            Ok(Generated {
                pkcs8: doc.as_ref().to_vec(),
                public_jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
            })
        }
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::generate().map_err(|_| MaterialError::Generate)?;
            let doc = kp.to_pkcs8().map_err(|_| MaterialError::Generate)?;
            Ok(Generated {
                pkcs8: doc.as_ref().to_vec(),
                public_jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())}),
            })
        }
    }
}

/// The public JWK as published: the stored key parameters plus `kid`, `alg`, `use`.
pub fn published_jwk(public_jwk: &serde_json::Value, kid: &str, alg: SigningAlg) -> serde_json::Value {
    let mut jwk = public_jwk.clone();
    if let Some(obj) = jwk.as_object_mut() {
        obj.insert("kid".into(), json!(kid));
        obj.insert("alg".into(), json!(alg.as_str()));
        obj.insert("use".into(), json!("sig"));
    }
    jwk
}

/// Signs JWTs with one private key.
pub struct Signer {
    kid: String,
    alg: SigningAlg,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

impl Signer {
    pub fn from_pkcs8(kid: &str, alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, MaterialError> {
        let key = match alg {
            SigningAlg::RS256 => {
                // jsonwebtoken takes RSA keys as PKCS#1; its PEM reader unwraps PKCS#8 for us.
                let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec()));
                EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| MaterialError::Unusable(e.to_string()))?
            }
            SigningAlg::ES256 => EncodingKey::from_ec_der(pkcs8),
            SigningAlg::EdDSA => EncodingKey::from_ed_der(pkcs8),
        };
        let signer = Signer { kid: kid.to_string(), alg, key };
        // Fail at load time, not on the first request, if the key does not sign.
        signer.sign("JWT", &json!({}))?;
        Ok(signer)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Signs `claims` as a compact JWS with header `typ`. CPU-bound: call it off the async
    /// workers (see `oidc::service`).
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, MaterialError> {
        let mut header = Header::new(self.alg.jwt());
        header.typ = Some(typ.to_string());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| MaterialError::Sign(e.to_string()))
    }
}

/// The public half, for verifying our own tokens (introspection, revocation).
pub fn decoding_key(published: &serde_json::Value) -> Result<DecodingKey, MaterialError> {
    let jwk: Jwk =
        serde_json::from_value(published.clone()).map_err(|e| MaterialError::Unusable(e.to_string()))?;
    DecodingKey::from_jwk(&jwk).map_err(|e| MaterialError::Unusable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alg_signs_and_verifies() {
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let g = generate(alg).expect("generates");
            let signer = Signer::from_pkcs8("k1", alg, &g.pkcs8).expect("loads");
            let token = signer.sign("at+jwt", &json!({"sub": "x", "exp": 4_000_000_000u64})).expect("signs");
            let key = decoding_key(&published_jwk(&g.public_jwk, "k1", alg)).expect("jwk");
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.validate_aud = false;
            let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).expect("verifies");
            assert_eq!(data.claims["sub"], "x");
            assert_eq!(data.header.kid.as_deref(), Some("k1"));
            assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        }
    }
}
