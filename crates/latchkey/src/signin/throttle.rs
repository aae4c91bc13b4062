//! Brute-force protection for password sign-in (SPEC §7): failed attempts are counted in memory
//! and turn into lock-outs that grow with each further failure.
//!
//! # Design
//!
//! Every attempt is checked against three counters, all inside one app (the app id is part of
//! every key, so one tenant's attackers never lock out another tenant's users):
//!
//! | key | free failures | then | one failure forgiven every |
//! |---|---|---|---|
//! | account + client address | 5 | 1 s, doubling per failure, up to 15 min | 10 min |
//! | client address | 20 | 1 s, doubling per failure, up to 15 min | 3 min |
//! | account, all addresses | 100 | 36 s each | 36 s (100 an hour) |
//!
//! - **Per account is keyed by (account, address).** A lock on "ann@example.com from 203.0.113.9"
//!   does not stop Ann signing in from her own address, so an attacker cannot lock her out by
//!   guessing at her account. That alone would let a botnet guess 5 passwords per address; the
//!   per-account ceiling across all addresses stops distributed guessing at 100 failures an hour
//!   (2,400 a day instead of millions). The ceiling is the one lock an attacker *can* impose on
//!   someone else, so it is high, and addresses the account signed in from successfully in the
//!   last 30 days are exempt from it: under a distributed attack Ann still gets in from where
//!   she usually does. The price is that a first sign-in from a new address can wait up to 36 s
//!   while an account is under a large distributed attack.
//! - **Per address** catches one address spraying a common password over many accounts. It is
//!   more generous (offices and carrier NAT put many people behind one address) and a success
//!   does not reset it, or an attacker with one valid account could reset it at will.
//! - **Counters leak**: one failure is forgiven per interval instead of all of them after a quiet
//!   period, so the sustained guessing rate per key is bounded by the forgiveness rate, and a
//!   shared address with occasional typos never accumulates a lock. A successful sign-in clears
//!   the (account, address) counter.
//! - **Checked before the password is verified**, so a refused attempt costs no Argon2 work and
//!   tells nothing. Attempts still being verified count as pending: a burst of parallel requests
//!   gets no more tries than the free allowance, and once locks start only one attempt per key is
//!   in flight. The decision never depends on whether the account exists: unknown emails are
//!   counted like known ones.
//! - IPv6 clients are keyed by their /64 (one subscriber usually gets a whole /64); IPv4-mapped
//!   IPv6 addresses count as IPv4. The address is the TCP peer: behind a reverse proxy every
//!   client shares the proxy's address, so only the per-account limits discriminate there.
//! - **Memory is bounded**: idle entries are swept once a minute, and each table holds at most
//!   `max_keys` entries; beyond that the least recently used are dropped (a flood of fresh keys
//!   can make the limiter forget old ones, never exhaust memory).
//! - State is per process. Several replicas each count on their own, so the limits are per
//!   replica; a shared store (Redis, SPEC §9) would make them global.
//!
//! Time comes from the caller (the injected clock), so tests can move it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::users::Email;

/// How failures of one kind of key turn into locks.
#[derive(Debug, Clone, Copy)]
pub struct Ladder {
    /// Failures allowed before the first lock.
    pub free: u32,
    /// The lock after the `free`-th failure; each further failure doubles it.
    pub first: Duration,
    /// The longest lock.
    pub max: Duration,
    /// One counted failure is forgiven per this much time.
    pub forgive_every: Duration,
}

impl Ladder {
    fn lock_for(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free)?;
        // 2^20 s is far beyond any sensible `max`; cap the exponent so the shift cannot overflow.
        let lock = self.first.checked_mul(1 << over.min(20)).unwrap_or(self.max);
        Some(lock.min(self.max))
    }
}

/// The limits, and how many keys each table may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub account_address: Ladder,
    pub address: Ladder,
    pub account: Ladder,
    /// How long a successful sign-in exempts its (account, address) from the account ceiling.
    pub trust_for: Duration,
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            account_address: Ladder {
                free: 5,
                first: Duration::seconds(1),
                max: Duration::minutes(15),
                forgive_every: Duration::minutes(10),
            },
            address: Ladder {
                free: 20,
                first: Duration::seconds(1),
                max: Duration::minutes(15),
                forgive_every: Duration::minutes(3),
            },
            account: Ladder {
                free: 100,
                first: Duration::seconds(36),
                max: Duration::seconds(36),
                forgive_every: Duration::seconds(36),
            },
            trust_for: Duration::days(30),
            max_keys: 100_000,
        }
    }
}

/// Which limit refused an attempt (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    AccountAddress,
    Address,
    Account,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::AccountAddress => "account_address",
            Limit::Address => "address",
            Limit::Account => "account",
        }
    }
}

/// An attempt that may not go ahead yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Whole seconds until the attempt may be made again (at least 1), for `Retry-After`.
    pub retry_after_secs: u64,
    pub limit: Limit,
}

impl Refused {
    /// What to tell the person waiting, in seconds or minutes.
    pub fn message(&self) -> String {
        let s = self.retry_after_secs;
        let wait = match s {
            1 => "a second".to_string(),
            2..90 => format!("{s} seconds"),
            _ => format!("{} minutes", s.div_ceil(60)),
        };
        format!("Too many attempts to sign in. Please wait {wait} and try again.")
    }
}

/// The throttle key of what was typed into the email field: the normalised address when it is
/// one, else the trimmed, lower-cased text (bounded, so keys stay small).
pub fn account_key(raw: &str) -> String {
    match Email::parse(raw) {
        Ok(e) => e.normalized().to_string(),
        Err(_) => raw.trim().chars().take(254).collect::<String>().to_lowercase(),
    }
}

/// The part of a client address that identifies a client: IPv4 as is, IPv6 by its /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    /// When `failures` was last brought up to date with forgiveness.
    counted_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
    /// Attempts allowed and still being verified.
    pending: u32,
    /// Only in the (account, address) table: exempt from the account ceiling until then.
    trusted_until: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
}

impl Entry {
    fn new(now: DateTime<Utc>) -> Entry {
        Entry {
            failures: 0,
            counted_at: now,
            locked_until: None,
            pending: 0,
            trusted_until: None,
            last_seen: now,
        }
    }

    /// Applies the forgiveness due by `now`.
    fn forgive(&mut self, ladder: &Ladder, now: DateTime<Utc>) {
        let step = ladder.forgive_every.num_milliseconds().max(1);
        // A clock that stepped back forgives nothing rather than going negative.
        let elapsed = (now - self.counted_at).num_milliseconds().max(0);
        let steps = elapsed / step;
        if self.failures == 0 {
            self.counted_at = now;
        } else if steps > 0 {
            self.failures = self.failures.saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX));
            self.counted_at += Duration::milliseconds(steps * step);
        }
    }

    fn trusted(&self, now: DateTime<Utc>) -> bool {
        self.trusted_until.is_some_and(|t| t > now)
    }

    fn idle(&self, ladder: &Ladder, now: DateTime<Utc>) -> bool {
        let mut e = self.clone();
        e.forgive(ladder, now);
        e.failures == 0 && e.pending == 0 && e.locked_until.is_none_or(|t| t <= now) && !e.trusted(now)
    }
}

struct Table<K> {
    ladder: Ladder,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(ladder: Ladder) -> Self {
        Table { ladder, entries: HashMap::new() }
    }

    /// Time until an attempt on `key` may go ahead, if it may not now.
    fn wait(&mut self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let ladder = self.ladder;
        let e = self.entries.get_mut(key)?;
        e.forgive(&ladder, now);
        if let Some(until) = e.locked_until.filter(|t| *t > now) {
            return Some(until - now);
        }
        // Within the free allowance several attempts may be in flight; past it, one at a time.
        if e.pending > 0 && e.failures + e.pending >= ladder.free {
            return Some(Duration::seconds(1));
        }
        None
    }

    fn entry(&mut self, key: &K, now: DateTime<Utc>) -> &mut Entry {
        let e = self.entries.entry(key.clone()).or_insert_with(|| Entry::new(now));
        e.last_seen = now;
        e
    }

    fn begin(&mut self, key: &K, now: DateTime<Utc>) {
        let e = self.entry(key, now);
        e.pending += 1;
    }

    fn release(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.pending = e.pending.saturating_sub(1);
        }
    }

    fn fail(&mut self, key: &K, now: DateTime<Utc>) {
        let ladder = self.ladder;
        let e = self.entry(key, now);
        e.forgive(&ladder, now);
        e.pending = e.pending.saturating_sub(1);
        e.failures = e.failures.saturating_add(1);
        if let Some(lock) = ladder.lock_for(e.failures) {
            e.locked_until = Some(now + lock);
        }
    }

    /// Drops idle entries; if the table is still over `max`, the least recently used entries
    /// that have nothing in flight, down to 90% of `max`.
    fn sweep(&mut self, max: usize, now: DateTime<Utc>) {
        let ladder = self.ladder;
        self.entries.retain(|_, e| !e.idle(&ladder, now));
        if self.entries.len() <= max {
            return;
        }
        let mut by_age: Vec<(DateTime<Utc>, K)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .map(|(k, e)| (e.last_seen, k.clone()))
            .collect();
        let excess = (self.entries.len() - max * 9 / 10).min(by_age.len());
        if excess == 0 {
            return;
        }
        by_age.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
        for (_, k) in by_age.into_iter().take(excess) {
            self.entries.remove(&k);
        }
    }
}

type AccountAddressKey = (Uuid, String, IpAddr);
type AddressKey = (Uuid, IpAddr);
type AccountKey = (Uuid, String);

struct Tables {
    account_address: Table<AccountAddressKey>,
    address: Table<AddressKey>,
    account: Table<AccountKey>,
    swept_at: DateTime<Utc>,
}

/// The sign-in limiter, shared by every request of the process (see the module docs).
pub struct Throttle {
    limits: Limits,
    tables: Mutex<Tables>,
}

/// An attempt that was allowed: report how it ended with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped without either (an internal error), it only stops counting
/// as pending.
#[must_use = "report the outcome with failed() or succeeded()"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    account_address: AccountAddressKey,
    address: AddressKey,
    account: AccountKey,
    done: bool,
}

const SWEEP_EVERY: Duration = Duration::seconds(60);

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        let tables = Tables {
            account_address: Table::new(limits.account_address),
            address: Table::new(limits.address),
            account: Table::new(limits.account),
            swept_at: DateTime::UNIX_EPOCH,
        };
        Throttle { limits, tables: Mutex::new(tables) }
    }

    /// Starts a sign-in attempt of `account` (see [`account_key`]) from `addr` in `app`, or says
    /// how long to wait. Call before any password work.
    pub fn begin(
        &self,
        app: Uuid,
        account: &str,
        addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Attempt<'_>, Refused> {
        let addr = address_key(addr);
        let account_address = (app, account.to_string(), addr);
        let address = (app, addr);
        let account = (app, account.to_string());
        let mut t = self.tables.lock();
        if now - t.swept_at >= SWEEP_EVERY
            || t.account_address.entries.len() >= self.limits.max_keys
            || t.address.entries.len() >= self.limits.max_keys
            || t.account.entries.len() >= self.limits.max_keys
        {
            let max = self.limits.max_keys.saturating_sub(1);
            t.account_address.sweep(max, now);
            t.address.sweep(max, now);
            t.account.sweep(max, now);
            t.swept_at = now;
        }
        let trusted = t.account_address.entries.get(&account_address).is_some_and(|e| e.trusted(now));
        let mut waits = vec![
            (t.account_address.wait(&account_address, now), Limit::AccountAddress),
            (t.address.wait(&address, now), Limit::Address),
        ];
        if !trusted {
            waits.push((t.account.wait(&account, now), Limit::Account));
        }
        if let Some((wait, limit)) =
            waits.into_iter().filter_map(|(w, l)| w.map(|w| (w, l))).max_by_key(|(w, _)| *w)
        {
            let ms = u64::try_from(wait.num_milliseconds()).unwrap_or(0);
            return Err(Refused { retry_after_secs: ms.div_ceil(1000).max(1), limit });
        }
        t.account_address.begin(&account_address, now);
        t.address.begin(&address, now);
        t.account.begin(&account, now);
        drop(t);
        Ok(Attempt { throttle: self, account_address, address, account, done: false })
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Attempt<'_> {
    /// The password was wrong (or the account cannot sign in): counts against every key.
    pub fn failed(mut self, now: DateTime<Utc>) {
        self.done = true;
        let mut t = self.throttle.tables.lock();
        t.account_address.fail(&self.account_address, now);
        t.address.fail(&self.address, now);
        t.account.fail(&self.account, now);
    }

    /// Signed in: clears this (account, address) and trusts it against the account ceiling. The
    /// address counter is left alone (see the module docs).
    pub fn succeeded(mut self, now: DateTime<Utc>) {
        self.done = true;
        let trust_for = self.throttle.limits.trust_for;
        let mut t = self.throttle.tables.lock();
        let e = t.account_address.entry(&self.account_address, now);
        e.pending = e.pending.saturating_sub(1);
        e.failures = 0;
        e.counted_at = now;
        e.locked_until = None;
        e.trusted_until = Some(now + trust_for);
        t.address.release(&self.address);
        t.account.release(&self.account);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut t = self.throttle.tables.lock();
            t.account_address.release(&self.account_address);
            t.address.release(&self.address);
            t.account.release(&self.account);
        }
    }
}

#[cfg(test)]
mod tests;
