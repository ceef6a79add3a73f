//! The simulated clock.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

/// Simulated "now": a start instant plus whatever the admin advanced, plus
/// (unless frozen) the real time elapsed since the clock was made, so token
/// lifetimes and rate-limit windows also pass on their own.
#[derive(Clone)]
pub struct SimClock {
    inner: Arc<Mutex<ClockState>>,
}

struct ClockState {
    start_at: DateTime<Utc>,
    advanced: Duration,
    real_origin: Instant,
    frozen: bool,
}

impl SimClock {
    /// A clock reading `start_at` now and ticking with real time.
    pub fn new(start_at: DateTime<Utc>) -> Self {
        SimClock {
            inner: Arc::new(Mutex::new(ClockState {
                start_at,
                advanced: Duration::zero(),
                real_origin: Instant::now(),
                frozen: false,
            })),
        }
    }

    /// A clock that only moves when advanced.
    pub fn frozen(start_at: DateTime<Utc>) -> Self {
        let c = Self::new(start_at);
        c.state().frozen = true;
        c
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        // A poisoned clock still holds a valid time; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        let s = self.state();
        let real = if s.frozen {
            Duration::zero()
        } else {
            Duration::from_std(s.real_origin.elapsed()).unwrap_or_else(|_| Duration::zero())
        };
        s.start_at + s.advanced + real
    }

    /// Move simulated time forward (never backward).
    pub fn advance(&self, by: Duration) {
        if by > Duration::zero() {
            self.state().advanced += by;
        }
    }

    /// Jump to `to` if it is in the future; returns the new now.
    pub fn advance_to(&self, to: DateTime<Utc>) -> DateTime<Utc> {
        let now = self.now();
        if to > now {
            self.advance(to - now);
        }
        self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_and_never_goes_back() {
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc);
        let c = SimClock::frozen(t0);
        c.advance(Duration::days(30));
        assert_eq!(c.now(), t0 + Duration::days(30));
        c.advance(Duration::days(-3));
        assert_eq!(c.now(), t0 + Duration::days(30));
        c.advance_to(t0);
        assert_eq!(c.now(), t0 + Duration::days(30));
    }
}
