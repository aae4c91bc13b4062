//! End users of an app, in that app's identity store.

use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

use crate::on_db;
use crate::store::{IdentityDb, Ts};

pub mod identities;

/// A normalised email address: trimmed, at most 254 characters, one `@`, a dotted domain.
/// The domain is lower-cased; the local part keeps its case for display but matching uses the
/// fully lower-cased form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let raw = raw.trim();
        let (local, domain) = raw.rsplit_once('@').ok_or("Enter an email address like name@example.com.")?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if raw.len() > 254
            || local.is_empty()
            || local.len() > 64
            || !domain_ok
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("Enter an email address like name@example.com.");
        }
        let display = format!("{local}@{}", domain.to_lowercase());
        Ok(Email { normalized: display.to_lowercase(), display })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The domain, lower-case (what the app's domain lists are matched against).
    pub fn domain(&self) -> &str {
        self.normalized.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// What went wrong reading or changing end users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user store: {0}")]
    Store(#[from] sqlx::Error),
    /// An operator's own table points at the user with a foreign key that neither cascades nor
    /// sets null (SPEC §12): nothing was erased.
    #[error(
        "the erasure is blocked by foreign key constraint {constraint}{}; declare it ON DELETE CASCADE or ON DELETE SET NULL",
        table.as_ref().map(|t| format!(" on table {t}")).unwrap_or_default()
    )]
    ErasureBlocked { constraint: String, table: Option<String> },
}

/// An end user's id (a UUIDv7) in an app's identity store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        UserId(Uuid::now_v7())
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for UserId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(UserId)
    }
}

/// Whether an account may sign in (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    /// Registered under `admin_approval`; waits for an operator.
    PendingApproval,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::PendingApproval => "pending_approval",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<UserStatus> {
        [UserStatus::Active, UserStatus::PendingApproval, UserStatus::Disabled]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Read from the `status` column (text on both backends).
impl TryFrom<String> for UserStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        UserStatus::parse(&s).ok_or_else(|| format!("unknown user status {s:?}"))
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub email_verified: bool,
    #[sqlx(try_from = "String")]
    pub status: UserStatus,
    pub name: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub token_version: i64,
    /// Profile claims other than `name` (`given_name`, `family_name`, `phone_number`, …).
    pub profile: Json<serde_json::Map<String, serde_json::Value>>,
    pub password_changed_at: Option<Ts>,
    pub created_at: Ts,
}

impl User {
    /// The value of a profile field (`name` included), if set and not blank.
    pub fn profile_field(&self, field: &str) -> Option<String> {
        let v = if field == "name" {
            self.name.clone()
        } else {
            self.profile.0.get(field).and_then(|v| v.as_str()).map(str::to_string)
        };
        v.filter(|s| !s.trim().is_empty())
    }
}

impl User {
    /// The profile claims released for `scopes` (OIDC Core §5.4): `profile` → name, given_name,
    /// family_name, nickname, locale, birthdate; `phone` → phone_number.
    pub fn scoped_claims(&self, scopes: &[&str]) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let mut put = |k: &str| {
            if let Some(v) = self.profile_field(k) {
                out.insert(k.to_string(), v.into());
            }
        };
        if scopes.contains(&"profile") {
            for k in ["name", "given_name", "family_name", "nickname", "locale", "birthdate"] {
                put(k);
            }
        }
        if scopes.contains(&"phone") {
            put("phone_number");
        }
        out
    }
}

/// The profile fields an app may require (SPEC §8), with the labels the pages show.
pub const PROFILE_FIELDS: &[(&str, &str)] = &[
    ("name", "Full name"),
    ("given_name", "Given name"),
    ("family_name", "Family name"),
    ("nickname", "Nickname"),
    ("phone_number", "Phone number"),
    ("locale", "Language (for example en-GB)"),
    ("birthdate", "Date of birth (YYYY-MM-DD)"),
];

/// Checks and normalises a value typed for `field`; the message says what is wrong.
pub fn clean_profile_value(field: &str, raw: &str) -> Result<String, String> {
    let v: String = raw.trim().chars().filter(|c| !c.is_control()).collect();
    if v.is_empty() {
        return Err("This field is required.".into());
    }
    if v.chars().count() > 200 {
        return Err("Use at most 200 characters.".into());
    }
    let ok = match field {
        "phone_number" => {
            v.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
                && v.chars().filter(char::is_ascii_digit).count() >= 6
        }
        "locale" => {
            v.len() <= 35
                && v.split(['-', '_']).all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        }
        "birthdate" => chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").is_ok(),
        _ => true,
    };
    if ok { Ok(v) } else { Err(format!("This does not look like a valid {}.", field.replace('_', " "))) }
}

const COLUMNS: &str = "id, email, email_verified, status, name, password_hash, token_version, profile, \
    password_changed_at, created_at";

pub async fn find_by_email(db: &IdentityDb, email: &Email) -> Result<Option<User>, UserError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email_normalized = $1");
    Ok(on_db!(db, p => sqlx::query_as(&sql).bind(email.normalized()).fetch_optional(p).await)?)
}

pub async fn get(db: &IdentityDb, id: UserId) -> Result<Option<User>, UserError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?)
}

/// What a new user starts with.
pub struct NewUser<'a> {
    pub email: &'a Email,
    pub password_hash: Option<&'a str>,
    pub email_verified: bool,
    /// `Active` or `PendingApproval`.
    pub status: UserStatus,
    pub name: Option<&'a str>,
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// Inserts a new active user with a password; `Ok(None)` if the address is already registered.
pub async fn insert(
    db: &IdentityDb,
    email: &Email,
    password_hash: &str,
    now: Ts,
) -> Result<Option<User>, UserError> {
    let new = NewUser {
        email,
        password_hash: Some(password_hash),
        email_verified: false,
        status: UserStatus::Active,
        name: None,
        profile: Default::default(),
    };
    create(db, &new, now).await
}

/// Inserts a new user; `Ok(None)` if the address is already registered.
pub async fn create(db: &IdentityDb, new: &NewUser<'_>, now: Ts) -> Result<Option<User>, UserError> {
    let id = UserId::generate();
    let sql = "INSERT INTO users (id, email, email_normalized, email_verified, status, name, profile, password_hash, \
        password_changed_at, token_version, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10)";
    let changed = new.password_hash.map(|_| now);
    let res = on_db!(db, p => sqlx::query(sql)
        .bind(id)
        .bind(new.email.as_str())
        .bind(new.email.normalized())
        .bind(new.email_verified)
        .bind(new.status.as_str())
        .bind(new.name)
        .bind(Json(&new.profile))
        .bind(new.password_hash)
        .bind(changed)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()));
    match res {
        Ok(()) => get(db, id).await,
        Err(e) if crate::store::is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_name(db: &IdentityDb, id: UserId, name: Option<&str>, now: Ts) -> Result<(), UserError> {
    let sql = "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(id).bind(name).bind(now).execute(p).await.map(|_| ()))?)
}

/// Replaces the stored hash of the same password (an upgrade to Argon2id): the password's age
/// does not change.
pub async fn set_password_hash(db: &IdentityDb, id: UserId, hash: &str, now: Ts) -> Result<(), UserError> {
    let sql = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(id).bind(hash).bind(now).execute(p).await.map(|_| ()))?)
}

/// Sets a new password (its age starts now).
pub async fn change_password(db: &IdentityDb, id: UserId, hash: &str, now: Ts) -> Result<(), UserError> {
    let sql = "UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(id).bind(hash).bind(now).execute(p).await.map(|_| ()))?)
}

/// Sets profile fields (`name` goes to its column, the rest into `profile`).
pub async fn set_profile_fields(
    db: &IdentityDb,
    user: &User,
    fields: &[(String, String)],
    now: Ts,
) -> Result<(), UserError> {
    let mut profile = user.profile.0.clone();
    let mut name = user.name.clone();
    for (k, v) in fields {
        if k == "name" {
            name = Some(v.clone());
        } else {
            profile.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
    }
    let sql = "UPDATE users SET name = $2, profile = $3, updated_at = $4 WHERE id = $1";
    Ok(
        on_db!(db, p => sqlx::query(sql).bind(user.id).bind(&name).bind(Json(&profile)).bind(now).execute(p).await.map(|_| ()))?,
    )
}

/// Changes the status; false if no such user or the status was not `from`.
pub async fn transition_status(
    db: &IdentityDb,
    id: UserId,
    from: UserStatus,
    to: UserStatus,
    now: Ts,
) -> Result<bool, UserError> {
    let sql = "UPDATE users SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2";
    let n = on_db!(db, p => sqlx::query(sql).bind(id).bind(from.as_str()).bind(to.as_str()).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Why an approval decision could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no such user")]
    NotFound,
    /// Only accounts waiting for approval can be approved or rejected.
    #[error("the user is {}, not pending_approval", .0.as_str())]
    NotPending(UserStatus),
    #[error(transparent)]
    Store(#[from] UserError),
}

/// An operator's decision on an account created under `admin_approval`: approved accounts
/// become `active`, rejected ones `disabled`. Only a `pending_approval` account changes.
pub async fn decide_approval(
    db: &IdentityDb,
    id: UserId,
    approve: bool,
    now: Ts,
) -> Result<User, ApprovalError> {
    let to = if approve { UserStatus::Active } else { UserStatus::Disabled };
    let changed = transition_status(db, id, UserStatus::PendingApproval, to, now).await?;
    let user = get(db, id).await?.ok_or(ApprovalError::NotFound)?;
    if !changed {
        return Err(ApprovalError::NotPending(user.status));
    }
    Ok(user)
}

/// Filters of the operators' user list.
#[derive(Debug, Default)]
pub struct UserFilter {
    /// Part of the address, any case.
    pub email: Option<String>,
    pub status: Option<UserStatus>,
    /// Holds this app-wide role.
    pub role: Option<String>,
    /// Is a member of this organization.
    pub organization: Option<uuid::Uuid>,
}

/// Users in creation order (ids are time-ordered), after the cursor id.
pub async fn list(
    db: &IdentityDb,
    filter: &UserFilter,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<User>, UserError> {
    // `$n IS NULL OR …` keeps one SQL text for every combination of filters.
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR email_normalized LIKE $1 ESCAPE '\\') \
         AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id > $3) \
         AND ($5 IS NULL OR EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = users.id AND r.role = $5)) \
         AND ($6 IS NULL OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = users.id AND m.organization_id = $6)) \
         ORDER BY id LIMIT $4"
    );
    let pattern = filter.email.as_ref().map(|e| {
        let escaped = e.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    Ok(
        on_db!(db, p => sqlx::query_as(&sql).bind(&pattern).bind(filter.status.map(UserStatus::as_str)).bind(after).bind(limit)
            .bind(&filter.role).bind(filter.organization).fetch_all(p).await)?,
    )
}

/// What an operator sees about a user besides the row: live sessions and second factors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    pub active_sessions: i64,
    pub totp: bool,
    pub recovery_codes_left: i64,
}

pub async fn extras(db: &IdentityDb, id: UserId, now: Ts) -> Result<Extras, UserError> {
    let sessions =
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2";
    let totp = "SELECT count(*) FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL";
    let codes = "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";
    let active_sessions: i64 =
        on_db!(db, p => sqlx::query_scalar(sessions).bind(id).bind(now).fetch_one(p).await)?;
    let totp: i64 = on_db!(db, p => sqlx::query_scalar(totp).bind(id).fetch_one(p).await)?;
    let recovery_codes_left: i64 = on_db!(db, p => sqlx::query_scalar(codes).bind(id).fetch_one(p).await)?;
    Ok(Extras { active_sessions, totp: totp > 0, recovery_codes_left })
}

/// GDPR erasure (SPEC §8): in one transaction, every row of the app's identity store that
/// belongs to or mentions the user goes: sessions, refresh tokens, codes, mailed links, queued
/// mail, invitations, pending sign-ins, second factors, recovery codes, the audit events about
/// them, and the user. `false` if there is no such user; on any failure nothing is removed.
pub async fn erase(db: &IdentityDb, id: UserId) -> Result<bool, UserError> {
    let Some(user) = get(db, id).await? else { return Ok(false) };
    let email = Email::parse(&user.email)
        .map(|e| e.normalized().to_string())
        .unwrap_or_else(|_| user.email.to_lowercase());
    // Children first (foreign keys), the user last.
    let by_user = [
        "DELETE FROM refresh_tokens WHERE user_id = $1",
        "DELETE FROM authorization_codes WHERE user_id = $1",
        "DELETE FROM pending_logins WHERE user_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM email_tokens WHERE user_id = $1",
        "DELETE FROM outbox WHERE user_id = $1",
        "DELETE FROM mfa_totp WHERE user_id = $1",
        "DELETE FROM recovery_codes WHERE user_id = $1",
        "DELETE FROM invitations WHERE user_id = $1",
        "DELETE FROM audit_events WHERE user_id = $1",
        "DELETE FROM identities WHERE user_id = $1",
        "DELETE FROM user_roles WHERE user_id = $1",
        "DELETE FROM membership_roles WHERE user_id = $1",
        "DELETE FROM memberships WHERE user_id = $1",
    ];
    let by_email = [
        "DELETE FROM outbox WHERE lower(recipient) = $1",
        "DELETE FROM invitations WHERE email_normalized = $1",
        "DELETE FROM auth_requests WHERE lower(login_hint) = $1",
    ];
    // An async block, so that `?` stops here and the foreign-key case can be told apart.
    let erased: Result<bool, sqlx::Error> = on_db!(db, p => async {
        let mut tx = p.begin().await?;
        for sql in by_user {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        for sql in by_email {
            sqlx::query(sql).bind(&email).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
    .await);
    let err = match erased {
        Ok(erased) => return Ok(erased),
        Err(e) => e,
    };
    match err.as_database_error() {
        Some(d) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            let (constraint, table) = match d.constraint() {
                Some(c) => (c.to_string(), d.table().map(str::to_string)),
                // SQLite does not say which key failed: name the operator's tables whose key
                // to `users` neither cascades nor sets null.
                None => ("(unnamed)".to_string(), blocking_tables(db).await),
            };
            Err(UserError::ErasureBlocked { constraint, table })
        }
        _ => Err(UserError::Store(err)),
    }
}

/// The identity store's own tables; any other is an operator's.
const OWN_TABLES: &[&str] = &[
    "audit_events",
    "auth_requests",
    "authorization_codes",
    "email_tokens",
    "identities",
    "invitations",
    "mfa_totp",
    "outbox",
    "pending_logins",
    "recovery_codes",
    "refresh_tokens",
    "revoked_tokens",
    "sessions",
    "users",
];

/// On SQLite: the operator's tables (comma-separated) with a foreign key to `users` that
/// neither cascades nor sets null; None if there are none or they cannot be read.
async fn blocking_tables(db: &IdentityDb) -> Option<String> {
    let crate::store::Db::Sqlite(pool) = crate::store::AsDb::as_db(db) else { return None };
    let sql = "SELECT DISTINCT m.name FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f \
        WHERE m.type = 'table' AND f.\"table\" = 'users' AND upper(f.on_delete) NOT IN ('CASCADE', 'SET NULL') \
        ORDER BY m.name";
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.ok()?;
    let theirs: Vec<String> = names.into_iter().filter(|n| !OWN_TABLES.contains(&n.as_str())).collect();
    (!theirs.is_empty()).then(|| theirs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        let e = Email::parse("  Ann.Lee@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "Ann.Lee@example.com");
        assert_eq!(e.normalized(), "ann.lee@example.com");
        for bad in
            ["", "a", "a@b", "@example.com", "a b@example.com", "a@.com", "a@example.", "a@exa mple.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
