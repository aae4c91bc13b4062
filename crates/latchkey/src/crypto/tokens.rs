//! Generated bearer secrets. Each kind has a short prefix so secret scanners can spot a leak;
//! the plain value exists only in the response that hands it out.

use aws_lc_rs::{digest, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

/// Prefix of client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "lks_";
/// Prefix of operator (admin) tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "lka_";

/// `n` random bytes, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::fill(&mut buf).expect("system randomness");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new bearer secret: `prefix` followed by 256 random bits.
pub fn new_secret(prefix: &str) -> SecretString {
    SecretString::from(format!("{prefix}{}", random_b64(32)))
}

/// A public identifier, 128 random bits (client ids, jti values).
pub fn new_id() -> String {
    random_b64(16)
}

/// Unkeyed SHA-256 of a high-entropy token, hex. Used for the admin token, which must be
/// checkable before the master key is known to the CLI.
pub fn sha256_hex(token: &SecretString) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.expose_secret().as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_prefix_and_entropy() {
        let a = new_secret(CLIENT_SECRET_PREFIX);
        let b = new_secret(CLIENT_SECRET_PREFIX);
        assert!(a.expose_secret().starts_with("lks_"));
        assert_eq!(a.expose_secret().len(), 4 + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
