//! The limiter's rules, on a clock the tests move.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("time")
}

/// Fails `n` attempts back to back (each allowed), at `now`.
fn fail_n(th: &Throttle, app: Uuid, account: &str, addr: IpAddr, n: u32, now: DateTime<Utc>) {
    for i in 0..n {
        th.begin(app, account, addr, now)
            .unwrap_or_else(|r| panic!("attempt {i} refused: {r:?}"))
            .failed(now);
    }
}

#[test]
fn locks_grow_per_failure_and_open_when_they_end() {
    let th = Throttle::default();
    let (app, a, now) = (Uuid::nil(), ip("192.0.2.1"), t0());
    fail_n(&th, app, "ann@example.com", a, 5, now);
    let r = th.begin(app, "ann@example.com", a, now).err().expect("locked");
    assert_eq!(r, Refused { retry_after_secs: 1, limit: Limit::AccountAddress });
    let now = now + Duration::seconds(1);
    th.begin(app, "ann@example.com", a, now).expect("open again").failed(now);
    assert_eq!(th.begin(app, "ann@example.com", a, now).err().map(|r| r.retry_after_secs), Some(2));
    let now = now + Duration::seconds(2);
    th.begin(app, "ann@example.com", a, now).expect("open again").failed(now);
    assert_eq!(th.begin(app, "ann@example.com", a, now).err().map(|r| r.retry_after_secs), Some(4));
    // A success clears the (account, address) counter.
    let now = now + Duration::seconds(4);
    th.begin(app, "ann@example.com", a, now).expect("open").succeeded(now);
    fail_n(&th, app, "ann@example.com", a, 5, now);
}

#[test]
fn locks_stop_growing_at_the_maximum() {
    // No forgiveness and no address limit, to watch the (account, address) ladder alone.
    let d = Limits::default();
    let th = Throttle::new(Limits {
        account_address: Ladder { forgive_every: Duration::days(365), ..d.account_address },
        address: Ladder { free: 1_000, ..d.address },
        ..d
    });
    let (app, a) = (Uuid::nil(), ip("192.0.2.1"));
    let mut now = t0();
    fail_n(&th, app, "x@example.com", a, 5, now);
    for _ in 0..15 {
        let wait = th.begin(app, "x@example.com", a, now).err().expect("locked").retry_after_secs;
        assert!(wait <= 15 * 60, "{wait}");
        now += Duration::seconds(i64::try_from(wait).expect("secs"));
        th.begin(app, "x@example.com", a, now).expect("open").failed(now);
    }
    assert_eq!(th.begin(app, "x@example.com", a, now).err().map(|r| r.retry_after_secs), Some(900));
}

#[test]
fn another_address_is_not_locked_out() {
    let th = Throttle::default();
    let (app, now) = (Uuid::nil(), t0());
    fail_n(&th, app, "ann@example.com", ip("203.0.113.9"), 5, now);
    assert!(th.begin(app, "ann@example.com", ip("203.0.113.9"), now).is_err());
    th.begin(app, "ann@example.com", ip("198.51.100.7"), now).expect("Ann's own address").succeeded(now);
    // Other accounts from the attacker's address are still open (below the address limit).
    th.begin(app, "bo@example.com", ip("203.0.113.9"), now).expect("other account").failed(now);
}

#[test]
fn apps_do_not_share_counters() {
    let th = Throttle::default();
    let (a, now) = (ip("192.0.2.1"), t0());
    fail_n(&th, Uuid::nil(), "ann@example.com", a, 5, now);
    assert!(th.begin(Uuid::nil(), "ann@example.com", a, now).is_err());
    th.begin(Uuid::max(), "ann@example.com", a, now).expect("other app").failed(now);
}

#[test]
fn one_address_spraying_many_accounts_is_limited() {
    let th = Throttle::default();
    let (app, a, now) = (Uuid::nil(), ip("192.0.2.1"), t0());
    for i in 0..20 {
        fail_n(&th, app, &format!("user{i}@example.com"), a, 1, now);
    }
    let r = th.begin(app, "fresh@example.com", a, now).err().expect("address locked");
    assert_eq!(r.limit, Limit::Address);
    th.begin(app, "fresh@example.com", ip("192.0.2.2"), now).expect("other address").failed(now);
}

#[test]
fn ipv6_clients_are_keyed_by_their_64() {
    let th = Throttle::default();
    let (app, now) = (Uuid::nil(), t0());
    for i in 0..5 {
        fail_n(&th, app, "ann@example.com", ip(&format!("2001:db8:1:2::{i:x}")), 1, now);
    }
    assert!(th.begin(app, "ann@example.com", ip("2001:db8:1:2:ffff::1"), now).is_err());
    assert!(th.begin(app, "ann@example.com", ip("2001:db8:1:3::1"), now).is_ok());
    assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
}

#[test]
fn distributed_guessing_hits_the_account_ceiling_but_not_trusted_addresses() {
    let th = Throttle::default();
    let (app, now) = (Uuid::nil(), t0());
    let home = ip("198.51.100.7");
    th.begin(app, "ann@example.com", home, now).expect("first sign-in").succeeded(now);
    for i in 0..100u32 {
        let bot = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
        fail_n(&th, app, "ann@example.com", bot, 1, now);
    }
    let r = th.begin(app, "ann@example.com", ip("192.0.2.200"), now).err().expect("ceiling");
    assert_eq!(r, Refused { retry_after_secs: 36, limit: Limit::Account });
    th.begin(app, "ann@example.com", home, now).expect("known address still gets in").succeeded(now);
    // After the lock, one failure has been forgiven: one new attempt goes ahead.
    let later = now + Duration::seconds(36);
    th.begin(app, "ann@example.com", ip("192.0.2.200"), later).expect("after the window").failed(later);
    assert!(th.begin(app, "ann@example.com", ip("192.0.2.201"), later).is_err());
}

#[test]
fn failures_are_forgiven_over_time() {
    let th = Throttle::default();
    let (app, a, now) = (Uuid::nil(), ip("192.0.2.1"), t0());
    fail_n(&th, app, "ann@example.com", a, 4, now);
    // 20 minutes forgive two failures: three more fit before the lock.
    let later = now + Duration::minutes(20);
    fail_n(&th, app, "ann@example.com", a, 3, later);
    assert!(th.begin(app, "ann@example.com", a, later).is_err());
}

#[test]
fn parallel_attempts_get_no_more_than_the_free_allowance() {
    let th = Throttle::default();
    let (app, a, now) = (Uuid::nil(), ip("192.0.2.1"), t0());
    let inflight: Vec<_> = (0..5).map(|_| th.begin(app, "ann@example.com", a, now).expect("free")).collect();
    assert!(th.begin(app, "ann@example.com", a, now).is_err(), "a sixth in flight");
    drop(inflight);
    // Abandoned attempts (internal errors) neither count nor stay pending.
    fail_n(&th, app, "ann@example.com", a, 5, now);
}

#[test]
fn memory_stays_bounded() {
    let th = Throttle::new(Limits { max_keys: 100, ..Limits::default() });
    let now = t0();
    for i in 0..1_000u32 {
        let addr = IpAddr::from(i.to_be_bytes());
        fail_n(&th, Uuid::nil(), &format!("u{i}@example.com"), addr, 1, now);
    }
    let t = th.tables.lock();
    assert!(t.account_address.entries.len() <= 100);
    assert!(t.address.entries.len() <= 100);
    assert!(t.account.entries.len() <= 100);
    drop(t);
    // Idle entries go at the next sweep.
    let later = now + Duration::hours(2);
    th.begin(Uuid::nil(), "z@example.com", ip("192.0.2.1"), later).expect("open").failed(later);
    assert_eq!(th.tables.lock().address.entries.len(), 1);
}

#[test]
fn account_keys_are_normalised_and_bounded() {
    assert_eq!(account_key("  Ann@Example.COM "), "ann@example.com");
    assert_eq!(account_key(" Not An Email "), "not an email");
    assert_eq!(account_key(&"x".repeat(10_000)).len(), 254);
}
