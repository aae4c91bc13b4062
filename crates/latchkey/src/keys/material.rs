//! Key generation and the signing/verification halves, on aws-lc-rs. JWT framing (header,
//! claims, base64url, compact serialisation, validation) is done by `jwt-compact`, to which
//! [`AwsLc`] plugs in aws-lc-rs keys that are parsed once and kept: parsing an RSA key costs
//! about as much as a signature, so re-parsing per token would halve throughput.

use std::borrow::Cow;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::{AlgorithmExt, AlgorithmSignature, Claims, Header, UntrustedToken};
use serde::Serialize;
use serde::de::DeserializeOwned;
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

/// A parsed private key.
pub enum PrivateKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed public key, from a published JWK.
pub enum PublicKey {
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
    /// Uncompressed P-256 point.
    Ec(Vec<u8>),
    Ed(Vec<u8>),
}

/// Raw signature bytes.
pub struct Signature(Vec<u8>);

impl AlgorithmSignature for Signature {
    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        Ok(Signature(slice.to_vec()))
    }
    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

/// The `jwt-compact` algorithm backed by aws-lc-rs.
#[derive(Debug, Clone, Copy)]
pub struct AwsLc(pub SigningAlg);

impl jwt_compact::Algorithm for AwsLc {
    type SigningKey = PrivateKey;
    type VerifyingKey = PublicKey;
    type Signature = Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.0.as_str())
    }

    fn sign(&self, key: &PrivateKey, message: &[u8]) -> Signature {
        let rng = SystemRandom::new();
        // Failure here means a broken key or RNG, never bad input; `Signer::from_pkcs8` test-signs
        // every key at load, so an empty signature (an invalid token) cannot happen in practice.
        let sig = match key {
            PrivateKey::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig).map(|()| sig).unwrap_or_default()
            }
            PrivateKey::Ec(kp) => kp.sign(&rng, message).map(|s| s.as_ref().to_vec()).unwrap_or_default(),
            PrivateKey::Ed(kp) => kp.sign(message).as_ref().to_vec(),
        };
        Signature(sig)
    }

    fn verify_signature(&self, sig: &Signature, key: &PublicKey, message: &[u8]) -> bool {
        match (self.0, key) {
            (SigningAlg::RS256, PublicKey::Rsa(c)) => {
                c.verify(&RSA_PKCS1_2048_8192_SHA256, message, &sig.0).is_ok()
            }
            (SigningAlg::ES256, PublicKey::Ec(p)) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, p).verify(message, &sig.0).is_ok()
            }
            (SigningAlg::EdDSA, PublicKey::Ed(p)) => {
                UnparsedPublicKey::new(&ED25519, p).verify(message, &sig.0).is_ok()
            }
            _ => false,
        }
    }
}

/// Signs JWTs with one private key.
pub struct Signer {
    kid: String,
    alg: SigningAlg,
    key: PrivateKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

impl Signer {
    pub fn from_pkcs8(kid: &str, alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, MaterialError> {
        let bad = |e: aws_lc_rs::error::KeyRejected| MaterialError::Unusable(e.to_string());
        let key = match alg {
            SigningAlg::RS256 => PrivateKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?),
            SigningAlg::ES256 => PrivateKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(bad)?,
            ),
            SigningAlg::EdDSA => PrivateKey::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?),
        };
        let signer = Signer { kid: kid.to_string(), alg, key };
        // Fail at load time, not on the first request, if the key does not sign.
        let probe = signer.sign("JWT", &json!({}), 0, 0)?;
        if probe.ends_with('.') {
            return Err(MaterialError::Sign("key produced no signature".into()));
        }
        Ok(signer)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Signs `claims` plus `iat`/`exp` (Unix seconds) as a compact JWS with header `typ` and
    /// `kid`. CPU-bound: call it off the async workers (see `oidc::service`).
    pub fn sign<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
        iat: i64,
        exp: i64,
    ) -> Result<String, MaterialError> {
        let header = Header::empty().with_key_id(self.kid.as_str()).with_token_type(typ);
        let mut full = Claims::new(claims);
        full.issued_at = chrono::DateTime::from_timestamp(iat, 0);
        full.expiration = chrono::DateTime::from_timestamp(exp, 0);
        AwsLc(self.alg).token(&header, &full, &self.key).map_err(|e| MaterialError::Sign(e.to_string()))
    }
}

/// Parses a published JWK into a verification key.
pub fn public_key(jwk: &serde_json::Value) -> Result<PublicKey, MaterialError> {
    let field = |name: &str| -> Result<Vec<u8>, MaterialError> {
        jwk[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| MaterialError::Unusable(format!("JWK without a valid {name}")))
    };
    match jwk["kty"].as_str() {
        Some("RSA") => Ok(PublicKey::Rsa(RsaPublicKeyComponents { n: field("n")?, e: field("e")? })),
        Some("EC") => {
            let mut point = vec![0x04];
            point.extend(field("x")?);
            point.extend(field("y")?);
            Ok(PublicKey::Ec(point))
        }
        Some("OKP") => Ok(PublicKey::Ed(field("x")?)),
        _ => Err(MaterialError::Unusable("unknown JWK key type".into())),
    }
}

/// A JWS whose signature, algorithm and `typ` checked out, with its claims and times.
pub struct Verified<T> {
    pub claims: T,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
}

/// Verifies a compact JWS with `key` (algorithm `alg`) and the expected `typ` (compared
/// case-insensitively, RFC 9068 §4). Expiry is the caller's to check, against its own clock.
pub fn verify<T: DeserializeOwned>(
    token: &str,
    alg: SigningAlg,
    key: &PublicKey,
    typ: &str,
) -> Option<Verified<T>> {
    let untrusted = UntrustedToken::new(token).ok()?;
    if !untrusted.header().token_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
        return None;
    }
    validated(&untrusted, alg, key)
}

/// Verifies a compact JWS someone else issued (an upstream's ID token, whose `typ` varies) with
/// `key`: the token's own `alg` header must be `alg`. Claims are the caller's to check.
pub fn verify_foreign<T: DeserializeOwned>(
    token: &str,
    alg: SigningAlg,
    key: &PublicKey,
) -> Option<Verified<T>> {
    let untrusted = UntrustedToken::new(token).ok()?;
    if untrusted.algorithm() != alg.as_str() {
        return None;
    }
    validated(&untrusted, alg, key)
}

/// The header's `alg` and `kid` of a compact JWS, before any verification.
pub fn unverified_alg_kid(token: &str) -> Option<(String, Option<String>)> {
    let untrusted = UntrustedToken::new(token).ok()?;
    Some((untrusted.algorithm().to_string(), untrusted.header().key_id.clone()))
}

fn validated<T: DeserializeOwned>(
    untrusted: &UntrustedToken<'_>,
    alg: SigningAlg,
    key: &PublicKey,
) -> Option<Verified<T>> {
    let token = AwsLc(alg).validator::<T>(key).validate(untrusted).ok()?;
    let (_, claims) = token.into_parts();
    Some(Verified {
        iat: claims.issued_at.map(|t| t.timestamp()),
        exp: claims.expiration.map(|t| t.timestamp()),
        claims: claims.custom,
    })
}

/// The `kid` of a compact JWS, before any verification.
pub fn unverified_kid(token: &str) -> Option<String> {
    UntrustedToken::new(token).ok()?.header().key_id.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alg_signs_and_verifies() {
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let g = generate(alg).expect("generates");
            let signer = Signer::from_pkcs8("k1", alg, &g.pkcs8).expect("loads");
            let token = signer.sign("at+jwt", &json!({"sub": "x"}), 1_000, 4_000_000_000).expect("signs");
            let key = public_key(&published_jwk(&g.public_jwk, "k1", alg)).expect("jwk");
            let v: Verified<serde_json::Value> = verify(&token, alg, &key, "at+jwt").expect("verifies");
            assert_eq!(v.claims["sub"], "x");
            assert_eq!((v.iat, v.exp), (Some(1_000), Some(4_000_000_000)));
            assert_eq!(unverified_kid(&token).as_deref(), Some("k1"));
            // Wrong typ, wrong algorithm, tampered payload: refused.
            assert!(verify::<serde_json::Value>(&token, alg, &key, "JWT").is_none());
            let other = if alg == SigningAlg::RS256 { SigningAlg::ES256 } else { SigningAlg::RS256 };
            assert!(verify::<serde_json::Value>(&token, other, &key, "at+jwt").is_none());
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"y","exp":4000000000}"#);
            parts[1] = &forged;
            assert!(verify::<serde_json::Value>(&parts.join("."), alg, &key, "at+jwt").is_none());
        }
    }

    #[test]
    fn a_key_of_another_pair_does_not_verify() {
        let a = generate(SigningAlg::ES256).expect("a");
        let b = generate(SigningAlg::ES256).expect("b");
        let signer = Signer::from_pkcs8("a", SigningAlg::ES256, &a.pkcs8).expect("loads");
        let token = signer.sign("at+jwt", &json!({}), 0, 10).expect("signs");
        let key_b = public_key(&published_jwk(&b.public_jwk, "b", SigningAlg::ES256)).expect("jwk");
        assert!(verify::<serde_json::Value>(&token, SigningAlg::ES256, &key_b, "at+jwt").is_none());
    }
}
