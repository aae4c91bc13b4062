//! Process configuration: flags and `LATCHKEY_*` variables (flags win), validated once at start
//! with messages a person can act on. App settings are data in the store, not here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::crypto::MasterKey;
use crate::store::is_postgres_url;

/// Where the stores live; shared by `serve` and `migrate`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite stores, the generated master key and the dev outbox.
    #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
    pub data_dir: PathBuf,
    /// Control-plane store: `postgres://…` or `sqlite:…`. Default: SQLite in the data dir.
    #[arg(long, env = "LATCHKEY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// 32 random bytes, base64: encrypts secrets at rest. Generated into the data dir if unset.
    #[arg(long, env = "LATCHKEY_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// File holding the master key (alternative to LATCHKEY_MASTER_KEY).
    #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Seconds a PostgreSQL schema's migrations wait for another process migrating the same
    /// schema before giving up (the app then fails with the holder named in its reason).
    #[arg(long, env = "LATCHKEY_MIGRATION_LOCK_WAIT_SECS", default_value_t = 30)]
    pub migration_lock_wait_secs: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Externally visible base URL; every issuer and link is built from it.
    #[arg(long, env = "LATCHKEY_PUBLIC_URL", default_value = "http://localhost:8080")]
    pub public_url: String,
    /// Operator bearer token. If unset on a fresh store, one is generated and printed once.
    #[arg(long, env = "LATCHKEY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the operator token (alternative to LATCHKEY_ADMIN_TOKEN).
    #[arg(long, env = "LATCHKEY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Redis URL for state shared between replicas (optional).
    #[arg(long, env = "LATCHKEY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Default outgoing SMTP for apps without their own (optional).
    #[arg(long, env = "LATCHKEY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of mail sent through LATCHKEY_SMTP_URL or the dev transport
    /// (default `no-reply@<public host>`); the app's display name is the sender name.
    #[arg(long, env = "LATCHKEY_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// PEM file of an extra certificate authority trusted for SMTP over TLS (a private relay).
    #[arg(long, env = "LATCHKEY_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Most connections one app's identity-store pool may hold.
    #[arg(long, env = "LATCHKEY_APP_POOL_SIZE", default_value_t = 5)]
    pub app_pool_size: u32,
    /// Seconds one request to an upstream identity provider may take (discovery, keys, code
    /// exchange, GitHub's API), connecting included.
    #[arg(long, env = "LATCHKEY_UPSTREAM_TIMEOUT_SECS", default_value_t = 10)]
    pub upstream_timeout_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("LATCHKEY_BIND {0:?} is not an address like 127.0.0.1:8080")]
    Bind(String),
    #[error("LATCHKEY_PUBLIC_URL {0:?} must be an absolute http(s) URL without query or fragment")]
    PublicUrl(String),
    #[error("LATCHKEY_DATABASE_URL must start with postgres://, postgresql:// or sqlite:")]
    DatabaseUrl,
    #[error("LATCHKEY_MASTER_KEY: {0}")]
    MasterKey(String),
    #[error("LATCHKEY_REDIS_URL must start with redis:// or rediss://")]
    RedisUrl,
    #[error("LATCHKEY_SMTP_URL must start with smtp://, smtps:// or smtp+starttls://")]
    SmtpUrl,
    #[error("LATCHKEY_APP_POOL_SIZE must be between 1 and 100")]
    PoolSize,
    /// A file named by a variable could not be read: which variable, which file, and the OS's
    /// reason (said once: the reason is not also a `source`).
    #[error("{var}: cannot read {}: {reason}", path.display())]
    File { var: &'static str, path: PathBuf, reason: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// Store settings after validation.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    pub master_key: MasterKeySource,
    /// How long migrations wait for another migration of the same schema.
    pub migration_lock_wait: std::time::Duration,
}

#[derive(Debug, Clone)]
pub enum MasterKeySource {
    Given(SecretString),
    File(PathBuf),
    /// `<data dir>/master.key`, generated on a fresh data dir.
    DataDir(PathBuf),
}

/// Validated configuration of `latchkey serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub bind: SocketAddr,
    /// Without trailing slash.
    pub public_url: Url,
    pub admin_token: Option<SecretString>,
    pub redis_url: Option<SecretString>,
    pub smtp_url: Option<SecretString>,
    pub smtp_from: Option<String>,
    /// PEM bytes of `LATCHKEY_SMTP_CA_FILE`.
    pub smtp_ca: Option<Vec<u8>>,
    pub log_format: LogFormat,
    pub app_pool_size: u32,
    pub upstream_timeout: std::time::Duration,
}

impl StoreArgs {
    pub fn validate(&self) -> Result<StoreConfig, ConfigError> {
        let database_url = match &self.database_url {
            Some(url) if is_postgres_url(url) => {
                Url::parse(url).map_err(|_| ConfigError::DatabaseUrl)?;
                url.clone()
            }
            Some(url) if url.starts_with("sqlite:") => url.clone(),
            Some(_) => return Err(ConfigError::DatabaseUrl),
            None => format!("sqlite://{}", self.data_dir.join("latchkey.db").display()),
        };
        let master_key = match (&self.master_key, &self.master_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::MasterKey(
                    "set LATCHKEY_MASTER_KEY or LATCHKEY_MASTER_KEY_FILE, not both".into(),
                ));
            }
            (Some(k), None) => {
                MasterKey::from_base64(k).map_err(|e| ConfigError::MasterKey(e.to_string()))?;
                MasterKeySource::Given(SecretString::from(k.clone()))
            }
            (None, Some(path)) => MasterKeySource::File(path.clone()),
            (None, None) => MasterKeySource::DataDir(self.data_dir.join("master.key")),
        };
        if !(1..=3600).contains(&self.migration_lock_wait_secs) {
            return Err(ConfigError::Other(
                "LATCHKEY_MIGRATION_LOCK_WAIT_SECS must be between 1 and 3600".into(),
            ));
        }
        Ok(StoreConfig {
            data_dir: self.data_dir.clone(),
            database_url: SecretString::from(database_url),
            master_key,
            migration_lock_wait: std::time::Duration::from_secs(self.migration_lock_wait_secs),
        })
    }
}

impl ServeArgs {
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let store = self.store.validate()?;
        let bind = self.bind.parse().map_err(|_| ConfigError::Bind(self.bind.clone()))?;
        let public_url = parse_public_url(&self.public_url)?;
        let admin_token = match (&self.admin_token, &self.admin_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Other(
                    "set LATCHKEY_ADMIN_TOKEN or LATCHKEY_ADMIN_TOKEN_FILE, not both".into(),
                ));
            }
            (Some(t), None) => Some(SecretString::from(t.trim().to_string())),
            (None, Some(path)) => Some(SecretString::from(read_trimmed("LATCHKEY_ADMIN_TOKEN_FILE", path)?)),
            (None, None) => None,
        };
        if admin_token.as_ref().is_some_and(|t| t.expose_secret().len() < 16) {
            return Err(ConfigError::Other("LATCHKEY_ADMIN_TOKEN must be at least 16 characters".into()));
        }
        let redis_url = match &self.redis_url {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                Some(SecretString::from(u.clone()))
            }
            Some(_) => return Err(ConfigError::RedisUrl),
            None => None,
        };
        let smtp_url = match &self.smtp_url {
            Some(u) if ["smtp://", "smtps://", "smtp+starttls://"].iter().any(|p| u.starts_with(p)) => {
                Some(SecretString::from(u.clone()))
            }
            Some(_) => return Err(ConfigError::SmtpUrl),
            None => None,
        };
        if let Some(from) = &self.smtp_from
            && from.parse::<lettre::Address>().is_err()
        {
            return Err(ConfigError::Other(format!("LATCHKEY_SMTP_FROM {from:?} is not an email address")));
        }
        let smtp_ca = match &self.smtp_ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|reason| ConfigError::File {
                    var: "LATCHKEY_SMTP_CA_FILE",
                    path: path.clone(),
                    reason,
                })?;
                let has_cert = String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
                if !has_cert || lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() {
                    return Err(ConfigError::Other(format!(
                        "LATCHKEY_SMTP_CA_FILE {}: not a PEM certificate",
                        path.display()
                    )));
                }
                Some(pem)
            }
            None => None,
        };
        if !(1..=100).contains(&self.app_pool_size) {
            return Err(ConfigError::PoolSize);
        }
        if !(1..=60).contains(&self.upstream_timeout_secs) {
            return Err(ConfigError::Other("LATCHKEY_UPSTREAM_TIMEOUT_SECS must be between 1 and 60".into()));
        }
        Ok(Config {
            store,
            bind,
            public_url,
            admin_token,
            redis_url,
            smtp_url,
            smtp_from: self.smtp_from.clone(),
            smtp_ca,
            log_format: self.log_format,
            app_pool_size: self.app_pool_size,
            upstream_timeout: std::time::Duration::from_secs(self.upstream_timeout_secs),
        })
    }
}

fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let err = || ConfigError::PublicUrl(raw.to_string());
    let url = Url::parse(raw.trim_end_matches('/')).map_err(|_| err())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(err());
    }
    Ok(url)
}

pub(crate) fn read_trimmed(var: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|reason| ConfigError::File {
        var,
        path: path.to_path_buf(),
        reason,
    })
}

impl Config {
    /// Sender address for mail that does not go through an app's own SMTP.
    pub fn smtp_from(&self) -> String {
        if let Some(f) = &self.smtp_from {
            return f.clone();
        }
        match self.public_url.host() {
            Some(url::Host::Domain(d)) if d.contains('.') => format!("no-reply@{d}"),
            _ => "no-reply@localhost".into(),
        }
    }

    /// The public base URL as text, without trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        T::try_parse_from(all).expect("clap parses").serve.validate()
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&["--data-dir", "/tmp/x"]).expect("valid");
        assert_eq!(c.public_base(), "http://localhost:8080");
        assert!(c.store.database_url.expose_secret().starts_with("sqlite://"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(parse(&["--bind", "nope"]), Err(ConfigError::Bind(_))));
        assert!(matches!(parse(&["--public-url", "ftp://x"]), Err(ConfigError::PublicUrl(_))));
        assert!(matches!(parse(&["--public-url", "http://x/?a=b"]), Err(ConfigError::PublicUrl(_))));
        assert!(matches!(parse(&["--database-url", "mysql://x"]), Err(ConfigError::DatabaseUrl)));
        assert!(matches!(parse(&["--master-key", "c2hvcnQ="]), Err(ConfigError::MasterKey(_))));
        assert!(matches!(parse(&["--redis-url", "http://x"]), Err(ConfigError::RedisUrl)));
        assert!(matches!(parse(&["--admin-token", "short"]), Err(ConfigError::Other(_))));
    }

    #[test]
    fn public_url_trailing_slash_is_dropped() {
        let c = parse(&["--public-url", "https://id.example.com/"]).expect("valid");
        assert_eq!(c.public_base(), "https://id.example.com");
    }
}
