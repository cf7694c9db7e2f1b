//! The guard against guessing credentials: a peer address whose handshakes fail their credential
//! check (401) faster than `--max-credential-failures-per-ip` per second is refused with 429 for
//! a second, before its next credential is even looked at.
//!
//! Per-client limits are keyed by the verified identity, which is only known after the
//! credential check, so they cannot bound guessing; this guard runs before the check, keyed by
//! the only thing known then, the address. It counts failures only, so many clients sharing an
//! address (a NAT, a proxy) are not limited by each other's successful handshakes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::refusal::Refusal;

/// How long an address is refused once it exceeds its failure budget.
const BLOCKED_FOR: Duration = Duration::from_secs(1);

/// Addresses tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// Failed credential checks per peer address.
pub struct CredentialFailures {
    /// `None`: the guard is off (`--max-credential-failures-per-ip 0`).
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl CredentialFailures {
    /// Allows `per_second` failures per address per second (as a burst, refilled evenly).
    pub fn new(per_second: u32) -> CredentialFailures {
        CredentialFailures {
            failures: NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n))),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// Before the credential check: 429 while `peer` is blocked.
    pub fn check(&self, peer: IpAddr) -> Result<(), Refusal> {
        if self.failures.is_none() {
            return Ok(());
        }
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(&peer) {
            Some(until) if *until > Instant::now() => Err(Refusal::new(
                429,
                "too many failed credentials from this address; retry in a second",
            )
            .header("retry-after", "1")),
            _ => Ok(()),
        }
    }

    /// After a failed credential check (401): counts it, and blocks `peer` beyond the budget.
    pub fn record(&self, peer: IpAddr) {
        let Some(failures) = &self.failures else {
            return;
        };
        if failures.len() > MAX_TRACKED {
            failures.retain_recent();
        }
        if failures.check_key(&peer).is_ok() {
            return;
        }
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() > MAX_TRACKED {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(peer, now + BLOCKED_FOR);
    }

    /// Addresses currently blocked or remembered as blocked (for tests).
    pub fn blocked(&self) -> usize {
        let now = Instant::now();
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.values().filter(|until| **until > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_failing_beyond_its_budget_is_refused_before_the_check() {
        let guard = CredentialFailures::new(3);
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(guard.check(guesser).is_ok());
            guard.record(guesser);
        }
        assert!(guard.check(guesser).is_ok(), "3 failures fit the budget");
        guard.record(guesser);
        let refused = guard.check(guesser).expect_err("the 4th failure blocks");
        assert_eq!(refused.status, 429);
        assert!(refused
            .headers
            .iter()
            .any(|(k, v)| *k == "retry-after" && v == "1"));
        assert!(
            guard.check(neighbour).is_ok(),
            "other addresses are not affected"
        );
        assert_eq!(guard.blocked(), 1);
    }

    #[test]
    fn zero_turns_the_guard_off() {
        let guard = CredentialFailures::new(0);
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            guard.record(peer);
        }
        assert!(guard.check(peer).is_ok());
    }
}
