//! Secrets at rest and bearer-secret handling, on aws-lc-rs.
//!
//! - [`SecretBox`]: envelope encryption (AES-256-GCM). Each value gets its own random data key,
//!   which is wrapped by the master key; the master key's id travels with the value so the master
//!   key can be rotated later by re-wrapping data keys only.
//! - [`tokens`]: generated bearer secrets with recognisable prefixes, and their keyed hashes.

pub mod tokens;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretBox as SecretBytes};

const FORMAT: &str = "lk1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, base64-encoded (got {0} bytes)")]
    MasterKeyLength(usize),
    #[error("the master key is not valid base64")]
    MasterKeyEncoding,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value was made with master key {0}, which is not configured")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong master key or tampered data)")]
    Unauthentic,
}

/// The 32-byte master key. `Debug` never shows it.
pub struct MasterKey {
    bytes: SecretBytes<[u8; 32]>,
    id: String,
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let raw = STANDARD
            .decode(text.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim()))
            .map_err(|_| CryptoError::MasterKeyEncoding)?;
        let bytes: [u8; 32] =
            raw.as_slice().try_into().map_err(|_| CryptoError::MasterKeyLength(raw.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes).expect("system randomness");
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        // The id is a public fingerprint: a MAC of a fixed label, so it reveals nothing of the key.
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &bytes), b"latchkey master key id");
        let id = hex::encode(&tag.as_ref()[..6]);
        MasterKey { bytes: SecretBytes::new(Box::new(bytes)), id }
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes.expose_secret())
    }

    /// Public identifier of this key, stored beside everything it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A purpose-bound subkey (HKDF-SHA256), so no two uses share key material.
    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"latchkey");
        let prk = salt.extract(self.bytes.expose_secret());
        let info = [purpose];
        let okm = prk.expand(&info, hkdf::HKDF_SHA256).expect("hkdf length");
        let mut out = [0u8; 32];
        okm.fill(&mut out).expect("hkdf fill");
        out
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Seals and opens values with the master key, and computes keyed hashes of bearer secrets.
pub struct SecretBox {
    master: MasterKey,
    wrap_key: LessSafeKey,
    hash_key: hmac::Key,
}

impl SecretBox {
    pub fn new(master: MasterKey) -> Self {
        let wrap = master.derive(b"envelope key wrapping v1");
        let wrap_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &wrap).expect("aes key"));
        let hash_key = hmac::Key::new(hmac::HMAC_SHA256, &master.derive(b"bearer secret hashing v1"));
        SecretBox { master, wrap_key, hash_key }
    }

    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    /// Encrypts `plaintext`, bound to `context` (for example `app:<id>:database_url`), so a
    /// sealed value copied into another row does not open there.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut dek = [0u8; 32];
        rand::fill(&mut dek).expect("system randomness");
        let wrapped = aead_seal(&self.wrap_key, self.master.id().as_bytes(), &dek);
        let data_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek).expect("aes key"));
        let body = aead_seal(&data_key, context.as_bytes(), plaintext);
        format!(
            "{FORMAT}${}${}${}",
            self.master.id(),
            URL_SAFE_NO_PAD.encode(wrapped),
            URL_SAFE_NO_PAD.encode(body)
        )
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = sealed.split('$');
        let (Some(FORMAT), Some(kid), Some(wrapped), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        if kid != self.master.id() {
            return Err(CryptoError::UnknownKey(kid.to_string()));
        }
        let wrapped = URL_SAFE_NO_PAD.decode(wrapped).map_err(|_| CryptoError::Malformed)?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Malformed)?;
        let dek = aead_open(&self.wrap_key, kid.as_bytes(), wrapped)?;
        let data_key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek).map_err(|_| CryptoError::Malformed)?);
        aead_open(&data_key, context.as_bytes(), body)
    }

    pub fn open_string(&self, context: &str, sealed: &str) -> Result<String, CryptoError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| CryptoError::Malformed)
    }

    /// Keyed hash (HMAC-SHA256) of a high-entropy bearer secret, hex-encoded.
    pub fn hash_secret(&self, secret: &str) -> String {
        hex::encode(hmac::sign(&self.hash_key, secret.as_bytes()).as_ref())
    }

    /// Constant-time check of `secret` against a stored [`Self::hash_secret`] value.
    pub fn verify_secret(&self, secret: &str, stored_hash: &str) -> bool {
        use subtle::ConstantTimeEq;
        let Ok(expected) = hex::decode(stored_hash) else { return false };
        let actual = hmac::sign(&self.hash_key, secret.as_bytes());
        actual.as_ref().ct_eq(&expected).into()
    }
}

fn aead_seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).expect("system randomness");
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .expect("aead seal");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out
}

fn aead_open(key: &LessSafeKey, aad: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    if data.len() < NONCE_LEN {
        return Err(CryptoError::Malformed);
    }
    let mut body = data.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| CryptoError::Malformed)?;
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| CryptoError::Unauthentic)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let sb = SecretBox::new(MasterKey::generate());
        let sealed = sb.seal("app:1:db", b"postgres://u:p@h/db");
        assert!(!sealed.contains("postgres"));
        assert_eq!(sb.open("app:1:db", &sealed).expect("opens"), b"postgres://u:p@h/db");
        assert!(matches!(sb.open("app:2:db", &sealed), Err(CryptoError::Unauthentic)));
    }

    #[test]
    fn other_master_key_cannot_open() {
        let a = SecretBox::new(MasterKey::generate());
        let b = SecretBox::new(MasterKey::generate());
        let sealed = a.seal("c", b"x");
        assert!(matches!(b.open("c", &sealed), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn tampering_is_detected() {
        let sb = SecretBox::new(MasterKey::generate());
        let sealed = sb.seal("c", b"secret value");
        let mut parts: Vec<String> = sealed.split('$').map(str::to_string).collect();
        let mut body = URL_SAFE_NO_PAD.decode(&parts[3]).expect("b64");
        body[NONCE_LEN] ^= 1;
        parts[3] = URL_SAFE_NO_PAD.encode(body);
        assert!(sb.open("c", &parts.join("$")).is_err());
        assert!(matches!(sb.open("c", "garbage"), Err(CryptoError::Malformed)));
    }

    #[test]
    fn master_key_parsing() {
        assert!(matches!(MasterKey::from_base64("c2hvcnQ="), Err(CryptoError::MasterKeyLength(5))));
        assert!(matches!(MasterKey::from_base64("!!"), Err(CryptoError::MasterKeyEncoding)));
        let k = MasterKey::generate();
        let again = MasterKey::from_base64(&k.to_base64()).expect("parses");
        assert_eq!(k.id(), again.id());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }

    #[test]
    fn secret_hash_verifies_in_constant_time() {
        let sb = SecretBox::new(MasterKey::generate());
        let h = sb.hash_secret("lks_abc");
        assert!(sb.verify_secret("lks_abc", &h));
        assert!(!sb.verify_secret("lks_abd", &h));
        assert!(!sb.verify_secret("lks_abc", "zz"));
    }
}
