//! The operator's share of the CRM's daily API budget, and the pause gate a
//! server's "wait" closes.
//!
//! Both CRMs count calls per day and report the count on responses
//! (Salesforce's `Sforce-Limit-Info`, HubSpot's `X-HubSpot-RateLimit-Daily*`);
//! the operator allows handoff a share. At that share the connector stops
//! (not fails) and looks again after a pause. What differs is when calls
//! come back: Salesforce's window rolls (usage falls gradually, so the
//! connector looks again after a while), HubSpot's resets at midnight UTC.

use std::sync::Mutex;
use std::time::Duration;

use chrono::Days;
use handoff_model::{ApiBudget, Timestamp};
use tokio::time::Instant;

/// When spent calls come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetReset {
    /// A rolling 24-hour window: look again after `recheck`.
    Rolling { recheck: Duration },
    /// The count restarts at the next midnight UTC.
    UtcMidnight,
}

/// The daily budget as last reported, against the operator's share.
#[derive(Debug, Clone)]
pub struct DailyBudget {
    share: f64,
    reset: BudgetReset,
    used: u64,
    limit: Option<u64>,
    /// Whether `used` comes from the CRM (else counted locally).
    reported: bool,
    day: Option<chrono::NaiveDate>,
    paused_until: Option<Timestamp>,
}

impl DailyBudget {
    /// `limit`: the daily limit to assume until the CRM reports one
    /// (`None`: no budget until then).
    pub fn new(share: f64, reset: BudgetReset, limit: Option<u64>) -> Self {
        DailyBudget { share, reset, used: 0, limit, reported: false, day: None, paused_until: None }
    }

    fn allowed_of(&self, limit: u64) -> u64 {
        (limit as f64 * self.share).floor() as u64
    }

    fn pause_until(&self, now: Timestamp) -> Timestamp {
        match self.reset {
            BudgetReset::Rolling { recheck } => {
                now + chrono::Duration::from_std(recheck).unwrap_or_else(|_| chrono::Duration::minutes(15))
            }
            BudgetReset::UtcMidnight => next_midnight(now),
        }
    }

    fn turn_day(&mut self, now: Timestamp) {
        if self.reset == BudgetReset::UtcMidnight && self.day.is_some_and(|d| d != now.date_naive()) {
            // A new day: the count restarts (the CRM's next answer confirms).
            self.used = 0;
            self.paused_until = None;
        }
        self.day = Some(now.date_naive());
    }

    /// May a request go now? `Err(wait)` while paused or at the share.
    pub fn gate(&mut self, now: Timestamp) -> Result<(), Duration> {
        self.turn_day(now);
        if let Some(until) = self.paused_until {
            if until > now {
                return Err((until - now).to_std().unwrap_or(Duration::ZERO));
            }
            // Past the pause one request may look again; its answer decides.
            self.paused_until = None;
            return Ok(());
        }
        if let Some(limit) = self.limit.filter(|l| *l > 0) {
            if self.used >= self.allowed_of(limit) {
                let until = self.pause_until(now);
                self.paused_until = Some(until);
                return Err((until - now).to_std().unwrap_or(Duration::ZERO));
            }
        }
        Ok(())
    }

    /// A request was sent: counted locally while the CRM reports no usage.
    pub fn count_sent(&mut self, now: Timestamp) {
        self.turn_day(now);
        if !self.reported {
            self.used += 1;
        }
    }

    /// The CRM reported its count: pause at the share, resume below it.
    pub fn observe(&mut self, used: u64, limit: u64, now: Timestamp) {
        self.turn_day(now);
        self.used = used;
        self.limit = Some(limit);
        self.reported = true;
        if limit > 0 && used >= self.allowed_of(limit) {
            self.paused_until = Some(self.pause_until(now));
        } else {
            self.paused_until = None;
        }
    }

    /// The CRM refused: its daily limit is spent. Pause for `retry_after`
    /// when it said how long, else per the reset rule.
    pub fn exhausted(&mut self, retry_after: Option<Duration>, now: Timestamp) -> Duration {
        let until = match retry_after.and_then(|d| chrono::Duration::from_std(d).ok()) {
            Some(d) => now + d,
            None => self.pause_until(now),
        };
        self.paused_until = Some(until);
        (until - now).to_std().unwrap_or(Duration::ZERO)
    }

    pub fn snapshot(&self, now: Timestamp) -> ApiBudget {
        let limit = self.limit.unwrap_or(0);
        ApiBudget {
            used: self.used,
            limit,
            allowed: self.limit.map(|l| self.allowed_of(l)).unwrap_or(0),
            paused_until: self.paused_until.filter(|t| *t > now),
        }
    }
}

/// The next UTC midnight after `now`.
pub fn next_midnight(now: Timestamp) -> Timestamp {
    now.date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(now + chrono::Duration::days(1))
}

/// What a pause holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every request.
    All,
    /// Requests drawing from one bucket.
    Bucket(crate::Bucket),
}

/// Nothing in a scope is sent before its instant (tokio's clock): set from
/// `Retry-After`, from a "remaining: 0" header, from a 429.
#[derive(Debug, Default)]
pub struct PauseGate {
    all: Mutex<Option<Instant>>,
    default: Mutex<Option<Instant>>,
    search: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PauseGate {
    fn slot(&self, scope: Scope) -> &Mutex<Option<Instant>> {
        match scope {
            Scope::All => &self.all,
            Scope::Bucket(crate::Bucket::Default) => &self.default,
            Scope::Bucket(crate::Bucket::Search) => &self.search,
        }
    }

    /// Close `scope` for `wait` (a later close wins; an earlier one never
    /// shortens a pause in force).
    pub fn pause(&self, scope: Scope, wait: Duration) {
        let wait = wait.min(crate::retry_after::MAX_RETRY_AFTER);
        let until = Instant::now() + wait;
        let mut g = lock(self.slot(scope));
        if g.is_none_or(|t| t < until) {
            *g = Some(until);
        }
    }

    /// When requests from `bucket` may go again (`None`: now).
    pub fn open_at(&self, bucket: crate::Bucket) -> Option<Instant> {
        let all = *lock(&self.all);
        let own = *lock(self.slot(Scope::Bucket(bucket)));
        all.max(own).filter(|t| *t > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_780_000_000 + secs, 0).single().unwrap_or_default()
    }

    #[test]
    fn a_rolling_budget_stops_at_the_share_and_resumes_when_usage_falls() {
        let mut b = DailyBudget::new(0.5, BudgetReset::Rolling { recheck: Duration::from_secs(600) }, None);
        b.observe(499, 1000, at(0));
        assert_eq!(b.gate(at(0)), Ok(()));
        assert_eq!(b.snapshot(at(0)).allowed, 500);
        b.observe(500, 1000, at(10));
        assert_eq!(b.gate(at(20)), Err(Duration::from_secs(590)));
        assert_eq!(b.snapshot(at(20)).remaining(), 0);
        // After the pause one request may look again.
        assert_eq!(b.gate(at(610)), Ok(()));
        b.observe(420, 1000, at(611));
        assert_eq!(b.gate(at(611)), Ok(()));
        assert_eq!(b.snapshot(at(611)).paused_until, None);
    }

    #[test]
    fn a_midnight_budget_counts_locally_until_reported_and_restarts_with_the_day() {
        let noon = chrono::Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).single().unwrap_or_default();
        let mut b = DailyBudget::new(0.5, BudgetReset::UtcMidnight, Some(4));
        b.count_sent(noon);
        assert_eq!(b.gate(noon), Ok(()));
        b.count_sent(noon);
        let wait = b.gate(noon).expect_err("two of four at half a share");
        assert_eq!(wait, Duration::from_secs(12 * 3600));
        let next_day = noon + chrono::Duration::hours(12) + chrono::Duration::minutes(1);
        assert_eq!(b.gate(next_day), Ok(()), "the count restarts at midnight");
        assert_eq!(b.snapshot(next_day).used, 0);
    }

    #[test]
    fn a_refusal_pauses_for_what_the_crm_said_or_per_the_reset() {
        let mut b = DailyBudget::new(1.0, BudgetReset::Rolling { recheck: Duration::from_secs(60) }, None);
        assert_eq!(b.exhausted(None, at(0)), Duration::from_secs(60));
        assert!(b.gate(at(30)).is_err());
        assert_eq!(b.exhausted(Some(Duration::from_secs(5)), at(100)), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_holds_its_scope_and_never_shortens_a_pause() {
        let g = PauseGate::default();
        g.pause(Scope::Bucket(crate::Bucket::Search), Duration::from_secs(1));
        assert!(g.open_at(crate::Bucket::Default).is_none());
        assert!(g.open_at(crate::Bucket::Search).is_some());
        g.pause(Scope::All, Duration::from_secs(10));
        g.pause(Scope::All, Duration::from_secs(2));
        let open = g.open_at(crate::Bucket::Default).map(|t| t - Instant::now());
        assert_eq!(open, Some(Duration::from_secs(10)));
        g.pause(Scope::All, Duration::MAX);
        assert!(g.open_at(crate::Bucket::Default).is_some(), "a huge wait is clamped, not overflowed");
    }
}
