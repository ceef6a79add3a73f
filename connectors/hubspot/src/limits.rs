//! Staying inside HubSpot's limits: two local pacers (the 10-second burst
//! bucket and search's per-second bucket), a pause gate set by `Retry-After`
//! and 429s, and the operator's share of the daily budget.
//!
//! governor paces locally below the documented rates; the headers HubSpot
//! sends (`X-HubSpot-RateLimit-Max`) resize the burst pacer, and a 429
//! closes the gate so nothing is sent until the CRM's window has passed.
//! Searches carry no rate headers, so a `SECONDLY` 429 itself says the
//! search pacer runs faster than the portal allows (a pacing setting above
//! the account's limit, or another app spending the shared bucket): the
//! pacer drops below what this connector got admitted in that second, and
//! climbs back one step a minute while no refusal comes.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Days;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use handoff_model::{ApiBudget, Timestamp};
use tokio::time::Instant;

use crate::error::HubspotError;
use crate::settings::Clock;
use crate::wire::{RateHeaders, RatePolicy};

/// Which of HubSpot's buckets a request draws from. Searches are exempt
/// from the burst bucket and have their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Burst,
    Search,
}

/// Share of a reported limit the pacer plans for, so network jitter that
/// bunches requests up on arrival cannot tip the CRM's window over.
const PACING_MARGIN: f64 = 0.9;
const BURST_WINDOW: Duration = Duration::from_secs(10);
const SEARCH_WINDOW: Duration = Duration::from_secs(1);
/// How long the search pacer stays at a lowered rate before stepping up.
const SEARCH_RECOVERY: Duration = Duration::from_secs(60);

/// The search pace after a `SECONDLY` refusal: below what was admitted in
/// the refused second (`sent_in_window` counts the refused search too),
/// always lower than the pace that was refused, at least one a second.
pub fn lowered_search_rate(current_per_second: u32, sent_in_window: usize) -> u32 {
    let admitted = sent_in_window.saturating_sub(1) as f64;
    let target = (admitted * PACING_MARGIN).floor() as u32;
    target.min(current_per_second.saturating_sub(1)).max(1)
}

/// The search pacer: its rate now, the configured ceiling, and when the
/// rate last changed.
struct SearchPacer {
    per_second: u32,
    ceiling: u32,
    limiter: Arc<DefaultDirectRateLimiter>,
    changed_at: Option<Instant>,
    /// When each recent search was sent (the last second's worth).
    sent: VecDeque<Instant>,
}

impl SearchPacer {
    fn new(per_second: u32) -> Self {
        SearchPacer {
            per_second,
            ceiling: per_second,
            limiter: Arc::new(RateLimiter::direct(quota_for(per_second, SEARCH_WINDOW))),
            changed_at: None,
            sent: VecDeque::new(),
        }
    }

    fn set_rate(&mut self, per_second: u32, now: Instant) {
        self.per_second = per_second;
        self.limiter = Arc::new(RateLimiter::direct(quota_for(per_second, SEARCH_WINDOW)));
        self.changed_at = Some(now);
    }

    fn forget_before(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= SEARCH_WINDOW) {
            self.sent.pop_front();
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

#[derive(Debug, Default)]
struct BudgetState {
    /// The portal's daily limit, from the headers or the fallback setting.
    daily_limit: Option<u64>,
    used: u64,
    /// Whether `used` comes from HubSpot's headers (else counted locally).
    reported: bool,
    day: Option<chrono::NaiveDate>,
    paused_until: Option<Timestamp>,
}

/// The connector's limit keeper, shared by every request.
pub struct Limits {
    burst: RwLock<(u32, Arc<DefaultDirectRateLimiter>)>,
    search: Mutex<SearchPacer>,
    gate: Mutex<Option<Instant>>,
    search_gate: Mutex<Option<Instant>>,
    budget: Mutex<BudgetState>,
    share: f64,
    clock: Arc<dyn Clock>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The next UTC midnight after `now`, when HubSpot's daily count resets.
fn next_midnight(now: Timestamp) -> Timestamp {
    now.date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(now + chrono::Duration::days(1))
}

impl Limits {
    pub fn new(
        burst_per_10s: u32,
        search_per_second: u32,
        share: f64,
        daily_limit_fallback: Option<u64>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Limits {
            burst: RwLock::new((burst_per_10s, Arc::new(RateLimiter::direct(quota_for(burst_per_10s, BURST_WINDOW))))),
            search: Mutex::new(SearchPacer::new(search_per_second)),
            gate: Mutex::new(None),
            search_gate: Mutex::new(None),
            budget: Mutex::new(BudgetState { daily_limit: daily_limit_fallback, ..BudgetState::default() }),
            share,
            clock,
        }
    }

    fn allowed(&self, limit: u64) -> u64 {
        (limit as f64 * self.share).floor() as u64
    }

    /// Refuse when today's share is spent (a stop, not a failure).
    fn check_budget(&self) -> Result<(), HubspotError> {
        let now = self.clock.now();
        let mut b = lock(&self.budget);
        if b.day.is_some_and(|d| d != now.date_naive()) {
            // A new day: HubSpot's count restarts (its next headers confirm).
            b.day = Some(now.date_naive());
            b.used = 0;
            b.paused_until = None;
        }
        if let Some(until) = b.paused_until {
            if until > now {
                return Err(HubspotError::Budget { retry_after: (until - now).to_std().unwrap_or_default() });
            }
            b.paused_until = None;
        }
        if let Some(limit) = b.daily_limit {
            if b.used >= self.allowed(limit) {
                let until = next_midnight(now);
                b.paused_until = Some(until);
                return Err(HubspotError::Budget { retry_after: (until - now).to_std().unwrap_or_default() });
            }
        }
        Ok(())
    }

    /// Wait until a request may be sent from `bucket`: budget left, no
    /// `Retry-After` window open, and the local pacer admits it.
    pub async fn acquire(&self, bucket: Bucket) -> Result<(), HubspotError> {
        self.check_budget()?;
        loop {
            let until = {
                let g = *lock(&self.gate);
                let s = if bucket == Bucket::Search { *lock(&self.search_gate) } else { None };
                g.max(s)
            };
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        match bucket {
            Bucket::Burst => {
                let limiter = self.burst.read().unwrap_or_else(|e| e.into_inner()).1.clone();
                limiter.until_ready().await;
            }
            Bucket::Search => {
                let limiter = {
                    let mut p = lock(&self.search);
                    let now = Instant::now();
                    if p.per_second < p.ceiling && p.changed_at.is_none_or(|t| now.duration_since(t) >= SEARCH_RECOVERY)
                    {
                        let up = p.per_second + 1;
                        tracing::debug!(
                            connector = "hubspot",
                            search_per_second = up,
                            "raising the search pacer again"
                        );
                        p.set_rate(up, now);
                    }
                    p.limiter.clone()
                };
                limiter.until_ready().await;
                let mut p = lock(&self.search);
                let now = Instant::now();
                p.forget_before(now);
                p.sent.push_back(now);
            }
        }
        if bucket == Bucket::Burst {
            // Counted locally only when HubSpot does not report usage.
            let today = self.clock.now().date_naive();
            let mut b = lock(&self.budget);
            b.day.get_or_insert(today);
            if !b.reported {
                b.used += 1;
            }
        }
        Ok(())
    }

    /// Learn from a response's rate-limit headers.
    pub fn observe(&self, bucket: Bucket, h: &RateHeaders) {
        if let (Some(limit), Some(remaining)) = (h.daily, h.daily_remaining) {
            let mut b = lock(&self.budget);
            b.daily_limit = Some(limit);
            b.used = limit.saturating_sub(remaining);
            b.reported = true;
            b.day = Some(self.clock.now().date_naive());
        }
        if bucket != Bucket::Burst {
            return;
        }
        if let Some(max) = h.max {
            let target = ((max as f64) * PACING_MARGIN).floor() as u32;
            let mut w = self.burst.write().unwrap_or_else(|e| e.into_inner());
            if target >= 2 && target != w.0 {
                tracing::debug!(
                    connector = "hubspot",
                    reported_max = max,
                    pacing_per_10s = target,
                    "resizing the burst pacer"
                );
                *w = (target, Arc::new(RateLimiter::direct(quota_for(target, BURST_WINDOW))));
            }
        }
        if h.remaining == Some(0) {
            let wait = Duration::from_millis(h.interval_ms.unwrap_or(10_000));
            self.pause(Some(Bucket::Burst), wait);
        }
    }

    /// Close the gate for `wait`: for every request (`None`, a `Retry-After`)
    /// or for one bucket.
    pub fn pause(&self, bucket: Option<Bucket>, wait: Duration) {
        let until = Instant::now() + wait;
        let gate = match bucket {
            Some(Bucket::Search) => &self.search_gate,
            _ => &self.gate,
        };
        let mut g = lock(gate);
        if g.is_none_or(|t| t < until) {
            *g = Some(until);
        }
    }

    /// React to a 429. Returns the budget stop for the daily policy.
    pub fn on_rate_limited(
        &self,
        policy: RatePolicy,
        bucket: Bucket,
        retry_after: Option<Duration>,
    ) -> Option<HubspotError> {
        match policy {
            RatePolicy::Daily => {
                let now = self.clock.now();
                let until = retry_after
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .map(|d| now + d)
                    .unwrap_or_else(|| next_midnight(now));
                let mut b = lock(&self.budget);
                b.paused_until = Some(until);
                Some(HubspotError::Budget { retry_after: (until - now).to_std().unwrap_or_default() })
            }
            RatePolicy::Secondly => {
                match retry_after {
                    Some(d) => self.pause(None, d),
                    None => self.pause(Some(Bucket::Search), SEARCH_WINDOW),
                }
                if bucket == Bucket::Search {
                    let mut p = lock(&self.search);
                    let now = Instant::now();
                    p.forget_before(now);
                    let lowered = lowered_search_rate(p.per_second, p.sent.len());
                    tracing::warn!(
                        connector = "hubspot",
                        refused_at_per_second = p.per_second,
                        search_per_second = lowered,
                        "search refused with SECONDLY; slowing the search pacer"
                    );
                    p.set_rate(lowered, now);
                }
                None
            }
            RatePolicy::TenSecondly => {
                match retry_after {
                    Some(d) => self.pause(None, d),
                    None => self.pause(Some(bucket), BURST_WINDOW),
                }
                None
            }
        }
    }

    /// The search pacer's current rate per second.
    pub fn search_per_second(&self) -> u32 {
        lock(&self.search).per_second
    }

    pub fn budget(&self) -> ApiBudget {
        let b = lock(&self.budget);
        let limit = b.daily_limit.unwrap_or(0);
        ApiBudget {
            used: b.used,
            limit,
            allowed: b.daily_limit.map(|l| self.allowed(l)).unwrap_or(0),
            paused_until: b.paused_until.filter(|t| *t > self.clock.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SystemClock;

    #[test]
    fn quota_never_admits_more_than_the_window_allows() {
        // burst + window/period must stay within the limit.
        for n in [2u32, 4, 5, 10, 100, 171, 190] {
            let q = quota_for(n, BURST_WINDOW);
            let admitted = q.burst_size().get() as u128 + BURST_WINDOW.as_nanos() / q.replenish_interval().as_nanos();
            assert!(admitted <= n as u128, "{n}: {admitted}");
            assert!(admitted * 10 >= (n as u128) * 7, "{n}: {admitted} wastes the limit");
        }
    }

    #[tokio::test]
    async fn budget_stops_at_the_operators_share() {
        let l = Limits::new(100, 5, 0.5, None, Arc::new(SystemClock));
        l.observe(
            Bucket::Burst,
            &RateHeaders { daily: Some(1000), daily_remaining: Some(600), ..RateHeaders::default() },
        );
        assert!(l.acquire(Bucket::Burst).await.is_ok());
        let b = l.budget();
        assert_eq!((b.used, b.limit, b.allowed), (400, 1000, 500));
        l.observe(
            Bucket::Burst,
            &RateHeaders { daily: Some(1000), daily_remaining: Some(500), ..RateHeaders::default() },
        );
        assert!(matches!(l.acquire(Bucket::Burst).await, Err(HubspotError::Budget { .. })));
        assert!(l.budget().paused_until.is_some());
    }

    #[test]
    fn a_secondly_refusal_lowers_the_search_pace_below_what_got_through() {
        // Sent 6 in the refused second: 5 got through, so plan for fewer.
        assert_eq!(lowered_search_rate(20, 6), 4);
        assert_eq!(lowered_search_rate(5, 6), 4);
        // Another app spent the bucket: only ours was refused.
        assert_eq!(lowered_search_rate(5, 1), 1);
        assert_eq!(lowered_search_rate(1, 0), 1);
        // Never faster than the refused pace, even when many got through.
        assert_eq!(lowered_search_rate(4, 30), 3);
    }

    #[tokio::test]
    async fn secondly_refusals_pause_search_only_and_slow_it_down() {
        let l = Limits::new(100, 20, 1.0, None, Arc::new(SystemClock));
        for _ in 0..6 {
            l.acquire(Bucket::Search).await.unwrap();
        }
        assert_eq!(l.search_per_second(), 20);
        let t0 = Instant::now();
        assert!(l.on_rate_limited(RatePolicy::Secondly, Bucket::Search, None).is_none());
        assert_eq!(l.search_per_second(), 4);
        assert!(lock(&l.gate).is_none(), "the burst bucket is not paused by a search refusal");
        l.acquire(Bucket::Search).await.unwrap();
        assert!(Instant::now() - t0 >= SEARCH_WINDOW, "a search went out inside the second after the refusal");
    }

    #[tokio::test]
    async fn retry_after_closes_the_gate_for_every_bucket() {
        let l = Limits::new(100, 5, 1.0, None, Arc::new(SystemClock));
        let t0 = Instant::now();
        assert!(l.on_rate_limited(RatePolicy::TenSecondly, Bucket::Burst, Some(Duration::from_millis(300))).is_none());
        l.acquire(Bucket::Search).await.unwrap();
        assert!(Instant::now() - t0 >= Duration::from_millis(300), "a request went out inside the Retry-After window");
        let d = l.on_rate_limited(RatePolicy::Daily, Bucket::Burst, None);
        assert!(matches!(d, Some(HubspotError::Budget { .. })));
        assert!(matches!(l.acquire(Bucket::Burst).await, Err(HubspotError::Budget { .. })));
    }
}
