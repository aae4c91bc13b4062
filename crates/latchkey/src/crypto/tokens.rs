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

/// `n` characters drawn uniformly from `alphabet` (at most 256 ASCII characters), by rejection
/// sampling so no character is likelier than another; `None` if the system RNG fails.
pub fn random_from(alphabet: &[u8], n: usize) -> Option<String> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rand::fill(&mut buf).ok()?;
        for b in buf.iter().map(|b| *b as usize).filter(|b| *b < limit) {
            if out.len() == n {
                break;
            }
            out.push(alphabet[b % alphabet.len()] as char);
        }
    }
    Some(out)
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

/// Whether a presented token has the shape of one of ours (16 to 128 base64url characters),
/// checked before any hashing or lookup.
pub fn plausible(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A bearer token in its plain form: exists only in the response that hands it out and in the
/// request that presents it. `Debug` never shows it.
pub struct Plain(SecretString);

impl Plain {
    /// `n` random bytes, base64url (cookie-borne tokens: sessions, pending sign-ins).
    pub fn random(n: usize) -> Self {
        Plain(SecretString::from(random_b64(n)))
    }

    /// `prefix` followed by 256 random bits (tokens a person may paste: codes, links, secrets).
    pub fn with_prefix(prefix: &str) -> Self {
        Plain(new_secret(prefix))
    }

    /// A token as presented by a client or browser.
    pub fn presented(token: &str) -> Self {
        Plain(SecretString::from(token.to_string()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The form a store keeps.
    pub fn hashed(&self) -> Hashed {
        Hashed(sha256_hex(&self.0))
    }
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plain(..)")
    }
}

/// A bearer token's SHA-256 (hex): the only form a store keeps. A distinct type from
/// [`Plain`], so one cannot be stored or compared in place of the other.
#[derive(Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Hashed(String);

impl Hashed {
    /// The hash of a presented token.
    pub fn of(token: &str) -> Self {
        Plain::presented(token).hashed()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Hashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hashed(..)")
    }
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

    #[test]
    fn draws_only_from_the_alphabet() {
        let s = random_from(b"abc", 300).expect("rng");
        assert_eq!(s.len(), 300);
        assert!(s.bytes().all(|b| b"abc".contains(&b)));
        assert!(s.contains('a') && s.contains('b') && s.contains('c'));
    }

    #[test]
    fn plain_and_hashed_forms_never_print() {
        let t = Plain::with_prefix("lkc_");
        assert_eq!(format!("{t:?}"), "Plain(..)");
        assert_eq!(format!("{:?}", t.hashed()), "Hashed(..)");
        assert_eq!(Hashed::of(t.expose()), t.hashed());
        assert_eq!(t.hashed().as_str().len(), 64);
    }
}
