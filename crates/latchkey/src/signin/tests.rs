//! The sign-in service's outcomes without HTTP: a real (temporary) SQLite identity store, real
//! Argon2id hashes, the app policy varied per case.

use secrecy::SecretString;
use sqlx::sqlite::SqlitePoolOptions;

use super::password::Passwords;
use super::service::{self, Context, Outcome, PasswordCheck, Resumed};
use super::steps::Step;
use crate::apps::model::Policy;
use crate::sessions::Origin;
use crate::store::{self, Db, IdentityDb, Ts};
use crate::users::{self, Email, NewUser, UserStatus};

const ISSUER: &str = "https://id.example.com/apps/t";
const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    _dir: tempfile::TempDir,
    store: IdentityDb,
    passwords: Passwords,
    now: Ts,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(store::sqlite_file_options(&dir.path().join("t.db")))
        .await
        .expect("sqlite");
    let store = IdentityDb::new(Db::Sqlite(pool));
    store::migrate_identity(&store, std::time::Duration::from_secs(5)).await.expect("migrations");
    Fixture { _dir: dir, store, passwords: Passwords::new(), now: Ts::new(chrono::Utc::now()) }
}

impl Fixture {
    fn cx<'a>(&'a self, policy: &'a Policy) -> Context<'a> {
        Context { store: &self.store, policy, issuer_url: ISSUER, now: self.now }
    }

    async fn user(&self, email: &str, status: UserStatus) -> users::User {
        let hash = self.passwords.hash(&SecretString::from(PASSWORD)).await.expect("hash");
        let email = Email::parse(email).expect("email");
        let new = NewUser {
            email: &email,
            password_hash: Some(&hash),
            email_verified: true,
            status,
            name: None,
            profile: Default::default(),
        };
        users::create(&self.store, &new, self.now).await.expect("insert").expect("new user")
    }

    async fn finish(&self, policy: &Policy, user: &users::User) -> Outcome {
        service::finish(self.cx(policy), user, None, &origin(), &["pwd"]).await.expect("finish")
    }
}

fn origin() -> Origin {
    Origin { ip: Some("127.0.0.1".into()), user_agent: None }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_answer_alike() {
    let f = fixture().await;
    let policy = Policy::default();
    f.user("ann@example.com", UserStatus::Active).await;
    let wrong = SecretString::from("not the password");
    let right = SecretString::from(PASSWORD);
    let cases = [("ann@example.com", &wrong), ("nobody@example.com", &right), ("not an address", &right)];
    for (email, pw) in cases {
        let got = service::check_password(f.cx(&policy), &f.passwords, email, pw).await.expect("check");
        assert!(matches!(got, PasswordCheck::Wrong), "{email}: {got:?}");
    }
    let got = service::check_password(f.cx(&policy), &f.passwords, "ANN@example.com", &right).await;
    assert!(matches!(got, Ok(PasswordCheck::Proven(u)) if u.email == "ann@example.com"));
}

#[tokio::test]
async fn a_disabled_account_fails_like_a_wrong_password() {
    let f = fixture().await;
    let policy = Policy::default();
    f.user("dan@example.com", UserStatus::Disabled).await;
    let right = SecretString::from(PASSWORD);
    let got = service::check_password(f.cx(&policy), &f.passwords, "dan@example.com", &right).await;
    assert!(matches!(got, Ok(PasswordCheck::Wrong)));
}

#[tokio::test]
async fn an_account_pending_approval_gets_no_session() {
    let f = fixture().await;
    let policy = Policy::default();
    let user = f.user("pat@example.com", UserStatus::PendingApproval).await;
    assert!(matches!(f.finish(&policy, &user).await, Outcome::AwaitingApproval));
    let sessions =
        crate::sessions::list_for_user(&f.store, user.id, &policy.session, f.now).await.expect("list");
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn the_second_factor_is_due_first_and_parks_the_sign_in() {
    let f = fixture().await;
    let policy = Policy { required_profile_fields: vec!["name".into()], ..Policy::default() };
    let user = f.user("mia@example.com", UserStatus::Active).await;
    let sql =
        "INSERT INTO mfa_totp (user_id, secret_sealed, confirmed_at, created_at) VALUES ($1, 'x', $2, $2)";
    crate::on_db!(&f.store, p => sqlx::query(sql).bind(user.id).bind(f.now).execute(p).await.map(|_| ()))
        .expect("enrol");
    let Outcome::Parked { token, step } = f.finish(&policy, &user).await else { panic!("not parked") };
    assert_eq!(step, Step::Totp, "the profile waits until the second factor is proven");
    let parked = super::pending::load(&f.store, &token.hashed(), f.now).await.expect("load").expect("row");
    assert_eq!(parked.user_id, user.id);
    let resumed = service::resume(f.cx(&policy), &token.hashed(), &parked, &origin()).await.expect("resume");
    assert!(matches!(resumed, Resumed::Due { step: Step::Totp, .. }));
}

#[tokio::test]
async fn a_missing_profile_field_is_asked_for() {
    let f = fixture().await;
    let policy = Policy { required_profile_fields: vec!["name".into()], ..Policy::default() };
    let user = f.user("pia@example.com", UserStatus::Active).await;
    let Outcome::Parked { step, .. } = f.finish(&policy, &user).await else { panic!("not parked") };
    assert_eq!(step, Step::Profile(vec!["name"]));
}

#[tokio::test]
async fn an_expired_password_must_be_changed() {
    let mut f = fixture().await;
    let mut policy = Policy::default();
    policy.password.expiry_days = Some(30);
    let user = f.user("old@example.com", UserStatus::Active).await;
    assert!(matches!(f.finish(&policy, &user).await, Outcome::SignedIn { .. }), "fresh password");
    f.now = Ts::new(f.now.0 + chrono::Duration::days(31));
    let Outcome::Parked { step, .. } = f.finish(&policy, &user).await else { panic!("not parked") };
    assert_eq!(step, Step::PasswordChange);
}

#[tokio::test]
async fn nothing_due_signs_in_with_a_new_session() {
    let f = fixture().await;
    let policy = Policy::default();
    let user = f.user("sam@example.com", UserStatus::Active).await;
    let Outcome::SignedIn { redirect, .. } = f.finish(&policy, &user).await else { panic!("not signed in") };
    assert_eq!(redirect, format!("{ISSUER}/account"), "no client waits: the account page");
    let sessions =
        crate::sessions::list_for_user(&f.store, user.id, &policy.session, f.now).await.expect("list");
    assert_eq!(sessions.len(), 1);
}
