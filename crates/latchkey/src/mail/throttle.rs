//! How often mail may be asked for (SPEC §7): magic links, password resets and verification
//! re-sends share one budget per (app, typed address) and one per (app, client address), so
//! nobody can flood an inbox or use an app as a mail cannon. Both are GCRA limiters
//! (`governor`): a burst, then one more every interval. The key is what was typed, registered or
//! not, so the answer never tells whether an account exists. Per process, like the sign-in
//! throttle; idle keys are forgotten by the janitor's sweep.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

/// A request that must wait.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Whole seconds, at least 1, for `Retry-After`.
    pub retry_after_secs: u64,
}

impl Wait {
    pub fn message(&self) -> String {
        let s = self.retry_after_secs;
        let wait = if s < 90 { format!("{s} seconds") } else { format!("{} minutes", s.div_ceil(60)) };
        format!("Too many emails were asked for. Please wait {wait} and try again.")
    }
}

pub struct MailThrottle {
    per_address: DefaultKeyedRateLimiter<(Uuid, String)>,
    per_client: DefaultKeyedRateLimiter<(Uuid, IpAddr)>,
    clock: DefaultClock,
}

fn quota(burst: u32, every: Duration) -> Quota {
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl Default for MailThrottle {
    /// Per address: 5 at once, then one every 3 minutes (20 an hour). Per client address: 30 at
    /// once, then one every 10 seconds (offices and carrier NAT share addresses).
    fn default() -> Self {
        MailThrottle::new((5, Duration::from_secs(180)), (30, Duration::from_secs(10)))
    }
}

impl MailThrottle {
    pub fn new(per_address: (u32, Duration), per_client: (u32, Duration)) -> Self {
        MailThrottle {
            per_address: DefaultKeyedRateLimiter::keyed(quota(per_address.0, per_address.1)),
            per_client: DefaultKeyedRateLimiter::keyed(quota(per_client.0, per_client.1)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request for mail to `address_key` from `ip`, or says how long to wait.
    pub fn check(&self, app: Uuid, address_key: &str, ip: IpAddr) -> Result<(), Wait> {
        let wait = |d: Duration| Wait { retry_after_secs: d.as_secs_f64().ceil().max(1.0) as u64 };
        let ip = crate::signin::throttle::address_key(ip);
        if let Err(not_until) = self.per_client.check_key(&(app, ip)) {
            return Err(wait(not_until.wait_time_from(self.clock.now())));
        }
        let key = (app, address_key.chars().take(254).collect());
        if let Err(not_until) = self.per_address.check_key(&key) {
            return Err(wait(not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }

    /// Drops keys whose budget is full again, so memory follows recent use.
    pub fn sweep(&self) {
        self.per_address.retain_recent();
        self.per_client.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_wait_per_address_and_per_client() {
        let t = MailThrottle::new((2, Duration::from_secs(60)), (3, Duration::from_secs(60)));
        let app = Uuid::now_v7();
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        assert!(t.check(app, "ann@example.com", ip).is_ok());
        assert!(t.check(app, "ann@example.com", ip).is_ok());
        let w = t.check(app, "ann@example.com", ip).expect_err("third for one address waits");
        assert!((1..=60).contains(&w.retry_after_secs), "{w:?}");
        // Another address from the same client still has budget, until the client's runs out.
        assert!(t.check(app, "bob@example.com", ip).is_err(), "client budget of 3 spent");
        let other: IpAddr = "198.51.100.1".parse().expect("ip");
        assert!(t.check(app, "bob@example.com", other).is_ok());
        // Another app is counted on its own.
        assert!(t.check(Uuid::now_v7(), "ann@example.com", ip).is_ok());
    }
}
