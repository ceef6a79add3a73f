//! The org's daily API allocation: a rolling 24-hour window of counted
//! requests, reported on every response as `Sforce-Limit-Info` and by
//! `/limits` as `DailyApiRequests`, and enforced with 403
//! `REQUEST_LIMIT_EXCEEDED` once spent; and the Bulk API allocations that
//! `/limits` reports beside it (rolling 24-hour windows too).

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

/// Developer Edition's allocation, the number the recorded `/limits`
/// response shows; admins change it through the admin API.
pub const DEFAULT_DAILY_LIMIT: u64 = 15_000;

/// Counted calls in the rolling window, in simulated time.
#[derive(Debug, Clone)]
pub struct ApiUsage {
    daily_limit: u64,
    /// Usage an admin declared (calls other integrations made), and when:
    /// it ages out of the window like real calls do.
    preset: Option<(u64, DateTime<Utc>)>,
    /// Instants of counted calls within the last 24 hours, oldest first.
    calls_at: VecDeque<DateTime<Utc>>,
}

impl Default for ApiUsage {
    fn default() -> Self {
        ApiUsage { daily_limit: DEFAULT_DAILY_LIMIT, preset: None, calls_at: VecDeque::new() }
    }
}

fn window() -> Duration {
    Duration::hours(24)
}

impl ApiUsage {
    fn expire(&mut self, now: DateTime<Utc>) {
        let floor = now - window();
        while self.calls_at.front().is_some_and(|t| *t <= floor) {
            self.calls_at.pop_front();
        }
        if self.preset.is_some_and(|(_, at)| at <= floor) {
            self.preset = None;
        }
    }

    /// Calls used in the window ending at `now`.
    pub fn used(&mut self, now: DateTime<Utc>) -> u64 {
        self.expire(now);
        self.preset.map_or(0, |(n, _)| n) + self.calls_at.len() as u64
    }

    pub fn daily_limit(&self) -> u64 {
        self.daily_limit
    }

    /// Whether one more counted call may run at `now`.
    pub fn exhausted(&mut self, now: DateTime<Utc>) -> bool {
        self.used(now) >= self.daily_limit
    }

    /// Count one call served at `now`.
    pub fn record(&mut self, now: DateTime<Utc>) {
        self.expire(now);
        self.calls_at.push_back(now);
    }

    /// Admin: set the limit and/or declare the usage so far (replacing the
    /// calls counted until now).
    pub fn set(&mut self, daily_limit: Option<u64>, used: Option<u64>, now: DateTime<Utc>) {
        if let Some(limit) = daily_limit {
            self.daily_limit = limit;
        }
        if let Some(used) = used {
            self.calls_at.clear();
            self.preset = Some((used, now));
        }
    }

    /// The `Sforce-Limit-Info` header value, e.g. `api-usage=18/15000`.
    pub fn header_value(&mut self, now: DateTime<Utc>) -> String {
        format!("api-usage={}/{}", self.used(now), self.daily_limit)
    }
}

/// Bulk API 2.0 query jobs per rolling 24 hours (`DailyBulkV2QueryJobs`).
pub const BULK_V2_QUERY_JOBS_PER_DAY: u64 = 10_000;
/// Bulk API 2.0 query results stored per rolling 24 hours, in MB (1 TB,
/// `DailyBulkV2QueryFileStorageMB`).
pub const BULK_V2_QUERY_STORAGE_MB_PER_DAY: u64 = 976_562;
/// Bulk API batches per rolling 24 hours (`DailyBulkApiBatches`), shared by
/// Bulk API 1.0 and 2.0 ingest; query jobs consume none.
pub const BULK_API_BATCHES_PER_DAY: u64 = 15_000;

/// A rolling 24-hour allocation that uses are taken from in amounts (one
/// job, so many MB), as `/limits` reports it: `{"Max", "Remaining"}`.
#[derive(Debug, Clone)]
pub struct RollingAllocation {
    max: u64,
    /// Amounts taken within the last 24 hours and when, oldest first.
    taken: VecDeque<(DateTime<Utc>, u64)>,
}

impl RollingAllocation {
    pub fn new(max: u64) -> Self {
        RollingAllocation { max, taken: VecDeque::new() }
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let floor = now - window();
        while self.taken.front().is_some_and(|(t, _)| *t <= floor) {
            self.taken.pop_front();
        }
    }

    pub fn used(&mut self, now: DateTime<Utc>) -> u64 {
        self.expire(now);
        self.taken.iter().map(|(_, n)| n).sum()
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Whether `amount` more fits in the window ending at `now`.
    pub fn has_room(&mut self, amount: u64, now: DateTime<Utc>) -> bool {
        self.used(now).saturating_add(amount) <= self.max
    }

    pub fn take(&mut self, amount: u64, now: DateTime<Utc>) {
        self.expire(now);
        if amount > 0 {
            self.taken.push_back((now, amount));
        }
    }

    /// Admin: a new maximum and/or the usage so far (replacing what was taken).
    pub fn set(&mut self, max: Option<u64>, used: Option<u64>, now: DateTime<Utc>) {
        if let Some(max) = max {
            self.max = max;
        }
        if let Some(used) = used {
            self.taken.clear();
            self.take(used, now);
        }
    }

    /// `{"Max": N, "Remaining": N}`.
    pub fn to_json(&mut self, now: DateTime<Utc>) -> serde_json::Value {
        let used = self.used(now);
        serde_json::json!({"Max": self.max, "Remaining": self.max.saturating_sub(used)})
    }
}

/// The Bulk API allocations of the org.
#[derive(Debug, Clone)]
pub struct BulkUsage {
    pub query_jobs: RollingAllocation,
    pub query_storage_mb: RollingAllocation,
    pub batches: RollingAllocation,
}

impl Default for BulkUsage {
    fn default() -> Self {
        BulkUsage {
            query_jobs: RollingAllocation::new(BULK_V2_QUERY_JOBS_PER_DAY),
            query_storage_mb: RollingAllocation::new(BULK_V2_QUERY_STORAGE_MB_PER_DAY),
            batches: RollingAllocation::new(BULK_API_BATCHES_PER_DAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn counts_in_a_rolling_window_and_reports_the_header() {
        let mut u = ApiUsage::default();
        u.record(t("2026-03-02T09:00:00Z"));
        u.record(t("2026-03-02T10:00:00Z"));
        assert_eq!(u.header_value(t("2026-03-02T11:00:00Z")), "api-usage=2/15000");
        // The first call leaves the window 24 h after it was made.
        assert_eq!(u.used(t("2026-03-03T09:30:00Z")), 1);
        assert_eq!(u.used(t("2026-03-03T10:00:01Z")), 0);
    }

    #[test]
    fn exhausts_at_the_limit() {
        let mut u = ApiUsage::default();
        let now = t("2026-03-02T09:00:00Z");
        u.set(Some(10), Some(9), now);
        assert!(!u.exhausted(now));
        u.record(now);
        assert!(u.exhausted(now));
        assert_eq!(u.header_value(now), "api-usage=10/10");
        // The declared usage ages out too.
        assert!(!u.exhausted(now + Duration::hours(25)));
    }

    #[test]
    fn rolling_allocations_take_amounts_and_age_them_out() {
        let mut a = RollingAllocation::new(10);
        let now = t("2026-03-02T09:00:00Z");
        a.take(4, now);
        a.take(0, now);
        a.take(5, now + Duration::hours(1));
        assert_eq!(a.to_json(now + Duration::hours(2)), serde_json::json!({"Max": 10, "Remaining": 1}));
        assert!(a.has_room(1, now + Duration::hours(2)));
        assert!(!a.has_room(2, now + Duration::hours(2)));
        // The first use leaves the window 24 hours after it was taken.
        assert_eq!(a.used(now + Duration::hours(24)), 5);
        a.set(Some(20), Some(19), now + Duration::hours(24));
        assert_eq!(a.to_json(now + Duration::hours(24)), serde_json::json!({"Max": 20, "Remaining": 1}));
    }
}
