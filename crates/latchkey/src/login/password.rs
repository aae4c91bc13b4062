//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) in PHC strings,
//! on a bounded slice of the blocking pool so a flood of sign-ins cannot starve the server.
//! Unknown accounts are checked against a dummy hash so timing does not reveal them.

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
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
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
        Passwords { permits: Arc::new(Semaphore::new(lanes)), dummy }
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
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(pw.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|_| HashError)
        })
        .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no account,
    /// so both paths cost the same. False for no account.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<bool, HashError> {
        let exists = stored.is_some();
        let phc = stored.unwrap_or(&self.dummy).to_string();
        let pw = password.clone();
        let ok = self
            .blocking(move || {
                PasswordHash::new(&phc)
                    .is_ok_and(|h| argon2().verify_password(pw.expose_secret().as_bytes(), &h).is_ok())
            })
            .await?;
        Ok(exists && ok)
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}
