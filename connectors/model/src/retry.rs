//! Retry policy shared by the connectors: exponential backoff with full
//! jitter, and a decision per [`ErrorClass`].
//!
//! Pure logic: no clock, no sleeping, no global randomness. Callers pass the
//! attempt number and a uniform sample (or an [`rand::Rng`] they own), so the
//! schedule is reproducible under a seeded generator in tests.
//!
//! Full jitter (sleep a uniform random time in `[0, min(cap, base·2^n)]`)
//! spreads retrying clients out instead of having them all return at the same
//! instant, which is what turns a brief 429 into a storm. A server-provided
//! delay (`Retry-After`, a rate-limit reset) is a floor, never jittered below:
//! sending inside that window only earns another refusal.

use std::time::Duration;

use crate::ErrorClass;

/// How often and how long to retry one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = never retry).
    pub max_attempts: u32,
    /// The backoff ceiling for the first retry; doubles with every attempt.
    pub base_delay: Duration,
    /// No computed backoff exceeds this (a server's `Retry-After` may).
    pub max_delay: Duration,
    /// Longest server-requested wait the caller will sit out inside one call;
    /// a longer one is handed back to the daemon as an error instead.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then send again.
    RetryAfter(Duration),
    /// Re-authenticate once, then send again without waiting.
    Reauthenticate,
    /// Stop and surface the error.
    GiveUp,
}

impl RetryPolicy {
    /// The full-jitter backoff before retry number `retry` (0 = the first
    /// retry), given `unit` uniform in `[0, 1)`.
    ///
    /// The ceiling is `min(max_delay, base_delay · 2^retry)`; the result is
    /// `unit · ceiling`. A `unit` outside `[0, 1)` is clamped, so a bad
    /// sample can never produce a wait beyond the ceiling.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        ceiling.mul_f64(unit)
    }

    /// [`RetryPolicy::backoff`] drawing the sample from `rng`.
    pub fn backoff_with<R: rand::Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        self.backoff(retry, rng.gen::<f64>())
    }

    /// `min(max_delay, base_delay · 2^retry)`, saturating instead of overflowing.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Decide after attempt number `attempt` (1 = the first send) failed with
    /// `class`. `reauthenticated` says whether this request already spent its
    /// one re-authentication; `unit` is a uniform sample in `[0, 1)`.
    ///
    /// - `Retryable`: jittered backoff while attempts remain.
    /// - `RateLimited`: wait at least the server's delay (plus jitter on top,
    ///   so clients released together do not return together), unless that
    ///   exceeds `max_rate_limit_wait` — then give up and let the caller
    ///   report the delay upward.
    /// - `Auth`: re-authenticate once; a second refusal is final.
    /// - `Permanent`, `NeedsConfig`: never retried; retrying cannot help.
    pub fn decide(&self, attempt: u32, class: &ErrorClass, reauthenticated: bool, unit: f64) -> RetryDecision {
        let attempts_left = attempt < self.max_attempts;
        match class {
            ErrorClass::Retryable if attempts_left => {
                RetryDecision::RetryAfter(self.backoff(attempt.saturating_sub(1), unit))
            }
            ErrorClass::RateLimited { retry_after_secs } if attempts_left => {
                let floor = Duration::from_secs(*retry_after_secs);
                if floor > self.max_rate_limit_wait {
                    RetryDecision::GiveUp
                } else {
                    RetryDecision::RetryAfter(floor.saturating_add(self.backoff(attempt.saturating_sub(1), unit)))
                }
            }
            ErrorClass::Auth if !reauthenticated => RetryDecision::Reauthenticate,
            _ => RetryDecision::GiveUp,
        }
    }

    /// [`RetryPolicy::decide`] drawing the sample from `rng`.
    pub fn decide_with<R: rand::Rng + ?Sized>(
        &self,
        attempt: u32,
        class: &ErrorClass,
        reauthenticated: bool,
        rng: &mut R,
    ) -> RetryDecision {
        self.decide(attempt, class, reauthenticated, rng.gen::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_rate_limit_wait: Duration::from_secs(10),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        let ceilings: Vec<u128> = (0..6).map(|n| p.backoff_ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling_and_clamps_bad_samples() {
        let p = policy();
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 7.0), Duration::from_millis(400));
        assert_eq!(p.backoff(2, -1.0), Duration::ZERO);
        assert_eq!(p.backoff(2, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn seeded_rng_gives_a_reproducible_schedule_within_bounds() {
        let p = policy();
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..8).map(|n| p.backoff_with(n, &mut rng)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        for (n, d) in a.iter().enumerate() {
            assert!(*d <= p.backoff_ceiling(n as u32), "retry {n}: {d:?}");
        }
    }

    #[test]
    fn decisions_per_error_class() {
        let p = policy();
        assert_eq!(
            p.decide(1, &ErrorClass::Retryable, false, 0.5),
            RetryDecision::RetryAfter(Duration::from_millis(50))
        );
        assert_eq!(p.decide(4, &ErrorClass::Retryable, false, 0.5), RetryDecision::GiveUp);
        assert_eq!(p.decide(1, &ErrorClass::Permanent, false, 0.5), RetryDecision::GiveUp);
        assert_eq!(p.decide(1, &ErrorClass::NeedsConfig, false, 0.5), RetryDecision::GiveUp);
        assert_eq!(p.decide(1, &ErrorClass::Auth, false, 0.5), RetryDecision::Reauthenticate);
        assert_eq!(p.decide(1, &ErrorClass::Auth, true, 0.5), RetryDecision::GiveUp);
    }

    #[test]
    fn rate_limit_waits_at_least_the_server_delay_or_gives_up_when_too_long() {
        let p = policy();
        let limited = ErrorClass::RateLimited { retry_after_secs: 3 };
        for unit in [0.0, 0.3, 0.99] {
            match p.decide(2, &limited, false, unit) {
                RetryDecision::RetryAfter(d) => assert!(d >= Duration::from_secs(3), "{d:?}"),
                other => panic!("expected a wait, got {other:?}"),
            }
        }
        let too_long = ErrorClass::RateLimited { retry_after_secs: 11 };
        assert_eq!(p.decide(1, &too_long, false, 0.5), RetryDecision::GiveUp);
    }

    #[test]
    fn a_huge_server_delay_never_overflows() {
        let p = RetryPolicy { max_rate_limit_wait: Duration::MAX, ..policy() };
        let huge = ErrorClass::RateLimited { retry_after_secs: u64::MAX };
        assert!(matches!(p.decide(1, &huge, false, 0.99), RetryDecision::RetryAfter(_)));
    }
}
