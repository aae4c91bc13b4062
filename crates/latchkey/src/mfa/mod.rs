//! Second factors (SPEC §7): TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step) with ten
//! one-time recovery codes.
//!
//! - The TOTP secret (160 random bits) is sealed with the master key, bound to app and user.
//!   Enrolment stores it unconfirmed; the first valid code confirms it.
//! - A code is accepted at most once: the accepted time step is recorded with a conditional
//!   update, so a replay, even a concurrent one, in the same window fails.
//! - Recovery codes are shown once and stored as keyed hashes (HMAC under the master key);
//!   using one marks it used.
//! - Code generation and checking are `totp-rs`; the QR code (an SVG drawn on the server) is
//!   `qrcode`.

use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use crate::crypto::SecretBox;
use crate::on_db;
use crate::store::{IdentityDb, Ts};
use crate::users::UserId;

const DIGITS: u8 = 6;
const STEP: u64 = 30;
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("TOTP: {0}")]
    Totp(String),
    #[error("the system random number generator failed")]
    Randomness,
}

fn seal_ctx(app_id: Uuid, user_id: UserId) -> String {
    format!("app:{app_id}:totp:{user_id}")
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<Totp, MfaError> {
    // `:` separates issuer and account in otpauth URIs.
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP)
        .with_skew(1)
        .with_secret(Secret::from(secret))
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .map_err(|e| MfaError::Totp(e.to_string()))
}

/// What the enrolment page shows.
pub struct Enrolment {
    /// Base32, for typing into an app by hand.
    pub secret_base32: String,
    /// `otpauth://totp/…`, the content of the QR code.
    pub uri: String,
    /// The QR code as an inline SVG element.
    pub qr_svg: String,
}

/// Whose authenticator entry an enrolment is: the app and user (the sealed secret is bound to
/// both), and the issuer name and account shown in the authenticator app.
pub struct Holder<'a> {
    pub app_id: Uuid,
    pub user_id: UserId,
    pub issuer_name: &'a str,
    pub account: &'a str,
}

/// Starts (or restarts) enrolment: a new unconfirmed secret replaces any unconfirmed one. A
/// confirmed second factor is left alone (`None`).
pub async fn start(
    db: &IdentityDb,
    secrets: &SecretBox,
    holder: &Holder<'_>,
    now: Ts,
) -> Result<Option<Enrolment>, MfaError> {
    let Holder { app_id, user_id, issuer_name, account } = *holder;
    let mut raw = [0u8; 20];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| MfaError::Randomness)?;
    let sealed = secrets.seal(&seal_ctx(app_id, user_id), &raw);
    let sql = "INSERT INTO mfa_totp (user_id, secret_sealed, confirmed_at, last_step, created_at) VALUES ($1, $2, NULL, NULL, $3) \
        ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at \
        WHERE mfa_totp.confirmed_at IS NULL";
    let n = on_db!(db, p => sqlx::query(sql).bind(user_id).bind(&sealed).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Ok(None);
    }
    enrolment(raw.to_vec(), issuer_name, account).map(Some)
}

fn enrolment(raw: Vec<u8>, issuer_name: &str, account: &str) -> Result<Enrolment, MfaError> {
    let t = totp(raw.clone(), issuer_name, account)?;
    let uri = t.to_url().map_err(|e| MfaError::Totp(e.to_string()))?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| MfaError::Totp(e.to_string()))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    // Inline in the page: drop the XML declaration, keep the <svg> element.
    let qr_svg = svg.find("<svg").map(|i| svg[i..].to_string()).unwrap_or_default();
    Ok(Enrolment { secret_base32: Secret::from(raw).to_base32(), uri, qr_svg })
}

/// The enrolment under way (unconfirmed), to show again after a wrong code.
pub async fn pending_enrolment(
    db: &IdentityDb,
    secrets: &SecretBox,
    holder: &Holder<'_>,
) -> Result<Option<Enrolment>, MfaError> {
    let Holder { app_id, user_id, issuer_name, account } = *holder;
    let sql = "SELECT secret_sealed FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NULL";
    let sealed: Option<String> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(user_id).fetch_optional(p).await)?;
    let Some(sealed) = sealed else { return Ok(None) };
    let raw = secrets.open(&seal_ctx(app_id, user_id), &sealed).map_err(|e| MfaError::Totp(e.to_string()))?;
    enrolment(raw, issuer_name, account).map(Some)
}

/// Whether the user has a confirmed second factor.
pub async fn enrolled(db: &IdentityDb, user_id: UserId) -> Result<bool, sqlx::Error> {
    let sql = "SELECT count(*) FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL";
    let n: i64 = on_db!(db, p => sqlx::query_scalar(sql).bind(user_id).fetch_one(p).await)?;
    Ok(n > 0)
}

/// Checks `code` against the user's secret (`confirmed`: the enrolled one, else the one being
/// enrolled) and spends its time step. False for a wrong code or a step already used.
pub async fn check_code(
    db: &IdentityDb,
    secrets: &SecretBox,
    app_id: Uuid,
    user_id: UserId,
    code: &str,
    confirmed: bool,
    now: Ts,
) -> Result<bool, MfaError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let sql = if confirmed {
        "SELECT secret_sealed FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL"
    } else {
        "SELECT secret_sealed FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NULL"
    };
    let sealed: Option<String> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(user_id).fetch_optional(p).await)?;
    let Some(sealed) = sealed else { return Ok(false) };
    let raw = secrets.open(&seal_ctx(app_id, user_id), &sealed).map_err(|e| MfaError::Totp(e.to_string()))?;
    let t = totp(raw, "latchkey", "user")?;
    let unix = u64::try_from(now.0.timestamp()).unwrap_or(0);
    let Some(step) = t.check(&code, unix) else { return Ok(false) };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    // Spend the step: only a step later than the last accepted one passes.
    let spend = if confirmed {
        "UPDATE mfa_totp SET last_step = $2 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)"
    } else {
        "UPDATE mfa_totp SET last_step = $2, confirmed_at = $3 WHERE user_id = $1 AND confirmed_at IS NULL"
    };
    let n = on_db!(db, p => sqlx::query(spend).bind(user_id).bind(step).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

fn normalize_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase()
}

/// Replaces the user's recovery codes with ten new ones, returned once (`xxxx-xxxx-xxxx`).
pub async fn new_recovery_codes(
    db: &IdentityDb,
    secrets: &SecretBox,
    user_id: UserId,
    now: Ts,
) -> Result<Vec<String>, MfaError> {
    // Unambiguous characters only (no 0/o, 1/l/i).
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let chars = crate::crypto::tokens::random_from(ALPHABET, 12).ok_or(MfaError::Randomness)?;
        codes.push(format!("{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12]));
    }
    let insert = "INSERT INTO recovery_codes (code_hash, user_id, created_at) VALUES ($1, $2, $3)";
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for c in &codes {
            let h = secrets.hash_secret(&format!("recovery:{user_id}:{}", normalize_recovery(c)));
            sqlx::query(insert).bind(h).bind(user_id).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await
    })?;
    Ok(codes)
}

/// Uses a recovery code; false if it is not one of the user's unused codes.
pub async fn use_recovery_code(
    db: &IdentityDb,
    secrets: &SecretBox,
    user_id: UserId,
    code: &str,
    now: Ts,
) -> Result<bool, sqlx::Error> {
    let norm = normalize_recovery(code);
    if norm.len() != 12 {
        return Ok(false);
    }
    let h = secrets.hash_secret(&format!("recovery:{user_id}:{norm}"));
    let sql =
        "UPDATE recovery_codes SET used_at = $3 WHERE code_hash = $1 AND user_id = $2 AND used_at IS NULL";
    let n = on_db!(db, p => sqlx::query(sql).bind(h).bind(user_id).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes the user's TOTP secret and recovery codes (an operator's reset, or the user's own
/// removal after a fresh code), in one transaction.
pub async fn remove(db: &IdentityDb, user_id: UserId) -> Result<(), sqlx::Error> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_has_a_scannable_uri_and_an_inline_svg() {
        let e = enrolment(vec![7u8; 20], "Acme: Portal", "ann@example.com").expect("enrolment");
        assert!(e.uri.starts_with("otpauth://totp/"), "{}", e.uri);
        assert!(e.uri.contains("secret=") && e.uri.contains("issuer=Acme"), "{}", e.uri);
        assert!(e.qr_svg.starts_with("<svg"));
        assert_eq!(e.secret_base32.len(), 32);
    }

    #[test]
    fn recovery_codes_normalise() {
        assert_eq!(normalize_recovery(" ABCD-efgh-2345 "), "abcdefgh2345");
    }
}
