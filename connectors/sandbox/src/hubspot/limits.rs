//! HubSpot's rate limits, driven by the simulated clock:
//! - a 10-second rolling burst bucket (190 for a Professional private app,
//!   100 for OAuth apps), answered with `TEN_SECONDLY_ROLLING`;
//! - a separate search bucket of 5 per second (searches are exempt from the
//!   burst bucket), answered with `SECONDLY`;
//! - a daily quota for private apps (650,000 on Professional), answered with
//!   `DAILY`; OAuth apps have none and get no `-Daily` headers.
//!
//! Windows are kept as the times of the requests they admitted, so a frozen
//! clock keeps a full window full until a test advances it.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use super::errors::RatePolicy;

/// The limits in force.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitConfig {
    pub private_app_burst_per_10s: u32,
    pub oauth_burst_per_10s: u32,
    pub search_per_second: u32,
    pub private_app_daily: u64,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            private_app_burst_per_10s: 190,
            oauth_burst_per_10s: 100,
            search_per_second: 5,
            private_app_daily: 650_000,
        }
    }
}

/// How the caller authenticated: decides the burst size and daily quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    PrivateApp,
    OAuth,
}

/// The `X-HubSpot-RateLimit-*` headers for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHeaders(pub Vec<(&'static str, String)>);

impl RateHeaders {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The counters.
#[derive(Debug, Default)]
pub struct RateLimiter {
    pub config: LimitConfig,
    burst: VecDeque<DateTime<Utc>>,
    search: VecDeque<DateTime<Utc>>,
    /// Counted calls on `daily_day` (UTC date).
    daily_used: u64,
    daily_day: Option<chrono::NaiveDate>,
}

const BURST_WINDOW_MS: i64 = 10_000;

impl RateLimiter {
    pub fn new(config: LimitConfig) -> Self {
        RateLimiter { config, ..Default::default() }
    }

    fn burst_max(&self, auth: AuthKind) -> u32 {
        match auth {
            AuthKind::PrivateApp => self.config.private_app_burst_per_10s,
            AuthKind::OAuth => self.config.oauth_burst_per_10s,
        }
    }

    fn roll(&mut self, now: DateTime<Utc>) {
        let burst_start = now - Duration::milliseconds(BURST_WINDOW_MS);
        while self.burst.front().is_some_and(|t| *t <= burst_start) {
            self.burst.pop_front();
        }
        let search_start = now - Duration::seconds(1);
        while self.search.front().is_some_and(|t| *t <= search_start) {
            self.search.pop_front();
        }
        let today = now.date_naive();
        if self.daily_day != Some(today) {
            self.daily_day = Some(today);
            self.daily_used = 0;
        }
    }

    /// Set today's usage (admin), e.g. to just under the quota.
    pub fn set_daily_used(&mut self, now: DateTime<Utc>, used: u64) {
        self.roll(now);
        self.daily_used = used;
    }

    pub fn daily_used(&self) -> u64 {
        self.daily_used
    }

    /// Admit or refuse one counted request. On refusal nothing is counted.
    /// Either way, returns the headers to send.
    pub fn admit(
        &mut self,
        now: DateTime<Utc>,
        auth: AuthKind,
        is_search: bool,
    ) -> (Result<(), RatePolicy>, RateHeaders) {
        self.roll(now);
        let verdict = if auth == AuthKind::PrivateApp && self.daily_used >= self.config.private_app_daily {
            Err(RatePolicy::Daily)
        } else if is_search && self.search.len() as u32 >= self.config.search_per_second {
            Err(RatePolicy::Secondly)
        } else if !is_search && self.burst.len() as u32 >= self.burst_max(auth) {
            Err(RatePolicy::TenSecondlyRolling)
        } else {
            if is_search {
                self.search.push_back(now);
            } else {
                self.burst.push_back(now);
            }
            if auth == AuthKind::PrivateApp {
                self.daily_used += 1;
            }
            Ok(())
        };
        (verdict, self.headers(auth, is_search))
    }

    /// Current headers. Search responses carry the daily pair only: the
    /// search bucket has no documented headers.
    pub fn headers(&self, auth: AuthKind, is_search: bool) -> RateHeaders {
        let mut h = Vec::new();
        if auth == AuthKind::PrivateApp {
            h.push(("X-HubSpot-RateLimit-Daily", self.config.private_app_daily.to_string()));
            h.push((
                "X-HubSpot-RateLimit-Daily-Remaining",
                self.config.private_app_daily.saturating_sub(self.daily_used).to_string(),
            ));
        }
        if !is_search {
            let max = self.burst_max(auth);
            h.push(("X-HubSpot-RateLimit-Interval-Milliseconds", BURST_WINDOW_MS.to_string()));
            h.push(("X-HubSpot-RateLimit-Max", max.to_string()));
            h.push(("X-HubSpot-RateLimit-Remaining", max.saturating_sub(self.burst.len() as u32).to_string()));
        }
        RateHeaders(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn burst_bucket_refuses_the_191st_call_in_ten_seconds_and_rolls() {
        let mut l = RateLimiter::default();
        for i in 0..190 {
            let (v, h) = l.admit(t0(), AuthKind::PrivateApp, false);
            assert_eq!(v, Ok(()), "call {i}");
            assert_eq!(h.get("X-HubSpot-RateLimit-Remaining"), Some((189 - i).to_string().as_str()));
        }
        let (v, h) = l.admit(t0() + Duration::seconds(9), AuthKind::PrivateApp, false);
        assert_eq!(v, Err(RatePolicy::TenSecondlyRolling));
        assert_eq!(h.get("X-HubSpot-RateLimit-Max"), Some("190"));
        assert_eq!(h.get("X-HubSpot-RateLimit-Interval-Milliseconds"), Some("10000"));
        assert_eq!(h.get("X-HubSpot-RateLimit-Remaining"), Some("0"));
        let (v, _) = l.admit(t0() + Duration::seconds(10), AuthKind::PrivateApp, false);
        assert_eq!(v, Ok(()));
    }

    #[test]
    fn searches_have_their_own_per_second_bucket() {
        let mut l = RateLimiter::default();
        for _ in 0..5 {
            assert_eq!(l.admit(t0(), AuthKind::PrivateApp, true).0, Ok(()));
        }
        let (v, h) = l.admit(t0(), AuthKind::PrivateApp, true);
        assert_eq!(v, Err(RatePolicy::Secondly));
        assert_eq!(h.get("X-HubSpot-RateLimit-Max"), None);
        // The burst bucket is untouched by searches.
        let (v, h) = l.admit(t0(), AuthKind::PrivateApp, false);
        assert_eq!(v, Ok(()));
        assert_eq!(h.get("X-HubSpot-RateLimit-Remaining"), Some("189"));
        assert_eq!(l.admit(t0() + Duration::seconds(1), AuthKind::PrivateApp, true).0, Ok(()));
    }

    #[test]
    fn daily_quota_applies_to_private_apps_only_and_resets_at_midnight() {
        let mut l = RateLimiter::default();
        l.set_daily_used(t0(), 650_000);
        let (v, h) = l.admit(t0(), AuthKind::PrivateApp, false);
        assert_eq!(v, Err(RatePolicy::Daily));
        assert_eq!(h.get("X-HubSpot-RateLimit-Daily"), Some("650000"));
        assert_eq!(h.get("X-HubSpot-RateLimit-Daily-Remaining"), Some("0"));
        let (v, h) = l.admit(t0(), AuthKind::OAuth, false);
        assert_eq!(v, Ok(()));
        assert_eq!(h.get("X-HubSpot-RateLimit-Daily"), None);
        assert_eq!(h.get("X-HubSpot-RateLimit-Max"), Some("100"));
        let (v, h) = l.admit(t0() + Duration::days(1), AuthKind::PrivateApp, false);
        assert_eq!(v, Ok(()));
        assert_eq!(h.get("X-HubSpot-RateLimit-Daily-Remaining"), Some("649999"));
    }
}
