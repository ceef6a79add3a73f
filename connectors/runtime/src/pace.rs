//! Local pacing: a GCRA limiter (governor's) that waits on tokio's clock,
//! so a test that pauses tokio's time also pauses the pacer, and a pace
//! never depends on how fast the machine is.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Time since the pacer was made, on tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock { origin: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl GovernorClock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Admits requests at a steady pace.
pub struct Pacer {
    limiter: Limiter,
    clock: TokioClock,
}

impl Pacer {
    pub fn new(quota: Quota) -> Self {
        let clock = TokioClock::new();
        Pacer { limiter: RateLimiter::direct_with_clock(quota, clock), clock }
    }

    /// `per_second` evenly spaced, a burst of one.
    pub fn per_second(per_second: u32) -> Self {
        let n = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Pacer::new(Quota::per_second(n).allow_burst(NonZeroU32::MIN))
    }

    /// Waits until the next request may go.
    pub async fn until_ready(&self) {
        loop {
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await,
            }
        }
    }
}

/// A GCRA quota admitting at most `per_window` requests in any `window`:
/// a burst of a tenth, then an even trickle for the rest.
pub fn quota_for(per_window: u32, window: Duration) -> Quota {
    if per_window < 2 {
        return Quota::with_period(window).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    }
    let burst = (per_window / 10).max(1);
    let steady = per_window - burst;
    let period = window / steady;
    Quota::with_period(period.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_never_admits_more_than_the_window_allows() {
        let window = Duration::from_secs(10);
        for n in [2u32, 4, 5, 10, 100, 171, 190] {
            let q = quota_for(n, window);
            let admitted = q.burst_size().get() as u128 + window.as_nanos() / q.replenish_interval().as_nanos();
            assert!(admitted <= n as u128, "{n}: {admitted}");
            assert!(admitted * 10 >= (n as u128) * 7, "{n}: {admitted} wastes the limit");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_requests_on_tokios_clock() {
        let p = Pacer::per_second(4);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            p.until_ready().await;
        }
        // Five requests at four a second: the fifth goes a second after the first.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
