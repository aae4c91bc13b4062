//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) in PHC strings,
//! on a bounded slice of the blocking pool so a flood of sign-ins cannot starve the server.
//! Unknown accounts are checked against a dummy hash so timing does not reveal them.
//!
//! Imported users keep the hash of the system they came from until they next sign in: bcrypt,
//! scrypt and PBKDF2 (and Argon2 with other parameters) are verified as they are, and
//! [`Verified::needs_rehash`] tells the caller to replace the hash with our Argon2id.

use std::sync::Arc;

use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: String,
    /// Argon2 working memory (19 MiB each), reused across hashes, at most one per permit.
    /// Allocating it per hash made glibc keep hundreds of MiB in per-thread arenas under load.
    memory: Arc<Memory>,
}

#[derive(Default)]
struct Memory(parking_lot::Mutex<Vec<Vec<argon2::Block>>>);

impl Memory {
    fn take(&self) -> Vec<argon2::Block> {
        self.0.lock().pop().unwrap_or_else(|| vec![argon2::Block::default(); argon2_params().block_count()])
    }

    fn give(&self, blocks: Vec<argon2::Block>) {
        self.0.lock().push(blocks);
    }
}

// OWASP's first Argon2id configuration.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;

fn argon2_params() -> Params {
    Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None).unwrap_or_default()
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params())
}

/// Our Argon2id of `password` with a fresh salt, computed in `memory`, as a PHC string.
fn hash_in(password: &[u8], memory: &mut [argon2::Block]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(|_| HashError)?;
    let a = argon2();
    let output = argon2::password_hash::Output::init_with(argon2::Params::DEFAULT_OUTPUT_LEN, |out| {
        a.hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|_| HashError)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(a.params()).map_err(|_| HashError)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `hash` is exactly our Argon2id scheme (so it can be checked in pooled memory).
fn is_ours(hash: &PasswordHash<'_>) -> bool {
    let ours = argon2_params();
    hash.algorithm == argon2::ARGON2ID_IDENT
        && hash.version == Some(0x13)
        && argon2::Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == ours.m_cost() && p.t_cost() == ours.t_cost() && p.p_cost() == ours.p_cost()
        })
        && hash.hash.is_some_and(|h| h.len() == argon2::Params::DEFAULT_OUTPUT_LEN)
}

/// Checks our own Argon2id hash in `memory`; the comparison is constant-time (`Output`).
fn verify_in(password: &[u8], hash: &PasswordHash<'_>, memory: &mut [argon2::Block]) -> bool {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else { return false };
    let a = argon2();
    argon2::password_hash::Output::init_with(expected.len(), |out| {
        a.hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .is_ok_and(|got| got == expected)
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

impl Passwords {
    pub fn new() -> Self {
        let lanes = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon2()
            .hash_password(b"latchkey dummy password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        Passwords { permits: Arc::new(Semaphore::new(lanes)), dummy, memory: Arc::default() }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError)?;
        tokio::task::spawn_blocking(f).await.map_err(|_| HashError)
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let pw = password.clone();
        let memory = self.memory.clone();
        self.blocking(move || {
            let mut blocks = memory.take();
            let out = hash_in(pw.expose_secret().as_bytes(), &mut blocks);
            memory.give(blocks);
            out
        })
        .await?
    }

    /// Checks `password` against `stored` (any format [`check`] accepts), or against the dummy
    /// hash when there is no account, so both paths cost about the same. Never `ok` without an
    /// account.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<Verified, HashError> {
        let exists = stored.is_some();
        let phc = stored.unwrap_or(&self.dummy).to_string();
        let pw = password.clone();
        let memory = self.memory.clone();
        let v = self
            .blocking(move || {
                // The usual case, our own scheme, runs in pooled memory; anything else (imported
                // or older hashes) through the general check.
                match PasswordHash::new(&phc) {
                    Ok(h) if is_ours(&h) => {
                        let mut blocks = memory.take();
                        let ok = verify_in(pw.expose_secret().as_bytes(), &h, &mut blocks);
                        memory.give(blocks);
                        Verified { ok, needs_rehash: false }
                    }
                    _ => check(pw.expose_secret().as_bytes(), &phc),
                }
            })
            .await?;
        Ok(if exists { v } else { Verified::default() })
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Verified {
    /// The password matches.
    pub ok: bool,
    /// The password matches a hash that is not our current Argon2id (an imported bcrypt, scrypt
    /// or PBKDF2 hash, or Argon2 with weaker parameters): store [`Passwords::hash`] of it now.
    pub needs_rehash: bool,
}

// What imported hashes may cost to verify, so one odd row cannot take a core (or gigabytes of
// memory) per sign-in attempt: about a second at most on current hardware.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ARGON2_PASSES: u32 = 16;
const MAX_SCRYPT_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
const MAX_SCRYPT_WORK: u64 = 1 << 24; // N × r × p
const MAX_PBKDF2_ROUNDS: u32 = 2_000_000;
const MAX_BCRYPT_COST: u32 = 15;

/// Checks `password` against a stored hash: a PHC string of Argon2 (`$argon2id$`, `$argon2i$`,
/// `$argon2d$`, any parameters), scrypt (`$scrypt$`) or PBKDF2 (`$pbkdf2-sha256$`,
/// `$pbkdf2-sha512$`), or a bcrypt hash (`$2a$`, `$2b$`, `$2y$`). Unknown formats, malformed
/// hashes and hashes above the cost limits never match. Blocking: run it off the async workers.
pub fn check(password: &[u8], stored: &str) -> Verified {
    let (ok, current) = if let Some(cost) = bcrypt_cost(stored) {
        let ok = within(cost <= MAX_BCRYPT_COST, "bcrypt")
            // bcrypt only ever read the first 72 bytes; the systems these hashes come from
            // truncated longer passwords, so do the same rather than lock those users out.
            && bcrypt::verify(&password[..password.len().min(72)], stored).unwrap_or(false);
        (ok, false)
    } else if let Ok(hash) = PasswordHash::new(stored) {
        check_phc(password, &hash)
    } else {
        (false, false)
    };
    Verified { ok, needs_rehash: ok && !current }
}

/// Whether the password matches, and whether the hash is our current scheme and strength.
fn check_phc(password: &[u8], hash: &PasswordHash<'_>) -> (bool, bool) {
    match hash.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {
            let Ok(p) = argon2::Params::try_from(hash) else { return (false, false) };
            let affordable =
                within(p.m_cost() <= MAX_ARGON2_MEMORY_KIB && p.t_cost() <= MAX_ARGON2_PASSES, "argon2");
            // `verify_password` takes algorithm, version and parameters from the hash itself.
            let ok = affordable && argon2().verify_password(password, hash).is_ok();
            let current = hash.algorithm == argon2::ARGON2ID_IDENT
                && hash.version == Some(0x13)
                && p.m_cost() >= ARGON2_MEMORY_KIB
                && p.t_cost() >= ARGON2_PASSES;
            (ok, current)
        }
        "scrypt" => {
            let Ok(p) = scrypt::Params::try_from(hash) else { return (false, false) };
            let n = 1u64 << p.log_n().min(63);
            let (r, lanes) = (u64::from(p.r()), u64::from(p.p()));
            let affordable = within(
                128u64.saturating_mul(r).saturating_mul(n) <= MAX_SCRYPT_MEMORY_BYTES
                    && n.saturating_mul(r).saturating_mul(lanes) <= MAX_SCRYPT_WORK,
                "scrypt",
            );
            (affordable && scrypt::Scrypt.verify_password(password, hash).is_ok(), false)
        }
        "pbkdf2-sha256" | "pbkdf2-sha512" => {
            let Ok(p) = pbkdf2::Params::try_from(hash) else { return (false, false) };
            let affordable = within(p.rounds <= MAX_PBKDF2_ROUNDS, "pbkdf2");
            (affordable && pbkdf2::Pbkdf2.verify_password(password, hash).is_ok(), false)
        }
        _ => (false, false),
    }
}

fn within(affordable: bool, scheme: &'static str) -> bool {
    if !affordable {
        tracing::warn!(
            password.scheme = scheme,
            "stored password hash is beyond the verification cost limits"
        );
    }
    affordable
}

/// The cost of a bcrypt hash (`$2a$`, `$2b$`, `$2y$`, then two digits), if `stored` is one.
fn bcrypt_cost(stored: &str) -> Option<u32> {
    let rest = ["$2a$", "$2b$", "$2y$"].iter().find_map(|p| stored.strip_prefix(p))?;
    let digits = rest.get(..2).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    if rest.as_bytes().get(2) != Some(&b'$') {
        return None;
    }
    digits.parse().ok()
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_memory_hashes_are_standard_argon2id() {
        let mut memory = vec![argon2::Block::default(); argon2_params().block_count()];
        let phc = hash_in(b"correct horse", &mut memory).expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // The general (allocating) check agrees, so nothing depends on the pool.
        assert_eq!(check(b"correct horse", &phc), Verified { ok: true, needs_rehash: false });
        assert!(!check(b"wrong horse", &phc).ok);
        let parsed = PasswordHash::new(&phc).expect("phc");
        assert!(is_ours(&parsed));
        assert!(verify_in(b"correct horse", &parsed, &mut memory));
        assert!(!verify_in(b"wrong horse", &parsed, &mut memory));
        // A hash made by the library itself verifies in the pool too.
        let lib = argon2().hash_password(b"pw", &SaltString::generate(&mut OsRng)).expect("lib").to_string();
        assert!(verify_in(b"pw", &PasswordHash::new(&lib).expect("phc"), &mut memory));
    }

    const PW: &[u8] = b"correct horse";

    fn current(v: Verified) -> bool {
        v.ok && !v.needs_rehash
    }

    fn imported(v: Verified) -> bool {
        v.ok && v.needs_rehash
    }

    #[test]
    fn our_argon2id_is_current() {
        let salt = SaltString::generate(&mut OsRng);
        let h = argon2().hash_password(PW, &salt).expect("hash").to_string();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(current(check(PW, &h)));
        assert_eq!(check(b"wrong", &h), Verified::default());
    }

    #[test]
    fn weaker_or_other_argon2_verifies_and_needs_rehash() {
        let salt = SaltString::generate(&mut OsRng);
        for (alg, m, t) in [
            (Algorithm::Argon2id, 8 * 1024, 2),
            (Algorithm::Argon2id, 19 * 1024, 1),
            (Algorithm::Argon2i, 19 * 1024, 2),
            (Algorithm::Argon2d, 19 * 1024, 2),
        ] {
            let a = Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).expect("params"));
            let h = a.hash_password(PW, &salt).expect("hash").to_string();
            assert!(imported(check(PW, &h)), "{h}");
            assert!(!check(b"wrong", &h).ok);
        }
        // Stronger than ours stays as it is.
        let a =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32 * 1024, 3, 2, None).expect("p"));
        assert!(current(check(PW, &a.hash_password(PW, &salt).expect("hash").to_string())));
        // The reference implementation's README example (argon2i, 64 MiB, 2 passes, 4 lanes).
        let reference = "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(imported(check(b"password", reference)));
    }

    // The scrypt and PBKDF2 vectors were made with Python's hashlib (salt "saltsaltsaltsalt").
    #[test]
    fn scrypt_phc() {
        let h = "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$A9lBa6RTbfBovWqamVIqXKovIl4Vk6OZyVojLJmYmSI";
        assert!(imported(check(PW, h)));
        assert!(!check(b"correct horsE", h).ok);
        // Beyond the cost limit (N = 2^22 with r = 8 is 4 GiB): refused without trying.
        let huge = h.replace("ln=10", "ln=22");
        assert!(!check(PW, &huge).ok);
    }

    #[test]
    fn pbkdf2_phc() {
        for h in [
            "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHRzYWx0c2FsdA$BBs+1+PaslLtBPULUr8/lQicvVuHiEPMz0i8MjLCbzM",
            "$pbkdf2-sha512$i=1000,l=64$c2FsdHNhbHRzYWx0c2FsdA$EHLBej+uEvxlmr0QnHnceg1vM6h1wbwSP5XErh3SmizNDWZsIi28RPGARe0EssjGRoiACzxgHjNvqwJY1zxKig",
        ] {
            assert!(imported(check(PW, h)), "{h}");
            assert!(!check(b"wrong", h).ok);
            assert!(!check(PW, &h.replace("i=1000", "i=1001")).ok);
        }
        let costly = "$pbkdf2-sha256$i=90000000,l=32$c2FsdHNhbHRzYWx0c2FsdA$BBs+1+PaslLtBPULUr8/lQicvVuHiEPMz0i8MjLCbzM";
        assert!(!check(PW, costly).ok);
    }

    #[test]
    fn bcrypt_all_prefixes() {
        // Openwall crypt_blowfish test vector.
        let h = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = h.replacen("$2a$", prefix, 1);
            assert!(imported(check(b"U*U", &h)), "{h}");
            assert!(!check(b"U*V", &h).ok);
        }
        let made = bcrypt::hash(PW, 4).expect("bcrypt");
        assert!(imported(check(PW, &made)));
        // Only the first 72 bytes count, as in the systems these hashes come from.
        let long = [b'a'; 100];
        let h = bcrypt::hash(&long[..72], 4).expect("bcrypt");
        assert!(check(&long, &h).ok);
        assert!(!check(&long, &h.replacen("$04$", "$31$", 1)).ok, "cost beyond the limit");
        assert_eq!(bcrypt_cost("$2b$12$abc"), Some(12));
        assert_eq!(bcrypt_cost("$2b$1x$abc"), None);
        assert_eq!(bcrypt_cost("$argon2id$v=19"), None);
    }

    #[test]
    fn garbage_never_matches() {
        for h in [
            "",
            "plain",
            "$md5$x",
            "$argon2id$",
            "$2b$",
            "$scrypt$ln=10$bad",
            "$pbkdf2-sha1$i=1000,l=20$c2FsdA$AAAA",
        ] {
            assert_eq!(check(PW, h), Verified::default(), "{h}");
        }
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let p = Passwords::new();
        let pw = SecretString::from("latchkey dummy password");
        assert_eq!(p.verify(&pw, None).await.expect("verify"), Verified::default());
        let h = p.hash(&pw).await.expect("hash");
        assert_eq!(
            p.verify(&pw, Some(&h)).await.expect("verify"),
            Verified { ok: true, needs_rehash: false }
        );
    }
}
